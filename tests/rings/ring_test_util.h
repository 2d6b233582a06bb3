/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ring_test_util.h - helpers shared by the ring test programs: ring areas
 * (heap, or a memfd mapped between PROT_NONE guard pages), a view of the
 * shared control block for tests that play the peer, a clock and a seeded
 * xorshift generator for deadlines and random operations, and element
 * stamps (sequence number + checksum) that catch loss, duplication,
 * reordering and torn copies.
 */
#ifndef IVSHM_RING_TEST_UTIL_H
#define IVSHM_RING_TEST_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "ivshm/ring.h"
#include "../common/mix.h"

/* Mirror of rings/ring_layout.h offsets (that header is C11-only because of
 * _Static_assert/alignas spelling; the test checks the mirror against the
 * library's behaviour through the public API). */
namespace ringtest {

constexpr size_t kCtrlSize = 384;
constexpr size_t kOffMagic = 0;
constexpr size_t kOffCapacity = 12;
constexpr size_t kOffElemSize = 16;
constexpr size_t kOffProd = 128;
constexpr size_t kOffCons = 256;
constexpr size_t kOffWake = 260;

inline uint32_t *word(void *mem, size_t off)
{
	return reinterpret_cast<uint32_t *>(static_cast<uint8_t *>(mem) + off);
}

/* The peer's view of the shared words: what a (possibly hostile) peer
 * process can write. Relaxed atomics so the sanitizers see no plain race. */
inline void poke(void *mem, size_t off, uint32_t v)
{
	__atomic_store_n(word(mem, off), v, __ATOMIC_RELEASE);
}
inline uint32_t peek_word(void *mem, size_t off)
{
	return __atomic_load_n(word(mem, off), __ATOMIC_ACQUIRE);
}

/* Monotonic seconds, for test deadlines. */
inline double now_s()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Marsaglia's xorshift32: a cheap, reproducible stream from seed *@p s
 * (never 0). */
inline uint32_t xorshift(uint32_t *s)
{
	uint32_t x = *s;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

/* 64-byte aligned heap area, freed on scope exit. */
struct Area {
	void *mem = nullptr;
	size_t len = 0;
	explicit Area(size_t n) : len(n)
	{
		if (posix_memalign(&mem, 64, n ? n : 64) != 0)
			mem = nullptr;
		if (mem)
			memset(mem, 0xa5, len);
	}
	~Area() { free(mem); }
	Area(const Area &) = delete;
	Area &operator=(const Area &) = delete;
};

/* Element stamp: first word the sequence number, last word a checksum of
 * the sequence number and the element's size, middle words derived too. */
using iv::mix;

inline void stamp(void *elem, uint32_t esz, uint64_t seq)
{
	uint64_t *w = static_cast<uint64_t *>(elem);
	uint32_t n = esz / 8;
	w[0] = seq;
	for (uint32_t i = 1; i + 1 < n; i++)
		w[i] = mix(seq + i);
	if (n > 1)
		w[n - 1] = mix(seq ^ UINT64_C(0x9e3779b97f4a7c15));
}

/* Returns true when elem carries exactly sequence number seq. */
inline bool stamp_ok(const void *elem, uint32_t esz, uint64_t seq)
{
	const uint64_t *w = static_cast<const uint64_t *>(elem);
	uint32_t n = esz / 8;
	if (w[0] != seq)
		return false;
	for (uint32_t i = 1; i + 1 < n; i++)
		if (w[i] != mix(seq + i))
			return false;
	return n == 1 || w[n - 1] == mix(seq ^ UINT64_C(0x9e3779b97f4a7c15));
}

/* Runtime parameter from the environment, with a default. */
inline uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *s = getenv(name);
	char *end;
	unsigned long long v;
	if (!s || !*s)
		return dflt;
	v = strtoull(s, &end, 0);
	return *end ? dflt : v;
}

} /* namespace ringtest */

#endif
