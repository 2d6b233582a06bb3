/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * control.c - channel open/close, the transport header, link state,
 * peer liveness and resets.
 *
 * Everything here runs on the caller's control thread. The shared side
 * block of this process is a mirror of private state, re-published on every
 * housekeeping call, so a block scribbled over by a hostile peer heals
 * itself. The peer's block is read once per call into locals and checked.
 *
 * Generation handshake (per side): a side formats the rings it transmits
 * on only while the peer does not consume them (peer.ack != own gen, or the
 * peer is gone), then bumps gen and publishes READY. The peer attaches its
 * consumer handles when it sees READY with a gen it has not acknowledged,
 * then acknowledges it (ack = gen). The link is up when both sides are
 * READY and each acknowledges the other's current gen.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ivshm_atomic.h"
#include "transport_internal.h"

#define IVSHM_TP_NO_EP 0xffffffffu

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000u,
			       .tv_nsec = (long)(ms % 1000u) * 1000000L };

	nanosleep(&ts, NULL);
}

static uint64_t random_nonzero(void)
{
	uint64_t v = 0;

	while (v == 0) {
		if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
			v = ((uint64_t)getpid() << 32) ^ now_ms() ^
			    (uint64_t)(uintptr_t)&v;
	}
	return v;
}

/* FNV-1a of the kernel's boot id: equal hashes mean pids are comparable. */
static uint64_t boot_hash(void)
{
	char buf[64];
	uint64_t h = UINT64_C(1469598103934665603);
	ssize_t n;
	int fd;

	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n <= 0)
		return 0;
	for (ssize_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)buf[i]) * UINT64_C(1099511628211);
	return h ? h : 1;
}

/* ---- geometry ---------------------------------------------------------- */

struct geom {
	uint32_t nq, rs, bs, max_pkt, stride;
	uint64_t ring_stride, bufs_off, mem_size;
};

static int params_geom(const struct ivshm_transport_params *p, struct geom *g)
{
	struct ivshm_transport_params d;
	size_t rm;

	memset(&d, 0, sizeof(d));
	if (p)
		d = *p;
	g->nq = d.nb_queues ? d.nb_queues : IVSHM_TRANSPORT_DEF_QUEUES;
	g->rs = d.ring_size ? d.ring_size : IVSHM_TRANSPORT_DEF_RING;
	g->bs = d.buf_size ? d.buf_size : IVSHM_TRANSPORT_DEF_BUF;
	g->max_pkt = d.max_pkt_len ? d.max_pkt_len : IVSHM_TRANSPORT_DEF_MAX_PKT;
	if (g->nq > IVSHM_TRANSPORT_MAX_QUEUES)
		return -EINVAL;
	if (!ivshm_is_pow2_u64(g->rs) || g->rs < IVSHM_TRANSPORT_MIN_RING ||
	    g->rs > IVSHM_TRANSPORT_MAX_RING)
		return -EINVAL;
	if (g->bs % 64u || g->bs < IVSHM_TRANSPORT_MIN_BUF ||
	    g->bs > IVSHM_TRANSPORT_MAX_BUF)
		return -EINVAL;
	if (g->max_pkt > IVSHM_TRANSPORT_MAX_PKT)
		return -EINVAL;
	/* A chain may use at most half the ring, so one packet always fits. */
	if ((g->max_pkt + g->bs - 1) / g->bs > g->rs / 2)
		return -EINVAL;
	if (d.rx_mode != IVSHM_TRANSPORT_RX_POLL &&
	    d.rx_mode != IVSHM_TRANSPORT_RX_INTR &&
	    d.rx_mode != IVSHM_TRANSPORT_RX_ADAPTIVE)
		return -EINVAL;
	if (d.tx_copy != IVSHM_COPY_AUTO && d.tx_copy != IVSHM_COPY_CACHED &&
	    d.tx_copy != IVSHM_COPY_STREAM)
		return -EINVAL;
	rm = ivshm_ring_memsize(g->rs, sizeof(struct ivshm_tp_desc));
	if (rm == 0)
		return -EINVAL;
	g->ring_stride = IVSHM_ALIGN_UP((uint64_t)rm, (uint64_t)IVSHM_TP_RING_ALIGN);
	g->bufs_off = IVSHM_ALIGN_UP(2u * g->nq * g->ring_stride,
				     (uint64_t)IVSHM_TP_AREA_ALIGN);
	/* An odd number of cache lines between buffers: with a power-of-two
	 * stride every buffer's first line would fall in the same few cache
	 * sets and evict each other. */
	g->stride = (g->bs / 64u) % 2u ? g->bs : g->bs + 64u;
	g->mem_size = IVSHM_ALIGN_UP(g->bufs_off + 2ull * g->nq * g->rs * g->stride,
				     (uint64_t)IVSHM_TP_AREA_ALIGN);
	return 0;
}

uint64_t ivshm_transport_channel_memsize(
	const struct ivshm_transport_params *params)
{
	struct geom g;

	return params_geom(params, &g) ? 0 : g.mem_size;
}

uint64_t ivshm_transport_region_size(unsigned int nb_channels,
				     const struct ivshm_transport_params *params)
{
	struct geom g;
	uint64_t need, sz = 1;

	if (params_geom(params, &g) || nb_channels > IVSHM_TRANSPORT_MAX_CHANNELS)
		return 0;
	need = IVSHM_TP_DATA_OFF + (uint64_t)nb_channels * g.mem_size;
	while (sz < need)
		sz <<= 1;
	return sz;
}

/* ---- the transport header ----------------------------------------------- */

static void hdr_write_constants(struct ivshm_tp_hdr *h, uint64_t size)
{
	ivshm_store_relaxed(&h->magic, IVSHM_TP_MAGIC);
	ivshm_store_relaxed(&h->version, IVSHM_TP_VERSION);
	ivshm_store_relaxed(&h->region_size, size);
	ivshm_store_relaxed(&h->max_channels, IVSHM_TRANSPORT_MAX_CHANNELS);
	ivshm_store_relaxed(&h->chan_size, IVSHM_TP_CHAN_SIZE);
	ivshm_store_relaxed(&h->table_off, (uint64_t)IVSHM_TP_TABLE_OFF);
	ivshm_store_relaxed(&h->data_off, (uint64_t)IVSHM_TP_DATA_OFF);
}

static int hdr_valid(struct ivshm_tp_hdr *h, uint64_t size)
{
	return ivshm_load_relaxed(&h->magic) == IVSHM_TP_MAGIC &&
	       ivshm_load_relaxed(&h->version) == IVSHM_TP_VERSION &&
	       ivshm_load_relaxed(&h->region_size) == size &&
	       ivshm_load_relaxed(&h->max_channels) == IVSHM_TRANSPORT_MAX_CHANNELS &&
	       ivshm_load_relaxed(&h->chan_size) == IVSHM_TP_CHAN_SIZE &&
	       ivshm_load_relaxed(&h->table_off) == IVSHM_TP_TABLE_OFF &&
	       ivshm_load_relaxed(&h->data_off) == IVSHM_TP_DATA_OFF;
}

static int hdr_format_or_wait(uint8_t *base, uint64_t size, unsigned int tmo_ms)
{
	struct ivshm_tp_hdr *h = (struct ivshm_tp_hdr *)(base + IVSHM_TP_HDR_OFF);
	uint64_t deadline = now_ms() + tmo_ms;
	uint32_t st;

	for (;;) {
		/* Pairs with the release store of READY below (another opener). */
		st = ivshm_load_acquire(&h->init_state);
		if (st == IVSHM_TP_HDR_READY)
			break;
		if (st == IVSHM_TP_HDR_UNINIT ||
		    (st == IVSHM_TP_HDR_FORMATTING && now_ms() > deadline)) {
			uint32_t exp = st;

			/* Whoever wins the CAS formats; acq_rel pairs with
			 * other openers' CAS on the same word. */
			if (ivshm_cas_acq_rel(&h->init_state, &exp,
					      (uint32_t)IVSHM_TP_HDR_FORMATTING)) {
				memset((uint8_t *)h + 16, 0, IVSHM_TP_HDR_SIZE - 16);
				memset(base + IVSHM_TP_TABLE_OFF, 0,
				       IVSHM_TP_TABLE_SIZE);
				hdr_write_constants(h, size);
				ivshm_store_relaxed(&h->alloc_next,
						    (uint64_t)IVSHM_TP_DATA_OFF);
				ivshm_store_relaxed(&h->formatter_pid,
						    (uint32_t)getpid());
				ivshm_store_relaxed(&h->region_id,
						    random_nonzero());
				/* Pairs with the acquire load above in others. */
				ivshm_store_release(&h->init_state,
						    (uint32_t)IVSHM_TP_HDR_READY);
				break;
			}
			continue;
		}
		if (st != IVSHM_TP_HDR_FORMATTING)
			return -EPROTO;
		sleep_ms(1);
	}
	return hdr_valid(h, size) ? 0 : -EPROTO;
}

/* ---- side blocks --------------------------------------------------------- */

static void publish(struct ivshm_channel *ch)
{
	struct ivshm_tp_side *s = ch->me;

	ivshm_store_relaxed(&s->occupant, ch->token);
	ivshm_store_relaxed(&s->ack, ch->ack);
	ivshm_store_relaxed(&s->reset_req, ch->reset_req);
	ivshm_store_relaxed(&s->pid, ch->pid);
	ivshm_store_relaxed(&s->ep_id, ch->ep_id);
	ivshm_store_relaxed(&s->boot_hash, ch->boot_hash);
	ivshm_store_relaxed(&s->nvectors, ch->nvec);
	/* Release: the identity above is ours before the token says so; pairs
	 * with the acquire load of id_token in read_peer()/side_identity(). */
	ivshm_store_release(&s->id_token, ch->token);
	ivshm_store_relaxed(&s->gen, ch->gen);
	/* Release: the rings formatted for gen (and ack's detach) are visible
	 * before the state; pairs with the acquire load of state in the
	 * peer's read_peer(). */
	ivshm_store_release(&s->state, ch->state);
	ch->heartbeat++;
	ivshm_store_relaxed(&s->heartbeat, ch->heartbeat);
}

struct peer_view {
	uint64_t tok, hb, boot;
	uint32_t state, gen, ack, reset_req, pid, ep_id, nvec;
};

/*
 * The identity of holder @p tok of side block @p s, or "unknown" (boot 0,
 * pid 0, no peer id, no vectors) while the block still carries the previous
 * holder's: a newcomer claims the side by CAS and only then writes its
 * identity, and judging it by the departed holder's pid or peer id would
 * declare it dead and let a third party take its side over.
 * Returns 1 if the identity is the holder's own.
 */
static int side_identity(struct ivshm_tp_side *s, uint64_t tok, uint64_t *boot,
			 uint32_t *pid, uint32_t *ep_id, uint32_t *nvec)
{
	/* Acquire: pairs with the release store of id_token in publish(). */
	if (tok == 0 || ivshm_load_acquire(&s->id_token) != tok) {
		*boot = 0;
		*pid = 0;
		*ep_id = IVSHM_TP_NO_EP;
		*nvec = 0;
		return 0;
	}
	*boot = ivshm_load_relaxed(&s->boot_hash);
	*pid = ivshm_load_relaxed(&s->pid);
	*ep_id = ivshm_load_relaxed(&s->ep_id);
	*nvec = ivshm_load_relaxed(&s->nvectors);
	return 1;
}

static void read_peer(struct ivshm_channel *ch, struct peer_view *v)
{
	struct ivshm_tp_side *s = ch->peer;

	v->tok = ivshm_load_relaxed(&s->occupant);
	/* Acquire: pairs with the release store of state in publish(). */
	v->state = ivshm_load_acquire(&s->state);
	v->gen = ivshm_load_relaxed(&s->gen);
	v->ack = ivshm_load_relaxed(&s->ack);
	v->reset_req = ivshm_load_relaxed(&s->reset_req);
	side_identity(s, v->tok, &v->boot, &v->pid, &v->ep_id, &v->nvec);
	v->hb = ivshm_load_relaxed(&s->heartbeat);
}

/* 1 if the holder of a side block is certainly gone. */
static int holder_dead(struct ivshm_channel *ch, uint64_t boot, uint32_t pid,
		       uint32_t ep_id, int present_seen)
{
	if (boot != 0 && boot == ch->boot_hash && pid != 0 &&
	    (pid_t)pid != getpid() && kill((pid_t)pid, 0) < 0 && errno == ESRCH)
		return 1;
	if (ch->has_peer_events && ep_id <= 0xffffu && present_seen &&
	    ivshm_endpoint_peer_present(ch->ep, (uint16_t)ep_id) == 0)
		return 1;
	return 0;
}

/* What an opener concluded about the holder of a side (occupant_judge). */
enum holder_verdict {
	HOLDER_ALIVE,   /* leave the side alone */
	HOLDER_DEAD,    /* take it over: CAS from its token */
	HOLDER_CHANGED, /* the side changed hands meanwhile: look again */
};

/*
 * Open: judge occupant @p tok of side @p s, by evidence about that holder
 * only:
 *  - its own identity (side_identity(): never the previous holder's, which
 *    the block still shows between a newcomer's claim and its identity);
 *  - on our kernel (equal boot hash) its pid decides alone: alive is alive,
 *    ESRCH is dead. Absence from our server peer table is no evidence at
 *    all: the server announces peers asynchronously, the client's set-up
 *    returns with whatever announcements had arrived, and a live holder
 *    that joined before us may not be in our table yet (taking its side
 *    put both openers on one side: the link never came up);
 *  - elsewhere (a guest): the server's announcement of its departure, once
 *    we have seen it present, or else a heartbeat still for @p tmo_ms from
 *    when we started looking. The heartbeat is the claimer's grace period:
 *    it writes one with its identity, right after its claim, so a side just
 *    claimed is never judged by a heartbeat older than our first look.
 */
static enum holder_verdict occupant_judge(struct ivshm_channel *ch,
					  struct ivshm_tp_side *s, uint64_t tok,
					  unsigned int tmo_ms)
{
	uint64_t hb0 = ivshm_load_relaxed(&s->heartbeat);
	uint64_t deadline = now_ms() + tmo_ms;
	uint64_t boot;
	uint32_t pid, ep_id, nvec;
	int seen_present = 0;

	for (;;) {
		if (ivshm_load_relaxed(&s->occupant) != tok)
			return HOLDER_CHANGED;
		if (side_identity(s, tok, &boot, &pid, &ep_id, &nvec)) {
			if (ch->boot_hash != 0 && boot == ch->boot_hash &&
			    pid != 0) {
				if ((pid_t)pid != getpid() &&
				    kill((pid_t)pid, 0) < 0 && errno == ESRCH)
					return HOLDER_DEAD;
				return HOLDER_ALIVE; /* ours, or a live pid */
			}
			if (ch->has_peer_events && ep_id <= 0xffffu) {
				int r;

				/* Take in what the server has announced. */
				(void)ivshm_endpoint_process(ch->ep);
				r = ivshm_endpoint_peer_present(ch->ep,
								(uint16_t)ep_id);
				if (r == 1)
					seen_present = 1;
				else if (r == 0 && seen_present)
					return HOLDER_DEAD; /* it left */
			}
		}
		/* A moving heartbeat is a live holder (identity or not). */
		if (ivshm_load_relaxed(&s->heartbeat) != hb0)
			return HOLDER_ALIVE;
		if (now_ms() >= deadline)
			return HOLDER_DEAD;
		sleep_ms(2);
	}
}

/* ---- rings --------------------------------------------------------------- */

static uint8_t *ring_mem(struct ivshm_channel *ch, uint32_t dir, uint32_t q)
{
	return ch->base + ch->mem_off + (uint64_t)(dir * ch->nq + q) * ch->ring_stride;
}

static uint8_t *buf_mem(struct ivshm_channel *ch, uint32_t dir, uint32_t q)
{
	return ch->base + ch->mem_off + ch->bufs_off +
	       (uint64_t)(dir * ch->nq + q) * ch->rs * ch->stride;
}

/* Format and attach own tx rings (dir = own side). Queues quiescent. */
static int format_own(struct ivshm_channel *ch)
{
	for (uint32_t q = 0; q < ch->nq; q++) {
		struct ivshm_tp_txq *t = &ch->txq[q];
		uint8_t *m = ring_mem(ch, ch->side, q);
		int ret;

		ret = ivshm_ring_format(m, ch->ring_stride, ch->rs,
					sizeof(struct ivshm_tp_desc));
		if (ret == 0)
			ret = ivshm_ring_attach(&t->ring, m, ch->ring_stride,
						ch->rs, sizeof(struct ivshm_tp_desc),
						IVSHM_RING_PRODUCER);
		if (ret)
			return ret;
		t->bufs = buf_mem(ch, ch->side, q);
		ivshm_store_relaxed(&t->broken, 0u);
	}
	return 0;
}

/* Attach consumer handles to the peer's tx rings. Queues quiescent. */
static int attach_peer(struct ivshm_channel *ch)
{
	uint32_t dir = ch->side ^ 1u;

	for (uint32_t q = 0; q < ch->nq; q++) {
		struct ivshm_tp_rxq *r = &ch->rxq[q];
		int ret;

		ret = ivshm_ring_attach(&r->ring, ring_mem(ch, dir, q),
					ch->ring_stride, ch->rs,
					sizeof(struct ivshm_tp_desc),
					IVSHM_RING_CONSUMER);
		if (ret)
			return ret;
		r->bufs = buf_mem(ch, dir, q);
		/* The consumer index starts where the attach found it. */
		/* The window restarts on the new ring. No peek is held: the
		 * queue is quiescent (peek_slots is the datapath's alone). */
		r->cons = 0;
		r->peeked = 0;
		/* Loans still out end here: their tokens carry the old
		 * epoch and no longer match any slot's entry. */
		r->loaned = 0;
		r->epoch = (r->epoch + 1u) & IVSHM_TP_LOAN_EPOCH_MASK;
		ivshm_store_relaxed(&r->broken, 0u);
	}
	return 0;
}

/* ---- link ---------------------------------------------------------------- */

/* 1 once no datapath thread is inside a burst of this channel. Pairs with
 * the seq_cst exchange of `active` and load of `link_up` in datapath.c's
 * enter(): either the datapath sees link_up == 0, or we see active == 1. */
static int quiescent(struct ivshm_channel *ch)
{
	for (uint32_t q = 0; q < ch->nq; q++) {
		if (__atomic_load_n(&ch->txq[q].active, __ATOMIC_SEQ_CST) ||
		    __atomic_load_n(&ch->rxq[q].active, __ATOMIC_SEQ_CST))
			return 0;
	}
	return 1;
}

static void signal_link(struct ivshm_channel *ch, int up)
{
	uint64_t one = 1;
	ssize_t n;

	if (up)
		ivshm_store_relaxed(&ch->link_ups, ch->link_ups + 1);
	else
		ivshm_store_relaxed(&ch->link_downs, ch->link_downs + 1);
	n = write(ch->link_fd, &one, sizeof(one));
	(void)n; /* an eventfd at its maximum is still readable */
	if (ch->link_cb)
		ch->link_cb(ch->link_cb_arg, ch, up);
}

static void link_down(struct ivshm_channel *ch)
{
	if (__atomic_load_n(&ch->link_up, __ATOMIC_SEQ_CST)) {
		/* seq_cst: pairs with enter() in datapath.c (Dekker). */
		__atomic_store_n(&ch->link_up, 0u, __ATOMIC_SEQ_CST);
		signal_link(ch, 0);
	}
}

static void link_up(struct ivshm_channel *ch)
{
	/* The handles written above become visible to datapath threads
	 * through this store; pairs with enter()'s seq_cst load. */
	__atomic_store_n(&ch->link_up, 1u, __ATOMIC_SEQ_CST);
	signal_link(ch, 1);
	/* Kick the peer's receivers: a queue that armed its doorbell on the
	 * old rings would otherwise sleep until the next packet. */
	if (ch->can_ring) {
		uint32_t pe = ivshm_load_relaxed(&ch->peer_ep);
		uint32_t nv = ivshm_load_relaxed(&ch->peer_nvec);

		for (uint32_t q = 0; q < ch->nq && pe <= 0xffffu && nv; q++)
			(void)ivshm_endpoint_notify(ch->ep, (uint16_t)pe, q % nv);
	}
}

/* ---- housekeeping -------------------------------------------------------- */

int ivshm_transport_reset(struct ivshm_channel *ch)
{
	link_down(ch);
	ch->need_reformat = 1;
	ch->reformat_since = now_ms();
	ch->reset_req++;
	return 0;
}

int ivshm_transport_housekeeping(struct ivshm_channel *ch)
{
	struct peer_view v;
	uint64_t now = now_ms(), silence;
	int ret = 0, peer_ok, broken = 0;

	if (ch->has_peer_events) {
		int r = ivshm_endpoint_process(ch->ep);

		if (r == -ECONNRESET)
			ret = -ECONNRESET;
	}
	/* Heal the shared constants a hostile peer may have scribbled over. */
	if (!hdr_valid(ch->hdr, ch->size))
		hdr_write_constants(ch->hdr, ch->size);
	if (ivshm_load_relaxed(&ch->ent->mem_off) != ch->mem_off ||
	    ivshm_load_relaxed(&ch->ent->nb_queues) != ch->nq ||
	    ivshm_load_relaxed(&ch->ent->geom_state) != IVSHM_TP_GEOM_READY) {
		ivshm_store_relaxed(&ch->ent->nb_queues, ch->nq);
		ivshm_store_relaxed(&ch->ent->ring_size, ch->rs);
		ivshm_store_relaxed(&ch->ent->buf_size, ch->bs);
		ivshm_store_relaxed(&ch->ent->max_pkt_len, ch->max_pkt);
		ivshm_store_relaxed(&ch->ent->mem_off, ch->mem_off);
		ivshm_store_relaxed(&ch->ent->mem_size, ch->mem_size);
		ivshm_store_relaxed(&ch->ent->geom_state,
				    (uint32_t)IVSHM_TP_GEOM_READY);
	}

	for (uint32_t q = 0; q < ch->nq; q++)
		broken |= (int)(ivshm_load_relaxed(&ch->txq[q].broken) |
				ivshm_load_relaxed(&ch->rxq[q].broken));
	if (broken) {
		/* A ring reported an impossible index: reset both sides'
		 * rings. The flags are cleared once no burst can set them. */
		link_down(ch);
		if (quiescent(ch)) {
			for (uint32_t q = 0; q < ch->nq; q++) {
				ivshm_store_relaxed(&ch->txq[q].broken, 0u);
				ivshm_store_relaxed(&ch->rxq[q].broken, 0u);
			}
			ivshm_store_relaxed(&ch->proto_errors,
					    ch->proto_errors + 1);
			ivshm_transport_reset(ch);
		}
	}

	read_peer(ch, &v);
	if (v.tok != ch->peer_tok) {
		/* A new holder (or none): whatever we knew is void. */
		if (ch->peer_tok != 0 && ch->peer_tok != ch->dead_tok) {
			ivshm_store_relaxed(&ch->peer_deaths,
					    ch->peer_deaths + 1);
			ch->need_reformat = 1;
			ch->reformat_since = 0; /* the old holder is gone */
		}
		ch->peer_tok = v.tok;
		ch->peer_hb = v.hb;
		ch->peer_hb_ms = now;
		ch->peer_reset_seen = v.reset_req;
		ch->peer_present_seen = 0;
		ch->bad_peer_gen = 0;
	}
	if (v.hb != ch->peer_hb) {
		ch->peer_hb = v.hb;
		ch->peer_hb_ms = now;
	}
	if (ch->has_peer_events && v.ep_id <= 0xffffu &&
	    ivshm_endpoint_peer_present(ch->ep, (uint16_t)v.ep_id) == 1)
		ch->peer_present_seen = 1;
	/* A holder judged dead whose heartbeat moves again is alive after all
	 * (its block was scribbled over, or it was only slow): treat it as a
	 * new arrival. */
	if (v.tok != 0 && v.tok == ch->dead_tok && v.hb != ch->dead_hb &&
	    !holder_dead(ch, v.boot, v.pid, v.ep_id, ch->peer_present_seen)) {
		ch->dead_tok = 0;
		ch->peer_hb_ms = now;
		ch->peer_reset_seen = v.reset_req;
		ch->bad_peer_gen = 0;
	}
	/* Heartbeat silence means death after peer_timeout_ms, or ten times
	 * that when the holder runs on our kernel and its pid is there (a
	 * stalled process on a loaded host is not a dead one; a dead one's
	 * pid vanishes at once). */
	silence = now - ch->peer_hb_ms;
	if (v.boot != 0 && v.boot == ch->boot_hash && v.pid != 0)
		silence /= 10;
	if (v.tok != 0 && v.tok != ch->dead_tok &&
	    (silence > ch->peer_timeout_ms ||
	     holder_dead(ch, v.boot, v.pid, v.ep_id, ch->peer_present_seen))) {
		ch->dead_tok = v.tok;
		ch->dead_hb = v.hb;
		ivshm_store_relaxed(&ch->peer_deaths, ch->peer_deaths + 1);
		ch->need_reformat = 1;
		ch->reformat_since = 0;
	}
	peer_ok = v.tok != 0 && v.tok != ch->dead_tok &&
		  v.state != IVSHM_TP_ABSENT;
	if (peer_ok) {
		ivshm_store_relaxed(&ch->peer_ep, v.ep_id);
		/* The peer's vector count (validated): doorbells for queue q
		 * go to its vector q % nvec; 0 = it cannot be woken. */
		ivshm_store_relaxed(&ch->peer_nvec,
				    v.nvec <= IVSHM_MAX_VECTORS ? v.nvec : 0u);
		if (v.reset_req != ch->peer_reset_seen) {
			ch->peer_reset_seen = v.reset_req;
			if (!ch->need_reformat) {
				link_down(ch);
				ch->need_reformat = 1;
				ch->reformat_since = now;
			}
		}
	}

	/* Consumer side: follow the peer's generation. */
	if (!peer_ok || v.state != IVSHM_TP_SIDE_READY || v.gen == 0 ||
	    v.gen != ch->ack) {
		if (ch->ack != 0 || ch->rx_attached) {
			link_down(ch);
			if (quiescent(ch)) {
				ch->ack = 0;
				ch->rx_attached = 0;
			}
		}
		if (peer_ok && v.state == IVSHM_TP_SIDE_READY && v.gen != 0 &&
		    ch->ack == 0 && v.gen != ch->bad_peer_gen) {
			link_down(ch);
			if (quiescent(ch)) {
				if (attach_peer(ch) == 0) {
					ch->ack = v.gen;
					ch->rx_attached = 1;
				} else {
					/* Its rings are malformed: ask it to
					 * reset them, once per generation. */
					ivshm_store_relaxed(&ch->proto_errors,
							    ch->proto_errors + 1);
					ch->bad_peer_gen = v.gen;
					ch->reset_req++;
				}
			}
		}
	}

	/* Producer side: re-format own rings once the peer let go of them
	 * (or after peer_timeout_ms of waiting for a misbehaving peer). */
	if (ch->need_reformat) {
		link_down(ch);
		ch->state = IVSHM_TP_DOWN;
		if (ch->reformat_since == 0)
			ch->reformat_since = now;
		if ((!peer_ok || v.ack == 0 || v.ack != ch->gen ||
		     now - ch->reformat_since > ch->peer_timeout_ms) &&
		    quiescent(ch)) {
			if (format_own(ch) == 0) {
				ch->gen = ch->gen + 1 ? ch->gen + 1 : 1;
				ch->state = IVSHM_TP_SIDE_READY;
				ch->need_reformat = 0;
				ivshm_store_relaxed(&ch->resets, ch->resets + 1);
			}
		}
	}
	publish(ch);

	if (peer_ok && ch->state == IVSHM_TP_SIDE_READY &&
	    v.state == IVSHM_TP_SIDE_READY && ch->ack != 0 && ch->ack == v.gen &&
	    v.ack == ch->gen && !ch->need_reformat && !broken) {
		if (!ivshm_load_relaxed(&ch->link_up))
			link_up(ch);
	} else {
		link_down(ch);
	}
	if (ret)
		return ret;
	return (int)ivshm_load_relaxed(&ch->link_up);
}

/* ---- open / close -------------------------------------------------------- */

/* Bump our heartbeat between housekeeping calls (open's waits), so a
 * claimer that is alive never looks silent to another opener. */
static void beat(struct ivshm_channel *ch)
{
	ch->heartbeat++;
	ivshm_store_relaxed(&ch->me->heartbeat, ch->heartbeat);
}

/*
 * Claim side block @p b if it is free or its holder is dead; 1 if claimed.
 * The CAS on occupant is the claim; our identity and a fresh heartbeat
 * follow at once and become judgeable together by the release store of
 * id_token. Until then others see an unknown identity and judge us only by
 * our heartbeat, counted from their first look (occupant_judge()), so a
 * slow claimer is not robbed before its first housekeeping call.
 */
static int claim_one(struct ivshm_channel *ch, struct ivshm_tp_side *b,
		     unsigned int tmo_ms, uint64_t deadline)
{
	uint64_t cur = ivshm_load_relaxed(&b->occupant);

	for (;;) {
		if (cur != 0) {
			enum holder_verdict hv = occupant_judge(ch, b, cur, tmo_ms);

			if (hv == HOLDER_ALIVE)
				return 0;
			if (hv == HOLDER_CHANGED) {
				/* A holder left or a newcomer came: look
				 * again, within our deadline. */
				cur = ivshm_load_relaxed(&b->occupant);
				if (cur != 0 && now_ms() >= deadline)
					return 0;
				continue;
			}
		}
		/* acq_rel: pairs with a concurrent newcomer's CAS here and
		 * with a closing holder's CAS in ivshm_transport_close(). */
		if (ivshm_cas_acq_rel(&b->occupant, &cur, ch->token))
			break;
		/* Lost to another opener (cur is its token now): judge it like
		 * any holder (it is alive: it has just claimed). */
		if (cur != 0 && now_ms() >= deadline)
			return 0;
	}
	ivshm_store_relaxed(&b->pid, ch->pid);
	ivshm_store_relaxed(&b->ep_id, ch->ep_id);
	ivshm_store_relaxed(&b->boot_hash, ch->boot_hash);
	ivshm_store_relaxed(&b->nvectors, ch->nvec);
	/* Our heartbeat continues from the block's value, so it differs from
	 * any value a judge sampled before our claim. */
	ch->heartbeat = ivshm_load_relaxed(&b->heartbeat) + 1;
	ivshm_store_relaxed(&b->heartbeat, ch->heartbeat);
	/* Release: identity and heartbeat before the token that makes them
	 * ours; pairs with the acquire in side_identity(). */
	ivshm_store_release(&b->id_token, ch->token);
	return 1;
}

/* Side A if free or its holder dead, else side B on the same terms. */
static int claim_side(struct ivshm_channel *ch, unsigned int tmo_ms)
{
	uint64_t deadline = now_ms() + tmo_ms;

	for (uint32_t s = 0; s < 2; s++) {
		if (claim_one(ch, &ch->ent->side[s], tmo_ms, deadline)) {
			ch->side = s;
			ch->me = &ch->ent->side[s];
			ch->peer = &ch->ent->side[s ^ 1u];
			return 0;
		}
	}
	return -EBUSY;
}

static int setup_geometry(struct ivshm_channel *ch, const struct geom *g,
			  unsigned int tmo_ms)
{
	struct ivshm_tp_chan *e = ch->ent;
	uint64_t deadline = now_ms() + tmo_ms;
	uint64_t other = ivshm_load_relaxed(&e->side[ch->side ^ 1u].occupant);

	for (;;) {
		/* Pairs with the release store of GEOM_READY below. */
		uint32_t st = ivshm_load_acquire(&e->geom_state);

		if (st == IVSHM_TP_GEOM_READY) {
			uint64_t off = ivshm_load_relaxed(&e->mem_off);
			uint64_t sz = ivshm_load_relaxed(&e->mem_size);
			int same = ivshm_load_relaxed(&e->nb_queues) == g->nq &&
				   ivshm_load_relaxed(&e->ring_size) == g->rs &&
				   ivshm_load_relaxed(&e->buf_size) == g->bs &&
				   ivshm_load_relaxed(&e->max_pkt_len) == g->max_pkt;
			int inside = off >= IVSHM_TP_DATA_OFF &&
				     off % IVSHM_TP_AREA_ALIGN == 0 &&
				     sz <= ch->size && off <= ch->size - sz;

			if (same && inside && sz == g->mem_size) {
				ch->mem_off = off;
				return 0;
			}
			if (other != 0)
				return -EINVAL; /* the other side uses another geometry */
			/* Nobody else: take the entry over, keep the area if it fits. */
			if (inside && g->mem_size <= sz) {
				ivshm_store_relaxed(&e->nb_queues, g->nq);
				ivshm_store_relaxed(&e->ring_size, g->rs);
				ivshm_store_relaxed(&e->buf_size, g->bs);
				ivshm_store_relaxed(&e->max_pkt_len, g->max_pkt);
				ivshm_store_relaxed(&e->mem_size, g->mem_size);
				ch->mem_off = off;
				return 0;
			}
			if (!ivshm_cas_acq_rel(&e->geom_state, &st,
					       (uint32_t)IVSHM_TP_GEOM_ALLOCATING))
				continue;
		} else if (st == IVSHM_TP_GEOM_NONE ||
			   (st == IVSHM_TP_GEOM_ALLOCATING && now_ms() > deadline)) {
			/* acq_rel: pairs with the other side's CAS here. */
			if (!ivshm_cas_acq_rel(&e->geom_state, &st,
					       (uint32_t)IVSHM_TP_GEOM_ALLOCATING))
				continue;
		} else if (st == IVSHM_TP_GEOM_ALLOCATING) {
			beat(ch); /* we hold a side: stay visibly alive */
			sleep_ms(1);
			continue;
		} else {
			/* Garbage: reclaim it like an empty entry. */
			if (!ivshm_cas_acq_rel(&e->geom_state, &st,
					       (uint32_t)IVSHM_TP_GEOM_ALLOCATING))
				continue;
		}
		/* We hold ALLOCATING: bump-allocate the area. */
		for (;;) {
			uint64_t cur = ivshm_load_relaxed(&ch->hdr->alloc_next);
			uint64_t off = 0;

			/* cur is the peer's to write: bound it before rounding
			 * up, or a value near 2^64 wraps to offset 0 and the
			 * channel lands on the headers. */
			if (cur >= IVSHM_TP_DATA_OFF && cur <= ch->size)
				off = IVSHM_ALIGN_UP(cur, (uint64_t)IVSHM_TP_AREA_ALIGN);
			if (off == 0 || off > ch->size ||
			    g->mem_size > ch->size - off) {
				ivshm_store_release(&e->geom_state,
						    (uint32_t)IVSHM_TP_GEOM_NONE);
				return -ENOSPC;
			}
			/* acq_rel: pairs with other allocators' CAS. */
			if (ivshm_cas_acq_rel(&ch->hdr->alloc_next, &cur,
					      off + g->mem_size)) {
				ch->mem_off = off;
				break;
			}
		}
		ivshm_store_relaxed(&e->nb_queues, g->nq);
		ivshm_store_relaxed(&e->ring_size, g->rs);
		ivshm_store_relaxed(&e->buf_size, g->bs);
		ivshm_store_relaxed(&e->max_pkt_len, g->max_pkt);
		ivshm_store_relaxed(&e->mem_off, ch->mem_off);
		ivshm_store_relaxed(&e->mem_size, g->mem_size);
		/* Pairs with the acquire load at the top (other side). */
		ivshm_store_release(&e->geom_state, (uint32_t)IVSHM_TP_GEOM_READY);
		return 0;
	}
}

int ivshm_transport_open(struct ivshm_endpoint *ep, uint32_t channel_id,
			 const struct ivshm_transport_params *params,
			 struct ivshm_channel **out)
{
	struct ivshm_channel *ch;
	struct geom g;
	uint32_t caps;
	unsigned int tmo;
	int ret, id;

	if (!ep || !out || channel_id >= IVSHM_TRANSPORT_MAX_CHANNELS)
		return -EINVAL;
	ret = params_geom(params, &g);
	if (ret)
		return ret;
	if (ivshm_endpoint_size(ep) < IVSHM_TP_DATA_OFF + g.mem_size)
		return -ENOSPC;

	ch = aligned_alloc(IVSHM_CACHE_LINE,
			   IVSHM_ALIGN_UP(sizeof(*ch), (size_t)IVSHM_CACHE_LINE));
	if (!ch)
		return -ENOMEM;
	memset(ch, 0, sizeof(*ch));
	ch->ep = ep;
	ch->base = ivshm_endpoint_base(ep);
	ch->size = ivshm_endpoint_size(ep);
	ch->hdr = (struct ivshm_tp_hdr *)(ch->base + IVSHM_TP_HDR_OFF);
	ch->ent = (struct ivshm_tp_chan *)(ch->base + IVSHM_TP_TABLE_OFF +
					   (size_t)channel_id * IVSHM_TP_CHAN_SIZE);
	ch->id = channel_id;
	ch->nq = g.nq;
	ch->rs = g.rs;
	ch->bs = g.bs;
	ch->stride = g.stride;
	ch->max_pkt = g.max_pkt;
	ch->max_segs = (g.max_pkt + g.bs - 1) / g.bs;
	ch->ring_stride = g.ring_stride;
	ch->bufs_off = g.bufs_off;
	ch->mem_size = g.mem_size;
	ch->mode = params ? params->rx_mode : IVSHM_TRANSPORT_RX_POLL;
	ch->spin_us = params && params->spin_us ? params->spin_us
						: IVSHM_TRANSPORT_DEF_SPIN_US;
	ch->peer_timeout_ms = params && params->peer_timeout_ms
				      ? params->peer_timeout_ms
				      : IVSHM_TRANSPORT_DEF_PEER_TIMEOUT_MS;
	tmo = params && params->open_timeout_ms ? params->open_timeout_ms
						: ch->peer_timeout_ms;
	ch->link_cb = params ? params->link_cb : NULL;
	ch->link_cb_arg = params ? params->link_cb_arg : NULL;
	for (uint32_t q = 0; q < IVSHM_TRANSPORT_MAX_QUEUES; q++)
		ivshm_copy_tuner_init(&ch->txq[q].copy,
				      params ? params->tx_copy : IVSHM_COPY_AUTO, g.rs);
	ch->token = random_nonzero();
	ch->boot_hash = boot_hash();
	ch->pid = (uint32_t)getpid();
	id = ivshm_endpoint_id(ep);
	ch->ep_id = id >= 0 ? (uint32_t)id : IVSHM_TP_NO_EP;
	ch->peer_ep = IVSHM_TP_NO_EP;
	caps = ivshm_endpoint_caps(ep);
	/* Ringing the peer needs only a doorbell; sleeping needs interrupts
	 * of our own (a guest without UIO/VFIO can ring but not sleep). */
	ch->can_ring = !!(caps & IVSHM_EP_CAP_DOORBELL);
	ch->has_doorbell = (caps & IVSHM_EP_CAP_INTERRUPT) &&
			   ivshm_endpoint_nvectors(ep) > 0;
	ch->has_peer_events = !!(caps & IVSHM_EP_CAP_PEER_EVENTS);
	ch->nvec = ch->has_doorbell ? ivshm_endpoint_nvectors(ep) : 0;
	for (uint32_t q = 0; q < IVSHM_TRANSPORT_MAX_QUEUES; q++) {
		ch->rxq[q].fd = -1;
		if (ch->has_doorbell) {
			ch->rxq[q].fd = ivshm_endpoint_vector_fd(ep, q % ch->nvec);
			if (ch->rxq[q].fd < 0)
				ch->has_doorbell = 0;
		}
	}
	if (!ch->has_doorbell)
		for (uint32_t q = 0; q < IVSHM_TRANSPORT_MAX_QUEUES; q++)
			ch->rxq[q].fd = -1;
	/* Loan table, private to this process (the peer cannot forge a
	 * return): one entry per receive slot. */
	ch->loan_mem = calloc((size_t)ch->nq * ch->rs, sizeof(uint64_t));
	if (!ch->loan_mem) {
		ret = -ENOMEM;
		goto err_free;
	}
	for (uint32_t q = 0; q < ch->nq; q++)
		ch->rxq[q].loan = ch->loan_mem + (size_t)q * ch->rs;

	ch->link_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ch->link_fd < 0) {
		ret = -errno;
		goto err_free;
	}
	ret = hdr_format_or_wait(ch->base, ch->size, tmo);
	if (ret)
		goto err_close_fd;
	ch->region_id = ivshm_load_relaxed(&ch->hdr->region_id);
	ret = claim_side(ch, tmo);
	if (ret)
		goto err_close_fd;
	ret = setup_geometry(ch, &g, tmo);
	if (ret)
		goto err_release_side;

	/* Start from the generation the previous holder left, so a peer still
	 * attached to its rings is seen to let go (ack != gen) before we
	 * re-format them. */
	ch->gen = ivshm_load_relaxed(&ch->me->gen);
	ch->state = IVSHM_TP_DOWN;
	ch->need_reformat = 1;
	ch->reformat_since = now_ms();
	ch->reset_req = ivshm_load_relaxed(&ch->me->reset_req);
	publish(ch);
	/* A few rounds now so a present peer is usually linked on return. */
	for (int i = 0; i < 3; i++)
		if (ivshm_transport_housekeeping(ch) == 1)
			break;
	*out = ch;
	return 0;

err_release_side: {
		uint64_t t = ch->token;

		ivshm_cas_acq_rel(&ch->ent->side[ch->side].occupant, &t,
				  (uint64_t)0);
	}
err_close_fd:
	close(ch->link_fd);
err_free:
	free(ch->loan_mem);
	free(ch);
	return ret;
}

void ivshm_transport_close(struct ivshm_channel *ch)
{
	uint64_t t;

	if (!ch)
		return;
	link_down(ch);
	ch->state = IVSHM_TP_ABSENT;
	ch->ack = 0;
	publish(ch);
	t = ch->token;
	/* Release: our last stores are seen before the side is free; pairs
	 * with the newcomer's CAS in claim_side(). */
	ivshm_cas_acq_rel(&ch->me->occupant, &t, (uint64_t)0);
	close(ch->link_fd);
	free(ch->loan_mem);
	free(ch);
}

/* ---- small accessors ----------------------------------------------------- */

int ivshm_transport_info_get(const struct ivshm_channel *ch,
			 struct ivshm_transport_info *info)
{
	memset(info, 0, sizeof(*info));
	info->channel_id = ch->id;
	info->side = (enum ivshm_transport_side)ch->side;
	info->nb_queues = ch->nq;
	info->ring_size = ch->rs;
	info->buf_size = ch->bs;
	info->max_pkt_len = ch->max_pkt;
	info->max_segs = ch->max_segs;
	info->has_doorbell = ch->has_doorbell;
	info->mem_offset = ch->mem_off;
	info->mem_size = ch->mem_size;
	info->region_id = ch->region_id;
	return 0;
}

enum ivshm_transport_side ivshm_transport_side(const struct ivshm_channel *ch)
{
	return (enum ivshm_transport_side)ch->side;
}

int ivshm_transport_link(const struct ivshm_channel *ch)
{
	return (int)__atomic_load_n(&ch->link_up, __ATOMIC_RELAXED);
}

int ivshm_transport_link_fd(const struct ivshm_channel *ch)
{
	return ch->link_fd;
}

static void copy_qstats(struct ivshm_transport_queue_stats *d,
			const struct ivshm_transport_queue_stats *s)
{
	d->packets = ivshm_load_relaxed(&s->packets);
	d->bytes = ivshm_load_relaxed(&s->bytes);
	d->segments = ivshm_load_relaxed(&s->segments);
	d->drops = ivshm_load_relaxed(&s->drops);
	d->errors = ivshm_load_relaxed(&s->errors);
	d->doorbells = ivshm_load_relaxed(&s->doorbells);
	d->wakeups = ivshm_load_relaxed(&s->wakeups);
	d->sleeps = ivshm_load_relaxed(&s->sleeps);
}

int ivshm_transport_stats_get(const struct ivshm_channel *ch,
			  struct ivshm_transport_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->link_ups = ivshm_load_relaxed(&ch->link_ups);
	st->link_downs = ivshm_load_relaxed(&ch->link_downs);
	st->resets = ivshm_load_relaxed(&ch->resets);
	st->peer_deaths = ivshm_load_relaxed(&ch->peer_deaths);
	st->proto_errors = ivshm_load_relaxed(&ch->proto_errors);
	for (uint32_t q = 0; q < ch->nq; q++) {
		copy_qstats(&st->tx[q], &ch->txq[q].st);
		copy_qstats(&st->rx[q], &ch->rxq[q].st);
	}
	return 0;
}
