// SPDX-License-Identifier: BSD-3-Clause
// Description: unit tests of the transport over a plain shared file
// ("shm:"): parameter checks and sizes, side claiming, link up/down, copy
// and zero-copy bursts with chained jumbo packets (every byte checked),
// close/reopen, hostile descriptors and indices written straight into the
// region, and the channel reset that recovers from them.
// transport.h first and alone: it must compile by itself as C++.
#include "ivshm/transport.h"

#include <gtest/gtest.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "ivshm/ivshmem.h"
#include "ivshm/ring.h"
#include "ivshm/transport.h"
#include "tp_test_util.h"

extern "C" int ivshm_tp_header_c_probe(void);

namespace {

constexpr uint64_t kRegion = 8u << 20;

TEST(TransportHeader, CompilesAloneAsCAndCxx)
{
	EXPECT_EQ(ivshm_tp_header_c_probe(), (int)sizeof(ivshm_transport_stats));
}

class TransportShm : public ::testing::Test {
protected:
	void SetUp() override { path_ = tp::unique_shm("u"); }
	void TearDown() override
	{
		for (auto *c : chans_)
			ivshm_transport_close(c);
		for (auto *e : eps_)
			ivshm_endpoint_close(e);
		unlink(path_.c_str());
	}
	ivshm_endpoint *ep(uint64_t size = kRegion)
	{
		ivshm_endpoint_params p = {};
		p.size = size;
		ivshm_endpoint *e = nullptr;
		std::string d = "shm:" + path_;
		EXPECT_EQ(ivshm_endpoint_open(d.c_str(), &p, &e), 0);
		if (e)
			eps_.push_back(e);
		return e;
	}
	ivshm_channel *open(ivshm_endpoint *e, uint32_t id,
			    const ivshm_transport_params *p, int expect = 0)
	{
		ivshm_channel *c = nullptr;
		EXPECT_EQ(ivshm_transport_open(e, id, p, &c), expect);
		if (c)
			chans_.push_back(c);
		return c;
	}
	void close(ivshm_channel *c)
	{
		for (auto it = chans_.begin(); it != chans_.end(); ++it)
			if (*it == c) {
				chans_.erase(it);
				break;
			}
		ivshm_transport_close(c);
	}
	std::string path_;
	std::vector<ivshm_endpoint *> eps_;
	std::vector<ivshm_channel *> chans_;
};

ivshm_transport_params small_params()
{
	ivshm_transport_params p = {};
	p.ring_size = 64;
	p.buf_size = 2048;
	p.peer_timeout_ms = 300;
	return p;
}

// Send packets [seq0, seq0+n) one burst at a time and receive them on the
// other side, checking every byte.
void pump(ivshm_channel *tx, ivshm_channel *rx, uint16_t q, uint64_t seq0,
	  uint64_t n, uint32_t maxlen)
{
	std::vector<uint8_t> out(16 * 9728), in(16 * 9728);
	uint64_t sent = seq0, got = seq0;
	uint64_t end = seq0 + n, deadline = tp::now_ms() + 20000;

	while (got < end && tp::now_ms() < deadline) {
		ivshm_transport_pkt pk[16];
		uint16_t k = 0;
		for (; k < 16 && sent + k < end; k++) {
			uint32_t len = tp::pkt_len(1, sent + k, maxlen);
			pk[k].data = &out[k * 9728];
			pk[k].len = tp::fill_pkt(&out[k * 9728], sent + k, len);
		}
		if (k)
			sent += ivshm_transport_tx_burst(tx, q, pk, k);
		ivshm_transport_pkt rp[16];
		for (int i = 0; i < 16; i++) {
			rp[i].data = &in[i * 9728];
			rp[i].len = 9728;
		}
		uint16_t r = ivshm_transport_rx_burst(rx, q, rp, 16);
		for (uint16_t i = 0; i < r; i++, got++) {
			ASSERT_EQ(rp[i].len, tp::pkt_len(1, got, maxlen));
			ASSERT_TRUE(tp::check_pkt((uint8_t *)rp[i].data, rp[i].len,
						  got))
				<< "packet " << got;
		}
	}
	ASSERT_EQ(got, end);
}

TEST(TransportParams, SizesAndValidation)
{
	ivshm_transport_params p = {};
	uint64_t def = ivshm_transport_channel_memsize(&p);
	// 2 directions x 1024 buffers x (2048 + 64 bytes of padding: an odd
	// number of cache lines per buffer) plus rings.
	EXPECT_EQ(def, 4096ull * 5 + 2ull * 1024 * 2112);
	EXPECT_EQ(ivshm_transport_channel_memsize(nullptr), def);
	uint64_t r = ivshm_transport_region_size(1, &p);
	EXPECT_GE(r, def + 40960);
	EXPECT_EQ(r & (r - 1), 0u);

	p.ring_size = 1000; // not a power of two
	EXPECT_EQ(ivshm_transport_channel_memsize(&p), 0u);
	p.ring_size = 64;
	p.buf_size = 100; // not a multiple of 64
	EXPECT_EQ(ivshm_transport_channel_memsize(&p), 0u);
	p.buf_size = 128;
	p.max_pkt_len = 9000; // 71 buffers > ring/2
	EXPECT_EQ(ivshm_transport_channel_memsize(&p), 0u);
	p.buf_size = 2048;
	p.nb_queues = 17;
	EXPECT_EQ(ivshm_transport_channel_memsize(&p), 0u);
	p.nb_queues = 16;
	EXPECT_GT(ivshm_transport_channel_memsize(&p), 0u);
	p.rx_mode = (ivshm_transport_rx_mode)7;
	EXPECT_EQ(ivshm_transport_channel_memsize(&p), 0u);
	p.rx_mode = IVSHM_TRANSPORT_RX_POLL;
	p.tx_copy = (ivshm_copy_policy)3;
	EXPECT_EQ(ivshm_transport_channel_memsize(&p), 0u);
	p.tx_copy = IVSHM_COPY_STREAM;
	EXPECT_GT(ivshm_transport_channel_memsize(&p), 0u);
}

TEST_F(TransportShm, OpenRejectsBadArgumentsAndTooSmallRegions)
{
	ivshm_endpoint *e = ep(1u << 20);
	ivshm_transport_params p = {};
	ivshm_channel *c = nullptr;
	EXPECT_EQ(ivshm_transport_open(e, IVSHM_TRANSPORT_MAX_CHANNELS, &p, &c),
		  -EINVAL);
	EXPECT_EQ(ivshm_transport_open(nullptr, 0, &p, &c), -EINVAL);
	// The default channel (about 4 MiB) does not fit in 1 MiB.
	EXPECT_EQ(ivshm_transport_open(e, 0, &p, &c), -ENOSPC);
	p = small_params();
	c = open(e, 0, &p);
	ASSERT_NE(c, nullptr);
	// Channels are allocated until the region is full.
	int ok = 1, i = 1;
	for (; i < 64 && ok; i++) {
		ivshm_channel *d = nullptr;
		int ret = ivshm_transport_open(e, (uint32_t)i, &p, &d);
		if (ret == 0)
			chans_.push_back(d);
		else {
			EXPECT_EQ(ret, -ENOSPC);
			ok = 0;
		}
	}
	EXPECT_EQ(ok, 0) << "a 1 MiB region cannot hold 64 channels";
}

TEST_F(TransportShm, SidesLinkAndParamsMustMatch)
{
	ivshm_endpoint *e1 = ep(), *e2 = ep(), *e3 = ep();
	ivshm_transport_params p = small_params();
	ivshm_channel *a = open(e1, 3, &p);
	ASSERT_NE(a, nullptr);
	EXPECT_EQ(ivshm_transport_side(a), IVSHM_TRANSPORT_SIDE_A);
	EXPECT_EQ(ivshm_transport_link(a), 0);

	ivshm_transport_params bad = p;
	bad.ring_size = 128;
	open(e2, 3, &bad, -EINVAL);

	ivshm_channel *b = open(e2, 3, &p);
	ASSERT_NE(b, nullptr);
	EXPECT_EQ(ivshm_transport_side(b), IVSHM_TRANSPORT_SIDE_B);
	ASSERT_TRUE(tp::wait_link(a, b, 3000));
	EXPECT_EQ(ivshm_transport_link(a), 1);
	EXPECT_EQ(ivshm_transport_link(b), 1);

	// Both sides held by live processes (this one): a third is refused.
	open(e3, 3, &p, -EBUSY);

	ivshm_transport_info ia = {}, ib = {};
	ivshm_transport_info_get(a, &ia);
	ivshm_transport_info_get(b, &ib);
	EXPECT_EQ(ia.mem_offset, ib.mem_offset);
	EXPECT_EQ(ia.region_id, ib.region_id);
	EXPECT_EQ(ia.max_segs, 5u); // 9728 / 2048
	EXPECT_EQ(ia.has_doorbell, 0);
	EXPECT_EQ(ivshm_transport_rx_intr_fd(a, 0), -ENOTSUP);
	EXPECT_EQ(ivshm_transport_rx_intr_enable(a, 0), -ENOTSUP);

	// The link fd has been signalled.
	uint64_t v = 0;
	EXPECT_EQ(read(ivshm_transport_link_fd(a), &v, 8), 8);
	EXPECT_GE(v, 1u);

	ivshm_transport_stats st;
	ivshm_transport_stats_get(a, &st);
	EXPECT_EQ(st.link_ups, 1u);
}

TEST_F(TransportShm, CopyBurstsCarryJumboFramesIntact)
{
	ivshm_endpoint *e1 = ep(), *e2 = ep();
	ivshm_transport_params p = small_params();
	p.nb_queues = 2;
	ivshm_channel *a = open(e1, 0, &p), *b = open(e2, 0, &p);
	ASSERT_TRUE(a && b);
	ASSERT_TRUE(tp::wait_link(a, b, 3000));
	pump(a, b, 0, 0, 20000, 9728);
	pump(b, a, 1, 0, 20000, 9728);
	pump(b, a, 0, 100, 5000, 64);

	ivshm_transport_stats sa, sb;
	ivshm_transport_stats_get(a, &sa);
	ivshm_transport_stats_get(b, &sb);
	EXPECT_EQ(sa.tx[0].packets, 20000u);
	EXPECT_EQ(sb.rx[0].packets, 20000u);
	EXPECT_EQ(sa.tx[0].bytes, sb.rx[0].bytes);
	EXPECT_EQ(sa.tx[0].segments, sb.rx[0].segments);
	EXPECT_GT(sa.tx[0].segments, sa.tx[0].packets); // some were chained
	EXPECT_EQ(sb.tx[1].packets, 20000u);
	EXPECT_EQ(sa.rx[1].packets, 20000u);
	EXPECT_EQ(sa.rx[0].packets, 5000u);
	EXPECT_EQ(sa.rx[0].errors + sb.rx[0].errors + sa.rx[1].errors, 0u);
}

// tx_burst copies with cached stores, streaming stores (whole lines,
// fenced before the index moves), or whichever measures cheaper, switching
// while it runs (ivshm/copy.h): every byte arrives either way, chains
// (always copied cached) included. 40000 packets in bursts of 16 outlast
// the first run of 1024 bursts and its probe.
TEST_F(TransportShm, CopyBurstsUnderEveryTxCopyPolicy)
{
	const ivshm_copy_policy pol[] = {IVSHM_COPY_CACHED, IVSHM_COPY_STREAM,
					 IVSHM_COPY_AUTO};
	uint32_t id = 0;
	for (ivshm_copy_policy c : pol) {
		ivshm_endpoint *e1 = ep(), *e2 = ep();
		ivshm_transport_params p = small_params();
		p.tx_copy = c;
		ivshm_channel *a = open(e1, id, &p), *b = open(e2, id, &p);
		id++;
		ASSERT_TRUE(a && b) << c;
		ASSERT_TRUE(tp::wait_link(a, b, 3000)) << c;
		pump(a, b, 0, 0, 40000, 2048);
		pump(b, a, 0, 0, 5000, 9728);
		ivshm_transport_stats sa, sb;
		ivshm_transport_stats_get(a, &sa);
		ivshm_transport_stats_get(b, &sb);
		EXPECT_EQ(sa.tx[0].packets, 40000u) << c;
		EXPECT_EQ(sb.rx[0].packets, 40000u) << c;
		EXPECT_EQ(sa.tx[0].bytes, sb.rx[0].bytes) << c;
		EXPECT_EQ(sa.rx[0].packets, 5000u) << c;
		EXPECT_EQ(sa.rx[0].errors + sb.rx[0].errors, 0u) << c;
	}
}

TEST_F(TransportShm, TxRejectsBadLengthsAndRxDropsTooLong)
{
	ivshm_endpoint *e1 = ep(), *e2 = ep();
	ivshm_transport_params p = small_params();
	ivshm_channel *a = open(e1, 0, &p), *b = open(e2, 0, &p);
	ASSERT_TRUE(tp::wait_link(a, b, 3000));
	std::vector<uint8_t> buf(20000);
	ivshm_transport_pkt pk[3] = {{buf.data(), 0, 0},
				     {buf.data(), 9729, 0},
				     {buf.data(), 3000, 0}};
	tp::fill_pkt(buf.data(), 7, 3000);
	EXPECT_EQ(ivshm_transport_tx_burst(a, 0, pk, 3), 3);
	EXPECT_EQ(ivshm_transport_tx_burst(a, 5, pk, 3), 0); // no queue 5
	std::vector<uint8_t> small(100);
	ivshm_transport_pkt rp = {small.data(), 100, 0};
	EXPECT_EQ(ivshm_transport_rx_burst(b, 0, &rp, 1), 0);
	ivshm_transport_stats sa, sb;
	ivshm_transport_stats_get(a, &sa);
	ivshm_transport_stats_get(b, &sb);
	EXPECT_EQ(sa.tx[0].errors, 2u);
	EXPECT_EQ(sa.tx[0].packets, 1u);
	EXPECT_EQ(sb.rx[0].drops, 1u);
	EXPECT_EQ(sb.rx[0].packets, 0u);
}

TEST_F(TransportShm, JumboWaitsForRoomInsteadOfStarving)
{
	ivshm_endpoint *e1 = ep(), *e2 = ep();
	ivshm_transport_params p = small_params(); // ring 64, 2048-byte buffers
	ivshm_channel *a = open(e1, 8, &p), *b = open(e2, 8, &p);
	ASSERT_TRUE(tp::wait_link(a, b, 3000));
	std::vector<uint8_t> small(64), jumbo(9000), in(9728);
	tp::fill_pkt(jumbo.data(), 1000, 9000); // 5 buffers
	ivshm_transport_pkt sp = {small.data(), 64, 0};
	ivshm_transport_pkt jp = {jumbo.data(), 9000, 0};
	for (uint64_t i = 0; i < 64; i++) {
		tp::fill_pkt(small.data(), i, 64);
		ASSERT_EQ(ivshm_transport_tx_burst(a, 0, &sp, 1), 1);
	}
	EXPECT_EQ(ivshm_transport_tx_burst(a, 0, &sp, 1), 0); // full
	EXPECT_EQ(ivshm_transport_tx_room(a, 0), 0u);
	// The receiver frees one slot at a time: the jumbo frame must wait
	// for five free slots, not fill the holes with discarded slots.
	ivshm_transport_pkt rp = {in.data(), 9728, 0};
	for (int i = 0; i < 4; i++) {
		rp.len = 9728;
		ASSERT_EQ(ivshm_transport_rx_burst(b, 0, &rp, 1), 1);
		EXPECT_EQ(ivshm_transport_tx_burst(a, 0, &jp, 1), 0);
	}
	EXPECT_EQ(ivshm_transport_tx_room(a, 0), 4u);
	rp.len = 9728;
	ASSERT_EQ(ivshm_transport_rx_burst(b, 0, &rp, 1), 1);
	EXPECT_EQ(ivshm_transport_tx_room(a, 0), 5u);
	EXPECT_EQ(ivshm_transport_tx_burst(a, 0, &jp, 1), 1);
	EXPECT_EQ(ivshm_transport_tx_room(a, 0), 0u);
	for (uint64_t i = 5; i < 64; i++) {
		rp.len = 9728;
		ASSERT_EQ(ivshm_transport_rx_burst(b, 0, &rp, 1), 1);
		ASSERT_TRUE(tp::check_pkt(in.data(), rp.len, i));
	}
	rp.len = 9728;
	ASSERT_EQ(ivshm_transport_rx_burst(b, 0, &rp, 1), 1);
	EXPECT_EQ(rp.len, 9000u);
	EXPECT_TRUE(tp::check_pkt(in.data(), 9000, 1000));
	ivshm_transport_stats sa;
	ivshm_transport_stats_get(a, &sa);
	EXPECT_EQ(sa.tx[0].segments, 64u + 5u);
}

TEST_F(TransportShm, ZeroCopyChainsRoundTrip)
{
	ivshm_endpoint *e1 = ep(), *e2 = ep();
	ivshm_transport_params p = small_params();
	ivshm_channel *a = open(e1, 1, &p), *b = open(e2, 1, &p);
	ASSERT_TRUE(tp::wait_link(a, b, 3000));
	ivshm_transport_info info;
	ivshm_transport_info_get(a, &info);
	std::vector<uint8_t> pkt(9728), got(9728);
	uint64_t seq = 0, rseq = 0;

	for (int round = 0; round < 2000; round++) {
		// Transmit one packet in place, chained over buffers.
		uint32_t len = tp::pkt_len(3, seq, 9728);
		tp::fill_pkt(pkt.data(), seq, len);
		uint32_t segs = (len + info.buf_size - 1) / info.buf_size;
		ivshm_transport_buf bufs[8];
		uint16_t r = ivshm_transport_tx_reserve(a, 0, bufs, (uint16_t)segs);
		if (r == segs) {
			for (uint32_t s = 0; s < segs; s++) {
				uint32_t off = s * info.buf_size;
				uint32_t c = len - off < info.buf_size
						     ? len - off
						     : info.buf_size;
				ASSERT_EQ(bufs[s].len, info.buf_size);
				memcpy(bufs[s].data, &pkt[off], c);
				bufs[s].len = c;
				bufs[s].flags = s + 1 < segs ? IVSHM_TRANSPORT_F_MORE
							     : 0;
			}
			ASSERT_EQ(ivshm_transport_tx_commit(a, 0, bufs, r), segs);
			seq++;
		} else {
			// Not enough room: commit nothing (all discarded).
			EXPECT_EQ(ivshm_transport_tx_commit(a, 0, bufs, 0), 0);
		}
		// Receive in place.
		ivshm_transport_buf rb[8];
		uint16_t k = ivshm_transport_rx_peek(b, 0, rb, 8);
		uint32_t i = 0;
		while (i < k) {
			uint32_t off = 0;
			for (;;) {
				memcpy(&got[off], rb[i].data, rb[i].len);
				off += rb[i].len;
				if (!(rb[i++].flags & IVSHM_TRANSPORT_F_MORE))
					break;
			}
			ASSERT_EQ(off, tp::pkt_len(3, rseq, 9728));
			ASSERT_TRUE(tp::check_pkt(got.data(), off, rseq));
			rseq++;
		}
		ivshm_transport_rx_release(b, 0, k);
	}
	EXPECT_EQ(rseq, seq);
	EXPECT_GT(seq, 1000u);
	ivshm_transport_stats sb;
	ivshm_transport_stats_get(b, &sb);
	EXPECT_EQ(sb.rx[0].errors, 0u);
	EXPECT_EQ(sb.rx[0].drops, 0u);
}

TEST_F(TransportShm, CommitDiscardsInvalidAndUnfinishedChains)
{
	ivshm_endpoint *e1 = ep(), *e2 = ep();
	ivshm_transport_params p = small_params();
	ivshm_channel *a = open(e1, 1, &p), *b = open(e2, 1, &p);
	ASSERT_TRUE(tp::wait_link(a, b, 3000));
	ivshm_transport_buf bufs[6];
	ASSERT_EQ(ivshm_transport_tx_reserve(a, 0, bufs, 6), 6);
	// 0: good single; 1-2: chain with a short first buffer (invalid);
	// 3: good single; 4: MORE with nothing after within n (unfinished).
	uint32_t lens[5] = {10, 100, 50, 20, 2048};
	uint32_t fl[5] = {0, IVSHM_TRANSPORT_F_MORE, 0, 0,
			  IVSHM_TRANSPORT_F_MORE};
	for (int i = 0; i < 5; i++) {
		memset(bufs[i].data, 'a' + i, lens[i]);
		bufs[i].len = lens[i];
		bufs[i].flags = fl[i];
	}
	EXPECT_EQ(ivshm_transport_tx_commit(a, 0, bufs, 5), 2);
	std::vector<uint8_t> in(9728);
	ivshm_transport_pkt rp[4];
	for (auto &r : rp)
		r = {in.data(), 9728, 0};
	ASSERT_EQ(ivshm_transport_rx_burst(b, 0, rp, 1), 1);
	EXPECT_EQ(rp[0].len, 10u);
	EXPECT_EQ(in[0], 'a');
	rp[1] = {in.data(), 9728, 0};
	ASSERT_EQ(ivshm_transport_rx_burst(b, 0, &rp[1], 3), 1);
	EXPECT_EQ(rp[1].len, 20u);
	EXPECT_EQ(in[0], 'd');
	ivshm_transport_stats sa, sb;
	ivshm_transport_stats_get(a, &sa);
	ivshm_transport_stats_get(b, &sb);
	EXPECT_EQ(sa.tx[0].packets, 2u);
	EXPECT_EQ(sa.tx[0].errors, 1u);
	EXPECT_EQ(sb.rx[0].errors, 0u); // discards are not errors
}

TEST_F(TransportShm, CloseTakesLinkDownAndReopenKeepsSide)
{
	ivshm_endpoint *e1 = ep(), *e2 = ep();
	ivshm_transport_params p = small_params();
	ivshm_channel *a = open(e1, 2, &p), *b = open(e2, 2, &p);
	ASSERT_TRUE(tp::wait_link(a, b, 3000));
	pump(a, b, 0, 0, 100, 9728);
	// Leave packets in flight from A, then B leaves.
	std::vector<uint8_t> out(3000);
	ivshm_transport_pkt pk = {out.data(), 3000, 0};
	tp::fill_pkt(out.data(), 100, 3000);
	ASSERT_EQ(ivshm_transport_tx_burst(a, 0, &pk, 1), 1);
	close(b);
	ivshm_transport_housekeeping(a);
	EXPECT_EQ(ivshm_transport_link(a), 0);
	EXPECT_EQ(ivshm_transport_tx_burst(a, 0, &pk, 1), 0);

	b = open(e2, 2, &p);
	ASSERT_NE(b, nullptr);
	EXPECT_EQ(ivshm_transport_side(b), IVSHM_TRANSPORT_SIDE_B);
	ASSERT_TRUE(tp::wait_link(a, b, 3000));
	// The packet in flight was reclaimed, the stream continues.
	pump(a, b, 0, 101, 1000, 9728);
	ivshm_transport_stats st;
	ivshm_transport_stats_get(a, &st);
	EXPECT_EQ(st.link_ups, 2u);
	EXPECT_EQ(st.link_downs, 1u);
	EXPECT_GE(st.peer_deaths, 1u);
}

// Write straight into the region, as a hostile peer would.
class Raw {
public:
	Raw(ivshm_endpoint *e, ivshm_channel *c)
	{
		base_ = (uint8_t *)ivshm_endpoint_base(e);
		ivshm_transport_info_get(c, &info_);
	}
	uint8_t *area() const { return base_ + info_.mem_offset; }
	uint64_t size() const { return info_.mem_size; }

private:
	uint8_t *base_;
	ivshm_transport_info info_;
};

TEST_F(TransportShm, HostileDescriptorsAreCountedNeverFollowed)
{
	ivshm_endpoint *e1 = ep(), *e2 = ep();
	ivshm_transport_params p = small_params();
	ivshm_channel *a = open(e1, 4, &p), *b = open(e2, 4, &p);
	ASSERT_TRUE(tp::wait_link(a, b, 3000));
	ivshm_transport_info info;
	ivshm_transport_info_get(a, &info);

	// A (hostile) publishes descriptors of every bad kind through the
	// zero-copy path, then overwrites them in the ring after commit.
	ivshm_transport_buf bufs[8];
	ASSERT_EQ(ivshm_transport_tx_reserve(a, 0, bufs, 8), 8);
	for (int i = 0; i < 8; i++) {
		bufs[i].len = 1;
		bufs[i].flags = 0;
	}
	ASSERT_EQ(ivshm_transport_tx_commit(a, 0, bufs, 8), 8);
	// Ring(dir 0 = A->B, q 0) starts the channel area; its slots follow
	// the control block (ring.h's memsize minus the slots).
	uint32_t *slots = (uint32_t *)(Raw(e1, a).area() +
				       ivshm_ring_memsize(64, 8) - 64 * 8);
	slots[0] = 0;           slots[1] = 0;        // zero length
	slots[2] = 5000;        slots[3] = 0;        // longer than a buffer
	slots[4] = 100;         slots[5] = 1;        // MORE on a short buffer
	slots[6] = 1;           slots[7] = 0x80;     // unknown flag
	slots[8] = 2048;        slots[9] = 1;        // chain ...
	slots[10] = 0;          slots[11] = 2;       // ... ended by a discard
	slots[12] = 7;          slots[13] = 0;       // fine
	slots[14] = 0xffffffff; slots[15] = 0xffffffff;
	std::vector<uint8_t> in(9728);
	ivshm_transport_pkt rp[8];
	for (auto &r : rp)
		r = {in.data(), 9728, 0};
	EXPECT_EQ(ivshm_transport_rx_burst(b, 0, rp, 8), 1);
	EXPECT_EQ(rp[0].len, 7u);
	ivshm_transport_stats sb;
	ivshm_transport_stats_get(b, &sb);
	EXPECT_EQ(sb.rx[0].errors, 6u);
	EXPECT_EQ(sb.rx[0].packets, 1u);
	// The link survived: good packets still flow.
	pump(a, b, 0, 0, 500, 9728);
}

TEST_F(TransportShm, ImpossibleIndexBreaksQueueAndResetRecovers)
{
	ivshm_endpoint *e1 = ep(), *e2 = ep();
	ivshm_transport_params p = small_params();
	ivshm_channel *a = open(e1, 5, &p), *b = open(e2, 5, &p);
	ASSERT_TRUE(tp::wait_link(a, b, 3000));
	pump(a, b, 0, 0, 300, 9728);
	// Make A's producer index of ring(dir 0, q 0) impossible (its index
	// words live in the control block; ring_layout.h puts prod_idx at
	// offset 128): B's next receive sees it.
	Raw raw(e1, a);
	uint32_t *prod = (uint32_t *)(raw.area() + 128);
	*prod += 0x40000000u;
	std::vector<uint8_t> out(64), in(9728);
	ivshm_transport_pkt pk = {out.data(), 64, 0};
	ivshm_transport_pkt rp = {in.data(), 9728, 0};
	EXPECT_EQ(ivshm_transport_rx_burst(b, 0, &rp, 1), 0);
	for (int i = 0; i < 4; i++) {
		ivshm_transport_tx_burst(b, 0, &pk, 1);
		ivshm_transport_rx_burst(a, 0, &rp, 1);
	}
	ivshm_transport_stats sa, sb;
	ivshm_transport_stats_get(a, &sa);
	ivshm_transport_stats_get(b, &sb);
	EXPECT_GT(sa.tx[0].errors + sa.rx[0].errors + sb.tx[0].errors +
			  sb.rx[0].errors,
		  0u);
	// Housekeeping notices, resets both sides; the link comes back.
	ivshm_transport_reset(a);
	ASSERT_TRUE(tp::wait_link(a, b, 5000));
	pump(a, b, 0, 1000, 2000, 9728);
	pump(b, a, 0, 1000, 2000, 9728);
	ivshm_transport_stats_get(a, &sa);
	EXPECT_GE(sa.resets, 2u);
}

TEST_F(TransportShm, ScribbledSideBlocksHeal)
{
	ivshm_endpoint *e1 = ep(), *e2 = ep();
	ivshm_transport_params p = small_params();
	ivshm_channel *a = open(e1, 6, &p), *b = open(e2, 6, &p);
	ASSERT_TRUE(tp::wait_link(a, b, 3000));
	// Scribble the transport header and channel table (offsets 4096 up
	// to the first channel area) a few times, with housekeeping between.
	uint8_t *base = (uint8_t *)ivshm_endpoint_base(e1);
	for (int r = 0; r < 20; r++) {
		for (uint32_t i = 4096; i < 40960; i++)
			base[i] = (uint8_t)tp::mix(i * 131u + (uint32_t)r);
		ivshm_transport_housekeeping(a);
		ivshm_transport_housekeeping(b);
	}
	ASSERT_TRUE(tp::wait_link(a, b, 5000));
	pump(a, b, 0, 0, 1000, 9728);
	pump(b, a, 0, 0, 1000, 9728);
}

} // namespace
