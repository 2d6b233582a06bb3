/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * traffic.c - the ivshm-traffic engine over ivshm/transport.h (no DPDK).
 *
 * One thread drives queue 0 of one channel and calls the channel's
 * housekeeping every IVSHM_TRANSPORT_HK_PERIOD_MS itself, so the program
 * needs nothing but the endpoint (host socket, guest PCI BARs or a plain
 * file). Roles:
 *  - gen:  sends DATA packets 0..N-1 (count or duration), never dropping one
 *          (a full ring makes it wait), then END(N); waits for the sink's
 *          ACK and checks that the sink received exactly N intact packets.
 *  - sink: checks every packet (magic, length, checksum, payload pattern,
 *          sequence), counts loss, reordering, duplicates and corruption;
 *          on END answers with an ACK carrying those counts.
 *  - echo: checks every packet and sends it back (MACs swapped); END too.
 *  - ping: keeps --window packets in flight towards an echo, checks every
 *          returned packet and its order, and measures round-trip times.
 * Every wait is bounded (--timeout without progress, or the duration).
 * The last line on stdout is "IVSHM_TRAFFIC role=... status=ok|fail ...".
 */
#include "traffic.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sched.h>

#include "ivshm/ivshmem.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static const char *role_name(enum tr_role r)
{
	switch (r) {
	case TR_GEN: return "gen";
	case TR_SINK: return "sink";
	case TR_ECHO: return "echo";
	case TR_PING: return "ping";
	}
	return "?";
}

/* ---- packet format -------------------------------------------------- */

#define K_SEQ UINT64_C(0x9e3779b97f4a7c15)
#define K_POS UINT64_C(0xd1b54a32d192ed03)

/* Payload word i of packet seq: cheap, and differs for every (seq, i). */
static inline uint64_t pay_word(uint64_t seq, uint64_t i)
{
	return seq * K_SEQ + (i + 1) * K_POS;
}

static void fill_payload(uint8_t *p, uint32_t n, uint64_t seq)
{
	uint32_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w = pay_word(seq, i / 8);

		memcpy(p + i, &w, 8);
	}
	if (i < n) {
		uint64_t w = pay_word(seq, i / 8);

		memcpy(p + i, &w, n - i);
	}
}

static int payload_ok(const uint8_t *p, uint32_t n, uint64_t seq)
{
	uint32_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w, want = pay_word(seq, i / 8);

		memcpy(&w, p + i, 8);
		if (w != want)
			return 0;
	}
	if (i < n) {
		uint64_t want = pay_word(seq, i / 8);

		if (memcmp(p + i, &want, n - i) != 0)
			return 0;
	}
	return 1;
}

static const uint8_t mac_src[6] = { 0x02, 0x49, 0x56, 0x53, 0x48, 0x01 };
static const uint8_t mac_dst[6] = { 0x02, 0x49, 0x56, 0x53, 0x48, 0x02 };

/* Build a frame of @len bytes (>= TR_MIN_LEN) in @p. */
static void build(uint8_t *p, uint32_t len, enum tr_type type, uint64_t seq,
		  const void *payload, uint32_t payload_len)
{
	struct tr_hdr h;
	uint32_t plen = len - (uint32_t)TR_MIN_LEN;

	memcpy(p, mac_dst, 6);
	memcpy(p + 6, mac_src, 6);
	p[12] = TR_ETHERTYPE >> 8;
	p[13] = TR_ETHERTYPE & 0xff;
	h.magic = TR_MAGIC;
	h.type = (uint16_t)type;
	h.reserved = 0;
	h.len = len;
	h.csum = 0;
	h.seq = seq;
	h.ts_ns = now_ns();
	memcpy(p + TR_ETH_LEN, &h, sizeof(h));
	if (payload)
		memcpy(p + TR_MIN_LEN, payload, payload_len < plen ? payload_len : plen);
	else
		fill_payload(p + TR_MIN_LEN, plen, seq);
	h.csum = tr_csum(p + TR_ETH_LEN, len - TR_ETH_LEN);
	memcpy(p + TR_ETH_LEN + offsetof(struct tr_hdr, csum), &h.csum, 4);
}

/*
 * Check a received frame (already copied into our memory, so it cannot
 * change under us). @return 1 good (header in *h), 0 corrupt.
 */
static int check(uint8_t *p, uint32_t len, int verify_payload, struct tr_hdr *h)
{
	uint32_t want;

	if (len < TR_MIN_LEN)
		return 0;
	memcpy(h, p + TR_ETH_LEN, sizeof(*h));
	if (h->magic != TR_MAGIC || h->len != len ||
	    h->type < TR_DATA || h->type > TR_BYE)
		return 0;
	memset(p + TR_ETH_LEN + offsetof(struct tr_hdr, csum), 0, 4);
	want = tr_csum(p + TR_ETH_LEN, len - TR_ETH_LEN);
	memcpy(p + TR_ETH_LEN + offsetof(struct tr_hdr, csum), &h->csum, 4);
	if (want != h->csum)
		return 0;
	if (verify_payload && h->type == TR_DATA &&
	    !payload_ok(p + TR_MIN_LEN, len - (uint32_t)TR_MIN_LEN, h->seq))
		return 0;
	return 1;
}

/* ---- channel state ---------------------------------------------------- */

struct tr {
	const struct tr_opts *o;
	struct ivshm_endpoint *ep;
	struct ivshm_channel *ch;
	uint64_t next_hk;
	int link;      /* last housekeeping result: 1 up */
	int had_link;
	int server_gone;
	uint32_t max_len;   /* largest frame we handle */
	uint64_t rng;
	/* progress */
	uint64_t t_start, t_first, t_last, t_next_print;
	uint64_t pkts, bytes, last_print_pkts;
	/* sink / echo counters */
	uint64_t expect, lost_gaps, reordered, corrupt, dups, dropped;
	int end_seen;
	uint64_t end_total;
	/* gen / ping */
	int ack_seen;
	struct tr_ack ack;
	/* sink: one-way latency (ns) */
	uint64_t lat_min, lat_max, lat_sum, lat_n;
	/* sink: Ethernet addresses of the first DATA frame (MAC rewrites) */
	uint8_t first_dst[6], first_src[6];
	/* ping */
	uint64_t *rtt;
	uint64_t nrtt, cap_rtt;
};

static void hk(struct tr *t, int force)
{
	uint64_t now = now_ns();
	int r;

	if (!force && now < t->next_hk)
		return;
	t->next_hk = now + IVSHM_TRANSPORT_HK_PERIOD_MS * 1000000u;
	r = ivshm_transport_housekeeping(t->ch);
	if (r == -ECONNRESET)
		t->server_gone = 1;
	t->link = r == 1;
	if (t->link)
		t->had_link = 1;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

static uint32_t next_size(struct tr *t)
{
	const struct tr_opts *o = t->o;

	if (o->size_min == o->size_max)
		return o->size_min;
	return o->size_min + (uint32_t)(xorshift(&t->rng) % (o->size_max - o->size_min + 1));
}

static void progress(struct tr *t, int force)
{
	uint64_t now;

	if (t->o->interval <= 0 || t->o->quiet)
		return;
	now = now_ns();
	if (!force && now < t->t_next_print)
		return;
	fprintf(stderr, "ivshm-traffic[%s ch%u]: %.1f s  %" PRIu64 " pkts  %.3f Mpps%s\n",
		role_name(t->o->role), t->o->channel, (double)(now - t->t_start) / 1e9,
		t->pkts, (double)(t->pkts - t->last_print_pkts) / (t->o->interval * 1e6),
		t->link ? "" : "  (link down)");
	t->last_print_pkts = t->pkts;
	t->t_next_print = now + (uint64_t)(t->o->interval * 1e9);
}

/* Wait (bounded) for the link; 0 up, -1 timeout or signal. */
static int wait_link(struct tr *t)
{
	uint64_t end = now_ns() + (uint64_t)(t->o->timeout * 1e9);

	for (;;) {
		hk(t, 1);
		if (t->link)
			return 0;
		if (now_ns() > end || g_stop || t->server_gone)
			return -1;
		{
			struct timespec ts = { 0, 2000000 };

			nanosleep(&ts, NULL);
		}
	}
}

/* Send one frame, retrying while the ring is full; 0 sent, -1 deadline. */
static int send_one(struct tr *t, uint8_t *p, uint32_t len, uint64_t deadline)
{
	struct ivshm_transport_pkt pk = { p, len, 0 };
	uint32_t spins = 0;

	while (ivshm_transport_tx_burst(t->ch, 0, &pk, 1) != 1) {
		hk(t, 0);
		if (now_ns() > deadline || (!t->link && t->had_link))
			return -1;
		if (++spins % 256 == 0)
			sched_yield();
		else
			cpu_relax();
	}
	return 0;
}

/* Count one received DATA sequence number (sink and echo). */
static void account_seq(struct tr *t, uint64_t seq)
{
	if (seq == t->expect) {
		t->expect++;
	} else if (seq > t->expect) {
		t->lost_gaps += seq - t->expect;
		t->expect = seq + 1;
	} else {
		/* Late: fills a gap counted as lost, or is a duplicate. */
		t->reordered++;
		if (t->lost_gaps > 0)
			t->lost_gaps--;
		else
			t->dups++;
	}
}

static void print_rates(const struct tr *t, char *buf, size_t n)
{
	uint64_t a = t->t_first ? t->t_first : t->t_start;
	uint64_t b = t->t_last > a ? t->t_last : a;
	double secs = (double)(b - a) / 1e9;

	struct ivshm_transport_stats st;

	/* The channel's own counters say why packets went missing, if any
	 * did: a link flap (peer judged dead, reset) drops what is in flight. */
	memset(&st, 0, sizeof(st));
	ivshm_transport_stats_get(t->ch, &st);
	snprintf(buf, n, "packets=%" PRIu64 " bytes=%" PRIu64 " secs=%.3f mpps=%.4f gbps=%.4f"
		 " link_downs=%" PRIu64 " resets=%" PRIu64 " peer_deaths=%" PRIu64
		 " tx_drops=%" PRIu64 " rx_drops=%" PRIu64 " ring_errors=%" PRIu64,
		 t->pkts, t->bytes, secs, secs > 0 ? (double)t->pkts / secs / 1e6 : 0.0,
		 secs > 0 ? (double)t->bytes * 8 / secs / 1e9 : 0.0,
		 st.link_downs, st.resets, st.peer_deaths, st.tx[0].drops, st.rx[0].drops,
		 st.tx[0].errors + st.rx[0].errors);
}

/*
 * After the last exchange: wait (bounded) for the peer's BYE or for the
 * peer to leave, so that our last packet is read before we close.
 */
static void wait_bye(struct tr *t)
{
	uint64_t end = now_ns() + (uint64_t)(t->o->timeout * 1e9);
	uint8_t b[TR_ACK_LEN + 64];

	while (now_ns() < end && !g_stop) {
		struct ivshm_transport_pkt pk = { b, sizeof(b), 0 };
		struct tr_hdr h;

		hk(t, 0);
		if (!t->link)
			return;
		if (ivshm_transport_rx_burst(t->ch, 0, &pk, 1) == 1) {
			if (check(b, pk.len, 0, &h) && h.type == TR_BYE)
				return;
			continue;
		}
		ivshm_transport_rx_wait(t->ch, 0, 10000);
	}
}

/*
 * Our last word: BYE, then linger until the peer has left or a short
 * while (when a forwarder sits between us, the link stays up).
 */
static void say_bye(struct tr *t)
{
	uint8_t b[TR_MIN_LEN + 18];
	uint64_t end = now_ns() + 300000000u;

	build(b, sizeof(b), TR_BYE, 0, NULL, 0);
	if (send_one(t, b, sizeof(b), now_ns() + 1000000000u) != 0)
		return;
	while (t->link && now_ns() < end && !g_stop) {
		struct timespec ts = { 0, 2000000 };

		hk(t, 1);
		nanosleep(&ts, NULL);
	}
}

/* ---- roles ------------------------------------------------------------- */

static int run_gen(struct tr *t)
{
	const struct tr_opts *o = t->o;
	uint32_t b = o->burst, npend = 0, i;
	struct ivshm_transport_pkt *pend = calloc(b, sizeof(*pend));
	uint8_t *mem = malloc((size_t)b * t->max_len);
	uint8_t *rxb = malloc(t->max_len);
	uint64_t seq = 0, last_progress, deadline, end_time;
	int ok = 1;
	char rates[512];

	if (!pend || !mem || !rxb) {
		fprintf(stderr, "ivshm-traffic: out of memory\n");
		free(pend); free(mem); free(rxb);
		return 1;
	}
	for (i = 0; i < b; i++)
		pend[i].data = mem + (size_t)i * t->max_len;
	t->t_start = t->t_first = now_ns();
	t->t_next_print = t->t_start + (uint64_t)(o->interval * 1e9);
	end_time = o->duration > 0 ? t->t_start + (uint64_t)(o->duration * 1e9) : UINT64_MAX;
	last_progress = t->t_start;
	for (;;) {
		uint64_t now;
		uint16_t n;
		int more = !g_stop && (o->count == 0 || seq < o->count);

		hk(t, 0);
		if (!t->link) {
			fprintf(stderr, "ivshm-traffic: link went down after %" PRIu64 " packets\n", t->pkts);
			ok = 0;
			break;
		}
		now = now_ns();
		if (now >= end_time)
			more = 0;
		if (more && o->rate > 0 &&
		    (double)seq >= o->rate * (double)(now - t->t_start) / 1e9 + 1)
			more = 0; /* ahead of --rate: send what is pending only */
		while (more && npend < b) {
			uint32_t len = next_size(t);

			build(pend[npend].data, len, TR_DATA, seq, NULL, 0);
			if (o->corrupt_every && seq % o->corrupt_every == o->corrupt_every - 1)
				((uint8_t *)pend[npend].data)[len - 1] ^= 0x5a;
			seq++;
			pend[npend].len = len;
			npend++;
			if ((o->count && seq >= o->count) ||
			    (o->rate > 0 && (double)seq >= o->rate * (double)(now - t->t_start) / 1e9 + 1))
				more = 0;
		}
		if (npend == 0) {
			if (!g_stop && (o->count == 0 || seq < o->count) && now < end_time) {
				cpu_relax(); /* paced by --rate */
				last_progress = now;
				progress(t, 0);
				continue;
			}
			break;
		}
		n = ivshm_transport_tx_burst(t->ch, 0, pend, (uint16_t)npend);
		if (n > 0) {
			struct ivshm_transport_pkt tmp[256];
			uint32_t k = n;

			for (i = 0; i < n; i++)
				t->bytes += pend[i].len;
			t->pkts += n;
			/* Keep unsent packets in order; recycle the sent buffers. */
			while (k > 0) {
				uint32_t c = k > 256 ? 256 : k;

				memcpy(tmp, pend, c * sizeof(*pend));
				memmove(pend, pend + c, (npend - c) * sizeof(*pend));
				memcpy(pend + npend - c, tmp, c * sizeof(*pend));
				k -= c;
			}
			npend -= n;
			last_progress = now;
			t->t_last = now;
		} else {
			if (now - last_progress > (uint64_t)(o->timeout * 1e9)) {
				fprintf(stderr, "ivshm-traffic: no progress for %.0f s (ring full)\n", o->timeout);
				ok = 0;
				break;
			}
			cpu_relax();
		}
		progress(t, 0);
	}
	t->t_last = now_ns();
	progress(t, 1);

	/* END, then the sink's ACK (everything before END has arrived). */
	deadline = now_ns() + (uint64_t)(o->timeout * 1e9);
	if (ok) {
		build(rxb, TR_MIN_LEN + 18, TR_END, t->pkts, NULL, 0);
		if (send_one(t, rxb, TR_MIN_LEN + 18, deadline) != 0) {
			fprintf(stderr, "ivshm-traffic: could not send END\n");
			ok = 0;
		}
	}
	while (ok && !t->ack_seen && !o->no_ack) {
		struct ivshm_transport_pkt pk = { rxb, t->max_len, 0 };
		struct tr_hdr h;

		hk(t, 0);
		if (ivshm_transport_rx_burst(t->ch, 0, &pk, 1) == 1) {
			if (check(rxb, pk.len, 0, &h) && h.type == TR_ACK &&
			    pk.len >= TR_ACK_LEN) {
				memcpy(&t->ack, rxb + TR_MIN_LEN, sizeof(t->ack));
				t->ack_seen = 1;
			}
			continue;
		}
		if (now_ns() > deadline || (!t->link && t->had_link) || g_stop) {
			fprintf(stderr, "ivshm-traffic: no ACK from the sink\n");
			ok = 0;
			break;
		}
		ivshm_transport_rx_wait(t->ch, 0, 10000);
	}
	if (t->ack_seen || (ok && o->no_ack))
		say_bye(t);
	if (t->ack_seen) {
		if (t->ack.received != t->pkts || t->ack.corrupt || t->ack.lost ||
		    t->ack.duplicates || t->ack.bytes != t->bytes)
			ok = 0;
	}
	if (o->count && t->pkts != o->count && !g_stop)
		ok = 0;
	print_rates(t, rates, sizeof(rates));
	printf("IVSHM_TRAFFIC role=gen status=%s channel=%u %s acked=%" PRIu64
	       " peer_bytes=%" PRIu64 " peer_lost=%" PRIu64 " peer_reordered=%" PRIu64
	       " peer_corrupt=%" PRIu64 " peer_dups=%" PRIu64 "\n",
	       ok ? "ok" : "fail", o->channel, rates, t->ack.received, t->ack.bytes,
	       t->ack.lost, t->ack.reordered, t->ack.corrupt, t->ack.duplicates);
	free(pend);
	free(mem);
	free(rxb);
	return ok ? 0 : 1;
}

/* sink and echo */
static int run_rx(struct tr *t)
{
	const struct tr_opts *o = t->o;
	uint32_t b = o->burst, i;
	struct ivshm_transport_pkt *pk = calloc(b, sizeof(*pk));
	uint8_t *mem = malloc((size_t)b * t->max_len);
	uint8_t ackb[TR_ACK_LEN + 16];
	uint64_t idle_since, end_time;
	int ok = 1, echo = o->role == TR_ECHO;
	char rates[512];

	if (!pk || !mem) {
		fprintf(stderr, "ivshm-traffic: out of memory\n");
		free(pk); free(mem);
		return 1;
	}
	t->t_start = now_ns();
	t->t_next_print = t->t_start + (uint64_t)(o->interval * 1e9);
	end_time = o->duration > 0 ? t->t_start + (uint64_t)((o->duration + o->timeout) * 1e9)
				   : UINT64_MAX;
	idle_since = t->t_start;
	while (!t->end_seen) {
		uint16_t n;
		uint64_t now;

		hk(t, 0);
		for (i = 0; i < b; i++) {
			pk[i].data = mem + (size_t)i * t->max_len;
			pk[i].len = t->max_len;
		}
		n = ivshm_transport_rx_burst(t->ch, 0, pk, (uint16_t)b);
		now = now_ns();
		if (n == 0) {
			if (g_stop || now > end_time ||
			    now - idle_since > (uint64_t)(o->timeout * 1e9)) {
				fprintf(stderr, "ivshm-traffic: %s before END\n",
					g_stop ? "stopped" : "timed out");
				ok = 0;
				break;
			}
			if (!t->link && t->had_link) {
				fprintf(stderr, "ivshm-traffic: link went down before END\n");
				ok = 0;
				break;
			}
			ivshm_transport_rx_wait(t->ch, 0, 10000);
			progress(t, 0);
			continue;
		}
		idle_since = now;
		if (!t->t_first)
			t->t_first = now;
		for (i = 0; i < n; i++) {
			struct tr_hdr h;

			if (!check(pk[i].data, pk[i].len, o->verify_payload, &h)) {
				t->corrupt++;
				continue;
			}
			if (h.type == TR_END) {
				t->end_seen = 1;
				t->end_total = h.seq;
				continue;
			}
			if (h.type != TR_DATA)
				continue;
			if (t->pkts == 0) {
				memcpy(t->first_dst, pk[i].data, 6);
				memcpy(t->first_src, (uint8_t *)pk[i].data + 6, 6);
			}
			t->pkts++;
			t->bytes += pk[i].len;
			t->t_last = now;
			account_seq(t, h.seq);
			if (o->one_way && now >= h.ts_ns) {
				uint64_t l = now - h.ts_ns;

				if (t->lat_n == 0 || l < t->lat_min)
					t->lat_min = l;
				if (l > t->lat_max)
					t->lat_max = l;
				t->lat_sum += l;
				t->lat_n++;
			}
		}
		if (echo) {
			/* Everything goes back, END included, in order. */
			uint16_t done = 0;
			uint64_t deadline = now + (uint64_t)(o->timeout * 1e9);

			for (i = 0; i < n; i++) {
				uint8_t *p = pk[i].data, m[6];

				memcpy(m, p, 6);
				memcpy(p, p + 6, 6);
				memcpy(p + 6, m, 6);
			}
			while (done < n) {
				done += ivshm_transport_tx_burst(t->ch, 0, pk + done, (uint16_t)(n - done));
				if (done < n) {
					hk(t, 0);
					if (now_ns() > deadline || (!t->link && t->had_link)) {
						t->dropped += n - done;
						ok = 0;
						break;
					}
					cpu_relax();
				}
			}
			if (!ok)
				break;
		}
		progress(t, 0);
	}
	progress(t, 1);
	if (t->end_seen) {
		struct tr_ack a = {
			.received = t->pkts, .bytes = t->bytes,
			.lost = t->end_total > t->pkts - t->dups ? t->end_total - (t->pkts - t->dups) : 0,
			.reordered = t->reordered, .corrupt = t->corrupt,
			.duplicates = t->dups,
		};

		if (!echo) {
			build(ackb, TR_ACK_LEN, TR_ACK, 0, &a, sizeof(a));
			if (send_one(t, ackb, TR_ACK_LEN, now_ns() + (uint64_t)(o->timeout * 1e9)) != 0) {
				fprintf(stderr, "ivshm-traffic: could not send ACK\n");
				ok = 0;
			}
		}
		/* The generator says BYE once it has our answer. */
		wait_bye(t);
		if (a.lost || t->corrupt || t->dups || t->pkts != t->end_total)
			ok = 0;
	}
	if (o->count && t->pkts != o->count)
		ok = 0;
	if (o->one_way)
		printf("IVSHM_TRAFFIC_LATENCY channel=%u samples=%" PRIu64
		       " lat_min_us=%.2f lat_avg_us=%.2f lat_max_us=%.2f\n",
		       o->channel, t->lat_n, (double)t->lat_min / 1e3,
		       t->lat_n ? (double)t->lat_sum / (double)t->lat_n / 1e3 : 0.0,
		       (double)t->lat_max / 1e3);
	print_rates(t, rates, sizeof(rates));
	printf("IVSHM_TRAFFIC role=%s status=%s channel=%u %s expected=%" PRIu64
	       " lost=%" PRIu64 " reordered=%" PRIu64 " corrupt=%" PRIu64
	       " dups=%" PRIu64 " dropped=%" PRIu64
	       " mac_dst=%02x:%02x:%02x:%02x:%02x:%02x mac_src=%02x:%02x:%02x:%02x:%02x:%02x\n",
	       role_name(o->role), ok ? "ok" : "fail", o->channel, rates,
	       t->end_seen ? t->end_total : 0,
	       t->end_seen && t->end_total > t->pkts - t->dups ? t->end_total - (t->pkts - t->dups) : 0,
	       t->reordered, t->corrupt, t->dups, t->dropped,
	       t->first_dst[0], t->first_dst[1], t->first_dst[2], t->first_dst[3],
	       t->first_dst[4], t->first_dst[5], t->first_src[0], t->first_src[1],
	       t->first_src[2], t->first_src[3], t->first_src[4], t->first_src[5]);
	free(pk);
	free(mem);
	return ok ? 0 : 1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int run_ping(struct tr *t)
{
	const struct tr_opts *o = t->o;
	uint32_t b = o->burst, i;
	struct ivshm_transport_pkt *pk = calloc(b, sizeof(*pk));
	uint8_t *mem = malloc((size_t)b * t->max_len);
	uint64_t sent = 0, got = 0, last_progress, end_time;
	int ok = 1, sending = 1, end_back = 0;
	char rates[512];

	t->cap_rtt = o->count && o->count < (1u << 22) ? o->count : (1u << 22);
	t->rtt = malloc(t->cap_rtt * sizeof(uint64_t));
	if (!pk || !mem || !t->rtt) {
		fprintf(stderr, "ivshm-traffic: out of memory\n");
		free(pk); free(mem); free(t->rtt);
		return 1;
	}
	t->t_start = t->t_first = now_ns();
	t->t_next_print = t->t_start + (uint64_t)(o->interval * 1e9);
	end_time = o->duration > 0 ? t->t_start + (uint64_t)(o->duration * 1e9) : UINT64_MAX;
	last_progress = t->t_start;
	while (!end_back) {
		uint64_t now = now_ns();
		uint16_t n;

		hk(t, 0);
		if (!t->link) {
			fprintf(stderr, "ivshm-traffic: link went down\n");
			ok = 0;
			break;
		}
		if (sending && (g_stop || now >= end_time || (o->count && sent >= o->count)))
			sending = 0;
		if (!sending && got == sent) {
			/* All answered: END goes round too, then we are done. */
			build(mem, TR_MIN_LEN + 18, TR_END, sent, NULL, 0);
			if (send_one(t, mem, TR_MIN_LEN + 18, now + (uint64_t)(o->timeout * 1e9))) {
				ok = 0;
				break;
			}
			sent++; /* END counts as in flight */
			sending = -1;
		}
		if (sending == 1 && sent - got < o->window) {
			uint32_t k = (uint32_t)(o->window - (sent - got));

			if (k > b)
				k = b;
			if (o->count && k > o->count - sent)
				k = (uint32_t)(o->count - sent);
			for (i = 0; i < k; i++) {
				uint32_t len = next_size(t);

				pk[i].data = mem + (size_t)i * t->max_len;
				build(pk[i].data, len, TR_DATA, sent + i, NULL, 0);
				pk[i].len = len;
			}
			n = ivshm_transport_tx_burst(t->ch, 0, pk, (uint16_t)k);
			for (i = 0; i < n; i++)
				t->bytes += pk[i].len;
			sent += n;
		}
		for (i = 0; i < b; i++) {
			pk[i].data = mem + (size_t)i * t->max_len;
			pk[i].len = t->max_len;
		}
		n = ivshm_transport_rx_burst(t->ch, 0, pk, (uint16_t)b);
		now = now_ns();
		for (i = 0; i < n; i++) {
			struct tr_hdr h;

			if (!check(pk[i].data, pk[i].len, o->verify_payload, &h)) {
				t->corrupt++;
				got++;
				continue;
			}
			if (h.type == TR_END) {
				end_back = 1;
				got++;
				continue;
			}
			if (h.type != TR_DATA)
				continue;
			if (h.seq != got)
				t->reordered++;
			got++;
			t->pkts++;
			if (t->nrtt < t->cap_rtt && now >= h.ts_ns)
				t->rtt[t->nrtt++] = now - h.ts_ns;
		}
		if (n) {
			last_progress = now;
			t->t_last = now;
		} else if (now - last_progress > (uint64_t)(o->timeout * 1e9)) {
			fprintf(stderr, "ivshm-traffic: no answer for %.0f s (%" PRIu64
				" sent, %" PRIu64 " back)\n", o->timeout, sent, got);
			ok = 0;
			break;
		} else if (o->window == 1 || sending != 1) {
			ivshm_transport_rx_wait(t->ch, 0, 1000);
		}
		progress(t, 0);
	}
	progress(t, 1);
	if (end_back)
		say_bye(t);
	if (t->corrupt || t->reordered || (o->count && t->pkts != o->count && !g_stop))
		ok = 0;
	print_rates(t, rates, sizeof(rates));
	{
		uint64_t sum = 0, mn = 0, mx = 0, p50 = 0, p99 = 0;

		if (t->nrtt) {
			qsort(t->rtt, t->nrtt, sizeof(uint64_t), cmp_u64);
			for (i = 0; i < t->nrtt; i++)
				sum += t->rtt[i];
			mn = t->rtt[0];
			mx = t->rtt[t->nrtt - 1];
			p50 = t->rtt[t->nrtt / 2];
			p99 = t->rtt[(t->nrtt * 99) / 100];
		}
		printf("IVSHM_TRAFFIC role=ping status=%s channel=%u %s window=%u reordered=%" PRIu64
		       " corrupt=%" PRIu64 " rtt_min_us=%.2f rtt_avg_us=%.2f rtt_p50_us=%.2f"
		       " rtt_p99_us=%.2f rtt_max_us=%.2f\n",
		       ok ? "ok" : "fail", o->channel, rates, o->window, t->reordered,
		       t->corrupt, (double)mn / 1e3,
		       t->nrtt ? (double)sum / (double)t->nrtt / 1e3 : 0.0,
		       (double)p50 / 1e3, (double)p99 / 1e3, (double)mx / 1e3);
	}
	free(pk);
	free(mem);
	free(t->rtt);
	return ok ? 0 : 1;
}

int tr_run(const struct tr_opts *o)
{
	struct tr t;
	struct ivshm_endpoint_params ep = { 0 };
	struct ivshm_transport_info info;
	int ret, rc;

	memset(&t, 0, sizeof(t));
	t.o = o;
	t.rng = o->seed ? o->seed : 0x2545f4914f6cdd1dULL;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);

	ep.connect_timeout_ms = (int)(o->timeout * 1000);
	ret = ivshm_endpoint_open(o->ep, &ep, &t.ep);
	if (ret < 0) {
		fprintf(stderr, "ivshm-traffic: cannot open endpoint %s: %s\n", o->ep, strerror(-ret));
		printf("IVSHM_TRAFFIC role=%s status=fail reason=endpoint\n", role_name(o->role));
		return 1;
	}
	ret = ivshm_transport_open(t.ep, o->channel, &o->tp, &t.ch);
	if (ret < 0) {
		fprintf(stderr, "ivshm-traffic: cannot open channel %u on %s: %s%s\n", o->channel,
			o->ep, strerror(-ret),
			ret == -ENOSPC ? " (region too small for this channel id and ring/buffer sizes)" :
			ret == -EINVAL ? " (parameters differ from the other side's?)" : "");
		printf("IVSHM_TRAFFIC role=%s status=fail reason=channel\n", role_name(o->role));
		ivshm_endpoint_close(t.ep);
		return 1;
	}
	ivshm_transport_info_get(t.ch, &info);
	t.max_len = info.max_pkt_len;
	if (o->size_max > t.max_len) {
		fprintf(stderr, "ivshm-traffic: --size %u exceeds the channel's max packet length %u\n",
			o->size_max, t.max_len);
		rc = 2;
		goto out;
	}
	if (o->verbose)
		fprintf(stderr, "ivshm-traffic[%s]: %s channel %u side %c, ring %u x %u B, max packet %u, %s\n",
			role_name(o->role), o->ep, o->channel,
			info.side == IVSHM_TRANSPORT_SIDE_A ? 'A' : 'B', info.ring_size,
			info.buf_size, info.max_pkt_len,
			info.has_doorbell ? "doorbells" : "no doorbell (polling)");
	if (wait_link(&t) != 0) {
		fprintf(stderr, "ivshm-traffic: the peer did not come up on channel %u within %.0f s\n",
			o->channel, o->timeout);
		printf("IVSHM_TRAFFIC role=%s status=fail reason=no-link channel=%u\n",
		       role_name(o->role), o->channel);
		rc = 1;
		goto out;
	}
	switch (o->role) {
	case TR_GEN:
		rc = run_gen(&t);
		break;
	case TR_PING:
		rc = run_ping(&t);
		break;
	default:
		rc = run_rx(&t);
		break;
	}
out:
	fflush(stdout);
	ivshm_transport_close(t.ch);
	ivshm_endpoint_close(t.ep);
	return rc;
}
