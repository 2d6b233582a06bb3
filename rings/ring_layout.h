/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ring_layout.h - the shared control block of an ivshm ring.
 *
 * Shared-memory layout only (as memif.h): nothing else belongs here. A ring
 * area is this 384-byte control block followed by capacity * elem_size bytes
 * of slots. All fields are little-endian fixed-width integers; offsets are
 * part of the protocol between peers, so they are fixed at 64-byte lines
 * whatever the build's cache_line option says, and asserted below.
 *
 *   line 0 (  0) geometry: magic, version, capacity, elem_size (read-mostly:
 *                written once by ivshm_ring_format, copied at attach)
 *   line 1 ( 64) guard
 *   line 2 (128) producer index (written by the producer only)
 *   line 3 (192) guard
 *   line 4 (256) consumer index and the consumer's "wake me" flag
 *   line 5 (320) guard
 *   line 6 (384) slots
 *
 * The guard lines keep each written line alone in its 128-byte pair, so the
 * adjacent-line prefetcher does not drag the peer's line along with ours
 * (DPDK's RTE_CACHE_GUARD does the same).
 *
 * Indices are free-running 32-bit counters, masked by capacity - 1 only when
 * a slot is addressed. Because the capacity is a power of two no larger than
 * 2^28, it divides 2^32 and unsigned subtraction gives the right distance
 * across the 2^32 wrap.
 */
#ifndef IVSHM_RING_LAYOUT_H
#define IVSHM_RING_LAYOUT_H

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

#define IVSHM_RING_MAGIC   UINT64_C(0x474e495248535649) /* "IVSHRING" LE */
#define IVSHM_RING_VERSION 1u
#define IVSHM_RING_LINE    64

struct ivshm_ring_ctrl {
	/* line 0: geometry, never written after format. */
	alignas(IVSHM_RING_LINE) uint64_t magic; /* IVSHM_RING_MAGIC */
	uint32_t version;                        /* IVSHM_RING_VERSION */
	uint32_t capacity;                       /* elements, power of two */
	uint32_t elem_size;                      /* bytes, multiple of 8 */
	uint32_t ctrl_size;                      /* sizeof(struct ivshm_ring_ctrl) */

	alignas(IVSHM_RING_LINE) uint8_t guard0[IVSHM_RING_LINE];

	/* line 2: producer. Release-stored by the producer after it fills
	 * slots; acquire-loaded by the consumer before it reads them. */
	alignas(IVSHM_RING_LINE) uint32_t prod_idx;

	alignas(IVSHM_RING_LINE) uint8_t guard1[IVSHM_RING_LINE];

	/* line 4: consumer. cons_idx is release-stored by the consumer after
	 * it has read slots; acquire-loaded by the producer before it
	 * overwrites them. wake is set by the consumer before it sleeps and
	 * test-and-cleared by the producer (see ivshm_ring_needs_wake). */
	alignas(IVSHM_RING_LINE) uint32_t cons_idx;
	uint32_t wake;

	alignas(IVSHM_RING_LINE) uint8_t guard2[IVSHM_RING_LINE];

	/* slots follow at offset sizeof(struct ivshm_ring_ctrl) */
};

_Static_assert(sizeof(struct ivshm_ring_ctrl) == 6 * IVSHM_RING_LINE,
	       "control block is six lines");
_Static_assert(offsetof(struct ivshm_ring_ctrl, magic) == 0, "layout");
_Static_assert(offsetof(struct ivshm_ring_ctrl, version) == 8, "layout");
_Static_assert(offsetof(struct ivshm_ring_ctrl, capacity) == 12, "layout");
_Static_assert(offsetof(struct ivshm_ring_ctrl, elem_size) == 16, "layout");
_Static_assert(offsetof(struct ivshm_ring_ctrl, ctrl_size) == 20, "layout");
_Static_assert(offsetof(struct ivshm_ring_ctrl, prod_idx) == 2 * IVSHM_RING_LINE,
	       "producer index on its own line");
_Static_assert(offsetof(struct ivshm_ring_ctrl, cons_idx) == 4 * IVSHM_RING_LINE,
	       "consumer index on its own line");
_Static_assert(offsetof(struct ivshm_ring_ctrl, wake) == 4 * IVSHM_RING_LINE + 4,
	       "wake flag beside the consumer index");
_Static_assert(alignof(struct ivshm_ring_ctrl) == IVSHM_RING_LINE, "alignment");

#endif /* IVSHM_RING_LAYOUT_H */
