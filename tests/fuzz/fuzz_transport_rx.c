/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_transport_rx.c - libFuzzer target: descriptor validation on the
 * transport's receive path, against a live peer that turns hostile.
 *
 * Each input starts from a fresh plain shared file with channel 0 opened
 * twice in this process: the victim (side A) and a real peer (side B),
 * linked through housekeeping. The input is a script: the peer transmits
 * honest packets (copy and zero-copy, chained jumbo frames included) or
 * commits garbage lengths and flags through the API; the peer scribbles
 * any word of the channel (descriptors, ring indices, wake words, side
 * blocks, geometry, transport header); the victim receives (rx_burst into
 * exact-size heap buffers, rx_peek/release), transmits, and runs
 * housekeeping. Checked: nothing crashes or hangs; peeked buffers lie in
 * the region with sane lengths; rx_burst stays within each capacity; and
 * while nobody has scribbled, every packet arrives exactly once, in order,
 * byte for byte (the honest path is lossless).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "fuzz_util.h"
#include "ivshm/ivshmem.h"
#include "ivshm/transport.h"
#include "transport_layout.h"

#define REGION_SIZE (64u * 1024u)
#define MAXP 200

static char path[128];
static char desc[160];
static int base_fds;

static const struct ivshm_transport_params params = {
	.nb_queues = 2,
	.ring_size = 16,
	.buf_size = 64,
	.max_pkt_len = 200,
	.rx_mode = IVSHM_TRANSPORT_RX_POLL,
	.peer_timeout_ms = 10000,
	.open_timeout_ms = 1,
};

static void cleanup(void)
{
	unlink(path);
}

static void init(void)
{
	snprintf(path, sizeof(path), "/dev/shm/ivshm-fuzz-rx-%d", (int)getpid());
	snprintf(desc, sizeof(desc), "shm:%s?size=64K", path);
	atexit(cleanup);
}

/* Payload of packet @p seq on queue @p q: a pattern the receiver checks. */
static uint8_t pat(uint32_t seq, uint16_t q, uint32_t i)
{
	return (uint8_t)(seq * 31u + q * 7u + i);
}

static uint32_t pkt_len(uint32_t seq)
{
	return 1 + (seq * 37u) % MAXP;
}

struct qstate {
	uint32_t sent, recvd; /* honest sequence numbers, per queue */
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct ivshm_endpoint *ea = NULL, *eb = NULL;
	struct ivshm_channel *a = NULL, *b = NULL;
	struct qstate qs[2] = { { 0, 0 }, { 0, 0 } };
	int honest = 1, steps = 0;
	uint8_t *base;
	uint64_t rsize;
	struct ivshm_transport_info info;

	if (!path[0])
		init();
	/* Per input: libFuzzer itself opens files between inputs. */
	base_fds = fz_count_fds();
	unlink(path);
	FZ_CHECK(ivshm_endpoint_open(desc, NULL, &ea) == 0);
	FZ_CHECK(ivshm_endpoint_open(desc, NULL, &eb) == 0);
	FZ_CHECK(ivshm_transport_open(ea, 0, &params, &a) == 0);
	FZ_CHECK(ivshm_transport_open(eb, 0, &params, &b) == 0);
	for (int i = 0; i < 8; i++) {
		ivshm_transport_housekeeping(a);
		ivshm_transport_housekeeping(b);
	}
	FZ_CHECK(ivshm_transport_link(a) == 1 && ivshm_transport_link(b) == 1);
	base = ivshm_endpoint_base(ea);
	rsize = ivshm_endpoint_size(ea);
	ivshm_transport_info_get(a, &info);

	while (in.n && steps++ < 512) {
		uint8_t op = fz_u8(&in);
		uint16_t q = (op >> 5) & 1;

		switch (op % 8) {
		case 0: { /* peer: honest copy burst of 1..4 packets */
			uint8_t buf[4][MAXP];
			struct ivshm_transport_pkt pk[4];
			uint16_t n = 1 + (op >> 3) % 4, got;

			for (uint16_t i = 0; i < n; i++) {
				uint32_t seq = qs[q].sent + i;

				pk[i].data = buf[i];
				pk[i].len = pkt_len(seq);
				for (uint32_t j = 0; j < pk[i].len; j++)
					buf[i][j] = pat(seq, q, j);
			}
			got = ivshm_transport_tx_burst(b, q, pk, n);
			FZ_CHECK(got <= n);
			qs[q].sent += got;
			break;
		}
		case 1: { /* peer: zero-copy commit with input lengths and flags */
			struct ivshm_transport_buf bb[8];
			uint16_t n = 1 + fz_u8(&in) % 8;
			uint16_t got = ivshm_transport_tx_reserve(b, q, bb, n);

			for (uint16_t i = 0; i < got; i++) {
				bb[i].len = fz_u8(&in);
				bb[i].flags = fz_u8(&in) & 3;
			}
			(void)ivshm_transport_tx_commit(b, q, bb, fz_u8(&in) % (got + 1));
			/* Valid or not, these are not the honest sequence. */
			honest = 0;
			break;
		}
		case 2: { /* peer turns hostile: a word in the channel area */
			uint32_t off = fz_u16(&in) % (uint32_t)(info.mem_size - 4);
			uint32_t v = fz_u8(&in) & 1 ? fz_u32(&in) : fz_u8(&in);

			memcpy(base + info.mem_offset + off, &v, sizeof(v));
			honest = 0;
			break;
		}
		case 3: { /* hostile: a word of the headers or channel table */
			uint32_t off = IVSHM_TP_HDR_OFF +
				       fz_u16(&in) % (IVSHM_TP_HDR_SIZE + IVSHM_TP_CHAN_SIZE);
			uint32_t v = fz_u32(&in);

			if (off >= IVSHM_TP_HDR_OFF + 128 && off < IVSHM_TP_TABLE_OFF)
				off = IVSHM_TP_TABLE_OFF + (off % IVSHM_TP_CHAN_SIZE);
			memcpy(base + off - off % 4, &v, sizeof(v));
			honest = 0;
			break;
		}
		case 4: { /* victim: rx_burst into exact-size heap buffers */
			struct ivshm_transport_pkt pk[4];
			uint32_t cap[4];
			uint16_t n = 1 + (op >> 3) % 4, got;
			int small = (fz_u8(&in) & 7) == 0;

			for (uint16_t i = 0; i < n; i++) {
				cap[i] = small ? 1 + fz_u8(&in) % MAXP : MAXP;
				pk[i].len = cap[i];
				pk[i].data = malloc(cap[i]);
				FZ_CHECK(pk[i].data != NULL);
			}
			got = ivshm_transport_rx_burst(a, q, pk, n);
			FZ_CHECK(got <= n);
			if (small)
				honest = 0; /* a too-long packet is dropped: counted */
			for (uint16_t i = 0; i < got; i++) {
				FZ_CHECK(pk[i].len >= 1 && pk[i].len <= cap[i]);
				if (honest) {
					uint32_t seq = qs[q].recvd++;
					const uint8_t *d = pk[i].data;

					FZ_CHECK(seq < qs[q].sent);
					FZ_CHECK(pk[i].len == pkt_len(seq));
					for (uint32_t j = 0; j < pk[i].len; j++)
						FZ_CHECK(d[j] == pat(seq, q, j));
				}
			}
			for (uint16_t i = 0; i < n; i++)
				free(pk[i].data);
			break;
		}
		case 5: { /* victim: zero-copy receive */
			struct ivshm_transport_buf bb[16];
			uint16_t n = 1 + fz_u8(&in) % 16;
			uint16_t got = ivshm_transport_rx_peek(a, q, bb, n), m;

			FZ_CHECK(got <= n);
			for (uint16_t i = 0; i < got; i++) {
				const uint8_t *d = bb[i].data;

				FZ_CHECK(bb[i].len >= 1 && bb[i].len <= params.buf_size);
				FZ_CHECK(d >= base + info.mem_offset &&
					 d + bb[i].len <= base + info.mem_offset + info.mem_size);
				FZ_CHECK(d + bb[i].len <= base + rsize);
			}
			m = got ? fz_u8(&in) % (got + 1) : 0;
			if (m < got)
				honest = 0; /* the rest of the peek is dropped */
			if (honest) {
				/* Whole packets: check them as rx_burst would. */
				uint16_t i = 0;

				while (i < got) {
					uint32_t seq = qs[q].recvd++, off = 0;

					FZ_CHECK(seq < qs[q].sent);
					do {
						const uint8_t *d = bb[i].data;

						for (uint32_t j = 0; j < bb[i].len; j++)
							FZ_CHECK(d[j] == pat(seq, q, off + j));
						off += bb[i].len;
					} while (bb[i++].flags & IVSHM_TRANSPORT_F_MORE && i < got);
					FZ_CHECK(off == pkt_len(seq));
				}
			}
			ivshm_transport_rx_release(a, q, m);
			break;
		}
		case 6: { /* victim transmits; peer drains (keeps the reverse ring moving) */
			uint8_t buf[MAXP], rb[MAXP];
			struct ivshm_transport_pkt pk = { buf, 1 + fz_u8(&in) % MAXP, 0 };
			struct ivshm_transport_pkt rp = { rb, MAXP, 0 };

			memset(buf, 0x5a, sizeof(buf));
			(void)ivshm_transport_tx_burst(a, q, &pk, 1);
			(void)ivshm_transport_rx_burst(b, q, &rp, 1);
			(void)ivshm_transport_rx_count(a, q);
			break;
		}
		case 7: /* housekeeping on either side (resets, re-attach) */
			if (op & 8)
				(void)ivshm_transport_housekeeping(a);
			else
				(void)ivshm_transport_housekeeping(b);
			if (!ivshm_transport_link(a))
				honest = 0; /* in-flight packets may be dropped */
			break;
		}
	}
	/* While honest, nothing was lost: drain and count. */
	if (honest) {
		for (uint16_t q = 0; q < 2; q++) {
			uint8_t rb[MAXP];
			struct ivshm_transport_pkt rp = { rb, MAXP, 0 };

			while (ivshm_transport_rx_burst(a, q, &rp, 1) == 1) {
				FZ_CHECK(rp.len == pkt_len(qs[q].recvd));
				qs[q].recvd++;
				rp.len = MAXP;
			}
			FZ_CHECK(qs[q].recvd == qs[q].sent);
		}
	}
	ivshm_transport_close(a);
	ivshm_transport_close(b);
	ivshm_endpoint_close(ea);
	ivshm_endpoint_close(eb);
	unlink(path);
	FZ_CHECK_FDS(base_fds);
	return 0;
}
