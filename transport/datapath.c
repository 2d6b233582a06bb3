/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * datapath.c - bursts, zero-copy reserve/commit and peek/release, rx
 * interrupts and waiting.
 *
 * Each call runs on the one thread that owns its queue direction. It marks
 * the queue active and checks the link (enter()), so the control thread
 * never re-formats or re-attaches a ring while a burst uses it. Descriptors
 * read from the peer's ring are copied into a local once and validated:
 * flags must be known, a length must fit its buffer, only a full buffer may
 * carry F_MORE, and a chain may not exceed max_segs. Buffer addresses come
 * from the slot index alone. A ring that reports an impossible index
 * (-EPROTO) marks the queue broken: the burst returns what it has and
 * housekeeping resets the channel.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ivshm_atomic.h"
#include "transport_internal.h"

#define STAT_ADD(f, v) ivshm_store_relaxed(&(f), (f) + (uint64_t)(v))

/*
 * Enter a burst: seq_cst exchange of active, then seq_cst load of link_up.
 * Pairs with control.c's link_down() (seq_cst store of link_up = 0) and
 * quiescent() (seq_cst load of active): with a single total order either
 * the control thread sees active == 1 and waits, or we see link_up == 0.
 */
static inline int enter(const struct ivshm_channel *ch, uint32_t *active)
{
	uint32_t was = __atomic_exchange_n(active, 1u, __ATOMIC_SEQ_CST);

	if (ivshm_likely(__atomic_load_n(&ch->link_up, __ATOMIC_SEQ_CST)))
		return 1;
	/* Release: pairs with quiescent()'s seq_cst load. A queue already
	 * active (a reservation or peek is held) stays so. */
	if (!was)
		ivshm_store_release(active, 0u);
	return 0;
}

static inline void leave(uint32_t *active)
{
	/* Release: our ring and handle accesses happen before the control
	 * thread's next re-format; pairs with quiescent()'s load. */
	ivshm_store_release(active, 0u);
}

static inline struct ivshm_tp_desc *desc(const struct ivshm_ring *r,
					  uint32_t idx)
{
	return (struct ivshm_tp_desc *)ivshm_ring_slot(r, idx);
}

static inline void set_desc(const struct ivshm_ring *r, uint32_t idx,
			    uint32_t len, uint32_t flags)
{
	struct ivshm_tp_desc *d = desc(r, idx);

	d->len = len;
	d->flags = flags;
}

static inline void doorbell(struct ivshm_channel *ch, struct ivshm_tp_txq *t,
			    uint16_t q)
{
	uint32_t pe, nv;

	if (!ch->can_ring || !ivshm_ring_needs_wake(&t->ring))
		return;
	pe = ivshm_load_relaxed(&ch->peer_ep);
	nv = ivshm_load_relaxed(&ch->peer_nvec);
	if (pe <= 0xffffu && nv &&
	    ivshm_endpoint_notify(ch->ep, (uint16_t)pe, q % nv) == 0)
		STAT_ADD(t->st.doorbells, 1);
}

/* Publish every reserved slot as an empty (discarded) one. */
static void discard_reservation(struct ivshm_tp_txq *t)
{
	for (uint32_t i = 0; i < t->resv_n; i++)
		set_desc(&t->ring, t->resv_start + i, 0, IVSHM_TP_D_DISCARD);
	(void)ivshm_ring_commit(&t->ring, t->resv_n);
	t->resv_n = 0;
}

/*
 * Start a transmit call of up to n on queue q: mark it active (the caller
 * leave()s it) and discard a reservation left uncommitted. NULL when the
 * call must return 0 (bad queue, n == 0, link down or queue being reset).
 */
static inline struct ivshm_tp_txq *tx_begin(struct ivshm_channel *ch,
					    uint16_t q, uint16_t n)
{
	struct ivshm_tp_txq *t;

	if (q >= ch->nq || n == 0)
		return NULL;
	t = &ch->txq[q];
	if (!enter(ch, &t->active))
		return NULL;
	if (ivshm_unlikely(t->resv_n))
		discard_reservation(t);
	return t;
}

/*
 * End a transmit call: slots [used, total) of the reservation starting at
 * start become discarded ones, all total are published with one index
 * update (and a doorbell if the peer asked), the counters move (segs:
 * buffers published as packet data) and the queue is left.
 */
static inline void tx_finish(struct ivshm_channel *ch, struct ivshm_tp_txq *t,
			     uint16_t q, uint32_t start, uint32_t used,
			     uint32_t total, uint32_t segs, uint64_t npk,
			     uint64_t bytes, uint64_t errs)
{
	if (total > 0) {
		STAT_ADD(t->st.segments, segs);
		for (; used < total; used++)
			set_desc(&t->ring, start + used, 0, IVSHM_TP_D_DISCARD);
		(void)ivshm_ring_commit(&t->ring, total);
		doorbell(ch, t, q);
	}
	STAT_ADD(t->st.packets, npk);
	STAT_ADD(t->st.bytes, bytes);
	if (errs)
		STAT_ADD(t->st.errors, errs);
	leave(&t->active);
}

uint16_t ivshm_transport_tx_burst(struct ivshm_channel *ch, uint16_t q,
				  const struct ivshm_transport_pkt *pkts,
				  uint16_t n)
{
	struct ivshm_tp_txq *t;
	const uint32_t bs = ch->bs, mask = ch->rs - 1, stride = ch->stride;
	uint32_t need = 0, start = 0, used = 0, i;
	uint64_t bytes = 0, npk = 0, errs = 0;
	int got;

	t = tx_begin(ch, q, n);
	if (!t)
		return 0;
	for (i = 0; i < n && need <= ch->rs; i++) {
		uint32_t len = pkts[i].len;

		if (ivshm_likely(len != 0 && len <= bs)) {
			need++;
		} else if (len != 0 && len <= ch->max_pkt) {
			uint32_t segs = (len + bs - 1) / bs;

			/* A chain leads: reserve only once it fits whole. A
			 * reservation too short for it would be published as
			 * discards, and a consumer freeing fewer slots at a
			 * time than the chain needs would starve it. */
			if (need == 0) {
				int c = ivshm_ring_count(&t->ring);

				if (c >= 0 && ch->rs - (uint32_t)c < segs) {
					leave(&t->active);
					return 0;
				}
			}
			need += segs;
		}
	}
	if (need > ch->rs)
		need = ch->rs;
	got = need ? ivshm_ring_reserve(&t->ring, need, &start) : 0;
	if (ivshm_unlikely(got < 0)) {
		ivshm_store_relaxed(&t->broken, 1u);
		STAT_ADD(t->st.errors, 1);
		leave(&t->active);
		return 0;
	}
	/* Locals: the memcpy calls below would make the compiler reload
	 * every field through t. */
	uint8_t *const bufs = t->bufs;
	struct ivshm_tp_desc *const dr = desc(&t->ring, 0);

	/* Cached or streaming stores (ivshm/copy.h). */
	const uint64_t t0 = ivshm_copy_burst_begin(&t->copy);
	const int stream = t->copy.stream;

	/* The buffers' lines were last read by the consumer on the other
	 * core: ask for all of them (for writing) at once, so the misses
	 * overlap instead of coming one per packet. Streaming stores do not
	 * read them at all. */
	for (int k = 0; !stream && k < got && k < 64; k++)
		__builtin_prefetch(bufs + (size_t)((start + (uint32_t)k) & mask) * stride, 1);
	for (i = 0; i < n; i++) {
		const uint8_t *src = (const uint8_t *)pkts[i].data;
		uint32_t len = pkts[i].len, segs, rem;

		if (ivshm_likely(len != 0 && len <= bs)) {
			/* One buffer: the common case, no division. */
			uint32_t slot = (start + used) & mask;

			if (ivshm_unlikely(used >= (uint32_t)got))
				break;
			if (stream)
				ivshm_copy_stream(bufs + (size_t)slot * stride, src, len);
			else
				memcpy(bufs + (size_t)slot * stride, src, len);
			dr[slot].len = len;
			dr[slot].flags = 0;
			used++;
			npk++;
			bytes += len;
			continue;
		}
		if (ivshm_unlikely(len == 0 || len > ch->max_pkt)) {
			errs++;
			continue;
		}
		segs = (len + bs - 1) / bs;
		if (used + segs > (uint32_t)got)
			break;
		for (rem = len; rem > bs; rem -= bs, src += bs, used++) {
			uint32_t idx = start + used;

			memcpy(t->bufs + (size_t)(idx & mask) * stride, src, bs);
			set_desc(&t->ring, idx, bs, IVSHM_TP_D_MORE);
		}
		memcpy(t->bufs + (size_t)((start + used) & mask) * stride, src, rem);
		set_desc(&t->ring, start + used, rem, 0);
		used++;
		npk++;
		bytes += len;
	}
	ivshm_copy_burst_end(&t->copy, t0, bytes, (uint32_t)npk);
	tx_finish(ch, t, q, start, used, got > 0 ? (uint32_t)got : 0, used,
		  npk, bytes, errs);
	return (uint16_t)i;
}

/*
 * Parse the packet whose first slot is @p i of the window [start, start +
 * avail). Sets *next to the slot after it. Returns its segment count with
 * *last_len the length of its last buffer, 0 for a discarded slot, -1 for
 * an invalid packet (its slots are to be skipped), -2 when the chain does
 * not end inside the window (wait for more).
 */
static inline int parse_pkt(const struct ivshm_channel *ch,
			    const struct ivshm_tp_rxq *r, uint32_t start,
			    uint32_t i, uint32_t avail, uint32_t *next,
			    uint32_t *last_len)
{
	uint32_t segs = 0;

	while (i < avail) {
		struct ivshm_tp_desc d;

		/* Read once: the peer may rewrite the slot under us. */
		memcpy(&d, desc(&r->ring, start + i), sizeof(d));
		i++;
		*next = i;
		if (ivshm_unlikely(d.flags & ~IVSHM_TP_D_VALID))
			return -1;
		if (ivshm_unlikely(d.flags & IVSHM_TP_D_DISCARD))
			return segs == 0 && !(d.flags & IVSHM_TP_D_MORE) ? 0 : -1;
		if (ivshm_unlikely(d.len == 0 || d.len > ch->bs ||
				   ((d.flags & IVSHM_TP_D_MORE) && d.len != ch->bs)))
			return -1;
		if (ivshm_unlikely(++segs > ch->max_segs))
			return -1;
		if (!(d.flags & IVSHM_TP_D_MORE)) {
			*last_len = d.len;
			return (int)segs;
		}
	}
	return -2;
}

static inline const uint8_t *rx_buf(const struct ivshm_channel *ch,
				    const struct ivshm_tp_rxq *r, uint32_t idx)
{
	return r->bufs + (size_t)(idx & (ch->rs - 1)) * ch->stride;
}

/*
 * The receive window: slots [cons, cons + peeked) are peeked from the ring
 * and not released. ring.h's peek accumulates (a second peek returns slots
 * after the ones already peeked), so slots left over by a burst that
 * stopped early stay in the window and are parsed again next time.
 */
static inline int rx_window(const struct ivshm_channel *ch,
			    struct ivshm_tp_rxq *r, uint32_t *start)
{
	uint32_t want = ch->rs - r->peeked, s = 0;
	int got = want ? ivshm_ring_peek(&r->ring, want, &s) : 0;

	if (ivshm_unlikely(got < 0))
		return got;
	if (r->peeked == 0)
		r->cons = s;
	else if (got > 0 && s != r->cons + r->peeked)
		return -EPROTO;
	r->peeked += (uint32_t)got;
	*start = r->cons;
	return (int)r->peeked;
}

static inline void rx_consume(struct ivshm_tp_rxq *r, uint32_t n)
{
	if (n == 0)
		return;
	(void)ivshm_ring_release(&r->ring, n);
	r->cons += n;
	r->peeked -= n;
}

static void rx_drop_peek(struct ivshm_tp_rxq *r)
{
	rx_consume(r, r->peek_slots);
	STAT_ADD(r->st.drops, r->peek_bufs);
	r->peek_slots = 0;
	r->peek_bufs = 0;
}

/*
 * Hand back to the sender the slots at the head of the window whose loans
 * were returned (rx_return), in ring order; stops at the first still out.
 */
static inline void rx_reclaim(const struct ivshm_channel *ch,
			      struct ivshm_tp_rxq *r)
{
	const uint64_t ep = (uint64_t)r->epoch << 32;
	const uint32_t mask = ch->rs - 1;
	uint32_t n = 0;

	while (n < r->loaned) {
		uint32_t idx = r->cons + n;

		/* Acquire: pairs with rx_return()'s release CAS: the
		 * borrower's reads of the buffer happen before the ring
		 * release below lets the sender reuse it. */
		if (__atomic_load_n(&r->loan[idx & mask], __ATOMIC_ACQUIRE) !=
		    (ep | idx))
			break;
		n++;
	}
	r->loaned -= n;
	rx_consume(r, n);
}

/* A received buffer's used bytes as its descriptor says, bounded to a
 * buffer: only for prefetching (the copy reads the descriptor again). */
static inline uint32_t rx_hint_len(const struct ivshm_tp_desc *dr, uint32_t slot,
				   uint32_t bs)
{
	uint32_t len;

	memcpy(&len, &dr[slot].len, sizeof(len));
	return len < bs ? len : bs;
}

/*
 * Start a receive call of up to n on queue q: mark it active, drop an
 * unreleased peek, hand back returned loans, and read the window of filled
 * slots. Returns the slot count (the queue stays active: the caller
 * leave()s it), or -1 when the call must return 0 (bad queue or n == 0;
 * queue being reset; an impossible peer index: the queue is marked broken
 * and counted; loans still out and the caller is not rx_loan).
 */
static inline int rx_begin(struct ivshm_channel *ch, uint16_t q, uint16_t n,
			   int loan, struct ivshm_tp_rxq **rp, uint32_t *start)
{
	struct ivshm_tp_rxq *r;
	int avail;

	if (q >= ch->nq || n == 0)
		return -1;
	r = *rp = &ch->rxq[q];
	if (!enter(ch, &r->active))
		return -1;
	if (ivshm_unlikely(r->peek_slots))
		rx_drop_peek(r);
	if (r->loaned) {
		rx_reclaim(ch, r);
		if (r->loaned && !loan) {
			leave(&r->active);
			return -1;
		}
	}
	avail = rx_window(ch, r, start);
	if (ivshm_unlikely(avail < 0)) {
		ivshm_store_relaxed(&r->broken, 1u);
		STAT_ADD(r->st.errors, 1);
		leave(&r->active);
		return -1;
	}
	return avail;
}

uint16_t ivshm_transport_rx_burst(struct ivshm_channel *ch, uint16_t q,
				  struct ivshm_transport_pkt *pkts, uint16_t n)
{
	struct ivshm_tp_rxq *r;
	uint32_t start = 0, i = 0, np = 0, segs_total = 0;
	uint64_t bytes = 0, errs = 0, drops = 0;
	int avail;

	avail = rx_begin(ch, q, n, 0, &r, &start);
	if (avail < 0)
		return 0;
	/* Locals: the memcpy calls below would make the compiler reload
	 * every field through r and ch. */
	const uint8_t *const bufs = r->bufs;
	const struct ivshm_tp_desc *const dr = desc(&r->ring, 0);
	const uint32_t mask = ch->rs - 1, stride = ch->stride, bs = ch->bs;

	/* The sender's lines into L2, IVSHM_COPY_PREFETCH_LINES beyond the
	 * buffer being copied, and the next buffer's first line into L1
	 * (ivshm/copy.h). */
	struct ivshm_copy_window w = { 0, 0 };
	__builtin_prefetch(bufs + (size_t)(start & mask) * stride);
	while (np < n && i < (uint32_t)avail) {
		uint32_t next = i, last = 0, cap = pkts[np].len, total;
		uint32_t slot = (start + i) & mask;
		struct ivshm_tp_desc d;
		int segs;

		ivshm_copy_window_at(&w, i, ivshm_copy_lines(rx_hint_len(dr, slot, bs)));
		for (; ivshm_copy_window_open(&w, (uint32_t)avail); w.next++) {
			uint32_t s = (start + w.next) & mask;

			w.lines += ivshm_copy_prefetch(bufs + (size_t)s * stride,
						       rx_hint_len(dr, s, bs));
		}
		if (i + 1 < (uint32_t)avail)
			__builtin_prefetch(bufs + (size_t)((slot + 1) & mask) * stride);

		/* Fast path: a packet in one buffer (read once, checked). */
		memcpy(&d, &dr[slot], sizeof(d));
		if (ivshm_likely(d.flags == 0 && d.len - 1u < bs)) {
			i++;
			if (ivshm_unlikely(d.len > cap)) {
				drops++;
				continue;
			}
			memcpy(pkts[np].data, bufs + (size_t)slot * stride, d.len);
			pkts[np].len = d.len;
			np++;
			bytes += d.len;
			segs_total++;
			continue;
		}
		segs = parse_pkt(ch, r, start, i, (uint32_t)avail, &next, &last);

		if (segs == -2)
			break;
		i = next;
		if (segs <= 0) {
			errs += segs < 0;
			continue;
		}
		total = (uint32_t)(segs - 1) * ch->bs + last;
		if (ivshm_unlikely(total > cap)) {
			drops++;
			continue;
		}
		{
			uint8_t *dst = (uint8_t *)pkts[np].data;
			uint32_t idx = start + next - (uint32_t)segs;

			for (int s = 0; s < segs - 1; s++, idx++, dst += ch->bs)
				memcpy(dst, rx_buf(ch, r, idx), ch->bs);
			memcpy(dst, rx_buf(ch, r, idx), last);
		}
		pkts[np].len = total;
		np++;
		bytes += total;
		segs_total += (uint32_t)segs;
	}
	rx_consume(r, i);
	STAT_ADD(r->st.packets, np);
	STAT_ADD(r->st.bytes, bytes);
	STAT_ADD(r->st.segments, segs_total);
	if (errs)
		STAT_ADD(r->st.errors, errs);
	if (drops)
		STAT_ADD(r->st.drops, drops);
	leave(&r->active);
	return (uint16_t)np;
}

uint16_t ivshm_transport_tx_reserve(struct ivshm_channel *ch, uint16_t q,
				    struct ivshm_transport_buf *bufs,
				    uint16_t n)
{
	struct ivshm_tp_txq *t;
	uint32_t start = 0;
	int got;

	t = tx_begin(ch, q, n);
	if (!t)
		return 0;
	got = ivshm_ring_reserve(&t->ring, n, &start);
	if (got <= 0) {
		if (got < 0) {
			ivshm_store_relaxed(&t->broken, 1u);
			STAT_ADD(t->st.errors, 1);
		}
		leave(&t->active);
		return 0;
	}
	for (int i = 0; i < got; i++) {
		bufs[i].data = (void *)(t->bufs +
					(size_t)((start + (uint32_t)i) &
						 (ch->rs - 1)) * ch->stride);
		bufs[i].len = ch->bs;
		bufs[i].flags = 0;
	}
	t->resv_n = (uint32_t)got;
	t->resv_start = start;
	/* The queue stays active until tx_commit(). */
	return (uint16_t)got;
}

/*
 * A queue direction's fill level, fresh from the peer's index (ring.h's
 * ivshm_ring_count), inside enter()/leave(). -1 when the link is down or
 * the queue is being reset; an impossible index marks the queue broken.
 */
static int queue_count(struct ivshm_channel *ch, struct ivshm_ring *ring,
		       uint32_t *active, uint32_t *broken)
{
	int c;

	if (!enter(ch, active))
		return -1;
	c = ivshm_ring_count(ring);
	leave(active);
	if (c < 0)
		ivshm_store_relaxed(broken, 1u);
	return c < 0 ? -1 : c;
}

uint32_t ivshm_transport_tx_room(struct ivshm_channel *ch, uint16_t q)
{
	struct ivshm_tp_txq *t;
	int c;

	if (q >= ch->nq)
		return 0;
	t = &ch->txq[q];
	if (t->resv_n)
		return 0; /* a reservation is held: commit it first */
	c = queue_count(ch, &t->ring, &t->active, &t->broken);
	return c < 0 ? 0 : ch->rs - (uint32_t)c;
}

uint16_t ivshm_transport_tx_commit(struct ivshm_channel *ch, uint16_t q,
				   const struct ivshm_transport_buf *bufs,
				   uint16_t n)
{
	struct ivshm_tp_txq *t;
	uint32_t i = 0, lim, pub = 0;
	uint64_t npk = 0, bytes = 0, errs = 0;

	if (q >= ch->nq)
		return 0;
	t = &ch->txq[q];
	if (t->resv_n == 0)
		return 0;
	lim = n < t->resv_n ? n : t->resv_n;
	while (i < lim) {
		uint32_t j = i, total = 0;
		int ok = 1, done = 0;

		/* Find the packet's extent and check it. */
		for (; j < lim; j++) {
			uint32_t len = bufs[j].len, fl = bufs[j].flags;

			if ((fl & ~IVSHM_TRANSPORT_F_MORE) || len == 0 ||
			    len > ch->bs ||
			    ((fl & IVSHM_TRANSPORT_F_MORE) && len != ch->bs))
				ok = 0;
			total += len;
			if (j - i + 1 > ch->max_segs || total > ch->max_pkt)
				ok = 0;
			if (!(fl & IVSHM_TRANSPORT_F_MORE)) {
				done = 1;
				j++;
				break;
			}
		}
		if (!done) /* trailing chain without its end: discard it */
			break;
		for (uint32_t k = i; k < j; k++) {
			if (ok)
				set_desc(&t->ring, t->resv_start + k, bufs[k].len,
					 bufs[k].flags & IVSHM_TRANSPORT_F_MORE);
			else
				set_desc(&t->ring, t->resv_start + k, 0,
					 IVSHM_TP_D_DISCARD);
		}
		if (ok) {
			pub += j - i;
			npk++;
			bytes += total;
		} else {
			errs++;
		}
		i = j;
	}
	{
		uint32_t total = t->resv_n;

		t->resv_n = 0;
		tx_finish(ch, t, q, t->resv_start, i, total, pub, npk, bytes,
			  errs);
	}
	return (uint16_t)pub;
}

/*
 * Describe the whole packets of the window [start, start + avail) from slot
 * *i on in bufs (at most n buffers; a packet that does not fit stops the
 * walk). With tokens != NULL (rx_loan) each buffer's loan entry is marked
 * out and its token stored, and skipped slots' entries are marked returned.
 * Advances *i past what was taken or skipped, counts the queue's stats and
 * returns the number of buffers.
 */
static inline uint32_t rx_collect(struct ivshm_channel *ch,
				  struct ivshm_tp_rxq *r, uint32_t start,
				  uint32_t avail, uint32_t *i,
				  struct ivshm_transport_buf *bufs,
				  uint64_t *tokens, uint32_t n)
{
	const uint32_t mask = ch->rs - 1;
	const uint64_t ep = (uint64_t)r->epoch << 32;
	uint64_t errs = 0, npk = 0, bytes = 0;
	uint32_t k = 0;

	while (k < n && *i < avail) {
		uint32_t next = *i, last = 0, idx;
		int segs = parse_pkt(ch, r, start, *i, avail, &next, &last);

		if (segs == -2 || (segs > 0 && k + (uint32_t)segs > n))
			break;
		if (segs <= 0) {
			errs += segs < 0;
			/* Skipped slots of a loan window count as returned
			 * at once. Relaxed: only this thread reads entries it
			 * wrote. */
			for (idx = start + *i; tokens && idx != start + next; idx++)
				__atomic_store_n(&r->loan[idx & mask], ep | idx,
						 __ATOMIC_RELAXED);
			*i = next;
			continue;
		}
		idx = start + next - (uint32_t)segs;
		for (int s = 0; s < segs; s++, idx++, k++) {
			bufs[k].data = (void *)rx_buf(ch, r, idx);
			bufs[k].len = s < segs - 1 ? ch->bs : last;
			bufs[k].flags = s < segs - 1 ? IVSHM_TRANSPORT_F_MORE : 0;
			if (!tokens)
				continue;
			tokens[k] = ep | idx;
			/* Relaxed: the borrower gets the token through the
			 * caller's own hand-off, which orders this store
			 * before its rx_return(). */
			__atomic_store_n(&r->loan[idx & mask],
					 ep | idx | IVSHM_TP_LOAN_OUT,
					 __ATOMIC_RELAXED);
		}
		*i = next;
		npk++;
		bytes += (uint64_t)(segs - 1) * ch->bs + last;
	}
	if (errs)
		STAT_ADD(r->st.errors, errs);
	STAT_ADD(r->st.packets, npk);
	STAT_ADD(r->st.bytes, bytes);
	STAT_ADD(r->st.segments, k);
	return k;
}

uint16_t ivshm_transport_rx_peek(struct ivshm_channel *ch, uint16_t q,
				 struct ivshm_transport_buf *bufs, uint16_t n)
{
	struct ivshm_tp_rxq *r;
	uint32_t start = 0, i = 0, k;
	int avail;

	avail = rx_begin(ch, q, n, 0, &r, &start);
	if (avail < 0)
		return 0;
	k = rx_collect(ch, r, start, (uint32_t)avail, &i, bufs, NULL, n);
	if (k == 0) {
		rx_consume(r, i);
		leave(&r->active);
		return 0;
	}
	r->peek_slots = i;
	r->peek_bufs = k;
	/* The queue stays active until rx_release(). */
	return (uint16_t)k;
}

void ivshm_transport_rx_release(struct ivshm_channel *ch, uint16_t q,
				uint16_t n)
{
	struct ivshm_tp_rxq *r;

	if (q >= ch->nq)
		return;
	r = &ch->rxq[q];
	if (r->peek_slots == 0)
		return;
	if (n > r->peek_bufs)
		n = (uint16_t)r->peek_bufs;
	r->peek_bufs -= n;
	rx_drop_peek(r);
	leave(&r->active);
}

uint32_t ivshm_transport_rx_count(struct ivshm_channel *ch, uint16_t q)
{
	struct ivshm_tp_rxq *r;
	int c;

	if (q >= ch->nq)
		return 0;
	r = &ch->rxq[q];
	/* peek_slots is the datapath thread's alone; within a peek the queue
	 * is active and must stay so. */
	if (r->peek_slots)
		return r->peek_slots;
	c = queue_count(ch, &r->ring, &r->active, &r->broken);
	/* Lent slots are not waiting. */
	return c > 0 && (uint32_t)c > r->loaned ? (uint32_t)c - r->loaned : 0;
}

uint16_t ivshm_transport_rx_loan(struct ivshm_channel *ch, uint16_t q,
				 struct ivshm_transport_buf *bufs,
				 uint64_t *tokens, uint16_t n)
{
	struct ivshm_tp_rxq *r;
	uint32_t start = 0, i, k;
	int avail;

	avail = rx_begin(ch, q, n, 1, &r, &start);
	if (avail < 0)
		return 0;
	/* Slots before `loaned` are lent already: collect after them. */
	i = r->loaned;
	k = rx_collect(ch, r, start, (uint32_t)avail, &i, bufs, tokens, n);
	r->loaned = i;
	leave(&r->active);
	return (uint16_t)k;
}

void ivshm_transport_rx_return(struct ivshm_channel *ch, uint16_t q,
			       uint64_t token)
{
	uint64_t want = token | IVSHM_TP_LOAN_OUT;

	if (q >= ch->nq)
		return;
	/* Release: the borrower's reads of the buffer happen before the rx
	 * thread hands the slot back; pairs with rx_reclaim()'s acquire
	 * load. Fails (no-op) for a token of an earlier epoch or one
	 * returned already. */
	__atomic_compare_exchange_n(&ch->rxq[q].loan[(uint32_t)token &
						     (ch->rs - 1)],
				    &want, token & ~IVSHM_TP_LOAN_OUT, 0,
				    __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

uint32_t ivshm_transport_rx_loans_out(const struct ivshm_channel *ch,
				      uint16_t q)
{
	return q < ch->nq ? ch->rxq[q].loaned : 0;
}

int ivshm_transport_rx_intr_enable(struct ivshm_channel *ch, uint16_t q)
{
	struct ivshm_tp_rxq *r;
	int c;

	if (!ch->has_doorbell)
		return -ENOTSUP;
	if (q >= ch->nq)
		return -EINVAL;
	r = &ch->rxq[q];
	if (r->peek_slots)
		return (int)r->peek_slots;
	/* Link down: sleep; link_up() kicks every queue's doorbell. */
	if (!enter(ch, &r->active))
		return 0;
	c = ivshm_ring_wake_enable(&r->ring);
	if (c < 0) {
		ivshm_store_relaxed(&r->broken, 1u);
		c = 0;
	}
	/* Slots left in our window are waiting too (wake_enable counts only
	 * those after it). */
	c += (int)(r->peeked - r->loaned);
	leave(&r->active);
	return c;
}

int ivshm_transport_rx_intr_disable(struct ivshm_channel *ch, uint16_t q)
{
	struct ivshm_tp_rxq *r;

	if (!ch->has_doorbell)
		return -ENOTSUP;
	if (q >= ch->nq)
		return -EINVAL;
	r = &ch->rxq[q];
	if (r->peek_slots)
		return 0;
	/* Link down: the rings will be re-attached with the flag clear. */
	if (!enter(ch, &r->active))
		return 0;
	ivshm_ring_wake_disable(&r->ring);
	leave(&r->active);
	return 0;
}

int ivshm_transport_rx_intr_fd(const struct ivshm_channel *ch, uint16_t q)
{
	if (!ch->has_doorbell)
		return -ENOTSUP;
	if (q >= ch->nq)
		return -EINVAL;
	return ch->rxq[q].fd;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int ivshm_transport_rx_wait(struct ivshm_channel *ch, uint16_t q,
			    int64_t timeout_us)
{
	struct ivshm_tp_rxq *r;
	uint64_t t0 = now_ns(), now = t0, spin_ns, limit_ns;
	unsigned int idle = 0;

	if (q >= ch->nq)
		return 0;
	r = &ch->rxq[q];
	limit_ns = timeout_us < 0 ? UINT64_MAX : (uint64_t)timeout_us * 1000u;
	if (ch->mode == IVSHM_TRANSPORT_RX_POLL)
		spin_ns = UINT64_MAX;
	else if (ch->mode == IVSHM_TRANSPORT_RX_ADAPTIVE)
		spin_ns = (uint64_t)ch->spin_us * 1000u;
	else
		spin_ns = 0;

	for (;;) {
		if (ivshm_transport_rx_count(ch, q) > 0)
			return 1;
		if (!ivshm_load_relaxed(&ch->link_up)) {
			/* Nothing to receive until housekeeping brings it up. */
			if (limit_ns > 0) {
				struct timespec ts = { 0, 1000000 };

				if (limit_ns < 1000000u)
					ts.tv_nsec = (long)limit_ns;
				nanosleep(&ts, NULL);
			}
			return 0;
		}
		if ((++idle & 63u) == 0 || spin_ns == 0)
			now = now_ns();
		if (now - t0 >= limit_ns)
			return 0;
		if (now - t0 < spin_ns) {
			ivshm_cpu_relax();
			continue;
		}
		if (ch->has_doorbell) {
			struct pollfd pfd = { .fd = r->fd, .events = POLLIN };
			uint64_t left = limit_ns - (now - t0);
			int ms = left / 1000000u > 100u ? 100 : (int)(left / 1000000u) + 1;
			int c = ivshm_transport_rx_intr_enable(ch, q);

			if (c > 0) {
				ivshm_transport_rx_intr_disable(ch, q);
				return 1;
			}
			STAT_ADD(r->st.sleeps, 1);
			if (poll(&pfd, 1, ms) > 0) {
				uint64_t v;

				if (read(r->fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
					STAT_ADD(r->st.wakeups, 1);
			}
			ivshm_transport_rx_intr_disable(ch, q);
			now = now_ns();
			continue;
		}
		/* No doorbell: back off (pause, yield, then short sleeps). */
		if (idle < 256) {
			ivshm_cpu_relax();
		} else if (idle < 512) {
			sched_yield();
		} else {
			struct timespec ts = { 0, 50000 };

			STAT_ADD(r->st.sleeps, 1);
			if (idle > 2048)
				ts.tv_nsec = 500000;
			nanosleep(&ts, NULL);
		}
		now = now_ns();
	}
}
