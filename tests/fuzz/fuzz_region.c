/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_region.c - libFuzzer target: region header validation and the
 * transport's header, channel table and side-block validation.
 *
 * The input is laid over a 64 KiB shared file, window by window: bytes
 * 0-39 become the region header (offset 0), 40-111 the transport header
 * (offset 4096), 112-623 channel 0's table entry with both side blocks
 * (offset 8192), the next 8192 bytes the first channel area (offset
 * 40960: descriptor rings and buffers); what the input does not cover
 * stays zero, and whatever follows is a script of bursts, housekeeping
 * calls and scribbles run once the channel is open. Then the real code
 * attaches: ivshm_endpoint_open("shm:...?noformat=1"), and if that accepts
 * the region, ivshm_transport_open() on channel 0 and the script.
 * Checked: nothing crashes or hangs; every buffer rx_peek returns lies
 * inside the mapped region with 1 <= len <= buf_size; rx_burst never
 * writes past the caller's capacity (ASan: exact-size heap buffers);
 * no descriptor leaks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "fuzz_util.h"
#include "ivshm/ivshmem.h"
#include "ivshm/transport.h"
#include "region_layout.h"
#include "transport_layout.h"

#define REGION_SIZE (64u * 1024u)
#define AREA_BYTES 8192u

static char path[128];
static char desc[160];
static uint8_t *view; /* the harness's own mapping of the file */
static int base_fds;

static void cleanup(void)
{
	unlink(path);
}

static void init(void)
{
	int fd;

	snprintf(path, sizeof(path), "/dev/shm/ivshm-fuzz-region-%d", (int)getpid());
	snprintf(desc, sizeof(desc), "shm:%s?noformat=1", path);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FZ_CHECK(fd >= 0);
	FZ_CHECK(ftruncate(fd, REGION_SIZE) == 0);
	view = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	FZ_CHECK(view != MAP_FAILED);
	close(fd);
	atexit(cleanup);
}

static const struct ivshm_transport_params params = {
	.nb_queues = 2,
	.ring_size = 16,
	.buf_size = 64,
	.max_pkt_len = 256,
	.rx_mode = IVSHM_TRANSPORT_RX_POLL,
	.peer_timeout_ms = 200,
	.open_timeout_ms = 1,
};

static void check_peek(const struct ivshm_transport_buf *b, uint16_t n,
		       const uint8_t *base, uint64_t size)
{
	for (uint16_t i = 0; i < n; i++) {
		const uint8_t *d = b[i].data;

		FZ_CHECK(b[i].len >= 1 && b[i].len <= params.buf_size);
		FZ_CHECK(d >= base && d + b[i].len <= base + size);
		FZ_CHECK((b[i].flags & ~IVSHM_TRANSPORT_F_MORE) == 0);
		if (b[i].flags & IVSHM_TRANSPORT_F_MORE)
			FZ_CHECK(b[i].len == params.buf_size);
	}
}

/* The script after the windows: bursts, housekeeping and scribbles. */
static void run_script(struct ivshm_channel *ch, struct ivshm_endpoint *ep,
		       struct fz_in *in)
{
	uint8_t *base = ivshm_endpoint_base(ep);
	uint64_t size = ivshm_endpoint_size(ep);
	int steps = 0;

	while (in->n && steps++ < 256) {
		uint8_t op = fz_u8(in);
		uint16_t q = (op >> 4) & 3; /* 2 and 3 are invalid queues */

		switch (op % 6) {
		case 0:
			(void)ivshm_transport_housekeeping(ch);
			break;
		case 1: { /* rx_burst into exact-size heap buffers */
			struct ivshm_transport_pkt pk[4];
			uint16_t n = 1 + fz_u8(in) % 4, got;

			for (uint16_t i = 0; i < n; i++) {
				pk[i].len = 1 + fz_u8(in) % 300;
				pk[i].data = malloc(pk[i].len);
				FZ_CHECK(pk[i].data != NULL);
			}
			{
				uint32_t cap[4];

				for (uint16_t i = 0; i < n; i++)
					cap[i] = pk[i].len;
				got = ivshm_transport_rx_burst(ch, q, pk, n);
				FZ_CHECK(got <= n);
				for (uint16_t i = 0; i < got; i++)
					FZ_CHECK(pk[i].len >= 1 && pk[i].len <= cap[i]);
			}
			for (uint16_t i = 0; i < n; i++)
				free(pk[i].data);
			break;
		}
		case 2: { /* zero-copy receive */
			struct ivshm_transport_buf b[8];
			uint16_t n = 1 + fz_u8(in) % 8;
			uint16_t got = ivshm_transport_rx_peek(ch, q, b, n);

			FZ_CHECK(got <= n);
			check_peek(b, got, base, size);
			if (got)
				ivshm_transport_rx_release(ch, q, fz_u8(in) % (got + 1));
			(void)ivshm_transport_rx_count(ch, q);
			break;
		}
		case 3: { /* transmit */
			uint8_t pay[300];
			struct ivshm_transport_pkt pk = { pay, fz_u16(in) % 300, 0 };

			memset(pay, op, sizeof(pay));
			(void)ivshm_transport_tx_burst(ch, q, &pk, 1);
			break;
		}
		case 4: { /* the hostile peer scribbles a word anywhere */
			uint32_t off = fz_u32(in) % (REGION_SIZE - 4);
			uint32_t v = fz_u32(in);

			memcpy(view + off, &v, sizeof(v));
			break;
		}
		case 5: /* doorbell paths (none on a plain file: -ENOTSUP) */
			(void)ivshm_transport_rx_intr_enable(ch, q);
			(void)ivshm_transport_rx_wait(ch, q, 0);
			break;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct ivshm_endpoint_params ep_p;
	struct ivshm_endpoint *ep = NULL;
	struct ivshm_channel *ch = NULL;
	struct ivshm_region_hdr *rh;
	uint32_t st;

	if (!view)
		init();
	/* Per input: libFuzzer itself opens files between inputs. */
	base_fds = fz_count_fds();
	memset(view, 0, REGION_SIZE);
	fz_bytes(&in, view, 40);
	fz_bytes(&in, view + IVSHM_TP_HDR_OFF, 72);
	fz_bytes(&in, view + IVSHM_TP_TABLE_OFF, IVSHM_TP_CHAN_SIZE);
	fz_bytes(&in, view + IVSHM_TP_DATA_OFF, AREA_BYTES);
	/* A header stuck in FORMATTING only makes the opener wait (seconds)
	 * for a formatter to finish or die: a timing path, not a validation
	 * one. Say READY instead so the fuzzer spends its time on checks. */
	rh = (struct ivshm_region_hdr *)view;
	memcpy(&st, &rh->init_state, sizeof(st));
	if (st == IVSHM_REGION_FORMATTING)
		st = IVSHM_REGION_READY;
	memcpy(&rh->init_state, &st, sizeof(st));

	memset(&ep_p, 0, sizeof(ep_p));
	ep_p.flags = IVSHM_EP_F_POLL | IVSHM_EP_F_NOFORMAT;
	if (ivshm_endpoint_open(desc, &ep_p, &ep) == 0) {
		FZ_CHECK(ivshm_endpoint_size(ep) == REGION_SIZE);
		if (ivshm_transport_open(ep, 0, &params, &ch) == 0) {
			struct ivshm_transport_info info;

			FZ_CHECK(ivshm_transport_info_get(ch, &info) == 0);
			FZ_CHECK(info.mem_offset >= IVSHM_TP_DATA_OFF &&
				 info.mem_offset + info.mem_size <= REGION_SIZE);
			if (getenv("IVSHM_FUZZ_VERBOSE"))
				fprintf(stderr, "channel open, side %d, link %d\n",
					(int)info.side, ivshm_transport_link(ch));
			run_script(ch, ep, &in);
			ivshm_transport_close(ch);
		}
		ivshm_endpoint_close(ep);
	}
	FZ_CHECK_FDS(base_fds);
	return 0;
}
