/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * traffic.h - the ivshm-traffic engine: packet format and the four roles
 * (gen, sink, echo, ping) over one transport channel.
 *
 * Every packet is an Ethernet frame (so that it crosses a DPDK forwarder or
 * a MAC rewrite unchanged in meaning): 14 bytes of Ethernet header that the
 * engine ignores on receipt, then struct tr_hdr (magic, type, length,
 * checksum, sequence number, send time), then a payload derived from the
 * sequence number. The checksum covers everything after the Ethernet
 * header. A generator ends its stream with an END packet carrying the number
 * of packets it sent; a sink answers with an ACK carrying its counts, which
 * is how the generator learns that every packet arrived before it closes
 * the channel (closing takes the link down and drops what is in flight).
 * The generator's last word is BYE: the sink may then leave (it cannot
 * tell from the link alone when a forwarder sits in between).
 */
#ifndef IVSHM_TRAFFIC_H
#define IVSHM_TRAFFIC_H

#include <stdint.h>

#include "ivshm/transport.h"

#define TR_MAGIC 0x52545649u /* "IVTR" */
#define TR_ETHERTYPE 0x88b5u /* IEEE local experimental */
#define TR_ETH_LEN 14u

enum tr_type { TR_DATA = 1, TR_END = 2, TR_ACK = 3, TR_BYE = 4 };

/* After the Ethernet header; all fields little endian (host order). */
struct tr_hdr {
	uint32_t magic;
	uint16_t type;
	uint16_t reserved;
	uint32_t len;   /* whole frame, Ethernet header included */
	uint32_t csum;  /* over bytes 14..len-1 with this field zero */
	uint64_t seq;   /* DATA: per stream from 0; END: packets sent */
	uint64_t ts_ns; /* sender's CLOCK_MONOTONIC at send */
};

/* Payload of an ACK (a sink's view of the stream). */
struct tr_ack {
	uint64_t received;
	uint64_t bytes;
	uint64_t lost;
	uint64_t reordered;
	uint64_t corrupt;
	uint64_t duplicates;
};

#define TR_MIN_LEN (TR_ETH_LEN + sizeof(struct tr_hdr)) /* 46 */
#define TR_ACK_LEN (TR_MIN_LEN + sizeof(struct tr_ack))

enum tr_role { TR_GEN, TR_SINK, TR_ECHO, TR_PING };

struct tr_opts {
	enum tr_role role;
	const char *ep;             /* endpoint description */
	uint32_t channel;
	uint32_t size_min, size_max; /* frame sizes (equal: fixed) */
	uint64_t count;             /* packets to send (0: until duration) */
	double duration;            /* seconds (0: until count) */
	double timeout;             /* link wait and drain deadline, seconds */
	double interval;            /* progress lines to stderr (0: none) */
	uint32_t burst;
	uint32_t window;            /* ping: packets in flight */
	int verify_payload;         /* 1: compare every payload byte */
	int no_ack;                 /* gen: do not wait for an ACK (capture
				       devices, one-way paths) */
	double rate;                /* gen: packets per second (0: no limit) */
	uint64_t corrupt_every;     /* gen, test aid: damage every Nth packet
				       after its checksum (0: never) */
	int one_way;                /* sink: one-way latency from the send
				       time stamps (same clock: same host) */
	uint64_t seed;
	struct ivshm_transport_params tp;
	int quiet;
	int verbose;
};

/* Run one role; prints the report; returns the exit status (0 ok). */
int tr_run(const struct tr_opts *o);

#endif /* IVSHM_TRAFFIC_H */
