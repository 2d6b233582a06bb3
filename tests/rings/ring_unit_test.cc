/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ring_unit_test.cc - Description: functional tests of the SPSC ring
 * through its public API, in one process: geometry and argument checks,
 * empty/full, wrap-around (including the 2^32 index wrap), bursts larger
 * than the free space, capacity and element-size edges, the zero-copy
 * reserve/commit and peek/release pairs, the wake-flag handshake, and
 * corrupt indices written by a "peer" (reported as -EPROTO, never used).
 * Every moved element is checked byte for byte against a model.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#include <deque>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "ivshm/ring.h"
#include "ring_test_util.h"

extern "C" size_t ivshm_test_ring_layout(int what);

using namespace ringtest;

namespace {

/* A formatted ring with a producer and a consumer handle on one area. */
struct Pair {
	Area area;
	uint32_t cap, esz;
	struct ivshm_ring prod, cons;
	Pair(uint32_t capacity, uint32_t elem_size, uint32_t start_idx = 0)
	    : area(ivshm_ring_memsize(capacity, elem_size)), cap(capacity),
	      esz(elem_size)
	{
		EXPECT_NE(area.len, 0u);
		EXPECT_EQ(ivshm_ring_format(area.mem, area.len, cap, esz), 0);
		poke(area.mem, kOffProd, start_idx);
		poke(area.mem, kOffCons, start_idx);
		EXPECT_EQ(ivshm_ring_attach(&prod, area.mem, area.len, cap, esz,
					    IVSHM_RING_PRODUCER), 0);
		EXPECT_EQ(ivshm_ring_attach(&cons, area.mem, area.len, cap, esz,
					    IVSHM_RING_CONSUMER), 0);
	}
};

std::vector<uint8_t> stamps(uint32_t esz, uint64_t first, uint32_t n)
{
	std::vector<uint8_t> v((size_t)esz * n);
	for (uint32_t i = 0; i < n; i++)
		stamp(&v[(size_t)i * esz], esz, first + i);
	return v;
}

void expect_stamps(const std::vector<uint8_t> &v, uint32_t esz,
		   uint64_t first, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		ASSERT_TRUE(stamp_ok(&v[(size_t)i * esz], esz, first + i))
			<< "element " << i << " seq " << first + i;
}

} // namespace

TEST(RingLayout, MirrorMatchesLayoutHeader)
{
	EXPECT_EQ(ivshm_test_ring_layout(0), kCtrlSize);
	EXPECT_EQ(ivshm_test_ring_layout(1), kOffMagic);
	EXPECT_EQ(ivshm_test_ring_layout(2), kOffCapacity);
	EXPECT_EQ(ivshm_test_ring_layout(3), kOffElemSize);
	EXPECT_EQ(ivshm_test_ring_layout(4), kOffProd);
	EXPECT_EQ(ivshm_test_ring_layout(5), kOffCons);
	EXPECT_EQ(ivshm_test_ring_layout(6), kOffWake);
	/* Separate lines, with a guard line between the two indices. */
	EXPECT_GE(kOffCons - kOffProd, 128u);
}

TEST(RingGeometry, MemsizeAcceptsOnlyValidGeometry)
{
	EXPECT_EQ(ivshm_ring_memsize(1, 8), kCtrlSize + 8);
	EXPECT_EQ(ivshm_ring_memsize(2, 16), kCtrlSize + 32);
	EXPECT_EQ(ivshm_ring_memsize(1024, 4096), kCtrlSize + 1024u * 4096u);
	EXPECT_EQ(ivshm_ring_memsize(IVSHM_RING_MAX_CAPACITY, 8),
		  kCtrlSize + (size_t)IVSHM_RING_MAX_CAPACITY * 8);
	EXPECT_EQ(ivshm_ring_memsize(IVSHM_RING_MAX_CAPACITY,
				     IVSHM_RING_MAX_ELEM_SIZE),
		  kCtrlSize + (size_t)IVSHM_RING_MAX_CAPACITY *
				      IVSHM_RING_MAX_ELEM_SIZE);
	/* capacity: zero, not a power of two, too large */
	EXPECT_EQ(ivshm_ring_memsize(0, 8), 0u);
	EXPECT_EQ(ivshm_ring_memsize(3, 8), 0u);
	EXPECT_EQ(ivshm_ring_memsize(1000, 8), 0u);
	EXPECT_EQ(ivshm_ring_memsize(IVSHM_RING_MAX_CAPACITY * 2u, 8), 0u);
	EXPECT_EQ(ivshm_ring_memsize(0x80000000u, 8), 0u);
	EXPECT_EQ(ivshm_ring_memsize(0xffffffffu, 8), 0u);
	/* element size: zero, below 8, not a multiple of 8, too large */
	EXPECT_EQ(ivshm_ring_memsize(8, 0), 0u);
	EXPECT_EQ(ivshm_ring_memsize(8, 4), 0u);
	EXPECT_EQ(ivshm_ring_memsize(8, 12), 0u);
	EXPECT_EQ(ivshm_ring_memsize(8, 17), 0u);
	EXPECT_EQ(ivshm_ring_memsize(8, IVSHM_RING_MAX_ELEM_SIZE + 8), 0u);
	EXPECT_EQ(ivshm_ring_memsize(8, 0xfffffff8u), 0u);
}

TEST(RingGeometry, FormatRejectsBadArguments)
{
	Area a(ivshm_ring_memsize(16, 16) + 64);
	ASSERT_NE(a.mem, nullptr);
	size_t need = ivshm_ring_memsize(16, 16);
	EXPECT_EQ(ivshm_ring_format(nullptr, need, 16, 16), -EINVAL);
	EXPECT_EQ(ivshm_ring_format(a.mem, need - 1, 16, 16), -EINVAL);
	EXPECT_EQ(ivshm_ring_format(a.mem, 0, 16, 16), -EINVAL);
	EXPECT_EQ(ivshm_ring_format(static_cast<uint8_t *>(a.mem) + 8, need,
				    16, 16), -EINVAL);
	EXPECT_EQ(ivshm_ring_format(a.mem, need, 15, 16), -EINVAL);
	EXPECT_EQ(ivshm_ring_format(a.mem, need, 16, 12), -EINVAL);
	EXPECT_EQ(ivshm_ring_format(a.mem, need, 0, 16), -EINVAL);
	/* Nothing was written by the failed calls. */
	for (size_t i = 0; i < a.len; i++)
		ASSERT_EQ(static_cast<uint8_t *>(a.mem)[i], 0xa5) << i;
	EXPECT_EQ(ivshm_ring_format(a.mem, need, 16, 16), 0);
	EXPECT_EQ(peek_word(a.mem, kOffProd), 0u);
	EXPECT_EQ(peek_word(a.mem, kOffCons), 0u);
	EXPECT_EQ(peek_word(a.mem, kOffWake), 0u);
	EXPECT_EQ(peek_word(a.mem, kOffCapacity), 16u);
	EXPECT_EQ(peek_word(a.mem, kOffElemSize), 16u);
}

TEST(RingGeometry, AttachRejectsBadArguments)
{
	size_t need = ivshm_ring_memsize(16, 16);
	Area a(need + 64);
	struct ivshm_ring r;
	ASSERT_EQ(ivshm_ring_format(a.mem, need, 16, 16), 0);
	EXPECT_EQ(ivshm_ring_attach(nullptr, a.mem, need, 16, 16,
				    IVSHM_RING_PRODUCER), -EINVAL);
	EXPECT_EQ(ivshm_ring_attach(&r, nullptr, need, 16, 16,
				    IVSHM_RING_PRODUCER), -EINVAL);
	EXPECT_EQ(ivshm_ring_attach(&r, a.mem, need - 1, 16, 16,
				    IVSHM_RING_PRODUCER), -EINVAL);
	EXPECT_EQ(ivshm_ring_attach(&r, static_cast<uint8_t *>(a.mem) + 32,
				    need, 16, 16, IVSHM_RING_PRODUCER), -EINVAL);
	EXPECT_EQ(ivshm_ring_attach(&r, a.mem, need, 16, 16,
				    (enum ivshm_ring_role)0), -EINVAL);
	EXPECT_EQ(ivshm_ring_attach(&r, a.mem, need, 16, 16,
				    (enum ivshm_ring_role)3), -EINVAL);
	EXPECT_EQ(ivshm_ring_attach(&r, a.mem, need, 12, 16,
				    IVSHM_RING_PRODUCER), -EINVAL);
	/* Valid geometry, but not the one in the block. */
	EXPECT_EQ(ivshm_ring_attach(&r, a.mem, need, 8, 16,
				    IVSHM_RING_PRODUCER), -EPROTO);
	EXPECT_EQ(ivshm_ring_attach(&r, a.mem, need, 16, 8,
				    IVSHM_RING_CONSUMER), -EPROTO);
	EXPECT_EQ(ivshm_ring_attach(&r, a.mem, need, 16, 16,
				    IVSHM_RING_PRODUCER), 0);
}

TEST(RingGeometry, AttachRejectsCorruptBlock)
{
	size_t need = ivshm_ring_memsize(16, 16);
	Area a(need);
	struct ivshm_ring r;

	/* Never formatted. */
	EXPECT_EQ(ivshm_ring_attach(&r, a.mem, need, 16, 16,
				    IVSHM_RING_CONSUMER), -EPROTO);
	ASSERT_EQ(ivshm_ring_format(a.mem, need, 16, 16), 0);
	/* Magic scribbled. */
	poke(a.mem, kOffMagic, 0x12345678);
	EXPECT_EQ(ivshm_ring_attach(&r, a.mem, need, 16, 16,
				    IVSHM_RING_CONSUMER), -EPROTO);
	ASSERT_EQ(ivshm_ring_format(a.mem, need, 16, 16), 0);
	/* Geometry scribbled to something larger than the area. */
	poke(a.mem, kOffCapacity, 1u << 20);
	EXPECT_EQ(ivshm_ring_attach(&r, a.mem, need, 16, 16,
				    IVSHM_RING_CONSUMER), -EPROTO);
	ASSERT_EQ(ivshm_ring_format(a.mem, need, 16, 16), 0);
	/* Producer more than capacity ahead of the consumer. */
	poke(a.mem, kOffProd, 17);
	EXPECT_EQ(ivshm_ring_attach(&r, a.mem, need, 16, 16,
				    IVSHM_RING_CONSUMER), -EPROTO);
	EXPECT_EQ(ivshm_ring_attach(&r, a.mem, need, 16, 16,
				    IVSHM_RING_PRODUCER), -EPROTO);
	/* Consumer ahead of the producer. */
	poke(a.mem, kOffProd, 5);
	poke(a.mem, kOffCons, 6);
	EXPECT_EQ(ivshm_ring_attach(&r, a.mem, need, 16, 16,
				    IVSHM_RING_CONSUMER), -EPROTO);
	/* Exactly full is consistent, also across the 2^32 wrap. */
	poke(a.mem, kOffProd, 8);
	poke(a.mem, kOffCons, 0xfffffff8u);
	EXPECT_EQ(ivshm_ring_attach(&r, a.mem, need, 16, 16,
				    IVSHM_RING_CONSUMER), 0);
	EXPECT_EQ(ivshm_ring_count(&r), 16);
}

TEST(RingSpsc, EmptyRingDequeuesNothing)
{
	Pair p(8, 16);
	std::vector<uint8_t> out(16 * 8, 0x5a);
	uint32_t start = 7;
	EXPECT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data(), 8), 0);
	EXPECT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data(), 1), 0);
	EXPECT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data(), 0), 0);
	EXPECT_EQ(ivshm_ring_peek(&p.cons, 4, &start), 0);
	EXPECT_EQ(ivshm_ring_count(&p.cons), 0);
	EXPECT_EQ(ivshm_ring_count(&p.prod), 0);
	for (uint8_t b : out)
		ASSERT_EQ(b, 0x5a);
	EXPECT_EQ(ivshm_ring_capacity(&p.cons), 8u);
	EXPECT_EQ(ivshm_ring_elem_size(&p.prod), 16u);
}

TEST(RingSpsc, FullRingRejectsEnqueue)
{
	Pair p(8, 16);
	auto in = stamps(16, 0, 9);
	EXPECT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data(), 8), 8);
	EXPECT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data() + 8 * 16, 1), 0);
	uint32_t start;
	EXPECT_EQ(ivshm_ring_reserve(&p.prod, 1, &start), 0);
	EXPECT_EQ(ivshm_ring_count(&p.prod), 8);
	EXPECT_EQ(ivshm_ring_count(&p.cons), 8);
	std::vector<uint8_t> out(16 * 9);
	EXPECT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data(), 9), 8);
	expect_stamps(out, 16, 0, 8);
	/* Room again after the consumer released. */
	EXPECT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data() + 8 * 16, 1), 1);
	EXPECT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data(), 9), 1);
	expect_stamps(out, 16, 8, 1);
}

TEST(RingSpsc, BurstLargerThanFreeSpaceIsCut)
{
	Pair p(8, 16);
	auto in = stamps(16, 0, 20);
	std::vector<uint8_t> out(16 * 20);
	EXPECT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data(), 3), 3);
	EXPECT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data() + 3 * 16, 10), 5);
	EXPECT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data(), 2), 2);
	/* Cached consumer index says full; the producer must re-read. */
	EXPECT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data() + 8 * 16, 12), 2);
	EXPECT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data() + 2 * 16, 20), 8);
	expect_stamps(out, 16, 0, 10);
}

/* Random bursts against a model, starting at index `start` (near 2^32 to
 * cross the index wrap, whose distance maths must hold). */
static void run_model(uint32_t cap, uint32_t esz, uint32_t start,
		      uint32_t rounds, uint32_t seed)
{
	Pair p(cap, esz, start);
	std::mt19937 rng(seed);
	uint64_t next_in = 0, next_out = 0;
	std::vector<uint8_t> buf;
	for (uint32_t i = 0; i < rounds; i++) {
		uint32_t n = rng() % (2 * cap + 2);
		int mode = rng() % 4;
		if (rng() % 2) {
			uint32_t room = cap - (uint32_t)(next_in - next_out);
			uint32_t want = n < room ? n : room;
			if (mode == 0) {
				uint32_t st;
				int got = ivshm_ring_reserve(&p.prod, n, &st);
				ASSERT_EQ(got, (int)want);
				ASSERT_EQ(st, start + (uint32_t)next_in);
				for (int k = 0; k < got; k++)
					stamp(ivshm_ring_slot(&p.prod, st + k),
					      esz, next_in + k);
				ASSERT_EQ(ivshm_ring_commit(&p.prod, got), 0);
			} else {
				buf = stamps(esz, next_in, n);
				ASSERT_EQ(ivshm_ring_enqueue_burst(
						  &p.prod, buf.data(), n),
					  (int)want);
			}
			next_in += want;
		} else {
			uint32_t have = (uint32_t)(next_in - next_out);
			uint32_t want = n < have ? n : have;
			if (mode == 0) {
				uint32_t st;
				int got = ivshm_ring_peek(&p.cons, n, &st);
				ASSERT_EQ(got, (int)want);
				ASSERT_EQ(st, start + (uint32_t)next_out);
				for (int k = 0; k < got; k++)
					ASSERT_TRUE(stamp_ok(
						ivshm_ring_slot(&p.cons, st + k),
						esz, next_out + k));
				ASSERT_EQ(ivshm_ring_release(&p.cons, got), 0);
			} else {
				buf.assign((size_t)esz * (n + 1), 0xee);
				ASSERT_EQ(ivshm_ring_dequeue_burst(
						  &p.cons, buf.data(), n),
					  (int)want);
				expect_stamps(buf, esz, next_out, want);
				/* Nothing written past the returned count. */
				for (size_t b = (size_t)want * esz;
				     b < buf.size(); b++)
					ASSERT_EQ(buf[b], 0xee);
			}
			next_out += want;
		}
		ASSERT_EQ(ivshm_ring_count(&p.cons), (int)(next_in - next_out));
		ASSERT_EQ(peek_word(p.area.mem, kOffProd),
			  start + (uint32_t)next_in);
		ASSERT_EQ(peek_word(p.area.mem, kOffCons),
			  start + (uint32_t)next_out);
	}
	EXPECT_GT(next_out, (uint64_t)cap * 4) << "ring should wrap several times";
}

TEST(RingSpsc, WrapAroundMatchesModel)
{
	run_model(8, 16, 0, 4000, 1);
	run_model(64, 24, 0, 4000, 2);
}

TEST(RingSpsc, IndexWrapAt2Pow32MatchesModel)
{
	run_model(8, 16, 0xfffffff0u, 4000, 3);
	run_model(16, 8, 0xffffffffu, 4000, 4);
	run_model(1, 16, 0xfffffffeu, 200, 5);
	run_model(4, 32, 0xfffffffcu + 2, 2000, 6);
}

class RingCapacity : public ::testing::TestWithParam<uint32_t> {};

TEST_P(RingCapacity, FillDrainAndWrap)
{
	uint32_t cap = GetParam();
	Pair p(cap, 16, 0xffffffffu - cap / 2);
	auto in = stamps(16, 0, 3 * cap + 1);
	std::vector<uint8_t> out(16 * (3 * cap + 1));
	uint64_t done = 0;
	for (int round = 0; round < 3; round++) {
		ASSERT_EQ(ivshm_ring_enqueue_burst(&p.prod, &in[done * 16],
						   cap + 1), (int)cap);
		ASSERT_EQ(ivshm_ring_enqueue_burst(&p.prod, &in[done * 16], 1), 0);
		ASSERT_EQ(ivshm_ring_count(&p.cons), (int)cap);
		ASSERT_EQ(ivshm_ring_dequeue_burst(&p.cons, &out[done * 16],
						   cap + 1), (int)cap);
		ASSERT_EQ(ivshm_ring_dequeue_burst(&p.cons, &out[done * 16], 1), 0);
		done += cap;
	}
	out.resize(done * 16);
	expect_stamps(out, 16, 0, (uint32_t)done);
}

INSTANTIATE_TEST_SUITE_P(Edges, RingCapacity,
			 ::testing::Values(1u, 2u, 4u, 32u, 1024u, 65536u));

TEST(RingCapacity, MaxCapacityWrapsAtLastSlot)
{
	/* 2^28 slots of 8 bytes = 2 GiB: reserve address space only; only
	 * the control block and the pages of the first and last slots are
	 * ever touched. */
	const uint32_t cap = IVSHM_RING_MAX_CAPACITY;
	size_t need = ivshm_ring_memsize(cap, 8);
	ASSERT_NE(need, 0u);
	void *mem = mmap(nullptr, need, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(mem, MAP_FAILED);
	ASSERT_EQ(ivshm_ring_format(mem, need, cap, 8), 0);
	/* Start 3 slots before the end of the slot array, and at an index
	 * that crosses 2^32 at the same time. */
	uint32_t start = 0u - 3u;
	poke(mem, kOffProd, start);
	poke(mem, kOffCons, start);
	struct ivshm_ring prod, cons;
	ASSERT_EQ(ivshm_ring_attach(&prod, mem, need, cap, 8,
				    IVSHM_RING_PRODUCER), 0);
	ASSERT_EQ(ivshm_ring_attach(&cons, mem, need, cap, 8,
				    IVSHM_RING_CONSUMER), 0);
	uint64_t in[8], out[8] = {};
	for (int i = 0; i < 8; i++)
		in[i] = 1000 + i;
	EXPECT_EQ(ivshm_ring_enqueue_burst(&prod, in, 8), 8);
	EXPECT_EQ(*static_cast<uint64_t *>(ivshm_ring_slot(&prod, start)), 1000u);
	EXPECT_EQ(*static_cast<uint64_t *>(ivshm_ring_slot(&prod, 0)), 1003u);
	EXPECT_EQ(static_cast<uint8_t *>(ivshm_ring_slot(&prod, start)) + 8,
		  static_cast<uint8_t *>(mem) + need - 16);
	EXPECT_EQ(ivshm_ring_count(&cons), 8);
	EXPECT_EQ(ivshm_ring_dequeue_burst(&cons, out, 8), 8);
	for (int i = 0; i < 8; i++)
		EXPECT_EQ(out[i], in[i]);
	/* Capacity arithmetic at the maximum: room is 2^28 exactly. */
	uint32_t st;
	EXPECT_EQ(ivshm_ring_reserve(&prod, 0xffffffffu, &st), (int)cap);
	EXPECT_EQ(ivshm_ring_commit(&prod, 0), 0);
	munmap(mem, need);
}

class RingElemSize : public ::testing::TestWithParam<uint32_t> {};

TEST_P(RingElemSize, RoundTripsEveryByte)
{
	uint32_t esz = GetParam();
	run_model(4, esz, 0xfffffffdu, 300, esz);
}

INSTANTIATE_TEST_SUITE_P(Edges, RingElemSize,
			 ::testing::Values(8u, 16u, 24u, 64u, 72u, 4088u,
					   IVSHM_RING_MAX_ELEM_SIZE));

TEST(RingSpsc, ReattachContinuesWhereTheRingIs)
{
	Pair p(16, 16);
	auto in = stamps(16, 0, 10);
	std::vector<uint8_t> out(16 * 10);
	ASSERT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data(), 10), 10);
	ASSERT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data(), 4), 4);
	struct ivshm_ring c2, p2;
	ASSERT_EQ(ivshm_ring_attach(&c2, p.area.mem, p.area.len, 16, 16,
				    IVSHM_RING_CONSUMER), 0);
	ASSERT_EQ(ivshm_ring_attach(&p2, p.area.mem, p.area.len, 16, 16,
				    IVSHM_RING_PRODUCER), 0);
	EXPECT_EQ(ivshm_ring_count(&p2), 6);
	ASSERT_EQ(ivshm_ring_dequeue_burst(&c2, out.data() + 4 * 16, 10), 6);
	expect_stamps(out, 16, 0, 10);
}

TEST(RingZeroCopy, ReserveCommitPeekRelease)
{
	Pair p(8, 16);
	uint32_t s1, s2, s3;
	ASSERT_EQ(ivshm_ring_reserve(&p.prod, 3, &s1), 3);
	ASSERT_EQ(ivshm_ring_reserve(&p.prod, 2, &s2), 2);
	EXPECT_EQ(s2, s1 + 3);
	for (uint32_t i = 0; i < 5; i++)
		stamp(ivshm_ring_slot(&p.prod, s1 + i), 16, 100 + i);
	/* Nothing is visible before commit. */
	EXPECT_EQ(ivshm_ring_count(&p.cons), 0);
	EXPECT_EQ(ivshm_ring_peek(&p.cons, 8, &s3), 0);
	/* Partial commit publishes the first ones only. */
	ASSERT_EQ(ivshm_ring_commit(&p.prod, 4), 0);
	EXPECT_EQ(peek_word(p.area.mem, kOffProd), 4u);
	/* Over-commit: only one left reserved. */
	EXPECT_EQ(ivshm_ring_commit(&p.prod, 2), -EINVAL);
	EXPECT_EQ(peek_word(p.area.mem, kOffProd), 4u);
	/* Copying enqueue while a reservation is open would publish it. */
	auto in = stamps(16, 0, 1);
	EXPECT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data(), 1), -EBUSY);
	/* Reserve is cut by the space reserved already: 8 - 4 - 1. */
	ASSERT_EQ(ivshm_ring_reserve(&p.prod, 8, &s3), 3);
	EXPECT_EQ(s3, s1 + 5);
	for (uint32_t i = 5; i < 8; i++)
		stamp(ivshm_ring_slot(&p.prod, s1 + i), 16, 100 + i);
	ASSERT_EQ(ivshm_ring_commit(&p.prod, 1), 0);
	EXPECT_EQ(ivshm_ring_commit(&p.prod, 4), -EINVAL);
	ASSERT_EQ(ivshm_ring_commit(&p.prod, 3), 0);
	EXPECT_EQ(ivshm_ring_commit(&p.prod, 1), -EINVAL);
	EXPECT_EQ(ivshm_ring_commit(&p.prod, 0), 0);

	uint32_t c1, c2;
	ASSERT_EQ(ivshm_ring_peek(&p.cons, 3, &c1), 3);
	EXPECT_EQ(c1, s1);
	ASSERT_EQ(ivshm_ring_peek(&p.cons, 10, &c2), 5);
	EXPECT_EQ(c2, c1 + 3);
	for (uint32_t i = 0; i < 8; i++)
		ASSERT_TRUE(stamp_ok(ivshm_ring_slot(&p.cons, c1 + i), 16,
				     100 + i));
	std::vector<uint8_t> out(16);
	EXPECT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data(), 1), -EBUSY);
	EXPECT_EQ(ivshm_ring_release(&p.cons, 9), -EINVAL);
	/* Partial release hands back the first slots only. */
	ASSERT_EQ(ivshm_ring_release(&p.cons, 2), 0);
	EXPECT_EQ(peek_word(p.area.mem, kOffCons), 2u);
	EXPECT_EQ(ivshm_ring_count(&p.prod), 6);
	ASSERT_EQ(ivshm_ring_release(&p.cons, 6), 0);
	EXPECT_EQ(ivshm_ring_release(&p.cons, 1), -EINVAL);
	EXPECT_EQ(ivshm_ring_count(&p.prod), 0);
	EXPECT_EQ(ivshm_ring_count(&p.cons), 0);
}

TEST(RingArgs, EmptyBurstsTouchNothing)
{
	Pair p(4, 16);
	auto in = stamps(16, 0, 4);
	/* n == 0 with no buffer at all: 0, on an empty and on a full ring. */
	EXPECT_EQ(ivshm_ring_enqueue_burst(&p.prod, nullptr, 0), 0);
	EXPECT_EQ(ivshm_ring_dequeue_burst(&p.cons, nullptr, 0), 0);
	ASSERT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data(), 4), 4);
	EXPECT_EQ(ivshm_ring_enqueue_burst(&p.prod, nullptr, 0), 0);
	EXPECT_EQ(ivshm_ring_dequeue_burst(&p.cons, nullptr, 0), 0);
	uint32_t st = 99;
	EXPECT_EQ(ivshm_ring_reserve(&p.prod, 0, &st), 0);
	EXPECT_EQ(ivshm_ring_peek(&p.cons, 0, &st), 0);
	EXPECT_EQ(ivshm_ring_release(&p.cons, 0), 0);
	EXPECT_EQ(peek_word(p.area.mem, kOffProd), 4u);
	EXPECT_EQ(peek_word(p.area.mem, kOffCons), 0u);
	std::vector<uint8_t> out(16 * 4);
	ASSERT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data(), 4), 4);
	expect_stamps(out, 16, 0, 4);
}

TEST(RingArgs, WrongRoleIsRejected)
{
	Pair p(8, 16);
	uint8_t buf[16] = {};
	uint32_t st;
	EXPECT_EQ(ivshm_ring_enqueue_burst(&p.cons, buf, 1), -EINVAL);
	EXPECT_EQ(ivshm_ring_reserve(&p.cons, 1, &st), -EINVAL);
	EXPECT_EQ(ivshm_ring_commit(&p.cons, 0), -EINVAL);
	EXPECT_EQ(ivshm_ring_needs_wake(&p.cons), -EINVAL);
	EXPECT_EQ(ivshm_ring_dequeue_burst(&p.prod, buf, 1), -EINVAL);
	EXPECT_EQ(ivshm_ring_peek(&p.prod, 1, &st), -EINVAL);
	EXPECT_EQ(ivshm_ring_release(&p.prod, 0), -EINVAL);
	EXPECT_EQ(ivshm_ring_wake_enable(&p.prod), -EINVAL);
	EXPECT_EQ(ivshm_ring_count(nullptr), -EINVAL);
	EXPECT_EQ(ivshm_ring_wake_enable(nullptr), -EINVAL);
	EXPECT_EQ(ivshm_ring_needs_wake(nullptr), -EINVAL);
	ivshm_ring_wake_disable(nullptr);
	ivshm_ring_wake_disable(&p.prod); /* no effect on the flag */
	EXPECT_EQ(peek_word(p.area.mem, kOffProd), 0u);
	EXPECT_EQ(peek_word(p.area.mem, kOffCons), 0u);
	EXPECT_EQ(peek_word(p.area.mem, kOffWake), 0u);
}

TEST(RingWake, FlagProtocol)
{
	Pair p(8, 16);
	auto in = stamps(16, 0, 4);
	/* Nobody asked: no doorbell. */
	ASSERT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data(), 1), 1);
	EXPECT_EQ(ivshm_ring_needs_wake(&p.prod), 0);
	/* Enable with data pending: do not sleep, flag stays set. */
	EXPECT_EQ(ivshm_ring_wake_enable(&p.cons), 1);
	EXPECT_EQ(peek_word(p.area.mem, kOffWake), 1u);
	ivshm_ring_wake_disable(&p.cons);
	EXPECT_EQ(peek_word(p.area.mem, kOffWake), 0u);
	EXPECT_EQ(ivshm_ring_needs_wake(&p.prod), 0);
	std::vector<uint8_t> out(16 * 4);
	ASSERT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data(), 4), 1);
	/* Enable on an empty ring: safe to sleep. */
	EXPECT_EQ(ivshm_ring_wake_enable(&p.cons), 0);
	/* The next publish asks for exactly one doorbell. */
	ASSERT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data() + 16, 1), 1);
	EXPECT_EQ(ivshm_ring_needs_wake(&p.prod), 1);
	EXPECT_EQ(peek_word(p.area.mem, kOffWake), 0u);
	ASSERT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data() + 32, 1), 1);
	EXPECT_EQ(ivshm_ring_needs_wake(&p.prod), 0);
	/* Peeked elements are not counted as available again. */
	uint32_t st;
	ASSERT_EQ(ivshm_ring_peek(&p.cons, 1, &st), 1);
	EXPECT_EQ(ivshm_ring_wake_enable(&p.cons), 1);
	ASSERT_EQ(ivshm_ring_peek(&p.cons, 1, &st), 1);
	EXPECT_EQ(ivshm_ring_wake_enable(&p.cons), 0);
	ASSERT_EQ(ivshm_ring_release(&p.cons, 2), 0);
	EXPECT_EQ(ivshm_ring_needs_wake(&p.prod), 1);
	/* Any non-zero flag a peer writes means "wake": harmless to us. */
	poke(p.area.mem, kOffWake, 0xdeadbeef);
	EXPECT_EQ(ivshm_ring_needs_wake(&p.prod), 1);
	EXPECT_EQ(ivshm_ring_needs_wake(&p.prod), 0);
}

TEST(RingHostile, ConsumerRejectsImpossibleProducerIndex)
{
	Pair p(8, 16);
	auto in = stamps(16, 0, 4);
	std::vector<uint8_t> out(16 * 8, 0x77);
	uint32_t st = 0x1234;
	ASSERT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data(), 4), 4);
	ASSERT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data(), 1), 1);
	/* consumer head 1, cached producer 4. A scribble is not seen while
	 * the cached index covers the request: served without looking. */
	poke(p.area.mem, kOffProd, 0xdead);
	ASSERT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data(), 1), 1);
	/* consumer head 2. More than capacity ahead: */
	poke(p.area.mem, kOffProd, 2 + 8 + 1);
	out.assign(out.size(), 0x77);
	EXPECT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data(), 8), -EPROTO);
	EXPECT_EQ(ivshm_ring_peek(&p.cons, 8, &st), -EPROTO);
	EXPECT_EQ(st, 0x1234u);
	EXPECT_EQ(ivshm_ring_count(&p.cons), -EPROTO);
	EXPECT_EQ(ivshm_ring_wake_enable(&p.cons), -EPROTO);
	for (uint8_t b : out)
		ASSERT_EQ(b, 0x77);
	EXPECT_EQ(peek_word(p.area.mem, kOffCons), 2u);
	/* Behind what we already saw (goes backwards): */
	poke(p.area.mem, kOffProd, 3);
	EXPECT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data(), 8), -EPROTO);
	poke(p.area.mem, kOffProd, 0xfffffff0u);
	EXPECT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data(), 8), -EPROTO);
	/* Exactly capacity ahead is legal. */
	poke(p.area.mem, kOffProd, 2 + 8);
	EXPECT_EQ(ivshm_ring_count(&p.cons), 8);
	/* Accepted, so served from the cache (contents are the caller's to
	 * check); a later step backwards to 4 is impossible. */
	ASSERT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data(), 8), 8);
	poke(p.area.mem, kOffProd, 4);
	EXPECT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data(), 8), -EPROTO)
		<< "producer index moved backwards after 10 was accepted";
	EXPECT_EQ(peek_word(p.area.mem, kOffCons), 10u);
	/* The real producer publishing again restores the ring. */
	poke(p.area.mem, kOffProd, 12);
	EXPECT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data(), 8), 2);
}

TEST(RingHostile, ProducerRejectsImpossibleConsumerIndex)
{
	Pair p(8, 16);
	auto in = stamps(16, 0, 16);
	uint32_t st = 0x4321;
	ASSERT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data(), 8), 8);
	/* Consumer claims to have consumed more than was published. */
	poke(p.area.mem, kOffCons, 9);
	EXPECT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data(), 1), -EPROTO);
	EXPECT_EQ(ivshm_ring_reserve(&p.prod, 1, &st), -EPROTO);
	EXPECT_EQ(st, 0x4321u);
	EXPECT_EQ(ivshm_ring_count(&p.prod), -EPROTO);
	EXPECT_EQ(peek_word(p.area.mem, kOffProd), 8u);
	poke(p.area.mem, kOffCons, 0x80000000u);
	EXPECT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data(), 1), -EPROTO);
	poke(p.area.mem, kOffCons, 0xffffffffu);
	EXPECT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data(), 1), -EPROTO);
	/* A legal value: room again. */
	poke(p.area.mem, kOffCons, 3);
	EXPECT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data() + 8 * 16, 8), 3);
	/* Going backwards from 3 is impossible. */
	poke(p.area.mem, kOffCons, 2);
	EXPECT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data(), 1), -EPROTO);
	EXPECT_EQ(peek_word(p.area.mem, kOffProd), 11u);
}

TEST(RingHostile, OwnIndexIsNeverReadBack)
{
	Pair p(8, 16);
	auto in = stamps(16, 0, 8);
	std::vector<uint8_t> out(16 * 8);
	ASSERT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data(), 2), 2);
	/* A peer scribbles the producer's own word: the producer keeps its
	 * local index and overwrites the word at the next publish. */
	poke(p.area.mem, kOffProd, 0x7777777);
	ASSERT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data() + 32, 1), 1);
	EXPECT_EQ(peek_word(p.area.mem, kOffProd), 3u);
	ASSERT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data(), 1), 1);
	poke(p.area.mem, kOffCons, 0x5555);
	ASSERT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data() + 16, 8), 2);
	EXPECT_EQ(peek_word(p.area.mem, kOffCons), 3u);
	expect_stamps(out, 16, 0, 3);
	/* Geometry scribbled after attach is never read again. */
	poke(p.area.mem, kOffCapacity, 1u << 27);
	poke(p.area.mem, kOffElemSize, 4096);
	ASSERT_EQ(ivshm_ring_enqueue_burst(&p.prod, in.data(), 8), 8);
	ASSERT_EQ(ivshm_ring_dequeue_burst(&p.cons, out.data(), 8), 8);
	expect_stamps(out, 16, 0, 8);
}
