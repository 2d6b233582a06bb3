/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ring_hostile_test.cc - Description: a hostile peer process writes garbage
 * (random and plausible-looking indices, wake flags, geometry words and
 * slot bytes) into a ring while this process drives the other end as
 * consumer or as producer, and re-attaches now and then. Every call must
 * return -EPROTO or a count within its bounds; every slot address handed
 * out must lie inside the ring; the ring sits flush against a PROT_NONE
 * guard page (after it, or before it) so any access past the area faults;
 * the bytes of the mapping around the ring must be untouched afterwards.
 * Runs under AddressSanitizer too (the asan build runs suite stress).
 *
 * Duration per case: IVSHM_RING_HOSTILE_MS (default 1500 ms).
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <vector>

#include <gtest/gtest.h>

#include "ivshm/ring.h"
#include "ring_test_util.h"

using namespace ringtest;

namespace {

const uint32_t kCap = 64;
const uint32_t kEsz = 16; /* memsize 1408: a multiple of 64, not of a page */

/*
 * The hostile peer: never returns; writes only inside [ring, ring+len).
 * It plays the other end loosely: most steps move its own index to a value
 * that is sometimes legal (so elements do flow) and sometimes not (behind
 * what it published, or too far ahead); the rest write random words into
 * both indices, the wake flag, the geometry and the slots.
 */
[[noreturn]] void scribble(uint8_t *ring, size_t len, uint32_t seed,
			   double seconds, enum ivshm_ring_role victim)
{
	double end = now_s() + seconds;
	size_t slots = len - kCtrlSize;
	size_t mine = victim == IVSHM_RING_CONSUMER ? kOffProd : kOffCons;
	size_t theirs = victim == IVSHM_RING_CONSUMER ? kOffCons : kOffProd;
	for (uint64_t i = 0;; i++) {
		uint32_t r = xorshift(&seed);
		uint32_t v = xorshift(&seed);
		uint32_t w = peek_word(ring, theirs);
		switch (r % 16) {
		case 0: poke(ring, mine, v); break;
		case 1: /* the victim's own word: garbage for a moment (the
			 * victim never reads it back), then put back, else the
			 * loose steps below would all aim at garbage */
			poke(ring, theirs, v);
			poke(ring, theirs, w);
			break;
		case 2: poke(ring, kOffWake, v); break;
		case 3: /* geometry and magic */
			poke(ring, (r >> 8) % 6 * 4, v);
			break;
		case 4: case 5: case 6: { /* slot bytes, a word at a time */
			size_t off = kCtrlSize + (size_t)(v % (slots / 4)) * 4;
			poke(ring, off, xorshift(&seed));
			break;
		}
		case 7: /* just outside the legal window */
			poke(ring, mine, victim == IVSHM_RING_CONSUMER
						 ? w + kCap + 1 + v % 4
						 : w + 1 + v % 4);
			break;
		default: /* within or near the legal window */
			poke(ring, mine, victim == IVSHM_RING_CONSUMER
						 ? w + v % (kCap + 1)
						 : w - v % (kCap / 2));
			break;
		}
		if ((i & 0x3ff) == 0 && now_s() > end)
			_exit(0);
	}
}

struct Guarded {
	int fd = -1;
	size_t page = 0, mid_len = 0, need = 0;
	uint8_t *reserve = nullptr, *mid = nullptr, *ring = nullptr;
};

/* memfd mapped between two PROT_NONE pages; the ring flush against the
 * trailing guard (at_end) or the leading one. */
void setup(Guarded *g, bool at_end)
{
	g->page = (size_t)sysconf(_SC_PAGESIZE);
	g->need = ivshm_ring_memsize(kCap, kEsz);
	ASSERT_EQ(g->need % 64, 0u);
	g->mid_len = (g->need + g->page - 1) / g->page * g->page;
	char name[64];
	snprintf(name, sizeof(name), "ivshm-ring-hostile-%d", (int)getpid());
	g->fd = memfd_create(name, MFD_CLOEXEC);
	ASSERT_GE(g->fd, 0);
	ASSERT_EQ(ftruncate(g->fd, (off_t)g->mid_len), 0);
	void *res = mmap(nullptr, g->mid_len + 2 * g->page, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(res, MAP_FAILED);
	g->reserve = static_cast<uint8_t *>(res);
	void *mid = mmap(g->reserve + g->page, g->mid_len, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED, g->fd, 0);
	ASSERT_EQ(mid, g->reserve + g->page);
	g->mid = static_cast<uint8_t *>(mid);
	memset(g->mid, 0xcc, g->mid_len);
	g->ring = at_end ? g->mid + g->mid_len - g->need : g->mid;
	ASSERT_EQ(ivshm_ring_format(g->ring, g->need, kCap, kEsz), 0);
}

void teardown(Guarded *g)
{
	if (g->reserve)
		munmap(g->reserve, g->mid_len + 2 * g->page);
	if (g->fd >= 0)
		close(g->fd);
}

bool in_ring(const Guarded &g, const void *p, size_t len)
{
	const uint8_t *b = static_cast<const uint8_t *>(p);
	return b >= g.ring + kCtrlSize && b + len <= g.ring + g.need;
}

struct Tally {
	uint64_t eproto = 0, moved = 0, calls = 0;
};

// Attach a new handle over the (scribbled) ring: refused with -EPROTO, or
// accepted whole and then used in place of @p r.
int reattach(const Guarded &g, struct ivshm_ring *r, enum ivshm_ring_role role)
{
	struct ivshm_ring r2;
	int ret = ivshm_ring_attach(&r2, g.ring, g.need, kCap, kEsz, role);
	EXPECT_TRUE(ret == 0 || ret == -EPROTO) << ret;
	if (ret == 0)
		*r = r2;
	return ret;
}

// Count a step's outcome; the handle's private geometry never changes.
void tally(const struct ivshm_ring *r, int ret, uint32_t op, Tally *t)
{
	if (ret == -EPROTO)
		t->eproto++;
	else if (ret > 0 && op <= 2)
		t->moved += (uint32_t)ret;
	ASSERT_EQ(ivshm_ring_capacity(r), kCap);
	ASSERT_EQ(ivshm_ring_elem_size(r), kEsz);
}

/* One random call on the consumer end; a result out of bounds fails the
 * test. */
void consumer_step(const Guarded &g, struct ivshm_ring *c, uint32_t *seed,
		   Tally *t)
{
	uint32_t n = xorshift(seed) % (2 * kCap + 2);
	uint32_t op = xorshift(seed) % 6;
	int ret;
	t->calls++;
	if (op <= 1) {
		std::vector<uint8_t> buf((size_t)(n + 2) * kEsz, 0xee);
		ret = ivshm_ring_dequeue_burst(c, buf.data(), n);
		ASSERT_TRUE(ret == -EPROTO || (ret >= 0 && (uint32_t)ret <= n)) << ret;
		size_t used = ret > 0 ? (size_t)ret * kEsz : 0;
		for (size_t b = used; b < buf.size(); b++)
			ASSERT_EQ(buf[b], 0xee) << "written past the count";
	} else if (op == 2) {
		uint32_t st;
		ret = ivshm_ring_peek(c, n, &st);
		ASSERT_TRUE(ret == -EPROTO || (ret >= 0 && (uint32_t)ret <= n)) << ret;
		if (ret > 0) {
			volatile uint64_t sum = 0;
			for (int i = 0; i < ret; i++) {
				const uint64_t *e = static_cast<const uint64_t *>(
					ivshm_ring_slot(c, st + i));
				ASSERT_TRUE(in_ring(g, e, kEsz));
				sum = sum + __atomic_load_n(&e[0], __ATOMIC_RELAXED) +
				      __atomic_load_n(&e[1], __ATOMIC_RELAXED);
			}
			uint32_t part = xorshift(seed) % ((uint32_t)ret + 1);
			ASSERT_EQ(ivshm_ring_release(c, part), 0);
			ASSERT_EQ(ivshm_ring_release(c, (uint32_t)ret - part), 0);
		}
	} else if (op == 3) {
		ret = ivshm_ring_count(c);
		ASSERT_TRUE(ret == -EPROTO || (ret >= 0 && (uint32_t)ret <= kCap)) << ret;
	} else if (op == 4) {
		ret = ivshm_ring_wake_enable(c);
		ASSERT_TRUE(ret == -EPROTO || (ret >= 0 && (uint32_t)ret <= kCap)) << ret;
		ivshm_ring_wake_disable(c);
	} else {
		ret = reattach(g, c, IVSHM_RING_CONSUMER);
	}
	tally(c, ret, op, t);
}

void producer_step(const Guarded &g, struct ivshm_ring *p, uint32_t *seed,
		   Tally *t)
{
	uint32_t n = xorshift(seed) % (2 * kCap + 2);
	uint32_t op = xorshift(seed) % 6;
	int ret;
	t->calls++;
	if (op <= 1) {
		std::vector<uint8_t> buf((size_t)n * kEsz + 1, 0x11);
		ret = ivshm_ring_enqueue_burst(p, buf.data(), n);
		ASSERT_TRUE(ret == -EPROTO || (ret >= 0 && (uint32_t)ret <= n)) << ret;
	} else if (op == 2) {
		uint32_t st;
		ret = ivshm_ring_reserve(p, n, &st);
		ASSERT_TRUE(ret == -EPROTO || (ret >= 0 && (uint32_t)ret <= n)) << ret;
		for (int i = 0; i < ret; i++) {
			uint64_t *e = static_cast<uint64_t *>(ivshm_ring_slot(p, st + i));
			ASSERT_TRUE(in_ring(g, e, kEsz));
			__atomic_store_n(&e[0], st + i, __ATOMIC_RELAXED);
			__atomic_store_n(&e[1], ~(uint64_t)(st + i), __ATOMIC_RELAXED);
		}
		if (ret > 0) {
			ASSERT_EQ(ivshm_ring_commit(p, (uint32_t)ret), 0);
		}
	} else if (op == 3) {
		ret = ivshm_ring_count(p);
		ASSERT_TRUE(ret == -EPROTO || (ret >= 0 && (uint32_t)ret <= kCap)) << ret;
	} else if (op == 4) {
		ret = ivshm_ring_needs_wake(p);
		ASSERT_TRUE(ret == 0 || ret == 1) << ret;
	} else {
		ret = reattach(g, p, IVSHM_RING_PRODUCER);
	}
	tally(p, ret, op, t);
}

struct Case {
	enum ivshm_ring_role role;
	bool at_end;
};

class RingHostilePeer : public ::testing::TestWithParam<Case> {};

TEST_P(RingHostilePeer, ReportsCorruptionAndStaysInBounds)
{
	Case cs = GetParam();
	double seconds = (double)env_u64("IVSHM_RING_HOSTILE_MS", 1500) / 1000.0;
	Guarded g;
	setup(&g, cs.at_end);
	if (HasFatalFailure()) {
		teardown(&g);
		return;
	}
	struct ivshm_ring me;
	ASSERT_EQ(ivshm_ring_attach(&me, g.ring, g.need, kCap, kEsz, cs.role), 0);
	size_t ring_off = (size_t)(g.ring - g.mid);

	pid_t pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* Its own mapping, at another address. */
		void *m = mmap(nullptr, g.mid_len, PROT_READ | PROT_WRITE,
			       MAP_SHARED, g.fd, 0);
		if (m == MAP_FAILED)
			_exit(2);
		scribble(static_cast<uint8_t *>(m) + ring_off, g.need,
			 (uint32_t)getpid() * 2654435761u, seconds + 40, cs.role);
	}

	Tally t;
	uint32_t seed = 0x1234567u + (uint32_t)cs.role * 77 + cs.at_end;
	/* Run at least `seconds`; on a loaded machine the hostile process may
	 * not have been scheduled yet, so go on (up to 30 s more) until both
	 * a corruption report and some traffic were seen. */
	double end = now_s() + seconds, hard_end = end + 30;
	while (!HasFatalFailure() &&
	       (now_s() < end ||
		((t.eproto == 0 || t.moved == 0) && now_s() < hard_end))) {
		for (int i = 0; i < 256 && !HasFatalFailure(); i++) {
			if (cs.role == IVSHM_RING_CONSUMER)
				consumer_step(g, &me, &seed, &t);
			else
				producer_step(g, &me, &seed, &t);
		}
	}
	kill(pid, SIGKILL);
	int status;
	EXPECT_EQ(waitpid(pid, &status, 0), pid);
	EXPECT_TRUE(WIFSIGNALED(status)) << "hostile peer ended early: " << status;

	/* Bytes of the mapping around the ring are untouched. */
	for (uint8_t *b = g.mid; b < g.ring; b++)
		ASSERT_EQ(*b, 0xcc) << "before the ring at " << (b - g.mid);
	for (uint8_t *b = g.ring + g.need; b < g.mid + g.mid_len; b++)
		ASSERT_EQ(*b, 0xcc) << "after the ring at " << (b - g.mid);
	EXPECT_GT(t.eproto, 0u) << "corruption never reported";
	EXPECT_GT(t.moved, 0u) << "the ring never moved anything";
	printf("%llu calls: %llu -EPROTO, %llu elements moved\n",
	       (unsigned long long)t.calls, (unsigned long long)t.eproto,
	       (unsigned long long)t.moved);
	teardown(&g);
}

INSTANTIATE_TEST_SUITE_P(
	Roles, RingHostilePeer,
	::testing::Values(Case{IVSHM_RING_CONSUMER, true},
			  Case{IVSHM_RING_CONSUMER, false},
			  Case{IVSHM_RING_PRODUCER, true},
			  Case{IVSHM_RING_PRODUCER, false}),
	[](const ::testing::TestParamInfo<Case> &i) {
		return std::string(i.param.role == IVSHM_RING_CONSUMER ? "Consumer"
								       : "Producer") +
		       (i.param.at_end ? "GuardAfter" : "GuardBefore");
	});

} // namespace
