/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pmd_internal.h - private state of the net_ivshmem poll-mode driver.
 *
 * One port is one transport channel (transport.h) on one ivshmem endpoint
 * (ivshmem.h). The port opens both at probe and keeps them until close, so
 * its MAC address (derived from channel id and side) is known from the
 * start and the peer sees the link go down only when the port goes away.
 * A control thread calls the transport's housekeeping every few
 * milliseconds and turns link changes into LSC events. Queue structures
 * belong to their datapath thread: counters are plain integers written by
 * that thread only and read (possibly torn-free on x86-64, 64-bit aligned)
 * by stats calls.
 */
#ifndef IVSHM_PMD_INTERNAL_H
#define IVSHM_PMD_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "ivshm/copy.h"
#include "ivshm/ivshmem.h"
#include "ivshm/transport.h"

extern int ivshm_logtype;
#define IVSHM_LOG(level, fmt, ...) \
	rte_log(RTE_LOG_ ## level, ivshm_logtype, "%s(): " fmt "\n", \
		__func__, ##__VA_ARGS__)

/** Most buffers handled per transport call inside one burst. */
#define IVSHM_PMD_BURST 64u
/** Transmit calls skipped after the ring was found full. */
#ifndef IVSHM_PMD_TX_BACKOFF
#define IVSHM_PMD_TX_BACKOFF 4u
#endif
/** Raw mbufs kept ready per rx queue (refilled in bulk from the pool,
 *  initialised one by one as they are used). */
#define IVSHM_PMD_STASH (2u * IVSHM_PMD_BURST)

/** Parsed devargs. */
struct ivshm_pmd_args {
	char endpoint[4200];   /**< "socket:PATH", "shm:PATH?size=N", "pci:BDF" */
	const char *kind_key;  /**< which of socket/shm/pci was given */
	uint64_t size;         /**< shm size (bytes), 0 if not given */
	uint32_t channel_id;
	uint32_t nb_queues;
	uint32_t ring_size;
	uint32_t buf_size;
	enum ivshm_transport_rx_mode rx_mode;
	int have_mac;
	struct rte_ether_addr mac;
	uint32_t zero_copy;    /**< zero_copy=1: lend receive buffers to mbufs */
	uint32_t copybreak;    /**< zero copy only from this length on */
	enum ivshm_copy_policy tx_copy; /**< tx_copy=auto|cached|stream */
};

/** Default copybreak: shorter packets are copied even with zero_copy=1
 *  (an mbuf of its own costs less than a loan and its return). */
#define IVSHM_PMD_DEF_COPYBREAK 256u

/** busy value of a slot whose queue was released while an mbuf held it. */
#define IVSHM_ZC_ORPHAN 2u
/** The port's own reference on its zero-copy owner (see below). */
#define IVSHM_ZC_BIAS (1u << 30)

/** Slot tables of released queues, kept until their mbufs are freed. */
struct ivshm_zc_orphans {
	struct ivshm_zc_orphans *next;
	struct ivshm_zc_slot *slots;
};

/**
 * What must outlive a zero_copy=1 port while mbufs still lend its buffers:
 * the channel and endpoint (the region stays mapped, loans can still be
 * returned) and the slot tables. refs = IVSHM_ZC_BIAS while the port is
 * open, plus one per slot orphaned by a queue release; whoever drops it to
 * zero (the port's close, or the free of the last such mbuf on any lcore)
 * closes the channel and endpoint and frees everything.
 */
struct ivshm_zc_owner {
	uint32_t refs;
	struct ivshm_channel *ch;
	struct ivshm_endpoint *ep;
	struct ivshm_zc_orphans *tables;  /* control thread until refs == 0 */
	char name[64];
};

/**
 * One receive slot lent to an mbuf (zero_copy=1): the mbuf's external
 * buffer is the slot's buffer in the region, and freeing the mbuf (on any
 * lcore) calls zc_free(), which returns the loan to the transport.
 */
struct ivshm_zc_slot {
	struct rte_mbuf_ext_shared_info sh;
	struct ivshm_zc_owner *owner;   /**< its channel takes the returns */
	uint64_t token;         /**< written by the rx thread before lending */
	uint32_t busy;          /**< 0 free, 1 lent, IVSHM_ZC_ORPHAN */
	uint16_t qid;
} __rte_cache_aligned;

/** Receive queue: owned by one datapath thread. */
struct ivshm_rx_queue {
	struct ivshm_channel *ch;
	struct rte_mempool *mp;
	uint16_t qid;
	uint16_t port_id;
	uint16_t mbuf_room;     /**< data room after headroom */
	uint64_t mbuf_rearm;    /**< rearm_data of a fresh mbuf of this port */
	uint8_t scatter;        /**< multi-mbuf packets allowed */
	uint8_t intr_enabled;
	uint8_t iova_va;        /**< EAL in IOVA-as-VA mode: iova = address */
	uint32_t nb_stash;
	uint32_t copybreak;
	uint32_t ring_mask;
	uint32_t buf_size;
	struct ivshm_zc_slot *zc; /**< ring_size slots, NULL: copy mode */
	/* counters, written only by the queue's thread */
	uint64_t packets;
	uint64_t bytes;
	uint64_t errors;        /**< packets dropped: too long for the mbufs */
	uint64_t nombuf;        /**< bursts cut short by mbuf shortage */
	struct ivshm_transport_buf bufs[IVSHM_PMD_BURST];
	uint64_t tokens[IVSHM_PMD_BURST];
	struct rte_mbuf *stash[IVSHM_PMD_STASH];
};

/** Transmit queue: owned by one datapath thread. */
struct ivshm_tx_queue {
	struct ivshm_channel *ch;
	uint16_t qid;
	uint16_t port_id;
	uint32_t buf_size;
	uint32_t max_pkt_len;
	uint8_t fast_free;      /**< RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE */
	uint32_t full_backoff;  /**< calls left to skip after a full ring */
	struct ivshm_copy_tuner copy; /**< cached or streaming stores */
	uint64_t packets;
	uint64_t bytes;
	uint64_t errors;        /**< packets refused: empty or too long */
	struct ivshm_transport_buf bufs[IVSHM_PMD_BURST];
};

/** Port-private data (dev->data->dev_private). */
struct pmd_internals {
	struct ivshm_pmd_args args;
	struct ivshm_endpoint *ep;
	struct ivshm_channel *ch;
	struct ivshm_transport_info info;
	struct rte_ether_addr mac;
	uint16_t port_id;

	/* Housekeeping thread: serialises housekeeping and reset (the
	 * transport wants one control thread at a time per channel). */
	pthread_t hk_thread;
	int hk_running;
	int hk_stop;              /* written by close, read by the thread */
	pthread_mutex_t ctl_lock;
	int link_up;              /* last state the thread saw */
	int server_gone;
	struct ivshm_zc_owner *zc_owner; /* zero_copy=1 only */

	/* xstats reset: subtract this snapshot (transport counters are
	 * monotonic since open). Queue counters are zeroed instead, as in
	 * every software PMD. */
	struct ivshm_transport_stats xbase;

	struct ivshm_rx_queue *rxq[IVSHM_TRANSPORT_MAX_QUEUES];
	struct ivshm_tx_queue *txq[IVSHM_TRANSPORT_MAX_QUEUES];
};

#endif /* IVSHM_PMD_INTERNAL_H */
