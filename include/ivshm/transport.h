/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file
 * ivshm/transport.h - packet channels over an ivshmem endpoint.
 *
 * A channel links two endpoints that map the same region. It is named by a
 * small number (0..IVSHM_TRANSPORT_MAX_CHANNELS-1) so the two ends find each
 * other without knowing each other's ivshmem peer id: the first to open it
 * becomes side A, the second side B (a side keeps its letter across restarts
 * of the other side, so a PMD can derive a stable MAC from channel id + side).
 * A channel has 1..IVSHM_TRANSPORT_MAX_QUEUES queue pairs; queue q of side A
 * transmits to queue q of side B and back. Each direction of each queue is a
 * ring of descriptors (length, flags) over ring_size buffers of buf_size bytes
 * owned by the sending side, slot i always using buffer i, so a receiver
 * computes buffer addresses itself and never follows an offset written by the
 * peer. A packet longer than one buffer is carried by consecutive buffers
 * chained with IVSHM_TRANSPORT_F_MORE (up to max_pkt_len bytes).
 *
 * Link: up when both sides are attached and have acknowledged each other's
 * current generation; down when one leaves, dies (announced by the server,
 * or heartbeat silence / vanished pid on a plain file), is reset, or the
 * datapath sees the peer break the protocol. While down, bursts move nothing.
 * When it comes back (same peer after a reset, or a replacement process) each
 * side has re-formatted the rings it transmits on: packets in flight when the
 * link went down are dropped (counted), nothing else is lost or corrupted.
 *
 * Trust: every descriptor and index read from the region is validated before
 * use; a hostile peer can only lose its own packets. Bytes in a received
 * buffer are the peer's to choose (and may change while the caller reads
 * them in place through rx_peek(); copy before validating contents).
 *
 * Thread model:
 *  - Datapath: per queue, one thread at a time may call the tx functions
 *    (tx_burst, tx_reserve, tx_commit, tx_room) and one thread at a time the
 *    rx functions (rx_burst, rx_peek, rx_release, rx_count, rx_wait,
 *    rx_intr_*). Different queues and the two directions of a queue may run
 *    on different threads concurrently. Datapath functions never block
 *    (except rx_wait), never allocate, and the bursts return counts, never
 *    negative values (rx_intr_* return -ENOTSUP without a doorbell).
 *  - Control: ivshm_transport_housekeeping() and ivshm_transport_reset() run
 *    on one control thread (at most one thread at a time per channel; all
 *    channels of one endpoint on the same thread, since housekeeping also
 *    processes the endpoint's control events). Housekeeping never waits for
 *    datapath threads: it takes the link down, and re-formats rings only once
 *    every queue of the channel is outside a burst (a tx reservation or rx
 *    peek in progress defers it to a later call).
 *  - Any thread: link state, stats, info. open/close: no other call on that
 *    channel may run concurrently.
 *
 * Return values: 0 or a count on success, -errno on failure (datapath calls
 * return counts only). The library never logs.
 */
#ifndef IVSHM_TRANSPORT_H
#define IVSHM_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "ivshm/copy.h"
#include "ivshm/ivshmem.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Channel ids are 0..IVSHM_TRANSPORT_MAX_CHANNELS-1. */
#define IVSHM_TRANSPORT_MAX_CHANNELS 64u
/** Queue pairs per channel: 1..IVSHM_TRANSPORT_MAX_QUEUES. */
#define IVSHM_TRANSPORT_MAX_QUEUES 16u
/** ring_size bounds (descriptors per direction per queue, power of two). */
#define IVSHM_TRANSPORT_MIN_RING 16u
#define IVSHM_TRANSPORT_MAX_RING 32768u
/** buf_size bounds (bytes, multiple of 64). */
#define IVSHM_TRANSPORT_MIN_BUF 64u
#define IVSHM_TRANSPORT_MAX_BUF 65536u
/** Largest packet (max_pkt_len bound), chained over several buffers. */
#define IVSHM_TRANSPORT_MAX_PKT 65535u

/** Defaults taken when a params field is 0. */
#define IVSHM_TRANSPORT_DEF_QUEUES 1u
#define IVSHM_TRANSPORT_DEF_RING 1024u
#define IVSHM_TRANSPORT_DEF_BUF 2048u
#define IVSHM_TRANSPORT_DEF_MAX_PKT 9728u
#define IVSHM_TRANSPORT_DEF_SPIN_US 100u
#define IVSHM_TRANSPORT_DEF_PEER_TIMEOUT_MS 1000u
/** Suggested period of ivshm_transport_housekeeping() calls. */
#define IVSHM_TRANSPORT_HK_PERIOD_MS 10u

/** Buffer flag: the packet continues in the next buffer. */
#define IVSHM_TRANSPORT_F_MORE (1u << 0)

struct ivshm_channel;

/** How a receiver waits for packets (ivshm_transport_rx_wait()). */
enum ivshm_transport_rx_mode {
	IVSHM_TRANSPORT_RX_POLL = 0,     /**< busy poll; never asks for doorbells */
	IVSHM_TRANSPORT_RX_INTR = 1,     /**< sleep on the doorbell at once */
	IVSHM_TRANSPORT_RX_ADAPTIVE = 2, /**< spin spin_us, then sleep */
};

/** Which end of a channel this is: stable across restarts of the peer. */
enum ivshm_transport_side {
	IVSHM_TRANSPORT_SIDE_A = 0, /**< first to open the channel id */
	IVSHM_TRANSPORT_SIDE_B = 1, /**< second */
};

/** Called from ivshm_transport_housekeeping() when the link changes. */
typedef void (*ivshm_transport_link_fn)(void *arg, struct ivshm_channel *ch,
					int up);

/**
 * Channel parameters; a zero field takes its default. Both sides must give
 * the same nb_queues, ring_size, buf_size and max_pkt_len (the second opener
 * gets -EINVAL otherwise); rx_mode and the rest are local.
 */
struct ivshm_transport_params {
	uint32_t nb_queues;   /**< queue pairs, 1..16 (default 1) */
	uint32_t ring_size;   /**< descriptors per ring, power of two, 16..32768 */
	uint32_t buf_size;    /**< bytes per buffer, multiple of 64, 64..65536 */
	uint32_t max_pkt_len; /**< longest packet accepted (default 9728) */
	enum ivshm_transport_rx_mode rx_mode;
	uint32_t spin_us;     /**< adaptive: spin this long before sleeping */
	uint32_t peer_timeout_ms; /**< heartbeat silence that means "dead" */
	uint32_t open_timeout_ms; /**< wait this long for a dead occupant */
	ivshm_transport_link_fn link_cb; /**< may be NULL */
	void *link_cb_arg;
	/** tx_burst's copies: cached or streaming stores, or measure and
	 *  choose (IVSHM_COPY_AUTO, the zero value; see ivshm/copy.h). */
	enum ivshm_copy_policy tx_copy;
};

/** Static facts about an open channel. */
struct ivshm_transport_info {
	uint32_t channel_id;
	enum ivshm_transport_side side;
	uint32_t nb_queues;
	uint32_t ring_size;
	uint32_t buf_size;
	uint32_t max_pkt_len;
	uint32_t max_segs;     /**< buffers one packet may span */
	int has_doorbell;      /**< 1: interrupt modes sleep on a doorbell */
	uint64_t mem_offset;   /**< the channel's area in the region */
	uint64_t mem_size;
	uint64_t region_id;    /**< random per region formatting (MAC salt) */
};

/**
 * One packet for the copying bursts. tx: @p data and @p len (1..max_pkt_len)
 * in. rx: @p data and @p len = capacity in; @p len = packet length out.
 */
struct ivshm_transport_pkt {
	void *data;
	uint32_t len;
	uint32_t reserved;
};

/**
 * One buffer for the zero-copy calls. tx_reserve fills @p data (buffer in
 * the region) and @p len (= buf_size); the caller writes the payload, sets
 * @p len (1..buf_size) and @p flags, then commits. rx_peek fills
 * all three; IVSHM_TRANSPORT_F_MORE says the next buffer continues the
 * packet. Every chain except its last buffer carries len == buf_size.
 */
struct ivshm_transport_buf {
	void *data;
	uint32_t len;
	uint32_t flags;
};

/** Per-queue per-direction counters (monotonic since open). */
struct ivshm_transport_queue_stats {
	uint64_t packets;   /**< packets moved */
	uint64_t bytes;     /**< payload bytes moved */
	uint64_t segments;  /**< buffers moved */
	uint64_t drops;     /**< tx: ring full or link down; rx: no room,
			         too long for the caller, lost in a reset */
	uint64_t errors;    /**< invalid descriptors, impossible indices,
			         bad caller input */
	uint64_t doorbells; /**< tx: doorbells rung */
	uint64_t wakeups;   /**< rx: sleeps ended by a doorbell */
	uint64_t sleeps;    /**< rx: times rx_wait slept */
};

/** Channel-wide counters. */
struct ivshm_transport_stats {
	uint64_t link_ups;
	uint64_t link_downs;
	uint64_t resets;        /**< own rings re-formatted after open */
	uint64_t peer_deaths;   /**< peers found dead or gone */
	uint64_t proto_errors;  /**< protocol violations seen by housekeeping */
	struct ivshm_transport_queue_stats tx[IVSHM_TRANSPORT_MAX_QUEUES];
	struct ivshm_transport_queue_stats rx[IVSHM_TRANSPORT_MAX_QUEUES];
};

/**
 * Bytes a channel with these parameters needs in the region (its rings and
 * both sides' buffers).
 * @return size, or 0 if the parameters are invalid.
 */
uint64_t ivshm_transport_channel_memsize(
	const struct ivshm_transport_params *params);

/**
 * Smallest power-of-two region (as QEMU and the server require) that holds
 * the ivshmem header, the transport header and @p nb_channels channels with
 * these parameters. @return size, or 0 if invalid.
 */
uint64_t ivshm_transport_region_size(unsigned int nb_channels,
				     const struct ivshm_transport_params *params);

/**
 * Open channel @p channel_id on endpoint @p ep. Formats the transport area
 * of the region if nobody has (compare-and-swap on its init word), claims
 * side A or B, allocates the channel's memory in the region (first opener)
 * or checks it (second), formats the rings this side transmits on, and
 * publishes this side as ready. The link comes up in a later
 * ivshm_transport_housekeeping() once the other side is there too.
 * Blocks up to open_timeout_ms when the wanted side is held by an occupant
 * that may be dead, or while another process formats the transport area.
 * The endpoint must outlive the channel.
 * @return 0 and *out;
 *   -EINVAL bad parameters, or parameters differing from the other side's;
 *   -ENOSPC the region has no room for the channel (see
 *           ivshm_transport_region_size());
 *   -EBUSY  both sides are held by live processes;
 *   -EPROTO the transport area of the region is malformed;
 *   -ENOMEM, other -errno from the system.
 */
int ivshm_transport_open(struct ivshm_endpoint *ep, uint32_t channel_id,
			 const struct ivshm_transport_params *params,
			 struct ivshm_channel **out);

/** Leave the channel (the peer sees the link go down), free. NULL ignored. */
void ivshm_transport_close(struct ivshm_channel *ch);

/** Fill @p info. @return 0. Any thread. */
int ivshm_transport_info_get(const struct ivshm_channel *ch,
			 struct ivshm_transport_info *info);

/** This channel's side (A or B). Any thread. */
enum ivshm_transport_side ivshm_transport_side(const struct ivshm_channel *ch);

/** 1 if the link is up, 0 if down. Any thread, never blocks. */
int ivshm_transport_link(const struct ivshm_channel *ch);

/**
 * An eventfd that becomes readable after each link change (housekeeping
 * writes to it); read 8 bytes to clear, then call ivshm_transport_link().
 * @return fd (owned by the channel).
 */
int ivshm_transport_link_fd(const struct ivshm_channel *ch);

/**
 * Control thread: publish the heartbeat, detect the peer's arrival,
 * departure, death, restart or reset, take the link down or up (calling
 * link_cb and signalling link_fd), re-format own rings when needed and
 * perform requested resets. Processes the endpoint's control events. Call
 * it every IVSHM_TRANSPORT_HK_PERIOD_MS or so; never blocks.
 * @return 1 link up, 0 link down, -ECONNRESET the server is gone (the link
 *         stays down).
 */
int ivshm_transport_housekeeping(struct ivshm_channel *ch);

/**
 * Control thread: reset the channel: take the link down, re-format the
 * rings this side transmits on and ask the peer to do the same with its own
 * (in-flight packets are dropped). The link comes back up through
 * housekeeping. Used after the peer broke the protocol; housekeeping also
 * resets by itself when a datapath call reported an invalid descriptor.
 * @return 0.
 */
int ivshm_transport_reset(struct ivshm_channel *ch);

/**
 * Copy up to @p n packets into queue @p q's transmit ring and ring the
 * peer's doorbell if it asked for one. Packets go whole or not at all,
 * in order; the first that does not fit stops the burst.
 * A packet with len 0 or > max_pkt_len is skipped and counted as an error
 * (and as sent, so the caller frees it).
 * @return number of packets consumed (0..n); 0 when the link is down.
 */
uint16_t ivshm_transport_tx_burst(struct ivshm_channel *ch, uint16_t q,
				  const struct ivshm_transport_pkt *pkts,
				  uint16_t n);

/**
 * Copy up to @p n packets out of queue @p q's receive ring into the
 * caller's buffers. A packet longer than its pkts[i].len is dropped
 * (counted) and the slot reused for the next packet.
 * @return number of packets received (0..n); 0 when the link is down.
 */
uint16_t ivshm_transport_rx_burst(struct ivshm_channel *ch, uint16_t q,
				  struct ivshm_transport_pkt *pkts,
				  uint16_t n);

/**
 * Zero copy transmit: reserve up to @p n free buffers of queue @p q, in
 * ring order, and describe them in @p bufs. Fill them in place, then call
 * ivshm_transport_tx_commit() before any other tx call on the queue.
 * @return number of buffers reserved (0..n); 0 when the link is down.
 */
uint16_t ivshm_transport_tx_reserve(struct ivshm_channel *ch, uint16_t q,
				    struct ivshm_transport_buf *bufs,
				    uint16_t n);

/**
 * Free buffers in queue @p q's transmit ring (fresh from the peer's index;
 * 0 when the link is down). A zero-copy sender of a chained packet checks
 * it before tx_reserve(): reserved buffers it cannot fill become discarded
 * slots, and a sender that keeps reserving fewer buffers than its chain
 * needs would never get it through. Tx thread of the queue.
 */
uint32_t ivshm_transport_tx_room(struct ivshm_channel *ch, uint16_t q);

/**
 * Publish the first @p n reserved buffers (bufs[i].len and .flags set by
 * the caller; 1 <= len <= buf_size; a buffer with IVSHM_TRANSPORT_F_MORE
 * must be full). Reserved buffers beyond @p n, and a trailing chain that
 * ends in F_MORE, are discarded. A buffer with an invalid len/flags or a
 * packet longer than max_pkt_len discards its whole packet (counted as an
 * error). Rings the doorbell if the peer asked for one.
 * @return number of buffers published as packet data.
 */
uint16_t ivshm_transport_tx_commit(struct ivshm_channel *ch, uint16_t q,
				   const struct ivshm_transport_buf *bufs,
				   uint16_t n);

/**
 * Zero copy receive: describe up to @p n received buffers of queue @p q,
 * whole packets only (a chain is returned entire or not at all; @p n must
 * be at least info.max_segs for the longest packet to come through).
 * Invalid descriptors are skipped and counted. The buffers stay valid until
 * ivshm_transport_rx_release(), which must come before the next rx call.
 * @return number of buffers (0..n); 0 when the link is down.
 */
uint16_t ivshm_transport_rx_peek(struct ivshm_channel *ch, uint16_t q,
				 struct ivshm_transport_buf *bufs, uint16_t n);

/**
 * Hand the buffers of the last rx_peek back to the sender. @p n (<= the
 * count peek returned) buffers were used; the rest of that peek are
 * dropped (counted).
 */
void ivshm_transport_rx_release(struct ivshm_channel *ch, uint16_t q,
				uint16_t n);

/**
 * Zero copy receive with buffers kept past the call ("loans"): like
 * rx_peek(), but the queue is free for the next rx call at once, and each
 * buffer stays the caller's until it is given back with
 * ivshm_transport_rx_return() (any thread, any order). Slots go back to the
 * sender in ring order, so a loan kept long stalls the queue once the ring
 * is full behind it. Each rx_loan call first hands back to the sender the
 * slots whose loans (and all earlier ones) were returned.
 *
 * tokens[i] identifies the loan of bufs[i]. While loans are out, rx_burst()
 * and rx_peek() on the queue return 0. A re-format of the ring (link down
 * and up) ends every loan: their buffers stay mapped but the peer may reuse
 * them, and returning their tokens later is harmless. So is returning a
 * token twice. The channel must not be closed while loans are out
 * (rx_loans_out() counts them).
 * @return number of buffers (0..n), whole packets only; 0 when the link is
 *         down.
 */
uint16_t ivshm_transport_rx_loan(struct ivshm_channel *ch, uint16_t q,
				 struct ivshm_transport_buf *bufs,
				 uint64_t *tokens, uint16_t n);

/**
 * Give back the buffer lent under @p token by rx_loan() on queue @p q.
 * Any thread, concurrently with the queue's rx thread; lock-free.
 */
void ivshm_transport_rx_return(struct ivshm_channel *ch, uint16_t q,
			       uint64_t token);

/**
 * Slots of queue @p q lent by rx_loan() and not yet handed back to the
 * sender (returned loans count until the next rx_loan call hands them
 * back). Rx thread of the queue.
 */
uint32_t ivshm_transport_rx_loans_out(const struct ivshm_channel *ch,
				      uint16_t q);

/**
 * Number of packets' buffers waiting in queue @p q's receive ring (a hint;
 * 0 when the link is down). Rx thread of the queue.
 */
uint32_t ivshm_transport_rx_count(struct ivshm_channel *ch, uint16_t q);

/**
 * Ask the peer to ring our doorbell for queue @p q when it transmits
 * (for rte_eth_dev_rx_intr_enable). Rx thread of the queue.
 * @return 0 (safe to sleep on ivshm_transport_rx_intr_fd()), a positive
 *         count (packets already waiting: do not sleep), -ENOTSUP no
 *         doorbell on this endpoint.
 */
int ivshm_transport_rx_intr_enable(struct ivshm_channel *ch, uint16_t q);

/** Stop asking for doorbells on queue @p q. @return 0 or -ENOTSUP. */
int ivshm_transport_rx_intr_disable(struct ivshm_channel *ch, uint16_t q);

/**
 * The eventfd that becomes readable when queue @p q's doorbell rings
 * (shared by queues when the endpoint has fewer vectors than queues).
 * @return fd, or -ENOTSUP (no doorbell: poll).
 */
int ivshm_transport_rx_intr_fd(const struct ivshm_channel *ch, uint16_t q);

/**
 * Wait until queue @p q has something to receive, the link changes, or
 * @p timeout_us passes (0: check only; negative: no limit), as rx_mode
 * says: POLL spins; INTR sleeps on the doorbell; ADAPTIVE spins spin_us,
 * then sleeps. Without a doorbell INTR and ADAPTIVE back off (spin, yield,
 * short sleeps). Rx thread of the queue; blocks.
 * @return 1 something to receive, 0 timeout or link down.
 */
int ivshm_transport_rx_wait(struct ivshm_channel *ch, uint16_t q,
			    int64_t timeout_us);

/** Copy the counters into @p st. Any thread. @return 0. */
int ivshm_transport_stats_get(const struct ivshm_channel *ch,
			  struct ivshm_transport_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* IVSHM_TRANSPORT_H */
