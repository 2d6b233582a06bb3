/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file
 * ivshm/ring.h - lock-free single-producer/single-consumer ring in shared memory.
 *
 * The ring lives entirely in a memory area the caller provides (normally a
 * piece of an ivshmem region) and holds fixed-size elements, never pointers,
 * so two processes or VMs that map the area at different addresses use it
 * together. One side attaches as producer, the other as consumer; each keeps
 * a process-local handle (struct ivshm_ring) with its own index and a cached
 * copy of the peer's index.
 *
 * Trust: the peer may write any byte of the area at any time. The handle
 * copies the geometry once at attach time and never re-reads it; the peer's
 * index is validated on every read (at most capacity ahead of or behind our
 * own index). An impossible index is reported as -EPROTO and never used to
 * address memory. Element contents are the caller's to validate.
 *
 * Thread safety: one thread at a time per handle. The producer handle and the
 * consumer handle may be used concurrently (that is the point).
 */
#ifndef IVSHM_RING_H
#define IVSHM_RING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Largest capacity accepted by ivshm_ring_format() (elements). */
#define IVSHM_RING_MAX_CAPACITY (1u << 28)
/** Largest element size accepted (bytes); element sizes are multiples of 8. */
#define IVSHM_RING_MAX_ELEM_SIZE 4096u

/** Which end of the ring a handle drives. */
enum ivshm_ring_role {
	IVSHM_RING_PRODUCER = 1,
	IVSHM_RING_CONSUMER = 2,
};

/**
 * Process-local handle. Its fields are private: they are visible only so
 * that fast-path helpers can be inlined and handles embedded in callers'
 * structs. Use the functions below.
 */
struct ivshm_ring {
	/* private: */
	uint8_t *ivshm__slots;      /**< first slot in this process */
	uint32_t *ivshm__own_idx;   /**< our index word in shared memory */
	uint32_t *ivshm__peer_idx;  /**< the peer's index word in shared memory */
	uint32_t *ivshm__wake;      /**< consumer's "wake me" word */
	uint32_t ivshm__mask;       /**< capacity - 1 */
	uint32_t ivshm__capacity;
	uint32_t ivshm__elem_size;
	uint32_t ivshm__head;       /**< our free-running index (authoritative) */
	uint32_t ivshm__peer_cache; /**< last validated peer index */
	uint32_t ivshm__pending;    /**< reserved/peeked but not committed/released */
	int ivshm__role;
};

/**
 * Bytes needed for a ring of @p capacity elements of @p elem_size bytes,
 * control block included; 0 if the geometry is invalid (capacity not a power
 * of two in 1..IVSHM_RING_MAX_CAPACITY, elem_size not a multiple of 8 in
 * 8..IVSHM_RING_MAX_ELEM_SIZE). The area must be 64-byte aligned.
 */
size_t ivshm_ring_memsize(uint32_t capacity, uint32_t elem_size);

/**
 * Initialise the shared control block in @p mem (@p len bytes): magic,
 * geometry, both indices zero. Done by one side only, before either attaches.
 * @return 0, or -EINVAL for a bad geometry, misaligned @p mem, or @p len too
 *         small.
 */
int ivshm_ring_format(void *mem, size_t len, uint32_t capacity,
		      uint32_t elem_size);

/**
 * Attach a handle to a formatted ring. The caller passes the geometry it
 * expects (from its own trusted configuration); the ring checks that the
 * shared block carries the same, then reads both indices once and checks
 * that they are consistent (so a handle can re-attach to a ring in use).
 * @return 0; -EINVAL for bad arguments; -EPROTO if the block does not hold a
 *         ring of that geometry or its indices are impossible.
 */
int ivshm_ring_attach(struct ivshm_ring *r, void *mem, size_t len,
		      uint32_t capacity, uint32_t elem_size,
		      enum ivshm_ring_role role);

/** Capacity in elements. */
static inline uint32_t ivshm_ring_capacity(const struct ivshm_ring *r)
{
	return r->ivshm__capacity;
}

/** Element size in bytes. */
static inline uint32_t ivshm_ring_elem_size(const struct ivshm_ring *r)
{
	return r->ivshm__elem_size;
}

/**
 * Producer: copy up to @p n elements from @p elems into the ring.
 * @return the number enqueued (0..n; fewer when the ring is short of room),
 *         or -EPROTO if the consumer's index is impossible.
 */
int ivshm_ring_enqueue_burst(struct ivshm_ring *r, const void *elems,
			     uint32_t n);

/**
 * Consumer: copy up to @p n elements out of the ring into @p elems.
 * @return the number dequeued (0..n), or -EPROTO if the producer's index is
 *         impossible.
 */
int ivshm_ring_dequeue_burst(struct ivshm_ring *r, void *elems, uint32_t n);

/**
 * Producer, zero copy: reserve up to @p n free slots. On return *start is
 * the ring index of the first one; fill slot start + i (i < returned count)
 * through ivshm_ring_slot(), then ivshm_ring_commit(). A second reserve
 * before commit returns slots after the ones already reserved.
 * @return number of slots reserved (0..n), or -EPROTO.
 */
int ivshm_ring_reserve(struct ivshm_ring *r, uint32_t n, uint32_t *start);

/**
 * Producer: publish the first @p n reserved slots (n <= reserved).
 * @return 0, or -EINVAL if @p n exceeds what is reserved.
 */
int ivshm_ring_commit(struct ivshm_ring *r, uint32_t n);

/**
 * Consumer, zero copy: look at up to @p n filled slots without consuming
 * them; *start receives the ring index of the first. Read slot start + i
 * through ivshm_ring_slot(), then ivshm_ring_release().
 * @return number of slots available (0..n), or -EPROTO.
 */
int ivshm_ring_peek(struct ivshm_ring *r, uint32_t n, uint32_t *start);

/**
 * Consumer: hand the first @p n peeked slots back to the producer.
 * @return 0, or -EINVAL if @p n exceeds what was peeked.
 */
int ivshm_ring_release(struct ivshm_ring *r, uint32_t n);

/** Address of slot @p idx (any free-running index; masked here). */
static inline void *ivshm_ring_slot(const struct ivshm_ring *r, uint32_t idx)
{
	return r->ivshm__slots +
	       (size_t)(idx & r->ivshm__mask) * r->ivshm__elem_size;
}

/**
 * Elements ready for the consumer (consumer) or slots in use (producer),
 * read fresh from the peer's index. @return count, or -EPROTO.
 */
int ivshm_ring_count(struct ivshm_ring *r);

/**
 * Doorbell suppression, consumer side. Set the "wake me" flag, issue a full
 * fence, and re-check the ring.
 * @return the number of elements already available (> 0: do not sleep; the
 *         flag stays set, clear it with ivshm_ring_wake_disable()), 0 (safe
 *         to sleep: a producer that publishes from now on will see the
 *         flag), or -EPROTO.
 */
int ivshm_ring_wake_enable(struct ivshm_ring *r);

/** Consumer: clear the "wake me" flag (after waking up, or to stay polling). */
void ivshm_ring_wake_disable(struct ivshm_ring *r);

/**
 * Doorbell suppression, producer side, after a commit or enqueue: issue a
 * full fence and test-and-clear the consumer's "wake me" flag.
 * @return 1 if the caller must ring the consumer's doorbell (at most once per
 *         ivshm_ring_wake_enable()), else 0.
 */
int ivshm_ring_needs_wake(struct ivshm_ring *r);

#ifdef __cplusplus
}
#endif

#endif /* IVSHM_RING_H */
