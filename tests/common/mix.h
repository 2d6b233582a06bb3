// SPDX-License-Identifier: BSD-3-Clause
// mix(): a 64-bit mixing function (the MurmurHash3 finalizer) that the
// tests use to derive packet lengths, payload words and element stamps
// from sequence numbers, so a receiver can recompute what it should see.
#ifndef IVSHM_TESTS_MIX_H
#define IVSHM_TESTS_MIX_H

#include <stdint.h>

namespace iv {

inline uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	x *= UINT64_C(0xc4ceb9fe1a85ec53);
	x ^= x >> 33;
	return x;
}

} // namespace iv

#endif // IVSHM_TESTS_MIX_H
