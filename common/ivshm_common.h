/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ivshm_common.h - small helpers shared by every module (private).
 */
#ifndef IVSHM_COMMON_H
#define IVSHM_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifndef IVSHM_CACHE_LINE
#define IVSHM_CACHE_LINE 64
#endif

#define ivshm_likely(x)   __builtin_expect(!!(x), 1)
#define ivshm_unlikely(x) __builtin_expect(!!(x), 0)

#define IVSHM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define IVSHM_ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((__typeof__(x))(a) - 1))

static inline int ivshm_is_pow2_u64(uint64_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

static inline void ivshm_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

#endif /* IVSHM_COMMON_H */
