/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ring.c - set-up and slow paths of the ivshm SPSC ring.
 *
 * The data path (enqueue, dequeue, reserve/commit, peek/release) is inline
 * in include/ivshm/ring.h. Here: geometry checks, formatting the control
 * block, attaching a handle (the only place that reads the geometry and our
 * own index from shared memory), fill level, and the doorbell-suppression
 * handshake. Nothing read from shared memory is used before it is checked;
 * slot addresses come only from the handle's private copy of the geometry.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "ivshm/ring.h"
#include "ivshm_atomic.h"
#include "ivshm_common.h"
#include "ring_layout.h"

_Static_assert(IVSHM_RING_MAX_CAPACITY <= (UINT32_C(1) << 31),
	       "capacity must divide 2^32 and fit an int");

static int geometry_ok(uint32_t capacity, uint32_t elem_size)
{
	return ivshm_is_pow2_u64(capacity) &&
	       capacity <= IVSHM_RING_MAX_CAPACITY && elem_size >= 8 &&
	       elem_size <= IVSHM_RING_MAX_ELEM_SIZE && elem_size % 8 == 0;
}

size_t ivshm_ring_memsize(uint32_t capacity, uint32_t elem_size)
{
	uint64_t size;

	if (!geometry_ok(capacity, elem_size))
		return 0;
	size = sizeof(struct ivshm_ring_ctrl) + (uint64_t)capacity * elem_size;
	if (size > SIZE_MAX)
		return 0;
	return (size_t)size;
}

int ivshm_ring_format(void *mem, size_t len, uint32_t capacity,
		      uint32_t elem_size)
{
	struct ivshm_ring_ctrl *c = mem;
	size_t need = ivshm_ring_memsize(capacity, elem_size);

	if (need == 0 || mem == NULL || len < need ||
	    (uintptr_t)mem % IVSHM_RING_LINE != 0)
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	c->version = IVSHM_RING_VERSION;
	c->capacity = capacity;
	c->elem_size = elem_size;
	c->ctrl_size = sizeof(*c);
	/* R2: pairs with the acquire load A2 of magic in attach, for a peer
	 * that attaches as soon as it sees the magic. */
	ivshm_store_release(&c->magic, IVSHM_RING_MAGIC);
	return 0;
}

int ivshm_ring_attach(struct ivshm_ring *r, void *mem, size_t len,
		      uint32_t capacity, uint32_t elem_size,
		      enum ivshm_ring_role role)
{
	struct ivshm_ring_ctrl *c = mem;
	size_t need = ivshm_ring_memsize(capacity, elem_size);
	uint32_t prod, cons;

	if (r == NULL || need == 0 || mem == NULL || len < need ||
	    (uintptr_t)mem % IVSHM_RING_LINE != 0 ||
	    (role != IVSHM_RING_PRODUCER && role != IVSHM_RING_CONSUMER))
		return -EINVAL;

	/* A2: pairs with the release store R2 of magic in format. The
	 * geometry is only compared with the caller's, never used. */
	if (ivshm_load_acquire(&c->magic) != IVSHM_RING_MAGIC ||
	    ivshm_load_relaxed(&c->version) != IVSHM_RING_VERSION ||
	    ivshm_load_relaxed(&c->capacity) != capacity ||
	    ivshm_load_relaxed(&c->elem_size) != elem_size ||
	    ivshm_load_relaxed(&c->ctrl_size) != sizeof(*c))
		return -EPROTO;

	/* Both indices are read once; our own is authoritative from here
	 * on and never read again. A0/A1 as in the data path: pairs with
	 * the peer's release store of its index (R0/R1). */
	prod = ivshm_load_acquire(&c->prod_idx);
	cons = ivshm_load_acquire(&c->cons_idx);
	if ((uint32_t)(prod - cons) > capacity)
		return -EPROTO;

	memset(r, 0, sizeof(*r));
	r->ivshm__slots = (uint8_t *)mem + sizeof(*c);
	r->ivshm__wake = &c->wake;
	r->ivshm__mask = capacity - 1;
	r->ivshm__capacity = capacity;
	r->ivshm__elem_size = elem_size;
	r->ivshm__pending = 0;
	r->ivshm__role = role;
	if (role == IVSHM_RING_PRODUCER) {
		r->ivshm__own_idx = &c->prod_idx;
		r->ivshm__peer_idx = &c->cons_idx;
		r->ivshm__head = prod;
		r->ivshm__peer_cache = cons;
	} else {
		r->ivshm__own_idx = &c->cons_idx;
		r->ivshm__peer_idx = &c->prod_idx;
		r->ivshm__head = cons;
		r->ivshm__peer_cache = prod;
	}
	return 0;
}

int ivshm_ring_count(struct ivshm_ring *r)
{
	int ret;

	if (r == NULL)
		return -EINVAL;
	if (r->ivshm__role == IVSHM_RING_PRODUCER) {
		ret = ivshm__ring_prod_refresh(r);
		if (ret < 0)
			return ret;
		return (int)(r->ivshm__head - r->ivshm__peer_cache);
	}
	if (r->ivshm__role == IVSHM_RING_CONSUMER) {
		ret = ivshm__ring_cons_refresh(r);
		if (ret < 0)
			return ret;
		return (int)(r->ivshm__peer_cache - r->ivshm__head);
	}
	return -EINVAL;
}

int ivshm_ring_wake_enable(struct ivshm_ring *r)
{
	int ret;

	if (r == NULL || r->ivshm__role != IVSHM_RING_CONSUMER)
		return -EINVAL;
	ivshm_store_relaxed(r->ivshm__wake, 1u);
	/* F1: pairs with the producer's fence F0 in needs_wake. Of "we set
	 * the flag, then read prod_idx" and "it stored prod_idx, then read
	 * the flag", one must see the other's store: no lost wake-up. */
	ivshm_fence_seq_cst();
	ret = ivshm__ring_cons_refresh(r);
	if (ret < 0)
		return ret;
	return (int)(r->ivshm__peer_cache -
		     (r->ivshm__head + r->ivshm__pending));
}

void ivshm_ring_wake_disable(struct ivshm_ring *r)
{
	if (r == NULL || r->ivshm__role != IVSHM_RING_CONSUMER)
		return;
	ivshm_store_relaxed(r->ivshm__wake, 0u);
}

int ivshm_ring_needs_wake(struct ivshm_ring *r)
{
	if (r == NULL || r->ivshm__role != IVSHM_RING_PRODUCER)
		return -EINVAL;
	/* F0: pairs with the consumer's fence F1 in wake_enable (see there);
	 * orders our earlier release store of prod_idx before the flag read. */
	ivshm_fence_seq_cst();
	/* Plain read first: writing the consumer's line on every publish
	 * would make it bounce even when nobody sleeps. */
	if (ivshm_load_relaxed(r->ivshm__wake) == 0)
		return 0;
	/* Test-and-clear, so one enable earns one doorbell. acq_rel pairs
	 * with nothing in particular: F0/F1 already order the handshake. */
	return ivshm_exchange_acq_rel(r->ivshm__wake, 0u) != 0;
}

/* Out of line on purpose: see ivshm__ring_copy() in ring.h. */
void ivshm__ring_memcpy(void *dst, const void *src, size_t bytes)
{
	memcpy(dst, src, bytes);
}
