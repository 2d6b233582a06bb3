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
#include "traffic_frame.h" /* the frame format and its checksum */

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
