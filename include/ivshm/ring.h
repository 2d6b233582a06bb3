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
 * copies the geometry once at attach time and never re-reads it, and never
 * reads its own index back. The peer's index is read only when the cached
 * copy does not cover a request, and validated on every read: it may only
 * move forward from the last value seen, and never past what is possible
 * (a consumer index beyond what we published; a producer index more than
 * capacity ahead of what we consumed). An impossible index is reported as
 * -EPROTO and never used to address memory: slot addresses come from the
 * handle's private copy of the geometry. Element contents are the caller's
 * to validate.
 *
 * Thread safety: one thread at a time per handle. The producer handle and the
 * consumer handle may be used concurrently (that is the point). No call
 * blocks; the data path (enqueue/dequeue, reserve/commit, peek/release) is
 * inline and wait-free.
 */
#ifndef IVSHM_RING_H
#define IVSHM_RING_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/** Address of slot @p idx (any free-running index; masked here). */
static inline void *ivshm_ring_slot(const struct ivshm_ring *r, uint32_t idx)
{
	return r->ivshm__slots +
	       (size_t)(idx & r->ivshm__mask) * r->ivshm__elem_size;
}

/* ---- internal helpers (ivshm__ namespace: not API) ---------------------- */

/* Library memcpy() for large copies, out of line (internal). */
void ivshm__ring_memcpy(void *dst, const void *src, size_t bytes);

/*
 * Copy @p bytes (a multiple of 8, at least 8) between a caller's buffer and
 * the slots. Up to 512 bytes (a burst of 32 16-byte elements) the copy is
 * inline: 64 bytes a step, then the 32-, 16- and 8-byte remainder, with
 * fixed-size memcpy() calls the compiler turns into vector moves; a call to
 * the library memcpy() would cost more than a small burst.
 */
#if defined(__GNUC__) && !defined(__clang__)
/* GCC cannot see that bytes is at most the caller's burst times the element
 * size, and warns about the branches for larger remainders when the
 * caller's buffer is small (a false positive: those branches are not taken
 * then). Silenced for this function only. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#pragma GCC diagnostic ignored "-Wstringop-overread"
#endif
static inline void ivshm__ring_copy(void *dst, const void *src, size_t bytes)
{
	uint8_t *d = (uint8_t *)dst;
	const uint8_t *s = (const uint8_t *)src;

	if (__builtin_expect(bytes > 512, 0)) {
		ivshm__ring_memcpy(d, s, bytes);
		return;
	}
	for (; bytes >= 64; bytes -= 64, d += 64, s += 64)
		memcpy(d, s, 64);
	if (bytes & 32) {
		memcpy(d, s, 32);
		d += 32;
		s += 32;
	}
	if (bytes & 16) {
		memcpy(d, s, 16);
		d += 16;
		s += 16;
	}
	if (bytes & 8)
		memcpy(d, s, 8);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/* Copy n >= 1 elements into the slots from ring index idx on, wrapping. */
static inline void ivshm__ring_put(const struct ivshm_ring *r, uint32_t idx,
				   const void *src, uint32_t n)
{
	uint32_t off = idx & r->ivshm__mask;
	uint32_t first = r->ivshm__capacity - off;
	uint32_t esz = r->ivshm__elem_size;
	uint8_t *slot = r->ivshm__slots + (size_t)off * esz;

	if (__builtin_expect(n <= first, 1)) {
		ivshm__ring_copy(slot, src, (size_t)n * esz);
	} else {
		ivshm__ring_copy(slot, src, (size_t)first * esz);
		ivshm__ring_copy(r->ivshm__slots,
				 (const uint8_t *)src + (size_t)first * esz,
				 (size_t)(n - first) * esz);
	}
}

/* Copy n >= 1 elements out of the slots from ring index idx on, wrapping. */
static inline void ivshm__ring_get(const struct ivshm_ring *r, uint32_t idx,
				   void *dst, uint32_t n)
{
	uint32_t off = idx & r->ivshm__mask;
	uint32_t first = r->ivshm__capacity - off;
	uint32_t esz = r->ivshm__elem_size;
	const uint8_t *slot = r->ivshm__slots + (size_t)off * esz;

	if (__builtin_expect(n <= first, 1)) {
		ivshm__ring_copy(dst, slot, (size_t)n * esz);
	} else {
		ivshm__ring_copy(dst, slot, (size_t)first * esz);
		ivshm__ring_copy((uint8_t *)dst + (size_t)first * esz,
				 r->ivshm__slots, (size_t)(n - first) * esz);
	}
}

/*
 * Producer: re-read the consumer's index. Valid values lie in
 * [peer_cache, head] (mod 2^32): the consumer only moves forward and never
 * passes what we published. Anything else is corruption; the cache keeps
 * its last good value. Returns 0 or -EPROTO.
 */
static inline int ivshm__ring_prod_refresh(struct ivshm_ring *r)
{
	/* A1: pairs with the consumer's release store R1 of cons_idx: the
	 * consumer has finished reading every slot below c, so we may
	 * overwrite them. */
	uint32_t c = __atomic_load_n(r->ivshm__peer_idx, __ATOMIC_ACQUIRE);
	uint32_t old = r->ivshm__peer_cache;

	if ((uint32_t)(c - old) > (uint32_t)(r->ivshm__head - old))
		return -EPROTO;
	r->ivshm__peer_cache = c;
	return 0;
}

/*
 * Consumer: re-read the producer's index. Valid values lie in
 * [peer_cache, head + capacity] (mod 2^32). Returns 0 or -EPROTO.
 */
static inline int ivshm__ring_cons_refresh(struct ivshm_ring *r)
{
	/* A0: pairs with the producer's release store R0 of prod_idx: every
	 * slot below p is filled before we read it. */
	uint32_t p = __atomic_load_n(r->ivshm__peer_idx, __ATOMIC_ACQUIRE);
	uint32_t old = r->ivshm__peer_cache;

	if ((uint32_t)(p - old) >
	    (uint32_t)(r->ivshm__head + r->ivshm__capacity - old))
		return -EPROTO;
	r->ivshm__peer_cache = p;
	return 0;
}

/*
 * Producer: free slots after head + pending, re-reading the consumer's
 * index only when the cached one shows fewer than @p want.
 */
static inline int ivshm__ring_room(struct ivshm_ring *r, uint32_t want)
{
	uint32_t pos = r->ivshm__head + r->ivshm__pending;
	uint32_t room = r->ivshm__capacity - (pos - r->ivshm__peer_cache);

	if (__builtin_expect(room < want, 0)) {
		int ret = ivshm__ring_prod_refresh(r);

		if (ret < 0)
			return ret;
		room = r->ivshm__capacity - (pos - r->ivshm__peer_cache);
	}
	return (int)room;
}

/*
 * Consumer: filled slots after head + pending, re-reading the producer's
 * index only when the cached one shows fewer than @p want.
 */
static inline int ivshm__ring_avail(struct ivshm_ring *r, uint32_t want)
{
	uint32_t pos = r->ivshm__head + r->ivshm__pending;
	uint32_t avail = r->ivshm__peer_cache - pos;

	if (avail < want) {
		int ret = ivshm__ring_cons_refresh(r);

		if (ret < 0)
			return ret;
		avail = r->ivshm__peer_cache - pos;
	}
	return (int)avail;
}

/*
 * Consumer: start loading the slots of the next burst of @p n while the
 * caller works on this one, but only when the cached producer index says
 * they are all published: a line the producer is still filling is left
 * alone, or it would bounce between the two cores.
 */
static inline void ivshm__ring_prefetch(const struct ivshm_ring *r,
					uint32_t head, uint32_t n)
{
	uint32_t off = head & r->ivshm__mask;
	size_t esz = r->ivshm__elem_size;
	size_t bytes = (size_t)n * esz;
	size_t to_end = (size_t)(r->ivshm__capacity - off) * esz;
	const uint8_t *p = r->ivshm__slots + off * esz;
	size_t i;

	/* Single elements smaller than a line: the next one is most likely
	 * in the line just read, and the test would cost more than it saves. */
	if (bytes < 64 || (uint32_t)(r->ivshm__peer_cache - head) < n)
		return;
	if (bytes > to_end) /* no wrap: the tail of the area is enough */
		bytes = to_end;
	for (i = 0; i < bytes; i += 64)
		__builtin_prefetch(p + i, 0, 3);
}

/*
 * Producer: ask for ownership of the slot lines of the next burst of @p n
 * while the caller prepares it, when the cached consumer index says they
 * are free (the consumer is done with them, so taking the lines costs it
 * nothing). PREFETCHW is a hint: CPUs without it treat it as a NOP.
 */
static inline void ivshm__ring_prefetchw(const struct ivshm_ring *r,
					 uint32_t head, uint32_t n)
{
	uint32_t off = head & r->ivshm__mask;
	size_t esz = r->ivshm__elem_size;
	size_t bytes = (size_t)n * esz;
	size_t to_end = (size_t)(r->ivshm__capacity - off) * esz;
	uint8_t *p = r->ivshm__slots + off * esz;
	size_t i;

	if (bytes < 64 ||
	    r->ivshm__capacity - (uint32_t)(head - r->ivshm__peer_cache) < n)
		return;
	if (bytes > to_end)
		bytes = to_end;
	for (i = 0; i < bytes; i += 64) {
#if defined(__x86_64__) || defined(__i386__)
		__asm__ __volatile__("prefetchw %0" : : "m"(p[i]));
#else
		__builtin_prefetch(p + i, 1, 3);
#endif
	}
}

/* Misuse of a handle: wrong role, or a zero-copy operation in progress. */
static inline int ivshm__ring_check(const struct ivshm_ring *r, int role,
				    int need_idle)
{
	if (r->ivshm__role != role)
		return -EINVAL;
	if (need_idle && r->ivshm__pending != 0)
		return -EBUSY;
	return 0;
}

/* ---- data path ----------------------------------------------------------- */

/**
 * Producer: copy up to @p n elements from @p elems into the ring.
 *
 * Touches the consumer's cache line only when the cached consumer index
 * shows less room than @p n. Single producer: one thread per handle.
 * Never blocks.
 * @return the number enqueued (0..n; fewer when the ring is short of room),
 *         -EPROTO if the consumer's index is impossible, -EINVAL if @p r is
 *         not a producer handle, -EBUSY if reserved slots are not committed.
 */
static inline int ivshm_ring_enqueue_burst(struct ivshm_ring *r,
					   const void *elems, uint32_t n)
{
	uint32_t head = r->ivshm__head;
	uint32_t room = r->ivshm__capacity - (head - r->ivshm__peer_cache);

	/* One test for both kinds of misuse: not a producer, or reserved
	 * slots outstanding (enqueueing would publish them unfilled). */
	if (__builtin_expect((r->ivshm__pending |
			      (uint32_t)(r->ivshm__role ^ IVSHM_RING_PRODUCER)) != 0, 0))
		return r->ivshm__role != IVSHM_RING_PRODUCER ? -EINVAL : -EBUSY;
	/* n - 1 >= room: n == 0, or more than the cached room. */
	if (__builtin_expect((uint32_t)(n - 1) >= room, 0)) {
		if (n == 0) /* no copy: @p elems may be NULL then */
			return 0;
		if (ivshm__ring_prod_refresh(r) < 0)
			return -EPROTO;
		room = r->ivshm__capacity - (head - r->ivshm__peer_cache);
		if (room == 0)
			return 0;
		if (n > room)
			n = room;
	}
	ivshm__ring_put(r, head, elems, n);
	head += n;
	r->ivshm__head = head;
	/* R0: pairs with the consumer's acquire load A0 of prod_idx: the slot
	 * contents are visible before the index that covers them. */
	__atomic_store_n(r->ivshm__own_idx, head, __ATOMIC_RELEASE);
	ivshm__ring_prefetchw(r, head, n);
	return (int)n;
}

/**
 * Consumer: copy up to @p n elements out of the ring into @p elems.
 *
 * Touches the producer's cache line only when the cached producer index
 * shows fewer than @p n elements. Single consumer: one thread per handle.
 * Never blocks.
 * @return the number dequeued (0..n), -EPROTO if the producer's index is
 *         impossible, -EINVAL if @p r is not a consumer handle, -EBUSY if
 *         peeked slots are not released.
 */
static inline int ivshm_ring_dequeue_burst(struct ivshm_ring *r, void *elems,
					   uint32_t n)
{
	uint32_t head = r->ivshm__head;
	uint32_t avail = r->ivshm__peer_cache - head;

	/* One test for both kinds of misuse: not a consumer, or peeked
	 * slots outstanding (dequeueing would hand them out twice). */
	if (__builtin_expect((r->ivshm__pending |
			      (uint32_t)(r->ivshm__role ^ IVSHM_RING_CONSUMER)) != 0, 0))
		return r->ivshm__role != IVSHM_RING_CONSUMER ? -EINVAL : -EBUSY;
	/* n - 1 >= avail: n == 0, or more than the cached count. */
	if ((uint32_t)(n - 1) >= avail) {
		if (n == 0) /* no copy: @p elems may be NULL then */
			return 0;
		if (ivshm__ring_cons_refresh(r) < 0)
			return -EPROTO;
		avail = r->ivshm__peer_cache - head;
		if (avail == 0)
			return 0;
		if (n > avail)
			n = avail;
	}
	ivshm__ring_get(r, head, elems, n);
	head += n;
	r->ivshm__head = head;
	/* R1: pairs with the producer's acquire load A1 of cons_idx: our
	 * reads of the slots are done before the producer may reuse them. */
	__atomic_store_n(r->ivshm__own_idx, head, __ATOMIC_RELEASE);
	ivshm__ring_prefetch(r, head, n);
	return (int)n;
}

/*
 * Zero copy, either side (role is a constant once inlined): claim up to n
 * slots after those already claimed: free ones for a producer, filled ones
 * for a consumer.
 */
static inline int ivshm__ring_claim(struct ivshm_ring *r, int role,
				    uint32_t n, uint32_t *start)
{
	int ret = ivshm__ring_check(r, role, 0);

	if (ret < 0)
		return ret;
	ret = role == IVSHM_RING_PRODUCER ? ivshm__ring_room(r, n)
					  : ivshm__ring_avail(r, n);
	if (ret < 0)
		return ret;
	if (n > (uint32_t)ret)
		n = (uint32_t)ret;
	*start = r->ivshm__head + r->ivshm__pending;
	r->ivshm__pending += n;
	return (int)n;
}

/*
 * Zero copy, either side: hand the first n claimed slots over to the other
 * side (a producer publishes them, a consumer gives them back).
 */
static inline int ivshm__ring_hand_over(struct ivshm_ring *r, int role,
					uint32_t n)
{
	int ret = ivshm__ring_check(r, role, 0);

	if (ret < 0)
		return ret;
	if (n > r->ivshm__pending)
		return -EINVAL;
	r->ivshm__pending -= n;
	r->ivshm__head += n;
	/* R0 (producer): pairs with the consumer's acquire load A0 of
	 * prod_idx. R1 (consumer): pairs with the producer's acquire load
	 * A1 of cons_idx. */
	__atomic_store_n(r->ivshm__own_idx, r->ivshm__head, __ATOMIC_RELEASE);
	return 0;
}

/**
 * Producer, zero copy: reserve up to @p n free slots. On return *start is
 * the ring index of the first one; fill slot start + i (i < returned count)
 * through ivshm_ring_slot(), then ivshm_ring_commit(). A second reserve
 * before commit returns slots after the ones already reserved.
 * @return number of slots reserved (0..n), -EPROTO, or -EINVAL if @p r is
 *         not a producer handle.
 */
static inline int ivshm_ring_reserve(struct ivshm_ring *r, uint32_t n,
				     uint32_t *start)
{
	return ivshm__ring_claim(r, IVSHM_RING_PRODUCER, n, start);
}

/**
 * Producer: publish the first @p n reserved slots (n <= reserved).
 * @return 0, or -EINVAL if @p n exceeds what is reserved or @p r is not a
 *         producer handle.
 */
static inline int ivshm_ring_commit(struct ivshm_ring *r, uint32_t n)
{
	return ivshm__ring_hand_over(r, IVSHM_RING_PRODUCER, n);
}

/**
 * Consumer, zero copy: look at up to @p n filled slots without consuming
 * them; *start receives the ring index of the first. Read slot start + i
 * through ivshm_ring_slot(), then ivshm_ring_release(). A second peek before
 * release returns slots after the ones already peeked.
 * @return number of slots available (0..n), -EPROTO, or -EINVAL if @p r is
 *         not a consumer handle.
 */
static inline int ivshm_ring_peek(struct ivshm_ring *r, uint32_t n,
				  uint32_t *start)
{
	return ivshm__ring_claim(r, IVSHM_RING_CONSUMER, n, start);
}

/**
 * Consumer: hand the first @p n peeked slots back to the producer.
 * @return 0, or -EINVAL if @p n exceeds what was peeked or @p r is not a
 *         consumer handle.
 */
static inline int ivshm_ring_release(struct ivshm_ring *r, uint32_t n)
{
	return ivshm__ring_hand_over(r, IVSHM_RING_CONSUMER, n);
}

/**
 * Fill level read fresh from the peer's index: on a consumer handle the
 * elements published and not yet released (peeked ones included); on a
 * producer handle the slots published and not yet released by the consumer
 * (reserved, uncommitted ones excluded). Not for the fast path.
 * @return count, -EPROTO if the peer's index is impossible, -EINVAL for a
 *         handle that is not attached.
 */
int ivshm_ring_count(struct ivshm_ring *r);

/**
 * Doorbell suppression, consumer side. Set the "wake me" flag, issue a full
 * fence, and re-check the ring.
 * @return the number of elements already available to peek or dequeue
 *         (> 0: do not sleep; the flag stays set, clear it with
 *         ivshm_ring_wake_disable()), 0 (safe to sleep: a producer that
 *         publishes from now on will see the flag), -EPROTO, or -EINVAL if
 *         @p r is not a consumer handle.
 */
int ivshm_ring_wake_enable(struct ivshm_ring *r);

/**
 * Consumer: clear the "wake me" flag (after waking up, or to stay polling).
 * Does nothing on a producer handle.
 */
void ivshm_ring_wake_disable(struct ivshm_ring *r);

/**
 * Doorbell suppression, producer side, after a commit or enqueue: issue a
 * full fence and test-and-clear the consumer's "wake me" flag (read first,
 * so the consumer's line is written only when the flag is set).
 * @return 1 if the caller must ring the consumer's doorbell (at most once per
 *         ivshm_ring_wake_enable()), 0 if not, -EINVAL if @p r is not a
 *         producer handle.
 */
int ivshm_ring_needs_wake(struct ivshm_ring *r);

#ifdef __cplusplus
}
#endif

#endif /* IVSHM_RING_H */
