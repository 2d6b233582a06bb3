/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * traffic_frame.h - the ivshm-traffic frame on the wire and its checksum,
 * and nothing else: no transport, no DPDK, compiles as C and as C++, so
 * that tests which capture the tool's frames elsewhere (a tap interface,
 * say) check them with the very function that made them.
 *
 * A frame is 14 bytes of Ethernet header, then struct tr_hdr, then a
 * payload. The checksum covers everything after the Ethernet header, with
 * the csum field zero while it is computed. All fields are host order
 * (little endian on every platform we run).
 */
#ifndef IVSHM_TRAFFIC_FRAME_H
#define IVSHM_TRAFFIC_FRAME_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/* The wire offsets that other programs (and tests) rely on. */
static_assert(sizeof(struct tr_hdr) == 32, "tr_hdr is 32 bytes on the wire");
static_assert(offsetof(struct tr_hdr, csum) == 12, "csum at byte 12 of tr_hdr");
static_assert(offsetof(struct tr_hdr, seq) == 16, "seq at byte 16 of tr_hdr");

/*
 * Checksum of the @n bytes at @p: FNV-1a over 64-bit words, then over the
 * tail bytes, folded to 32 bits. Not cryptographic: it catches torn,
 * shifted and damaged copies.
 */
static inline uint32_t tr_csum(const uint8_t *p, uint32_t n)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325) ^ n;
	uint32_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w;

		memcpy(&w, p + i, 8);
		h = (h ^ w) * UINT64_C(0x100000001b3);
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * UINT64_C(0x100000001b3);
	h ^= h >> 29;
	return (uint32_t)(h ^ (h >> 32));
}

#endif /* IVSHM_TRAFFIC_FRAME_H */
