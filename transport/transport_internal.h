/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * transport_internal.h - process-local channel state (private).
 *
 * Each queue direction has its own cache-line-aligned struct, touched only
 * by the datapath thread of that direction, except for the `active` word
 * (seq_cst handshake with the control thread, see enter/leave in
 * transport.c) and the stats counters (single writer, relaxed atomics, read
 * by anyone).
 */
#ifndef IVSHM_TRANSPORT_INTERNAL_H
#define IVSHM_TRANSPORT_INTERNAL_H

#include <stdint.h>

#include "ivshm/ring.h"
#include "ivshm/transport.h"
#include "ivshm_common.h"
#include "transport_layout.h"

/*
 * Loan tokens (rx_loan): epoch << 32 | free-running slot index; bit 63 set
 * in a slot's loan entry while the loan is out. A token of an earlier
 * epoch never equals a current entry, so a late or repeated return is a
 * no-op.
 */
#define IVSHM_TP_LOAN_OUT (1ull << 63)
#define IVSHM_TP_LOAN_EPOCH_MASK 0x7fffffffu

struct ivshm_tp_txq {
	struct ivshm_ring ring;
	uint8_t *bufs;          /* own buffers of this queue */
	uint32_t active;        /* 1 while in a burst or holding a reservation */
	uint32_t broken;        /* ring reported an impossible index */
	uint32_t resv_n;        /* reserved by tx_reserve, not committed */
	uint32_t resv_start;
	struct ivshm_copy_tuner copy; /* tx_burst's stores (ivshm/copy.h) */
	struct ivshm_transport_queue_stats st;
} __attribute__((aligned(IVSHM_CACHE_LINE)));

struct ivshm_tp_rxq {
	struct ivshm_ring ring;
	const uint8_t *bufs;    /* the peer's buffers of this queue */
	uint32_t active;
	uint32_t broken;
	uint32_t cons;          /* first slot not released (free-running) */
	uint32_t peeked;        /* slots peeked from the ring, not released */
	uint32_t peek_slots;    /* slots covered by the last rx_peek */
	uint32_t peek_bufs;     /* buffers it returned */
	uint32_t loaned;        /* slots [cons, cons + loaned) lent by rx_loan */
	uint32_t epoch;         /* bumped at every re-attach (loan tokens) */
	uint64_t *loan;         /* per slot: token | LOAN_OUT while lent,
				   token once returned (rx_return's CAS) */
	int fd;                 /* doorbell eventfd, -1 if none */
	struct ivshm_transport_queue_stats st;
} __attribute__((aligned(IVSHM_CACHE_LINE)));

struct ivshm_channel {
	/* read-mostly, set at open */
	struct ivshm_endpoint *ep;
	uint8_t *base;
	uint64_t size;
	struct ivshm_tp_hdr *hdr;
	struct ivshm_tp_chan *ent;
	struct ivshm_tp_side *me;
	struct ivshm_tp_side *peer;
	uint32_t id;
	uint32_t side;
	uint32_t nq, rs, bs, max_pkt, max_segs;
	uint32_t stride;         /* bytes between buffers (odd cache lines) */
	uint64_t mem_off, mem_size;
	uint64_t ring_stride;    /* R */
	uint64_t bufs_off;       /* B0, from the channel area */
	uint64_t region_id;
	uint64_t token;
	uint64_t *loan_mem;      /* nq * rs loan entries (rxq[q].loan) */
	uint64_t boot_hash;
	uint32_t pid;
	uint32_t ep_id;
	uint32_t nvec;
	int has_doorbell;        /* own interrupts: rx can sleep */
	int can_ring;            /* endpoint can ring peers' doorbells */
	int has_peer_events;
	enum ivshm_transport_rx_mode mode;
	uint32_t spin_us;
	uint32_t peer_timeout_ms;
	ivshm_transport_link_fn link_cb;
	void *link_cb_arg;
	int link_fd;

	/* shared with the datapath threads */
	uint32_t link_up;        /* seq_cst: datapath checks it on entry */
	uint32_t peer_ep;        /* peer's ivshmem id for doorbells (relaxed) */
	uint32_t peer_nvec;      /* peer's vectors, 0 = not wakeable (relaxed) */

	/* control thread only: own published state */
	uint32_t state, gen, ack, reset_req;
	uint64_t heartbeat;
	int need_reformat;       /* own tx rings must be re-formatted */
	uint64_t reformat_since; /* ms when the wait for the peer began */
	int rx_attached;         /* consumer handles attached to peer gen ack */
	/* control thread only: what we know of the peer */
	uint64_t peer_tok;       /* occupant token last seen */
	uint64_t dead_tok;       /* token judged dead */
	uint64_t dead_hb;        /* its heartbeat then */
	uint64_t peer_hb;
	uint64_t peer_hb_ms;     /* when peer_hb last changed */
	uint32_t peer_reset_seen;
	int peer_present_seen;   /* the endpoint has reported it present */
	uint32_t bad_peer_gen;   /* peer gen whose rings failed to attach */

	/* channel-wide counters (control thread writes, relaxed) */
	uint64_t link_ups, link_downs, resets, peer_deaths, proto_errors;

	struct ivshm_tp_txq txq[IVSHM_TRANSPORT_MAX_QUEUES];
	struct ivshm_tp_rxq rxq[IVSHM_TRANSPORT_MAX_QUEUES];
};

#endif /* IVSHM_TRANSPORT_INTERNAL_H */
