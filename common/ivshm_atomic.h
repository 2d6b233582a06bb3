/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ivshm_atomic.h - the few atomic operations used on shared memory.
 *
 * Shared structs hold plain fixed-width integers; every access that another
 * process or VM may observe concurrently goes through these helpers, which
 * map onto C11 <stdatomic.h> in C and onto the same GCC/Clang builtins in
 * C++ (as liburing's barrier.h does), so the structs stay C++-clean.
 * Every caller of an acquire, release or seq_cst helper names its partner in
 * a one-line comment. Never use volatile for synchronisation.
 *
 * Private to the project: not installed.
 */
#ifndef IVSHM_ATOMIC_H
#define IVSHM_ATOMIC_H

#include <stdint.h>

#ifdef __cplusplus
#define IVSHM__ATOMIC_(x) (x)
#else
#include <stdatomic.h>
/* Shared memory between processes needs address-free, lock-free atomics. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
#endif

#define ivshm_load_relaxed(p)       __atomic_load_n((p), __ATOMIC_RELAXED)
#define ivshm_load_acquire(p)       __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ivshm_store_relaxed(p, v)   __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define ivshm_store_release(p, v)   __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ivshm_fetch_add_relaxed(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define ivshm_fetch_add_acq_rel(p, v) __atomic_fetch_add((p), (v), __ATOMIC_ACQ_REL)
#define ivshm_exchange_acq_rel(p, v) __atomic_exchange_n((p), (v), __ATOMIC_ACQ_REL)
/* Strong CAS; on failure *(expected) receives the current value. */
#define ivshm_cas_acq_rel(p, expected, desired)                               \
	__atomic_compare_exchange_n((p), (expected), (desired), 0,            \
				    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)
#define ivshm_fence_seq_cst()       __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define ivshm_fence_acquire()       __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define ivshm_fence_release()       __atomic_thread_fence(__ATOMIC_RELEASE)

#endif /* IVSHM_ATOMIC_H */
