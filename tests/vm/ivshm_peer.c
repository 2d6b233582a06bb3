/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ivshm_peer.c - the one test program of the endpoint suite: two peers
 * exchange messages through a shared region using only ivshm/ivshmem.h.
 *
 * The same source (built statically) runs on the host against the server
 * ("socket:"), inside a guest on the PCI device ("pci:"), and on a plain
 * file ("shm:"). Role a sends message k, role b checks every byte and
 * answers with a reply derived from it, a checks every byte of the reply;
 * repeated for --rounds rounds with lengths varying from 1 byte to the
 * slot size. Peers find each other through a hello in the region (own id
 * and a nonce chosen by a), so no side needs the other's id up front.
 *
 * Waiting: --wait poll spins on the peer's sequence word; --wait irq blocks
 * in ivshm_endpoint_wait() and requires that every round is announced by
 * exactly the peer's doorbell (woken, then the message must be there).
 * --notify always|never|auto: ring the peer's doorbell after each publish
 * (auto: when the endpoint has doorbells).
 *
 * Output: one line "IVSHM_PEER OK role=.. rounds=.. bytes=.. notifies=..
 * wakeups=.. id=.. peer=.. caps=.." and exit 0, or "IVSHM_PEER FAIL <why>"
 * and exit 1. A deadline (--timeout seconds) bounds every wait.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ivshm/ivshmem.h"

#define SLOT_OFF(role) (IVSHM_REGION_HDR_SIZE + (uint64_t)(role) * slot_stride)
#define HELLO_MAGIC 0x49564850u /* "PHVI" */
#define NO_ID 0xffffffffu

/* One slot per role in the caller's part of the region (offset 4096). */
struct slot {
	uint32_t hello;   /* HELLO_MAGIC once id/nonce are valid */
	uint32_t id;      /* own peer id, NO_ID without one */
	uint64_t nonce;   /* chosen by a, echoed by b */
	uint32_t seq;     /* last message published (release) */
	uint32_t len;     /* its length */
	uint32_t done;    /* set by a after the last round checks out */
	uint8_t pad[64 - 28];
	uint8_t data[];   /* slot_data bytes */
};

static uint64_t slot_stride, slot_data;
static int64_t deadline_ms;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
#include <stdarg.h>
static void fail(const char *fmt, ...)
{
	va_list ap;

	printf("IVSHM_PEER FAIL ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(1);
}

static uint8_t pattern(uint64_t nonce, unsigned int role, uint32_t k, uint32_t i)
{
	return (uint8_t)(nonce * 13 + role * 101 + k * 31 + i * 7 + (i >> 8));
}

static uint32_t msg_len(uint32_t k)
{
	return 1 + (uint32_t)(((uint64_t)k * 7919) % slot_data);
}

struct peer {
	struct ivshm_endpoint *ep;
	int role, wait_irq, do_notify;
	unsigned int vector;
	uint32_t other_id;
	uint64_t notifies, wakeups;
};

static void ring(struct peer *p)
{
	int ret;

	if (!p->do_notify)
		return;
	for (;;) {
		ret = ivshm_endpoint_notify(p->ep, (uint16_t)p->other_id, p->vector);
		if (ret != -ENOENT)
			break;
		/* The server has not told us of the peer yet. */
		if (ivshm_endpoint_process(p->ep) < 0 || now_ms() > deadline_ms)
			break;
		usleep(1000);
	}
	if (ret < 0)
		fail("notify(peer %u, vector %u): %s", p->other_id, p->vector,
		     strerror(-ret));
	p->notifies++;
}

/* Wait until the other slot's seq reaches @p want. */
static void await_seq(struct peer *p, struct slot *other, uint32_t want)
{
	if (p->wait_irq) {
		for (;;) {
			uint64_t fired = 0;
			int left = (int)(deadline_ms - now_ms());
			int ret;

			if (left <= 0)
				fail("timeout waiting for doorbell of round %u", want);
			ret = ivshm_endpoint_wait(p->ep, left, &fired);
			if (ret < 0)
				fail("wait: %s", strerror(-ret));
			if (fired & (UINT64_C(1) << p->vector)) {
				p->wakeups++;
				break;
			}
		}
		/* The doorbell follows the publish: the message must be there. */
		if (__atomic_load_n(&other->seq, __ATOMIC_ACQUIRE) != want)
			fail("woken for round %u but seq is %u", want,
			     __atomic_load_n(&other->seq, __ATOMIC_RELAXED));
		return;
	}
	for (unsigned int spins = 0;; spins++) {
		/* Acquire: pairs with the peer's release store of seq. */
		uint32_t s = __atomic_load_n(&other->seq, __ATOMIC_ACQUIRE);

		if (s == want)
			return;
		if (s != want - 1)
			fail("peer seq %u, expected %u or %u", s, want - 1, want);
		if (spins > 1000) {
			if (now_ms() > deadline_ms)
				fail("timeout polling for round %u", want);
			usleep(50);
		}
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: ivshm_peer --ep DESC --role a|b [--rounds N] [--wait poll|irq]\n"
		"                  [--notify auto|always|never] [--vector V]\n"
		"                  [--timeout SEC] [--size BYTES] [--force-poll 1]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *desc = NULL, *notify = "auto";
	struct ivshm_endpoint_params params = { 0 };
	struct peer p = { 0 };
	struct slot *mine, *other;
	uint32_t rounds = 100, k;
	uint64_t bytes = 0, nonce;
	int timeout_s = 60, ret, id;
	uint8_t *base;

	setvbuf(stdout, NULL, _IOLBF, 0);
	p.role = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--ep") == 0)
			desc = v;
		else if (strcmp(a, "--role") == 0 && (!strcmp(v, "a") || !strcmp(v, "b")))
			p.role = v[0] - 'a';
		else if (strcmp(a, "--rounds") == 0)
			rounds = (uint32_t)strtoul(v, NULL, 10);
		else if (strcmp(a, "--wait") == 0 && !strcmp(v, "irq"))
			p.wait_irq = 1;
		else if (strcmp(a, "--wait") == 0 && !strcmp(v, "poll"))
			p.wait_irq = 0;
		else if (strcmp(a, "--notify") == 0)
			notify = v;
		else if (strcmp(a, "--vector") == 0)
			p.vector = (unsigned int)strtoul(v, NULL, 10);
		else if (strcmp(a, "--timeout") == 0)
			timeout_s = atoi(v);
		else if (strcmp(a, "--force-poll") == 0 && !strcmp(v, "1"))
			params.flags |= IVSHM_EP_F_POLL;
		else if (strcmp(a, "--size") == 0)
			params.size = strtoull(v, NULL, 0);
		else
			usage();
	}
	if (desc == NULL || p.role < 0 || rounds == 0 || rounds > 1000000 ||
	    timeout_s <= 0)
		usage();
	deadline_ms = now_ms() + (int64_t)timeout_s * 1000;
	params.connect_timeout_ms = 5000;

	ret = ivshm_endpoint_open(desc, &params, &p.ep);
	if (ret < 0)
		fail("open %s: %s", desc, strerror(-ret));
	id = ivshm_endpoint_id(p.ep);
	if (strcmp(notify, "always") == 0)
		p.do_notify = 1;
	else if (strcmp(notify, "auto") == 0)
		p.do_notify = !!(ivshm_endpoint_caps(p.ep) & IVSHM_EP_CAP_DOORBELL);
	else if (strcmp(notify, "never") != 0)
		usage();
	if (p.wait_irq && !(ivshm_endpoint_caps(p.ep) & IVSHM_EP_CAP_INTERRUPT))
		fail("--wait irq but endpoint %s has no interrupts (caps 0x%x)", desc,
		     ivshm_endpoint_caps(p.ep));
	if (p.wait_irq && p.vector >= ivshm_endpoint_nvectors(p.ep))
		fail("vector %u but only %u vectors", p.vector,
		     ivshm_endpoint_nvectors(p.ep));

	base = ivshm_endpoint_base(p.ep);
	slot_stride = (ivshm_endpoint_size(p.ep) - IVSHM_REGION_HDR_SIZE) / 2;
	if (slot_stride > (1u << 20))
		slot_stride = 1u << 20;
	slot_stride &= ~(uint64_t)63;
	slot_data = slot_stride - sizeof(struct slot);
	mine = (struct slot *)(base + SLOT_OFF(p.role));
	other = (struct slot *)(base + SLOT_OFF(!p.role));

	/* Hello: a picks the nonce; b echoes it; each publishes its id. */
	if (p.role == 0) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		nonce = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)getpid() ^
			(uint64_t)ts.tv_sec;
	} else {
		while (__atomic_load_n(&other->hello, __ATOMIC_ACQUIRE) != HELLO_MAGIC) {
			if (now_ms() > deadline_ms)
				fail("timeout waiting for a's hello");
			usleep(1000);
		}
		nonce = other->nonce;
	}
	mine->id = id >= 0 ? (uint32_t)id : NO_ID;
	mine->nonce = nonce;
	mine->seq = 0;
	mine->done = 0;
	/* Release: id/nonce before hello; pairs with the acquire above. */
	__atomic_store_n(&mine->hello, HELLO_MAGIC, __ATOMIC_RELEASE);
	while (__atomic_load_n(&other->hello, __ATOMIC_ACQUIRE) != HELLO_MAGIC ||
	       other->nonce != nonce) {
		if (now_ms() > deadline_ms)
			fail("timeout waiting for the peer's hello");
		usleep(1000);
	}
	p.other_id = other->id;
	if (p.do_notify && p.other_id > 0xffff)
		fail("peer has no id (0x%x) but doorbells are wanted", p.other_id);

	for (k = 1; k <= rounds; k++) {
		if (p.role == 0) {
			uint32_t n = msg_len(k), rn;

			for (uint32_t i = 0; i < n; i++)
				mine->data[i] = pattern(nonce, 0, k, i);
			mine->len = n;
			/* Release: data before seq; pairs with b's acquire. */
			__atomic_store_n(&mine->seq, k, __ATOMIC_RELEASE);
			ring(&p);
			await_seq(&p, other, k);
			rn = other->len;
			if (rn != n)
				fail("round %u: reply length %u, sent %u", k, rn, n);
			for (uint32_t i = 0; i < n; i++) {
				unsigned int want = pattern(nonce, 0, k, i) ^ 0xffu;
				unsigned int got = other->data[i];

				if (got != want)
					fail("round %u: reply byte %u is 0x%02x, want 0x%02x",
					     k, i, got, want);
			}
			bytes += 2ull * n;
		} else {
			uint32_t n;

			await_seq(&p, other, k);
			n = other->len; /* read once, then validate */
			if (n == 0 || n > slot_data || n != msg_len(k))
				fail("round %u: length %u", k, n);
			for (uint32_t i = 0; i < n; i++) {
				uint8_t b = other->data[i];

				if (b != pattern(nonce, 0, k, i))
					fail("round %u: byte %u is 0x%02x, want 0x%02x",
					     k, i, b, pattern(nonce, 0, k, i));
				mine->data[i] = (uint8_t)(b ^ 0xffu);
			}
			mine->len = n;
			/* Release: reply before seq; pairs with a's acquire. */
			__atomic_store_n(&mine->seq, k, __ATOMIC_RELEASE);
			ring(&p);
			bytes += 2ull * n;
		}
	}
	if (p.role == 0) {
		__atomic_store_n(&mine->done, 1, __ATOMIC_RELEASE);
	} else {
		while (__atomic_load_n(&other->done, __ATOMIC_ACQUIRE) != 1) {
			if (now_ms() > deadline_ms)
				fail("timeout waiting for a's done");
			usleep(1000);
		}
	}
	printf("IVSHM_PEER OK role=%c rounds=%u bytes=%" PRIu64 " notifies=%" PRIu64
	       " wakeups=%" PRIu64 " id=%d peer=%d caps=0x%x kind=%d\n",
	       'a' + p.role, rounds, bytes, p.notifies, p.wakeups, id,
	       p.other_id == NO_ID ? -1 : (int)p.other_id,
	       ivshm_endpoint_caps(p.ep), (int)ivshm_endpoint_kind(p.ep));
	ivshm_endpoint_close(p.ep);
	return 0;
}
