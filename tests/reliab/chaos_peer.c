/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * chaos_peer.c - one peer of the chaos test (tests/reliab/reliab_test.cc).
 *
 * Usage: chaos_peer SOCKET CHANNEL RESULT_FILE
 *
 * Connects to the ivshmem server at SOCKET (socket endpoint: doorbells and
 * peer events), opens transport channel CHANNEL and, while the link is up,
 * sends a stream of packets and checks the stream coming back. Every packet
 * carries the sender's incarnation (random per process), a sequence number,
 * its length and a checksum, and a payload derived from (incarnation, seq),
 * so the receiver checks every byte. Within one sender incarnation the
 * sequence must increase by exactly one, except across a link drop seen
 * by this process (packets in flight when a peer dies are dropped by
 * design: counted as lost). Any other gap, a repeat, a reorder, a bad
 * length, checksum or byte: "ERROR ..." on stderr and exit status 2.
 *
 * SIGTERM: stop sending, drain for a moment, append one line to
 * RESULT_FILE: "RESULT chan=C side=S sent=N recvd=N lost=N gaps=N
 * incarnations=N link_ups=N link_downs=N peer_deaths=N cur_recvd=N link=L",
 * exit 0. SIGKILL (the chaos) leaves no line, by design.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ivshm/ivshmem.h"
#include "ivshm/transport.h"

#define MAGIC 0x43484153u /* "CHAS" */
#define HDR 32u
#define MAXLEN 3000u
#define BURST 8

struct pkt_hdr {
	uint32_t magic;
	uint32_t len;
	uint64_t inc;
	uint64_t seq;
	uint32_t csum;
	uint32_t pad;
};

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* splitmix64: the payload generator, seeded by (incarnation, seq). */
static uint64_t mix(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static uint32_t pkt_len(uint64_t inc, uint64_t seq)
{
	uint64_t s = inc ^ (seq * 0x100000001b3ull);

	return HDR + (uint32_t)(mix(&s) % (MAXLEN - HDR + 1));
}

static void fill(uint8_t *p, uint32_t n, uint64_t inc, uint64_t seq)
{
	uint64_t s = inc + seq * 7919u;

	for (uint32_t i = 0; i < n; i += 8) {
		uint64_t v = mix(&s);

		memcpy(p + i, &v, n - i < 8 ? n - i : 8);
	}
}

static uint32_t csum(const uint8_t *p, uint32_t n)
{
	uint32_t h = 2166136261u;

	for (uint32_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static void fail(const char *what, uint64_t inc, uint64_t seq, uint64_t expect)
{
	fprintf(stderr, "ERROR chaos_peer %d: %s (incarnation %016llx seq %llu, expected %llu)\n",
		(int)getpid(), what, (unsigned long long)inc,
		(unsigned long long)seq, (unsigned long long)expect);
	exit(2);
}

int main(int argc, char **argv)
{
	struct ivshm_endpoint_params ep_p;
	struct ivshm_transport_params tp;
	struct ivshm_transport_stats st;
	struct ivshm_endpoint *ep = NULL;
	struct ivshm_channel *ch = NULL;
	static uint8_t txb[BURST][MAXLEN], rxb[BURST][MAXLEN], want[MAXLEN];
	uint64_t inc = 0, seq = 0, sent = 0, recvd = 0, lost = 0, gaps = 0;
	uint64_t cur_inc = 0, last_seq = 0, downs_at_last = 0, incs = 0;
	uint64_t cur_recvd = 0, next_hk = 0, drain_start = 0, last_rx = 0;
	struct ivshm_transport_pkt rpk[BURST];
	char desc[300];
	FILE *res;
	int ret;

	if (argc != 4) {
		fprintf(stderr, "usage: chaos_peer SOCKET CHANNEL RESULT_FILE\n");
		return 1;
	}
	signal(SIGTERM, on_term);
	signal(SIGPIPE, SIG_IGN);
	while (inc == 0)
		if (getrandom(&inc, sizeof(inc), 0) != sizeof(inc))
			inc = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ now_ms();

	snprintf(desc, sizeof(desc), "socket:%s", argv[1]);
	memset(&ep_p, 0, sizeof(ep_p));
	ep_p.connect_timeout_ms = 10000;
	ret = ivshm_endpoint_open(desc, &ep_p, &ep);
	if (ret < 0) {
		fprintf(stderr, "ERROR chaos_peer: endpoint %s: %s\n", desc, strerror(-ret));
		return 1;
	}
	memset(&tp, 0, sizeof(tp));
	tp.nb_queues = 1;
	tp.ring_size = 256;
	tp.buf_size = 2048;
	tp.max_pkt_len = 4096;
	tp.rx_mode = IVSHM_TRANSPORT_RX_ADAPTIVE;
	tp.spin_us = 20;
	/* Deaths are seen through the server's announcements and pids; the
	 * heartbeat limit is only a fallback, generous on a loaded machine. */
	tp.peer_timeout_ms = 5000;
	tp.open_timeout_ms = 5000;
	ret = ivshm_transport_open(ep, (uint32_t)atoi(argv[2]), &tp, &ch);
	if (ret < 0) {
		fprintf(stderr, "ERROR chaos_peer: channel %s: %s\n", argv[2], strerror(-ret));
		return 1;
	}

	for (;;) {
		uint64_t now = now_ms();
		uint16_t n, i;

		if (now >= next_hk) {
			ivshm_transport_housekeeping(ch);
			next_hk = now + IVSHM_TRANSPORT_HK_PERIOD_MS;
		}
		/* Drain: stop sending, receive until 500 ms pass without a
		 * packet (at least 1 s, at most 4 s), so the partner's last
		 * packets are in before either side leaves. */
		if (stop && drain_start == 0)
			drain_start = now;
		if (drain_start && now - drain_start >= 1000 &&
		    (now - last_rx >= 500 || now - drain_start >= 4000))
			break;
		if (!drain_start && ivshm_transport_link(ch)) {
			struct ivshm_transport_pkt pk[BURST];

			for (i = 0; i < BURST; i++) {
				struct pkt_hdr h;
				uint32_t len = pkt_len(inc, seq + i);

				fill(txb[i] + HDR, len - HDR, inc, seq + i);
				h.magic = MAGIC;
				h.len = len;
				h.inc = inc;
				h.seq = seq + i;
				h.csum = csum(txb[i] + HDR, len - HDR);
				h.pad = 0;
				memcpy(txb[i], &h, sizeof(h));
				pk[i].data = txb[i];
				pk[i].len = len;
			}
			n = ivshm_transport_tx_burst(ch, 0, pk, BURST);
			seq += n;
			sent += n;
		}
		for (i = 0; i < BURST; i++) {
			rpk[i].data = rxb[i];
			rpk[i].len = MAXLEN;
		}
		n = ivshm_transport_rx_burst(ch, 0, rpk, BURST);
		if (n)
			last_rx = now;
		ivshm_transport_stats_get(ch, &st);
		for (i = 0; i < n; i++) {
			struct pkt_hdr h;
			uint32_t len = rpk[i].len;

			if (len < HDR)
				fail("runt packet", 0, 0, len);
			memcpy(&h, rxb[i], sizeof(h));
			if (h.magic != MAGIC)
				fail("bad magic", h.inc, h.seq, 0);
			if (len != h.len || len != pkt_len(h.inc, h.seq))
				fail("bad length", h.inc, h.seq, len);
			if (h.csum != csum(rxb[i] + HDR, len - HDR))
				fail("bad checksum", h.inc, h.seq, h.csum);
			fill(want, len - HDR, h.inc, h.seq);
			if (memcmp(want, rxb[i] + HDR, len - HDR) != 0)
				fail("payload differs", h.inc, h.seq, 0);
			if (h.inc != cur_inc) {
				/* A new sender process (the peer restarted). */
				cur_inc = h.inc;
				incs++;
				cur_recvd = 0;
			} else if (h.seq != last_seq + 1) {
				if (h.seq <= last_seq)
					fail("repeated or reordered packet", h.inc, h.seq,
					     last_seq + 1);
				if (st.link_downs == downs_at_last)
					fail("gap without a link drop", h.inc, h.seq,
					     last_seq + 1);
				gaps++;
				lost += h.seq - last_seq - 1;
			}
			last_seq = h.seq;
			downs_at_last = st.link_downs;
			recvd++;
			cur_recvd++;
		}
		if (n == 0)
			(void)ivshm_transport_rx_wait(ch, 0, 2000);
	}

	ivshm_transport_stats_get(ch, &st);
	res = fopen(argv[3], "a");
	if (res) {
		char line[512];

		snprintf(line, sizeof(line),
			 "RESULT chan=%s side=%c pid=%d sent=%llu recvd=%llu lost=%llu gaps=%llu "
			 "incarnations=%llu link_ups=%llu link_downs=%llu peer_deaths=%llu "
			 "cur_recvd=%llu link=%d rx_errors=%llu\n",
			 argv[2], ivshm_transport_side(ch) == IVSHM_TRANSPORT_SIDE_A ? 'A' : 'B',
			 (int)getpid(), (unsigned long long)sent, (unsigned long long)recvd,
			 (unsigned long long)lost, (unsigned long long)gaps,
			 (unsigned long long)incs, (unsigned long long)st.link_ups,
			 (unsigned long long)st.link_downs,
			 (unsigned long long)st.peer_deaths,
			 (unsigned long long)cur_recvd, ivshm_transport_link(ch),
			 (unsigned long long)st.rx[0].errors);
		/* One write: lines of several peers never interleave. */
		if (write(fileno(res), line, strlen(line)) < 0)
			ret = 1;
		fclose(res);
	}
	ivshm_transport_close(ch);
	ivshm_endpoint_close(ep);
	return 0;
}
