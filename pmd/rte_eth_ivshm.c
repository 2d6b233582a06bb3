/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rte_eth_ivshm.c - net_ivshmem, a DPDK poll-mode driver over the ivshm
 * transport: probe and devargs, ethdev operations, receive and transmit
 * bursts.
 *
 * The driver is a thin adapter. The transport (transport.h) owns rings,
 * buffers, link state and every check of what the peer wrote; the driver
 * copies between mbufs and the transport's buffers through its zero-copy
 * calls (reserve/commit on transmit, peek/release on receive), counts, and
 * turns link changes seen by a housekeeping thread into LSC events. Bursts
 * never log, never block and allocate mbufs only in bulk (receive keeps a
 * per-queue stash refilled with rte_pktmbuf_alloc_bulk()).
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_branch_prediction.h>
#include <rte_common.h>
#include <rte_ethdev.h>
#include <rte_interrupts.h>
#include <rte_kvargs.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_memcpy.h>
#include <rte_prefetch.h>

#include <bus_vdev_driver.h>
#include <ethdev_driver.h>
#include <ethdev_vdev.h>

#include "pmd_internal.h"

RTE_LOG_REGISTER_DEFAULT(ivshm_logtype, NOTICE);

#define ARG_SOCKET    "socket"
#define ARG_SHM       "shm"
#define ARG_SIZE      "size"
#define ARG_PCI       "pci"
#define ARG_ID        "id"
#define ARG_QUEUES    "queues"
#define ARG_RING_SIZE "ring_size"
#define ARG_BUF_SIZE  "buf_size"
#define ARG_MAC       "mac"
#define ARG_RX_MODE   "rx_mode"
#define ARG_ZERO_COPY "zero_copy"
#define ARG_COPYBREAK "copybreak"
#define ARG_TX_COPY "tx_copy"

static const char *const valid_args[] = {
	ARG_SOCKET, ARG_SHM, ARG_SIZE, ARG_PCI, ARG_ID, ARG_QUEUES,
	ARG_RING_SIZE, ARG_BUF_SIZE, ARG_MAC, ARG_RX_MODE, ARG_ZERO_COPY,
	ARG_COPYBREAK, ARG_TX_COPY, NULL
};

/*
 * Copy one packet's bytes. Short ones with the inlined rte_memcpy (no
 * call); long ones with libc's memcpy, which picks AVX2 or wider at run
 * time, while rte_memcpy is compiled for the -march=corei7 baseline (16-byte
 * SSE moves) that Debian's libdpdk.pc sets: about 5 % more 1500-byte
 * packets per second on the sender here.
 */
static __rte_always_inline void
pkt_copy(void *dst, const void *src, uint32_t n)
{
	if (n > 256)
		memcpy(dst, src, n);
	else
		rte_memcpy(dst, src, n);
}

/* ------------------------------------------------------------------ */
/* Receive                                                             */
/* ------------------------------------------------------------------ */

/*
 * Refill the stash with raw mbufs straight from the pool; returns how many
 * it holds. Mbufs in a pool already have next == NULL and nb_segs == 1
 * (rte_pktmbuf_prefree_seg() guarantees it), so using one only takes
 * mbuf_init() below.
 */
static inline uint32_t
rxq_refill(struct ivshm_rx_queue *q, uint32_t want)
{
	if (likely(q->nb_stash >= want))
		return q->nb_stash;
	uint32_t add = IVSHM_PMD_STASH - q->nb_stash;
	if (rte_mempool_get_bulk(q->mp, (void **)&q->stash[q->nb_stash], add) == 0) {
		q->nb_stash += add;
	} else {
		/* Pool nearly empty: take what a smaller bulk gives. */
		add = want - q->nb_stash;
		if (rte_mempool_get_bulk(q->mp, (void **)&q->stash[q->nb_stash], add) == 0)
			q->nb_stash += add;
		else
			q->nombuf++;
	}
	return q->nb_stash;
}

/* Make a raw pool mbuf a fresh packet of this port, as rte_pktmbuf_reset()
 * would, with one 8-byte store for data_off, refcnt, nb_segs and port. */
static inline void
mbuf_init(const struct ivshm_rx_queue *q, struct rte_mbuf *m)
{
	memcpy((uint8_t *)m + offsetof(struct rte_mbuf, rearm_data), &q->mbuf_rearm,
	       sizeof(q->mbuf_rearm));
	m->ol_flags = 0;
	m->packet_type = 0;
	m->tx_offload = 0;
	m->vlan_tci = 0;
	m->vlan_tci_outer = 0;
}

static inline struct rte_mbuf *
rxq_take(struct ivshm_rx_queue *q)
{
	struct rte_mbuf *m;

	if (likely(q->nb_stash > 0)) {
		m = q->stash[--q->nb_stash];
		mbuf_init(q, m);
	} else {
		m = rte_pktmbuf_alloc(q->mp);
		if (m == NULL) {
			q->nombuf++;
			return NULL;
		}
		m->port = q->port_id;
	}
	m->data_len = 0;
	return m;
}

/*
 * Slow path: a packet spread over buffers bufs[first..last] and/or longer
 * than one mbuf. Copies it into a chain of mbufs (when scatter is on).
 * Returns the head mbuf or NULL (dropped and counted).
 */
static struct rte_mbuf *
rx_chain(struct ivshm_rx_queue *q, const struct ivshm_transport_buf *bufs,
	 uint16_t first, uint16_t last)
{
	uint32_t total = 0;
	for (uint16_t i = first; i <= last; i++)
		total += bufs[i].len;
	if (total > q->mbuf_room && !q->scatter) {
		q->errors++;
		return NULL;
	}
	struct rte_mbuf *head = rxq_take(q);
	if (head == NULL)
		return NULL;
	struct rte_mbuf *m = head;
	uint32_t room = q->mbuf_room;
	for (uint16_t i = first; i <= last; i++) {
		const uint8_t *src = bufs[i].data;
		uint32_t left = bufs[i].len;
		while (left > 0) {
			if (room == 0) {
				struct rte_mbuf *n = rxq_take(q);
				if (n == NULL) {
					rte_pktmbuf_free(head);
					return NULL;
				}
				m->next = n;
				m = n;
				head->nb_segs++;
				room = q->mbuf_room;
			}
			uint32_t c = RTE_MIN(left, room);
			pkt_copy(rte_pktmbuf_mtod_offset(m, uint8_t *, m->data_len),
				 src, c);
			m->data_len = (uint16_t)(m->data_len + c);
			room -= c;
			src += c;
			left -= c;
		}
	}
	head->pkt_len = total;
	head->port = q->port_id;
	return head;
}

/* Drop one reference on a zero-copy owner; the last one closes the channel
 * and endpoint the port kept open for lent mbufs, and frees the tables. */
static void
zc_owner_put(struct ivshm_zc_owner *o, uint32_t n)
{
	/* acq_rel: every earlier holder's writes (the control thread's list
	 * of tables, the returns of loans) happen before the final close. */
	if (__atomic_sub_fetch(&o->refs, n, __ATOMIC_ACQ_REL) != 0)
		return;
	ivshm_transport_close(o->ch);
	ivshm_endpoint_close(o->ep);
	while (o->tables != NULL) {
		struct ivshm_zc_orphans *t = o->tables;
		o->tables = t->next;
		rte_free(t->slots);
		rte_free(t);
	}
	IVSHM_LOG(INFO, "%s: last zero-copy mbuf freed: channel closed", o->name);
	rte_free(o);
}

/* An mbuf lending a slot (zero_copy=1) was freed, on any lcore: return the
 * loan. The slot struct is reused only once busy is clear. */
static void
zc_free(void *addr __rte_unused, void *opaque)
{
	struct ivshm_zc_slot *z = opaque;
	uint64_t token = z->token;
	struct ivshm_zc_owner *o = z->owner;

	ivshm_transport_rx_return(o->ch, z->qid, token);
	/* Release: our reads of the slot happen before the rx thread reuses
	 * it; pairs with the acquire load in rx_zc_take(). Acquire: sees a
	 * queue release's orphan mark (its CAS). */
	if (__atomic_exchange_n(&z->busy, 0u, __ATOMIC_ACQ_REL) == IVSHM_ZC_ORPHAN)
		zc_owner_put(o, 1);
}

/*
 * Zero copy: make a stash mbuf point at the lent buffer. Returns NULL when
 * the slot's struct is still held by an mbuf of an earlier ring epoch (a
 * reset ended that loan while the application kept the mbuf): copy then.
 */
static inline struct rte_mbuf *
rx_zc_take(struct ivshm_rx_queue *q, void *data, uint32_t len, uint64_t token)
{
	struct ivshm_zc_slot *z = &q->zc[(uint32_t)token & q->ring_mask];

	/* Acquire: pairs with zc_free()'s release store. */
	if (unlikely(__atomic_load_n(&z->busy, __ATOMIC_ACQUIRE)))
		return NULL;
	struct rte_mbuf *m = q->stash[--q->nb_stash];
	mbuf_init(q, m);
	/* Relaxed: the mbuf's hand-off to whoever frees it orders these
	 * before zc_free(). */
	z->token = token;
	__atomic_store_n(&z->busy, 1u, __ATOMIC_RELAXED);
	rte_mbuf_ext_refcnt_set(&z->sh, 1);
	rte_pktmbuf_attach_extbuf(m, data,
				  q->iova_va ? (rte_iova_t)(uintptr_t)data : RTE_BAD_IOVA,
				  (uint16_t)q->buf_size, &z->sh);
	m->data_len = (uint16_t)len;
	m->pkt_len = len;
	return m;
}

/*
 * The receive burst, in copy mode (zc == 0: peek, copy into mbufs, release)
 * or zero copy mode (zc == 1: loans; packets from copybreak on ride in the
 * region's buffer, shorter ones, chains and those that find no free slot
 * struct are copied and their loans returned at once).
 */
static __rte_always_inline uint16_t
rx_burst(struct ivshm_rx_queue *q, struct rte_mbuf **pkts, uint16_t nb_pkts,
	 const int zc)
{
	uint16_t n = RTE_MIN(nb_pkts, (uint16_t)IVSHM_PMD_BURST);

	if (unlikely(n == 0))
		return 0;
	/* One packet per buffer at most: n mbufs cover the common case. */
	uint32_t have = rxq_refill(q, n);
	if (unlikely(have == 0))
		return 0;
	if (have < n)
		n = (uint16_t)have;

	uint16_t nb = zc ? ivshm_transport_rx_loan(q->ch, q->qid, q->bufs,
						   q->tokens, n)
			 : ivshm_transport_rx_peek(q->ch, q->qid, q->bufs, n);
	if (nb == 0)
		return 0;

	struct ivshm_transport_buf *b = q->bufs;
	uint16_t npk = 0;
	uint64_t bytes = 0;
	uint16_t i = 0;
	/* The sender's lines into L2, IVSHM_COPY_PREFETCH_LINES beyond the
	 * packet being copied, and the next packet's first line into L1
	 * (ivshm/copy.h); a lent buffer's lines are never read here. */
	struct ivshm_copy_window w = { 0, 0 };
	rte_prefetch0(b[0].data);
	while (i < nb) {
		ivshm_copy_window_at(&w, i, !zc || b[i].len < q->copybreak ?
					    ivshm_copy_lines(b[i].len) : 0);
		for (; ivshm_copy_window_open(&w, nb); w.next++)
			if (!zc || b[w.next].len < q->copybreak)
				w.lines += ivshm_copy_prefetch(b[w.next].data,
							       b[w.next].len);
		if (i + 1 < nb)
			rte_prefetch0(b[i + 1].data);
		uint32_t len = b[i].len;
		struct rte_mbuf *m = NULL;
		const int single = !(b[i].flags & IVSHM_TRANSPORT_F_MORE) &&
				   q->nb_stash > 0;
		/* A lent buffer needs no data room of the mbuf's own. */
		if (zc && single && len >= q->copybreak)
			m = rx_zc_take(q, b[i].data, len, q->tokens[i]);
		if (m == NULL && likely(single && len <= q->mbuf_room)) {
			m = q->stash[--q->nb_stash];
			mbuf_init(q, m);
			pkt_copy((uint8_t *)m->buf_addr + RTE_PKTMBUF_HEADROOM,
				 b[i].data, len);
			m->data_len = (uint16_t)len;
			m->pkt_len = len;
			if (zc)
				ivshm_transport_rx_return(q->ch, q->qid, q->tokens[i]);
		}
		if (m != NULL) {
			if (q->nb_stash > 0)
				rte_prefetch0(q->stash[q->nb_stash - 1]);
			pkts[npk++] = m;
			bytes += len;
			i++;
			continue;
		}
		/* Find the end of the chain; peek returns whole chains only,
		 * but a chain running off the end is dropped all the same. */
		uint16_t last = i;
		while (last + 1 < nb && (b[last].flags & IVSHM_TRANSPORT_F_MORE))
			last++;
		if (b[last].flags & IVSHM_TRANSPORT_F_MORE) {
			q->errors++;
			break;
		}
		m = rx_chain(q, b, i, last);
		if (m != NULL) {
			pkts[npk++] = m;
			bytes += m->pkt_len;
		}
		if (zc)
			for (uint16_t k = i; k <= last; k++)
				ivshm_transport_rx_return(q->ch, q->qid, q->tokens[k]);
		i = (uint16_t)(last + 1);
	}
	if (zc) {
		/* Loans cut off by a broken chain go back (dropped). */
		for (; i < nb; i++)
			ivshm_transport_rx_return(q->ch, q->qid, q->tokens[i]);
	} else {
		/* Every peeked buffer was copied out or counted as dropped. */
		ivshm_transport_rx_release(q->ch, q->qid, nb);
	}
	q->packets += npk;
	q->bytes += bytes;
	return npk;
}

static uint16_t
eth_ivshm_rx(void *queue, struct rte_mbuf **pkts, uint16_t nb_pkts)
{
	return rx_burst(queue, pkts, nb_pkts, 0);
}

static uint16_t
eth_ivshm_rx_zc(void *queue, struct rte_mbuf **pkts, uint16_t nb_pkts)
{
	return rx_burst(queue, pkts, nb_pkts, 1);
}

/* ------------------------------------------------------------------ */
/* Transmit                                                            */
/* ------------------------------------------------------------------ */

/* Copy a multi-segment mbuf (or one longer than a buffer) into bufs[k..]. */
static uint16_t
tx_copy_chain(const struct ivshm_tx_queue *q, struct rte_mbuf *m,
	      struct ivshm_transport_buf *bufs, uint16_t k)
{
	uint32_t room = q->buf_size;
	uint8_t *dst = bufs[k].data;
	uint32_t filled = 0;

	for (; m != NULL; m = m->next) {
		const uint8_t *src = rte_pktmbuf_mtod(m, const uint8_t *);
		uint32_t left = m->data_len;
		while (left > 0) {
			if (room == 0) {
				bufs[k].len = filled;
				bufs[k].flags = IVSHM_TRANSPORT_F_MORE;
				k++;
				dst = bufs[k].data;
				room = q->buf_size;
				filled = 0;
			}
			uint32_t c = RTE_MIN(left, room);
			pkt_copy(dst + filled, src, c);
			filled += c;
			room -= c;
			src += c;
			left -= c;
		}
	}
	bufs[k].len = filled;
	bufs[k].flags = 0;
	return (uint16_t)(k + 1);
}

static uint16_t
eth_ivshm_tx(void *queue, struct rte_mbuf **pkts, uint16_t nb_pkts)
{
	struct ivshm_tx_queue *q = queue;
	const uint32_t bs = q->buf_size;
	uint16_t np, need = 0;

	/* How many packets fit in one reservation, and how many buffers. */
	for (np = 0; np < nb_pkts; np++) {
		uint32_t len = pkts[np]->pkt_len;
		uint32_t s = (len == 0 || len > q->max_pkt_len) ? 0 :
			     (len + bs - 1) / bs;
		if (need + s > IVSHM_PMD_BURST)
			break;
		need = (uint16_t)(need + s);
	}
	if (unlikely(np == 0))
		return 0;
	/*
	 * The ring was full a moment ago: skip a few calls instead of asking
	 * again at once. Each reserve on a full ring re-reads the consumer's
	 * index, pulling its cache line away from the consumer core just as it
	 * frees slots; backing off lets the consumer drain a whole burst.
	 */
	if (unlikely(q->full_backoff > 0) && need > 0) {
		q->full_backoff--;
		return 0;
	}

	uint16_t got = need ? ivshm_transport_tx_reserve(q->ch, q->qid,
							 q->bufs, need) : 0;
	if (unlikely(got < need))
		q->full_backoff = IVSHM_PMD_TX_BACKOFF;
	uint16_t k = 0, i;
	uint64_t bytes = 0;
	uint32_t sent = 0, slow_free = 0;
	/* Cached or streaming stores: see ivshm/copy.h. */
	const uint64_t t0 = ivshm_copy_burst_begin(&q->copy);
	const int stream = q->copy.stream;
	for (i = 0; i < np; i++) {
		struct rte_mbuf *m = pkts[i];
		uint32_t len = m->pkt_len;
		if (i + 1 < np)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
		/* Chains, and mbufs with an external buffer (such as those a
		 * zero_copy=1 port lends) even where the application asked
		 * for fast free: their free must run the detach callback. */
		slow_free |= (m->nb_segs > 1) | !RTE_MBUF_DIRECT(m);
		if (unlikely(len == 0 || len > q->max_pkt_len)) {
			/* Refused, freed below with the rest, counted. */
			q->errors++;
			continue;
		}
		if (likely(m->nb_segs == 1 && len <= bs)) {
			if (k >= got)
				break;
			if (stream)
				ivshm_copy_stream(q->bufs[k].data,
						  rte_pktmbuf_mtod(m, void *), len);
			else
				pkt_copy(q->bufs[k].data,
					 rte_pktmbuf_mtod(m, void *), len);
			q->bufs[k].len = len;
			q->bufs[k].flags = 0;
			k++;
		} else {
			uint32_t s = (len + bs - 1) / bs;
			if (k + s > got)
				break;
			k = tx_copy_chain(q, m, q->bufs, k);
		}
		bytes += len;
		sent++;
	}
	ivshm_copy_burst_end(&q->copy, t0, bytes, sent);
	if (got > 0)
		ivshm_transport_tx_commit(q->ch, q->qid, q->bufs, k);
	if (i > 0) {
		/* Fast free: the application promised direct mbufs of one
		 * pool with refcnt 1; single-segment ones go straight back. */
		if (q->fast_free && !slow_free)
			rte_mempool_put_bulk(pkts[0]->pool, (void **)pkts, i);
		else
			rte_pktmbuf_free_bulk(pkts, i);
	}
	q->packets += sent;
	q->bytes += bytes;
	return i;
}

/* ------------------------------------------------------------------ */
/* Link and housekeeping                                               */
/* ------------------------------------------------------------------ */

static void
link_set(struct rte_eth_dev *dev, int up)
{
	struct rte_eth_link link = {
		.link_speed = up ? RTE_ETH_SPEED_NUM_100G : RTE_ETH_SPEED_NUM_NONE,
		.link_duplex = RTE_ETH_LINK_FULL_DUPLEX,
		.link_autoneg = RTE_ETH_LINK_FIXED,
		.link_status = up ? RTE_ETH_LINK_UP : RTE_ETH_LINK_DOWN,
	};
	rte_eth_linkstatus_set(dev, &link);
}

static void *
hk_main(void *arg)
{
	struct rte_eth_dev *dev = arg;
	struct pmd_internals *pmd = dev->data->dev_private;
	const struct timespec period = {
		.tv_sec = 0,
		.tv_nsec = (long)IVSHM_TRANSPORT_HK_PERIOD_MS * 1000000L,
	};

	/* Acquire pairs with the release store in hk_stop(). */
	while (!__atomic_load_n(&pmd->hk_stop, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&pmd->ctl_lock);
		int r = ivshm_transport_housekeeping(pmd->ch);
		pthread_mutex_unlock(&pmd->ctl_lock);
		if (r == -ECONNRESET && !pmd->server_gone) {
			pmd->server_gone = 1;
			IVSHM_LOG(WARNING, "%s: the ivshmem server is gone; link stays down",
				  dev->data->name);
		}
		int up = r == 1;
		if (up != pmd->link_up) {
			pmd->link_up = up;
			link_set(dev, up);
			IVSHM_LOG(INFO, "%s: link %s", dev->data->name, up ? "up" : "down");
			if (dev->data->dev_conf.intr_conf.lsc)
				rte_eth_dev_callback_process(dev, RTE_ETH_EVENT_INTR_LSC,
							     NULL);
		}
		nanosleep(&period, NULL);
	}
	return NULL;
}

static void
hk_stop(struct pmd_internals *pmd)
{
	if (!pmd->hk_running)
		return;
	/* Release pairs with the acquire load in hk_main(). */
	__atomic_store_n(&pmd->hk_stop, 1, __ATOMIC_RELEASE);
	pthread_join(pmd->hk_thread, NULL);
	pmd->hk_running = 0;
}

/* ------------------------------------------------------------------ */
/* ethdev operations                                                   */
/* ------------------------------------------------------------------ */

static int
eth_ivshm_configure(struct rte_eth_dev *dev)
{
	struct pmd_internals *pmd = dev->data->dev_private;
	const struct rte_eth_conf *conf = &dev->data->dev_conf;

	if (dev->data->nb_rx_queues > pmd->info.nb_queues ||
	    dev->data->nb_tx_queues > pmd->info.nb_queues) {
		IVSHM_LOG(ERR, "%s: %u rx / %u tx queues asked, the channel has %u (devarg queues=)",
			  dev->data->name, dev->data->nb_rx_queues,
			  dev->data->nb_tx_queues, pmd->info.nb_queues);
		return -EINVAL;
	}
	if (conf->intr_conf.rxq) {
		if (pmd->args.rx_mode == IVSHM_TRANSPORT_RX_POLL) {
			IVSHM_LOG(ERR, "%s: rx interrupts asked but rx_mode=poll (use rx_mode=intr or adaptive)",
				  dev->data->name);
			return -ENOTSUP;
		}
		if (!pmd->info.has_doorbell) {
			IVSHM_LOG(ERR, "%s: rx interrupts need doorbells (socket= or pci= with a doorbell device)",
				  dev->data->name);
			return -ENOTSUP;
		}
	}
	return 0;
}

static int
eth_ivshm_infos_get(struct rte_eth_dev *dev, struct rte_eth_dev_info *info)
{
	struct pmd_internals *pmd = dev->data->dev_private;

	info->if_index = 0;
	info->max_mac_addrs = 1;
	info->max_rx_queues = (uint16_t)pmd->info.nb_queues;
	info->max_tx_queues = (uint16_t)pmd->info.nb_queues;
	info->max_rx_pktlen = pmd->info.max_pkt_len;
	info->min_rx_bufsize = 0;
	info->min_mtu = RTE_ETHER_MIN_MTU;
	info->max_mtu = (uint16_t)(pmd->info.max_pkt_len - RTE_ETHER_HDR_LEN);
	info->rx_offload_capa = RTE_ETH_RX_OFFLOAD_SCATTER;
	info->tx_offload_capa = RTE_ETH_TX_OFFLOAD_MULTI_SEGS |
				RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
	info->rx_desc_lim.nb_max = (uint16_t)RTE_MIN(pmd->info.ring_size, UINT16_MAX);
	info->rx_desc_lim.nb_min = 0;
	info->rx_desc_lim.nb_align = 1;
	info->tx_desc_lim = info->rx_desc_lim;
	info->default_rxportconf.burst_size = 32;
	info->default_txportconf.burst_size = 32;
	info->default_rxportconf.nb_queues = 1;
	info->default_txportconf.nb_queues = 1;
	info->default_rxportconf.ring_size = (uint16_t)RTE_MIN(pmd->info.ring_size, UINT16_MAX);
	info->default_txportconf.ring_size = info->default_rxportconf.ring_size;
	info->speed_capa = RTE_ETH_LINK_SPEED_FIXED;
	info->dev_capa = 0;
	return 0;
}

static void
rx_intr_teardown(struct rte_eth_dev *dev)
{
	struct rte_intr_handle *ih = dev->intr_handle;

	if (ih == NULL)
		return;
	rte_intr_efd_disable(ih);
	rte_intr_vec_list_free(ih);
	rte_intr_nb_efd_set(ih, 0);
	rte_intr_max_intr_set(ih, 0);
}

static int
rx_intr_setup(struct rte_eth_dev *dev)
{
	struct pmd_internals *pmd = dev->data->dev_private;
	struct rte_intr_handle *ih = dev->intr_handle;
	uint16_t n = dev->data->nb_rx_queues;

	if (ih == NULL)
		return -ENOMEM;
	/* EAL reads counter_size bytes from each fd (an eventfd) on wake-up. */
	if (rte_intr_type_set(ih, RTE_INTR_HANDLE_VDEV) ||
	    rte_intr_efd_counter_size_set(ih, sizeof(uint64_t)) ||
	    rte_intr_vec_list_alloc(ih, "ivshm_intr_vec", n))
		return -ENOMEM;
	for (uint16_t q = 0; q < n; q++) {
		int fd = ivshm_transport_rx_intr_fd(pmd->ch, q);
		if (fd < 0) {
			IVSHM_LOG(ERR, "%s: no interrupt fd for rx queue %u: %s",
				  dev->data->name, q, strerror(-fd));
			rx_intr_teardown(dev);
			return fd;
		}
		if (rte_intr_efds_index_set(ih, q, fd) ||
		    rte_intr_vec_list_index_set(ih, q, RTE_INTR_VEC_RXTX_OFFSET + q)) {
			rx_intr_teardown(dev);
			return -EINVAL;
		}
	}
	rte_intr_nb_efd_set(ih, n);
	rte_intr_max_intr_set(ih, n + 1);
	return 0;
}

static int
eth_ivshm_start(struct rte_eth_dev *dev)
{
	struct pmd_internals *pmd = dev->data->dev_private;

	if (dev->data->dev_conf.intr_conf.rxq) {
		int ret = rx_intr_setup(dev);
		if (ret < 0)
			return ret;
	}
	for (uint16_t q = 0; q < dev->data->nb_rx_queues; q++)
		dev->data->rx_queue_state[q] = RTE_ETH_QUEUE_STATE_STARTED;
	for (uint16_t q = 0; q < dev->data->nb_tx_queues; q++)
		dev->data->tx_queue_state[q] = RTE_ETH_QUEUE_STATE_STARTED;
	link_set(dev, ivshm_transport_link(pmd->ch));
	return 0;
}

static int
eth_ivshm_stop(struct rte_eth_dev *dev)
{
	if (dev->data->dev_conf.intr_conf.rxq)
		rx_intr_teardown(dev);
	for (uint16_t q = 0; q < dev->data->nb_rx_queues; q++)
		dev->data->rx_queue_state[q] = RTE_ETH_QUEUE_STATE_STOPPED;
	for (uint16_t q = 0; q < dev->data->nb_tx_queues; q++)
		dev->data->tx_queue_state[q] = RTE_ETH_QUEUE_STATE_STOPPED;
	dev->data->dev_started = 0;
	return 0;
}

/*
 * Free a receive queue. Slot structs still held by mbufs (zero_copy=1) are
 * marked orphaned and their table handed to the port's owner, which keeps
 * the channel open until the last of those mbufs is freed. Returns how
 * many were held.
 */
static uint32_t
rxq_free(struct ivshm_rx_queue *q, struct ivshm_zc_owner *o)
{
	uint32_t held = 0;

	if (q == NULL)
		return 0;
	/* Stash mbufs are raw, as they came from the pool. */
	if (q->nb_stash > 0)
		rte_mempool_put_bulk(q->mp, (void **)q->stash, q->nb_stash);
	for (uint32_t i = 0; q->zc != NULL && i <= q->ring_mask; i++) {
		uint32_t lent = 1;
		/* acq_rel: pairs with zc_free()'s exchange; either it sees
		 * the orphan mark, or we see the slot free. */
		held += __atomic_compare_exchange_n(&q->zc[i].busy, &lent,
						    IVSHM_ZC_ORPHAN, 0,
						    __ATOMIC_ACQ_REL,
						    __ATOMIC_ACQUIRE);
	}
	if (held == 0) {
		rte_free(q->zc);
	} else {
		/* Each orphan's free drops one ref (some may have already:
		 * the port's bias keeps the count above zero meanwhile). */
		__atomic_add_fetch(&o->refs, held, __ATOMIC_ACQ_REL);
		struct ivshm_zc_orphans *t = rte_zmalloc("ivshm_zc_orphans",
							 sizeof(*t), 0);
		if (t != NULL) {
			t->slots = q->zc;
			t->next = o->tables;
			o->tables = t;
		} /* else: no memory for the list node: the table is leaked */
	}
	rte_free(q);
	return held;
}

static void
eth_ivshm_rx_queue_release(struct rte_eth_dev *dev, uint16_t qid)
{
	struct pmd_internals *pmd = dev->data->dev_private;

	if (qid >= IVSHM_TRANSPORT_MAX_QUEUES)
		return;
	uint32_t held = rxq_free(pmd->rxq[qid], pmd->zc_owner);
	if (held > 0)
		IVSHM_LOG(NOTICE, "%s: rx queue %u released while %u zero-copy mbufs still lend its buffers: the channel stays open until they are freed",
			  dev->data->name, qid, held);
	pmd->rxq[qid] = NULL;
	dev->data->rx_queues[qid] = NULL;
}

static void
eth_ivshm_tx_queue_release(struct rte_eth_dev *dev, uint16_t qid)
{
	struct pmd_internals *pmd = dev->data->dev_private;

	if (qid >= IVSHM_TRANSPORT_MAX_QUEUES)
		return;
	rte_free(pmd->txq[qid]);
	pmd->txq[qid] = NULL;
	dev->data->tx_queues[qid] = NULL;
}

static int
eth_ivshm_close(struct rte_eth_dev *dev)
{
	struct pmd_internals *pmd = dev->data->dev_private;

	if (rte_eal_process_type() != RTE_PROC_PRIMARY)
		return 0;
	hk_stop(pmd);
	for (uint16_t q = 0; q < IVSHM_TRANSPORT_MAX_QUEUES; q++) {
		if (pmd->rxq[q] != NULL)
			eth_ivshm_rx_queue_release(dev, q);
		if (pmd->txq[q] != NULL)
			eth_ivshm_tx_queue_release(dev, q);
	}
	/* The peer sees the link go down once the channel is closed. With
	 * zero copy that waits for the last mbuf lending one of its buffers
	 * (its free returns a loan to the channel): the owner closes it. */
	if (pmd->zc_owner != NULL) {
		zc_owner_put(pmd->zc_owner, IVSHM_ZC_BIAS);
		pmd->zc_owner = NULL;
	} else {
		ivshm_transport_close(pmd->ch);
		ivshm_endpoint_close(pmd->ep);
	}
	pmd->ch = NULL;
	pmd->ep = NULL;
	pthread_mutex_destroy(&pmd->ctl_lock);
	if (dev->intr_handle != NULL) {
		rx_intr_teardown(dev);
		rte_intr_instance_free(dev->intr_handle);
		dev->intr_handle = NULL;
	}
	/* mac_addrs points into dev_private: ethdev must not free it. */
	dev->data->mac_addrs = NULL;
	return 0;
}

static int
eth_ivshm_reset(struct rte_eth_dev *dev)
{
	struct pmd_internals *pmd = dev->data->dev_private;

	pthread_mutex_lock(&pmd->ctl_lock);
	int ret = ivshm_transport_reset(pmd->ch);
	pthread_mutex_unlock(&pmd->ctl_lock);
	return ret;
}

static int
eth_ivshm_rx_queue_setup(struct rte_eth_dev *dev, uint16_t qid,
			 uint16_t nb_desc __rte_unused, unsigned int socket_id,
			 const struct rte_eth_rxconf *conf, struct rte_mempool *mp)
{
	struct pmd_internals *pmd = dev->data->dev_private;

	if (qid >= pmd->info.nb_queues)
		return -EINVAL;
	uint32_t room = rte_pktmbuf_data_room_size(mp);
	if (room <= RTE_PKTMBUF_HEADROOM) {
		IVSHM_LOG(ERR, "%s: mempool %s has no data room", dev->data->name, mp->name);
		return -EINVAL;
	}
	struct ivshm_rx_queue *q = rte_zmalloc_socket("ivshm_rxq", sizeof(*q),
						      RTE_CACHE_LINE_SIZE, (int)socket_id);
	if (q == NULL)
		return -ENOMEM;
	q->ch = pmd->ch;
	q->mp = mp;
	q->qid = qid;
	q->port_id = dev->data->port_id;
	q->mbuf_room = (uint16_t)RTE_MIN(room - RTE_PKTMBUF_HEADROOM, UINT16_MAX);
	q->scatter = !!((dev->data->dev_conf.rxmode.offloads | conf->offloads) &
			RTE_ETH_RX_OFFLOAD_SCATTER);
	/* The rearm_data word of a fresh mbuf (data_off, refcnt, nb_segs,
	 * port), built once so that each received mbuf takes one store. */
	struct rte_mbuf tmpl;
	memset(&tmpl, 0, sizeof(tmpl));
	tmpl.data_off = RTE_PKTMBUF_HEADROOM;
	tmpl.nb_segs = 1;
	tmpl.port = dev->data->port_id;
	rte_mbuf_refcnt_set(&tmpl, 1);
	memcpy(&q->mbuf_rearm, (uint8_t *)&tmpl + offsetof(struct rte_mbuf, rearm_data),
	       sizeof(q->mbuf_rearm));
	q->ring_mask = pmd->info.ring_size - 1;
	q->buf_size = pmd->info.buf_size;
	q->copybreak = pmd->args.copybreak;
	q->iova_va = rte_eal_iova_mode() == RTE_IOVA_VA;
	if (pmd->args.zero_copy) {
		q->zc = rte_zmalloc_socket("ivshm_rxq_zc",
					   sizeof(*q->zc) * pmd->info.ring_size,
					   RTE_CACHE_LINE_SIZE, (int)socket_id);
		if (q->zc == NULL) {
			rte_free(q);
			return -ENOMEM;
		}
		for (uint32_t i = 0; i < pmd->info.ring_size; i++) {
			q->zc[i].sh.free_cb = zc_free;
			q->zc[i].sh.fcb_opaque = &q->zc[i];
			q->zc[i].owner = pmd->zc_owner;
			q->zc[i].qid = qid;
		}
	}
	pmd->rxq[qid] = q;
	dev->data->rx_queues[qid] = q;
	return 0;
}

static int
eth_ivshm_tx_queue_setup(struct rte_eth_dev *dev, uint16_t qid,
			 uint16_t nb_desc __rte_unused, unsigned int socket_id,
			 const struct rte_eth_txconf *conf)
{
	struct pmd_internals *pmd = dev->data->dev_private;

	if (qid >= pmd->info.nb_queues)
		return -EINVAL;
	struct ivshm_tx_queue *q = rte_zmalloc_socket("ivshm_txq", sizeof(*q),
						      RTE_CACHE_LINE_SIZE, (int)socket_id);
	if (q == NULL)
		return -ENOMEM;
	q->ch = pmd->ch;
	q->qid = qid;
	q->port_id = dev->data->port_id;
	q->buf_size = pmd->info.buf_size;
	q->max_pkt_len = pmd->info.max_pkt_len;
	q->fast_free = !!((dev->data->dev_conf.txmode.offloads | conf->offloads) &
			  RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE);
	ivshm_copy_tuner_init(&q->copy, pmd->args.tx_copy, pmd->info.ring_size);
	pmd->txq[qid] = q;
	dev->data->tx_queues[qid] = q;
	return 0;
}

static int
eth_ivshm_link_update(struct rte_eth_dev *dev, int wait_to_complete __rte_unused)
{
	struct pmd_internals *pmd = dev->data->dev_private;
	struct rte_eth_link link = {
		.link_duplex = RTE_ETH_LINK_FULL_DUPLEX,
		.link_autoneg = RTE_ETH_LINK_FIXED,
	};

	if (ivshm_transport_link(pmd->ch)) {
		link.link_status = RTE_ETH_LINK_UP;
		link.link_speed = RTE_ETH_SPEED_NUM_100G;
	} else {
		link.link_status = RTE_ETH_LINK_DOWN;
		link.link_speed = RTE_ETH_SPEED_NUM_NONE;
	}
	return rte_eth_linkstatus_set(dev, &link);
}

static int
eth_ivshm_stats_get(struct rte_eth_dev *dev, struct rte_eth_stats *st)
{
	struct pmd_internals *pmd = dev->data->dev_private;
	struct ivshm_transport_stats ts;

	ivshm_transport_stats_get(pmd->ch, &ts);
	for (uint16_t q = 0; q < dev->data->nb_rx_queues; q++) {
		const struct ivshm_rx_queue *rq = pmd->rxq[q];
		if (rq == NULL)
			continue;
		st->ipackets += rq->packets;
		st->ibytes += rq->bytes;
		st->ierrors += rq->errors;
		st->rx_nombuf += rq->nombuf;
		if (q < RTE_ETHDEV_QUEUE_STAT_CNTRS) {
			st->q_ipackets[q] = rq->packets;
			st->q_ibytes[q] = rq->bytes;
			st->q_errors[q] = rq->errors;
		}
	}
	for (uint32_t q = 0; q < pmd->info.nb_queues; q++)
		st->imissed += ts.rx[q].drops - pmd->xbase.rx[q].drops;
	for (uint16_t q = 0; q < dev->data->nb_tx_queues; q++) {
		const struct ivshm_tx_queue *tq = pmd->txq[q];
		if (tq == NULL)
			continue;
		st->opackets += tq->packets;
		st->obytes += tq->bytes;
		st->oerrors += tq->errors;
		if (q < RTE_ETHDEV_QUEUE_STAT_CNTRS) {
			st->q_opackets[q] = tq->packets;
			st->q_obytes[q] = tq->bytes;
		}
	}
	return 0;
}

static int
eth_ivshm_stats_reset(struct rte_eth_dev *dev)
{
	struct pmd_internals *pmd = dev->data->dev_private;

	for (uint32_t q = 0; q < IVSHM_TRANSPORT_MAX_QUEUES; q++) {
		struct ivshm_rx_queue *rq = pmd->rxq[q];
		struct ivshm_tx_queue *tq = pmd->txq[q];
		if (rq != NULL) {
			rq->packets = 0;
			rq->bytes = 0;
			rq->errors = 0;
			rq->nombuf = 0;
		}
		if (tq != NULL) {
			tq->packets = 0;
			tq->bytes = 0;
			tq->errors = 0;
			tq->copy.probes = 0;
			tq->copy.switches = 0;
		}
	}
	ivshm_transport_stats_get(pmd->ch, &pmd->xbase);
	return 0;
}

/* Extended statistics: channel-wide, then per rx queue, per tx queue. */
struct xstat_def {
	const char *name;
	size_t off;
};

#define CH_XSTAT(n) { #n, offsetof(struct ivshm_transport_stats, n) }
static const struct xstat_def ch_xstats[] = {
	CH_XSTAT(link_ups),
	CH_XSTAT(link_downs),
	CH_XSTAT(resets),
	CH_XSTAT(peer_deaths),
	CH_XSTAT(proto_errors),
};

#define Q_XSTAT(n, f) { n, offsetof(struct ivshm_transport_queue_stats, f) }
static const struct xstat_def rxq_xstats[] = {
	Q_XSTAT("segments", segments),
	Q_XSTAT("ring_drops", drops),
	Q_XSTAT("ring_errors", errors),
	Q_XSTAT("wakeups", wakeups),
	Q_XSTAT("sleeps", sleeps),
};
static const struct xstat_def txq_xstats[] = {
	Q_XSTAT("segments", segments),
	Q_XSTAT("ring_drops", drops),
	Q_XSTAT("ring_errors", errors),
	Q_XSTAT("doorbells", doorbells),
};

/* The transmit copy's choice (ivshm/copy.h), kept by the queue itself. */
#define TQ_XSTAT(n, f) { n, offsetof(struct ivshm_tx_queue, copy.f) }
static const struct xstat_def txq_copy_xstats[] = {
	TQ_XSTAT("copy_probes", probes),
	TQ_XSTAT("copy_switches", switches),
};

static unsigned int
xstats_count(const struct rte_eth_dev *dev)
{
	return RTE_DIM(ch_xstats) + dev->data->nb_rx_queues * RTE_DIM(rxq_xstats) +
	       dev->data->nb_tx_queues *
		       (RTE_DIM(txq_xstats) + RTE_DIM(txq_copy_xstats) + 1);
}

static int
eth_ivshm_xstats_get_names(struct rte_eth_dev *dev,
			   struct rte_eth_xstat_name *names, unsigned int size)
{
	unsigned int n = xstats_count(dev), k = 0;

	if (names == NULL || size < n)
		return (int)n;
	for (unsigned int i = 0; i < RTE_DIM(ch_xstats); i++)
		snprintf(names[k++].name, RTE_ETH_XSTATS_NAME_SIZE, "%s",
			 ch_xstats[i].name);
	for (uint16_t q = 0; q < dev->data->nb_rx_queues; q++)
		for (unsigned int i = 0; i < RTE_DIM(rxq_xstats); i++)
			snprintf(names[k++].name, RTE_ETH_XSTATS_NAME_SIZE,
				 "rx_q%u_%s", q, rxq_xstats[i].name);
	for (uint16_t q = 0; q < dev->data->nb_tx_queues; q++) {
		for (unsigned int i = 0; i < RTE_DIM(txq_xstats); i++)
			snprintf(names[k++].name, RTE_ETH_XSTATS_NAME_SIZE,
				 "tx_q%u_%s", q, txq_xstats[i].name);
		for (unsigned int i = 0; i < RTE_DIM(txq_copy_xstats); i++)
			snprintf(names[k++].name, RTE_ETH_XSTATS_NAME_SIZE,
				 "tx_q%u_%s", q, txq_copy_xstats[i].name);
		snprintf(names[k++].name, RTE_ETH_XSTATS_NAME_SIZE,
			 "tx_q%u_copy_stream", q);
	}
	return (int)n;
}

static inline uint64_t
u64_at(const void *base, size_t off)
{
	uint64_t v;
	memcpy(&v, (const uint8_t *)base + off, sizeof(v));
	return v;
}

static int
eth_ivshm_xstats_get(struct rte_eth_dev *dev, struct rte_eth_xstat *xs,
		     unsigned int size)
{
	struct pmd_internals *pmd = dev->data->dev_private;
	unsigned int n = xstats_count(dev), k = 0;
	struct ivshm_transport_stats ts;

	if (xs == NULL || size < n)
		return (int)n;
	ivshm_transport_stats_get(pmd->ch, &ts);
	for (unsigned int i = 0; i < RTE_DIM(ch_xstats); i++, k++) {
		xs[k].id = k;
		xs[k].value = u64_at(&ts, ch_xstats[i].off) -
			      u64_at(&pmd->xbase, ch_xstats[i].off);
	}
	for (uint16_t q = 0; q < dev->data->nb_rx_queues; q++)
		for (unsigned int i = 0; i < RTE_DIM(rxq_xstats); i++, k++) {
			xs[k].id = k;
			xs[k].value = u64_at(&ts.rx[q], rxq_xstats[i].off) -
				      u64_at(&pmd->xbase.rx[q], rxq_xstats[i].off);
		}
	for (uint16_t q = 0; q < dev->data->nb_tx_queues; q++) {
		const struct ivshm_tx_queue *tq = pmd->txq[q];
		for (unsigned int i = 0; i < RTE_DIM(txq_xstats); i++, k++) {
			xs[k].id = k;
			xs[k].value = u64_at(&ts.tx[q], txq_xstats[i].off) -
				      u64_at(&pmd->xbase.tx[q], txq_xstats[i].off);
		}
		for (unsigned int i = 0; i < RTE_DIM(txq_copy_xstats); i++, k++) {
			xs[k].id = k;
			xs[k].value = tq ? u64_at(tq, txq_copy_xstats[i].off) : 0;
		}
		/* 1 while streaming stores are the queue's choice (probes of
		 * the other way aside). */
		xs[k].id = k;
		xs[k++].value = tq ? tq->copy.best : 0;
	}
	return (int)n;
}

/* A point-to-point link delivers every frame: these modes are always on. */
static int
eth_ivshm_promisc_enable(struct rte_eth_dev *dev __rte_unused)
{
	return 0;
}

static int
eth_ivshm_promisc_disable(struct rte_eth_dev *dev __rte_unused)
{
	return 0;
}

static int
eth_ivshm_allmulti_enable(struct rte_eth_dev *dev __rte_unused)
{
	return 0;
}

static int
eth_ivshm_allmulti_disable(struct rte_eth_dev *dev __rte_unused)
{
	return 0;
}

static int
eth_ivshm_mtu_set(struct rte_eth_dev *dev, uint16_t mtu)
{
	struct pmd_internals *pmd = dev->data->dev_private;

	if ((uint32_t)mtu + RTE_ETHER_HDR_LEN > pmd->info.max_pkt_len)
		return -EINVAL;
	return 0;
}

static int
eth_ivshm_mac_addr_set(struct rte_eth_dev *dev __rte_unused,
		       struct rte_ether_addr *addr __rte_unused)
{
	return 0;
}

static int
eth_ivshm_rx_intr_enable(struct rte_eth_dev *dev, uint16_t qid)
{
	struct pmd_internals *pmd = dev->data->dev_private;
	int ret = ivshm_transport_rx_intr_enable(pmd->ch, qid);

	if (ret < 0)
		return ret;
	if (ret > 0) {
		/* Packets arrived before the doorbell was armed: wake the
		 * caller's epoll at once rather than let it sleep on them. */
		int fd = ivshm_transport_rx_intr_fd(pmd->ch, qid);
		uint64_t one = 1;
		if (fd >= 0 && write(fd, &one, sizeof(one)) != sizeof(one))
			return -errno;
	}
	if (pmd->rxq[qid] != NULL)
		pmd->rxq[qid]->intr_enabled = 1;
	return 0;
}

static int
eth_ivshm_rx_intr_disable(struct rte_eth_dev *dev, uint16_t qid)
{
	struct pmd_internals *pmd = dev->data->dev_private;
	int ret = ivshm_transport_rx_intr_disable(pmd->ch, qid);

	if (ret < 0)
		return ret;
	if (pmd->rxq[qid] != NULL)
		pmd->rxq[qid]->intr_enabled = 0;
	return 0;
}

static const struct eth_dev_ops ops = {
	.dev_configure = eth_ivshm_configure,
	.dev_infos_get = eth_ivshm_infos_get,
	.dev_start = eth_ivshm_start,
	.dev_stop = eth_ivshm_stop,
	.dev_close = eth_ivshm_close,
	.dev_reset = eth_ivshm_reset,
	.rx_queue_setup = eth_ivshm_rx_queue_setup,
	.tx_queue_setup = eth_ivshm_tx_queue_setup,
	.rx_queue_release = eth_ivshm_rx_queue_release,
	.tx_queue_release = eth_ivshm_tx_queue_release,
	.link_update = eth_ivshm_link_update,
	.stats_get = eth_ivshm_stats_get,
	.stats_reset = eth_ivshm_stats_reset,
	.xstats_get = eth_ivshm_xstats_get,
	.xstats_get_names = eth_ivshm_xstats_get_names,
	.xstats_reset = eth_ivshm_stats_reset,
	.promiscuous_enable = eth_ivshm_promisc_enable,
	.promiscuous_disable = eth_ivshm_promisc_disable,
	.allmulticast_enable = eth_ivshm_allmulti_enable,
	.allmulticast_disable = eth_ivshm_allmulti_disable,
	.mtu_set = eth_ivshm_mtu_set,
	.mac_addr_set = eth_ivshm_mac_addr_set,
	.rx_queue_intr_enable = eth_ivshm_rx_intr_enable,
	.rx_queue_intr_disable = eth_ivshm_rx_intr_disable,
};

/* ------------------------------------------------------------------ */
/* Devargs                                                             */
/* ------------------------------------------------------------------ */

struct parse_ctx {
	const char *dev;          /* device name for messages */
	struct ivshm_pmd_args *a;
};

/* Whole-string unsigned decimal (or 0x hex) with range check. */
static int
parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	if (s == NULL || *s == '\0' || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	char *end = NULL;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* @p key is one of the static ARG_* strings: kind_key outlives the kvlist. */
static int
arg_endpoint(struct parse_ctx *c, const char *key, const char *prefix,
	     const char *value)
{
	if (c->a->kind_key != NULL) {
		IVSHM_LOG(ERR, "%s: %s= conflicts with %s=: give exactly one of socket=, shm=, pci=",
			  c->dev, key, c->a->kind_key);
		return -EINVAL;
	}
	if (value == NULL || *value == '\0') {
		IVSHM_LOG(ERR, "%s: %s= needs a value", c->dev, key);
		return -EINVAL;
	}
	int n = snprintf(c->a->endpoint, sizeof(c->a->endpoint), "%s%s", prefix, value);
	if (n < 0 || (size_t)n >= sizeof(c->a->endpoint) - 32) {
		IVSHM_LOG(ERR, "%s: %s= value is too long", c->dev, key);
		return -EINVAL;
	}
	c->a->kind_key = key;
	return 0;
}

static int
arg_socket(const char *key, const char *value, void *opaque)
{
	(void)key;
	return arg_endpoint(opaque, ARG_SOCKET, "socket:", value);
}

static int
arg_shm(const char *key, const char *value, void *opaque)
{
	(void)key;
	return arg_endpoint(opaque, ARG_SHM, "shm:", value);
}

/* pci=auto, or a PCI address DDDD:BB:DD.F / BB:DD.F (hex). */
static int
arg_pci(const char *key, const char *value, void *opaque)
{
	struct parse_ctx *c = opaque;

	if (value != NULL && strcmp(value, "auto") != 0) {
		unsigned int d, b, s, f;
		char tail;
		if (sscanf(value, "%x:%x:%x.%x%c", &d, &b, &s, &f, &tail) != 4 &&
		    sscanf(value, "%x:%x.%x%c", &b, &s, &f, &tail) != 3) {
			IVSHM_LOG(ERR, "%s: pci=%s is not a PCI address (DDDD:BB:DD.F) or auto",
				  c->dev, value);
			return -EINVAL;
		}
	}
	(void)key;
	return arg_endpoint(c, ARG_PCI, "pci:", value);
}

static int
arg_size(const char *key __rte_unused, const char *value, void *opaque)
{
	struct parse_ctx *c = opaque;
	char num[32];
	uint64_t mult = 1, v;
	size_t len = value ? strlen(value) : 0;

	if (len == 0 || len >= sizeof(num))
		goto bad;
	memcpy(num, value, len + 1);
	switch (num[len - 1]) {
	case 'k': case 'K': mult = 1ull << 10; break;
	case 'm': case 'M': mult = 1ull << 20; break;
	case 'g': case 'G': mult = 1ull << 30; break;
	default: break;
	}
	if (mult != 1)
		num[len - 1] = '\0';
	if (parse_u64(num, 1, UINT64_MAX / mult, &v) < 0)
		goto bad;
	c->a->size = v * mult;
	return 0;
bad:
	IVSHM_LOG(ERR, "%s: size=%s is not a size (bytes, or with K, M, G)",
		  c->dev, value ? value : "");
	return -EINVAL;
}

static int
arg_u32(struct parse_ctx *c, const char *key, const char *value,
	uint64_t min, uint64_t max, int pow2, uint32_t align, uint32_t *out)
{
	uint64_t v;

	if (parse_u64(value, min, max, &v) < 0 ||
	    (pow2 && (v & (v - 1)) != 0) || (align && v % align != 0)) {
		IVSHM_LOG(ERR, "%s: %s=%s is invalid: want %s %" PRIu64 "..%" PRIu64,
			  c->dev, key, value ? value : "",
			  pow2 ? "a power of two" : align ? "a multiple of 64" : "an integer",
			  min, max);
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

static int
arg_id(const char *key, const char *value, void *opaque)
{
	struct parse_ctx *c = opaque;
	return arg_u32(c, key, value, 0, IVSHM_TRANSPORT_MAX_CHANNELS - 1, 0, 0,
		       &c->a->channel_id);
}

static int
arg_queues(const char *key, const char *value, void *opaque)
{
	struct parse_ctx *c = opaque;
	return arg_u32(c, key, value, 1, IVSHM_TRANSPORT_MAX_QUEUES, 0, 0,
		       &c->a->nb_queues);
}

static int
arg_ring_size(const char *key, const char *value, void *opaque)
{
	struct parse_ctx *c = opaque;
	return arg_u32(c, key, value, IVSHM_TRANSPORT_MIN_RING,
		       IVSHM_TRANSPORT_MAX_RING, 1, 0, &c->a->ring_size);
}

static int
arg_buf_size(const char *key, const char *value, void *opaque)
{
	struct parse_ctx *c = opaque;
	return arg_u32(c, key, value, IVSHM_TRANSPORT_MIN_BUF,
		       IVSHM_TRANSPORT_MAX_BUF, 0, 64, &c->a->buf_size);
}

static int
arg_mac(const char *key __rte_unused, const char *value, void *opaque)
{
	struct parse_ctx *c = opaque;

	if (value == NULL || strlen(value) != 17 ||
	    rte_ether_unformat_addr(value, &c->a->mac) != 0) {
		IVSHM_LOG(ERR, "%s: mac=%s is not a MAC address XX:XX:XX:XX:XX:XX",
			  c->dev, value ? value : "");
		return -EINVAL;
	}
	if (rte_is_multicast_ether_addr(&c->a->mac) ||
	    rte_is_zero_ether_addr(&c->a->mac)) {
		IVSHM_LOG(ERR, "%s: mac=%s is multicast or zero", c->dev, value);
		return -EINVAL;
	}
	c->a->have_mac = 1;
	return 0;
}

/*
 * A value that names one of @p names (NULL-terminated); sets *out to its
 * index. The error lists them: "want poll, intr or adaptive".
 */
static int
arg_name(struct parse_ctx *c, const char *key, const char *value,
	 const char *const *names, int *out)
{
	char want[128] = "";
	int i;

	for (i = 0; names[i] != NULL; i++) {
		if (value != NULL && strcmp(value, names[i]) == 0) {
			*out = i;
			return 0;
		}
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%s",
			 i == 0 ? "" : names[i + 1] == NULL ? " or " : ", ", names[i]);
	}
	IVSHM_LOG(ERR, "%s: %s=%s is invalid: want %s", c->dev, key,
		  value ? value : "", want);
	return -EINVAL;
}

static int
arg_rx_mode(const char *key, const char *value, void *opaque)
{
	/* In the order of enum ivshm_transport_rx_mode. */
	static const char *const names[] = { "poll", "intr", "adaptive", NULL };
	struct parse_ctx *c = opaque;
	int i, r = arg_name(c, key, value, names, &i);

	if (r == 0)
		c->a->rx_mode = (enum ivshm_transport_rx_mode)i;
	return r;
}

static int
arg_zero_copy(const char *key, const char *value, void *opaque)
{
	struct parse_ctx *c = opaque;
	return arg_u32(c, key, value, 0, 1, 0, 0, &c->a->zero_copy);
}

static int
arg_copybreak(const char *key, const char *value, void *opaque)
{
	struct parse_ctx *c = opaque;
	return arg_u32(c, key, value, 0, IVSHM_TRANSPORT_MAX_BUF, 0, 0,
		       &c->a->copybreak);
}

static int
arg_tx_copy(const char *key, const char *value, void *opaque)
{
	/* In the order of enum ivshm_copy_policy. */
	static const char *const names[] = { "auto", "cached", "stream", NULL };
	struct parse_ctx *c = opaque;
	int i, r = arg_name(c, key, value, names, &i);

	if (r == 0)
		c->a->tx_copy = (enum ivshm_copy_policy)i;
	return r;
}

static const struct {
	const char *key;
	arg_handler_t fn;
} arg_handlers[] = {
	{ ARG_SOCKET, arg_socket },
	{ ARG_SHM, arg_shm },
	{ ARG_PCI, arg_pci },
	{ ARG_SIZE, arg_size },
	{ ARG_ID, arg_id },
	{ ARG_QUEUES, arg_queues },
	{ ARG_RING_SIZE, arg_ring_size },
	{ ARG_BUF_SIZE, arg_buf_size },
	{ ARG_MAC, arg_mac },
	{ ARG_RX_MODE, arg_rx_mode },
	{ ARG_ZERO_COPY, arg_zero_copy },
	{ ARG_COPYBREAK, arg_copybreak },
	{ ARG_TX_COPY, arg_tx_copy },
};

static int
parse_args(const char *dev, const char *params, struct ivshm_pmd_args *a)
{
	struct parse_ctx c = { .dev = dev, .a = a };
	struct rte_kvargs *kv;
	int ret = 0;

	memset(a, 0, sizeof(*a));
	a->nb_queues = IVSHM_TRANSPORT_DEF_QUEUES;
	a->ring_size = IVSHM_TRANSPORT_DEF_RING;
	a->buf_size = IVSHM_TRANSPORT_DEF_BUF;
	a->rx_mode = IVSHM_TRANSPORT_RX_POLL;
	a->copybreak = IVSHM_PMD_DEF_COPYBREAK;

	if (params == NULL || *params == '\0') {
		IVSHM_LOG(ERR, "%s: no devargs: give one of socket=PATH, shm=PATH[,size=N], pci=BDF|auto",
			  dev);
		return -EINVAL;
	}
	/* Parse without a key list so that an unknown key can be named. */
	kv = rte_kvargs_parse(params, NULL);
	if (kv == NULL) {
		IVSHM_LOG(ERR, "%s: cannot parse devargs '%s' (want key=value,...)",
			  dev, params);
		return -EINVAL;
	}
	for (unsigned int i = 0; i < kv->count; i++) {
		const char *key = kv->pairs[i].key;
		unsigned int j;
		for (j = 0; valid_args[j] != NULL; j++)
			if (strcmp(key, valid_args[j]) == 0)
				break;
		if (valid_args[j] == NULL) {
			IVSHM_LOG(ERR, "%s: unknown devarg '%s' (valid: socket, shm, size, pci, id, queues, ring_size, buf_size, mac, rx_mode, zero_copy, copybreak, tx_copy)",
				  dev, key);
			ret = -EINVAL;
			goto out;
		}
		if (rte_kvargs_count(kv, key) > 1) {
			IVSHM_LOG(ERR, "%s: devarg %s= given more than once", dev, key);
			ret = -EINVAL;
			goto out;
		}
	}
	for (unsigned int i = 0; i < RTE_DIM(arg_handlers); i++) {
		ret = rte_kvargs_process(kv, arg_handlers[i].key, arg_handlers[i].fn, &c);
		if (ret < 0) {
			ret = -EINVAL;
			goto out;
		}
	}
	if (a->zero_copy && a->buf_size > UINT16_MAX) {
		IVSHM_LOG(ERR, "%s: zero_copy=1 needs buf_size <= 65535 (an mbuf's buf_len is 16 bits), not %u",
			  dev, a->buf_size);
		ret = -EINVAL;
		goto out;
	}
	if (a->kind_key == NULL) {
		IVSHM_LOG(ERR, "%s: give one of socket=PATH, shm=PATH[,size=N], pci=BDF|auto",
			  dev);
		ret = -EINVAL;
		goto out;
	}
	if (a->size != 0) {
		if (strcmp(a->kind_key, ARG_SHM) != 0) {
			IVSHM_LOG(ERR, "%s: size= applies to shm= only, not %s=", dev,
				  a->kind_key);
			ret = -EINVAL;
			goto out;
		}
		size_t n = strlen(a->endpoint);
		snprintf(a->endpoint + n, sizeof(a->endpoint) - n, "?size=%" PRIu64,
			 a->size);
	}
out:
	rte_kvargs_free(kv);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Probe and remove                                                    */
/* ------------------------------------------------------------------ */

static int
rte_pmd_ivshm_probe(struct rte_vdev_device *vdev)
{
	const char *name = rte_vdev_device_name(vdev);
	struct ivshm_pmd_args a;
	struct rte_eth_dev *dev;
	struct pmd_internals *pmd;
	int ret;

	if (rte_eal_process_type() != RTE_PROC_PRIMARY) {
		IVSHM_LOG(ERR, "%s: secondary processes are not supported", name);
		return -ENOTSUP;
	}
	ret = parse_args(name, rte_vdev_device_args(vdev), &a);
	if (ret < 0)
		return ret;
	if (vdev->device.numa_node == SOCKET_ID_ANY)
		vdev->device.numa_node = (int)rte_socket_id();

	dev = rte_eth_vdev_allocate(vdev, sizeof(*pmd));
	if (dev == NULL) {
		IVSHM_LOG(ERR, "%s: cannot allocate the port", name);
		return -ENOMEM;
	}
	pmd = dev->data->dev_private;
	pmd->args = a;
	pmd->port_id = dev->data->port_id;

	struct ivshm_endpoint_params ep_params = {
		.flags = a.rx_mode == IVSHM_TRANSPORT_RX_POLL ? IVSHM_EP_F_POLL : 0,
		.size = a.size,
		.connect_timeout_ms = 5000,
	};
	ret = ivshm_endpoint_open(a.endpoint, &ep_params, &pmd->ep);
	if (ret < 0) {
		IVSHM_LOG(ERR, "%s: cannot open endpoint %s: %s%s", name, a.endpoint,
			  strerror(-ret),
			  (ret == -ENOENT && strcmp(a.kind_key, ARG_SHM) == 0 && a.size == 0) ?
			  " (give size= to create it)" : "");
		goto err_release;
	}

	struct ivshm_transport_params tp = {
		.nb_queues = a.nb_queues,
		.ring_size = a.ring_size,
		.buf_size = a.buf_size,
		.rx_mode = a.rx_mode,
		/* The peer's pid is checked as well, so a killed peer is seen
		 * at once; the heartbeat timeout only catches a hung one. A
		 * loaded 2-vCPU host can starve a control thread for a second:
		 * do not declare a live peer dead for that. */
		.peer_timeout_ms = 3000,
	};
	ret = ivshm_transport_open(pmd->ep, a.channel_id, &tp, &pmd->ch);
	if (ret < 0) {
		if (ret == -ENOSPC)
			IVSHM_LOG(ERR, "%s: the region (%" PRIu64 " bytes) has no room for channel id=%u with these queues/ring_size/buf_size (a region of %" PRIu64 " bytes holds %u channels)",
				  name, ivshm_endpoint_size(pmd->ep), a.channel_id,
				  ivshm_transport_region_size(a.channel_id + 1, &tp),
				  a.channel_id + 1);
		else if (ret == -EINVAL)
			IVSHM_LOG(ERR, "%s: channel id=%u: queues/ring_size/buf_size differ from the other side's",
				  name, a.channel_id);
		else if (ret == -EBUSY)
			IVSHM_LOG(ERR, "%s: channel id=%u already has two live ends", name,
				  a.channel_id);
		else
			IVSHM_LOG(ERR, "%s: cannot open channel id=%u: %s", name,
				  a.channel_id, strerror(-ret));
		goto err_ep;
	}
	ivshm_transport_info_get(pmd->ch, &pmd->info);

	if (a.have_mac) {
		pmd->mac = a.mac;
	} else {
		/* Locally administered, stable for (region, channel, side). */
		uint64_t r = pmd->info.region_id;
		pmd->mac.addr_bytes[0] = 0x02;
		pmd->mac.addr_bytes[1] = (uint8_t)(r >> 16);
		pmd->mac.addr_bytes[2] = (uint8_t)(r >> 8);
		pmd->mac.addr_bytes[3] = (uint8_t)r;
		pmd->mac.addr_bytes[4] = (uint8_t)pmd->info.channel_id;
		pmd->mac.addr_bytes[5] = (uint8_t)(pmd->info.side + 1);
	}

	if (a.zero_copy) {
		pmd->zc_owner = rte_zmalloc("ivshm_zc_owner", sizeof(*pmd->zc_owner), 0);
		if (pmd->zc_owner == NULL) {
			ret = -ENOMEM;
			goto err_ch;
		}
		pmd->zc_owner->refs = IVSHM_ZC_BIAS;
		pmd->zc_owner->ch = pmd->ch;
		pmd->zc_owner->ep = pmd->ep;
		snprintf(pmd->zc_owner->name, sizeof(pmd->zc_owner->name), "%s", name);
	}
	dev->intr_handle = rte_intr_instance_alloc(RTE_INTR_INSTANCE_F_PRIVATE);
	if (dev->intr_handle == NULL) {
		ret = -ENOMEM;
		goto err_ch;
	}
	pthread_mutex_init(&pmd->ctl_lock, NULL);
	dev->data->mac_addrs = &pmd->mac;
	dev->data->dev_flags |= RTE_ETH_DEV_INTR_LSC | RTE_ETH_DEV_AUTOFILL_QUEUE_XSTATS;
	dev->data->promiscuous = 1;
	dev->data->all_multicast = 1;
	dev->dev_ops = &ops;
	dev->rx_pkt_burst = a.zero_copy ? eth_ivshm_rx_zc : eth_ivshm_rx;
	dev->tx_pkt_burst = eth_ivshm_tx;
	link_set(dev, 0);

	char tname[RTE_MAX_THREAD_NAME_LEN];
	snprintf(tname, sizeof(tname), "ivshm-hk-%u", dev->data->port_id);
	ret = rte_ctrl_thread_create(&pmd->hk_thread, tname, NULL, hk_main, dev);
	if (ret != 0) {
		ret = -ret;
		IVSHM_LOG(ERR, "%s: cannot start the housekeeping thread: %s", name,
			  strerror(-ret));
		goto err_intr;
	}
	pmd->hk_running = 1;

	IVSHM_LOG(INFO, "%s: %s channel %u side %c, %u queue(s), ring %u x %u B",
		  name, a.endpoint, pmd->info.channel_id,
		  pmd->info.side == IVSHM_TRANSPORT_SIDE_A ? 'A' : 'B',
		  pmd->info.nb_queues, pmd->info.ring_size, pmd->info.buf_size);
	rte_eth_dev_probing_finish(dev);
	return 0;

err_intr:
	pthread_mutex_destroy(&pmd->ctl_lock);
	rte_intr_instance_free(dev->intr_handle);
	dev->intr_handle = NULL;
err_ch:
	rte_free(pmd->zc_owner);
	pmd->zc_owner = NULL;
	ivshm_transport_close(pmd->ch);
	pmd->ch = NULL;
err_ep:
	ivshm_endpoint_close(pmd->ep);
	pmd->ep = NULL;
err_release:
	dev->data->mac_addrs = NULL;
	rte_eth_dev_release_port(dev);
	return ret;
}

static int
rte_pmd_ivshm_remove(struct rte_vdev_device *vdev)
{
	struct rte_eth_dev *dev = rte_eth_dev_allocated(rte_vdev_device_name(vdev));

	if (dev == NULL)
		return 0; /* already closed */
	if (rte_eal_process_type() != RTE_PROC_PRIMARY)
		return rte_eth_dev_release_port(dev);
	/* ethdev refuses to close a started port. */
	if (dev->data->dev_started)
		rte_eth_dev_stop(dev->data->port_id);
	/* Closes (eth_ivshm_close) and releases the port. */
	return rte_eth_dev_close(dev->data->port_id);
}

static struct rte_vdev_driver pmd_ivshm_drv = {
	.probe = rte_pmd_ivshm_probe,
	.remove = rte_pmd_ivshm_remove,
};

RTE_PMD_REGISTER_VDEV(net_ivshmem, pmd_ivshm_drv);
RTE_PMD_REGISTER_PARAM_STRING(net_ivshmem,
	ARG_SOCKET "=<path> "
	ARG_SHM "=<path> "
	ARG_SIZE "=<size[K|M|G]> "
	ARG_PCI "=<BDF|auto> "
	ARG_ID "=<0..63> "
	ARG_QUEUES "=<1..16> "
	ARG_RING_SIZE "=<16..32768> "
	ARG_BUF_SIZE "=<64..65536> "
	ARG_MAC "=<XX:XX:XX:XX:XX:XX> "
	ARG_RX_MODE "=poll|intr|adaptive "
	ARG_ZERO_COPY "=0|1 "
	ARG_COPYBREAK "=<0..65536> "
	ARG_TX_COPY "=auto|cached|stream");
