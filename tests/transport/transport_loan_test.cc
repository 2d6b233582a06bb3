// SPDX-License-Identifier: BSD-3-Clause
// Description: zero-copy receive with loans (rx_loan / rx_return) over a
// plain shared file: buffers kept past the call, returned out of order and
// from other threads; slots go back to the sender in ring order only; a
// held loan stalls the sender once the ring is full behind it; double and
// stale returns (after a reset) change nothing; copy bursts wait while
// loans are out. Every packet's bytes are checked.
#include <gtest/gtest.h>

#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ivshm/ivshmem.h"
#include "ivshm/transport.h"
#include "tp_test_util.h"

namespace {

constexpr uint64_t kRegion = 8u << 20;
constexpr uint32_t kRing = 64;

class Loans : public ::testing::Test {
protected:
	void SetUp() override
	{
		path_ = tp::unique_shm("loan");
		ivshm_endpoint_params ep = {};
		ep.size = kRegion;
		std::string d = "shm:" + path_;
		ASSERT_EQ(ivshm_endpoint_open(d.c_str(), &ep, &e1_), 0);
		ASSERT_EQ(ivshm_endpoint_open(d.c_str(), &ep, &e2_), 0);
		ivshm_transport_params p = {};
		p.ring_size = kRing;
		p.buf_size = 2048;
		p.peer_timeout_ms = 300;
		ASSERT_EQ(ivshm_transport_open(e1_, 3, &p, &tx_), 0);
		ASSERT_EQ(ivshm_transport_open(e2_, 3, &p, &rx_), 0);
		ASSERT_TRUE(tp::wait_link(tx_, rx_, 3000));
	}
	void TearDown() override
	{
		ivshm_transport_close(rx_);
		ivshm_transport_close(tx_);
		ivshm_endpoint_close(e2_);
		ivshm_endpoint_close(e1_);
		unlink(path_.c_str());
	}
	// Send packets seq0.. (lengths from stream 5, up to 2048 so one
	// buffer each, or up to 9000 for chains); returns how many went.
	uint32_t send(uint64_t seq0, uint32_t n, uint32_t max = 2048)
	{
		std::vector<uint8_t> out(16 * 9728);
		uint32_t sent = 0;
		while (sent < n) {
			ivshm_transport_pkt pk[16];
			uint16_t k = 0;
			for (; k < 16 && sent + k < n; k++) {
				uint64_t s = seq0 + sent + k;
				pk[k].data = &out[k * 9728];
				pk[k].len = tp::fill_pkt(&out[k * 9728], s,
							 tp::pkt_len(5, s, max));
			}
			uint16_t w = ivshm_transport_tx_burst(tx_, 0, pk, k);
			sent += w;
			if (w < k)
				break;
		}
		return sent;
	}
	void stale_loans_after_reset(ivshm_channel *who, uint32_t held,
				     uint64_t seq0);
	std::string path_;
	ivshm_endpoint *e1_ = nullptr, *e2_ = nullptr;
	ivshm_channel *tx_ = nullptr, *rx_ = nullptr;
};

TEST_F(Loans, HeldLoansStallTheSenderAndReturnInRingOrder)
{
	ASSERT_EQ(send(0, kRing), kRing);
	EXPECT_EQ(send(kRing, 1), 0u) << "ring should be full";

	ivshm_transport_buf b[kRing];
	uint64_t tok[kRing];
	uint16_t n = ivshm_transport_rx_loan(rx_, 0, b, tok, kRing);
	ASSERT_EQ(n, kRing);
	for (uint32_t i = 0; i < n; i++) {
		ASSERT_EQ(b[i].flags, 0u);
		ASSERT_EQ(b[i].len, tp::pkt_len(5, i, 2048));
		ASSERT_TRUE(tp::check_pkt((uint8_t *)b[i].data, b[i].len, i));
	}
	EXPECT_EQ(ivshm_transport_rx_loans_out(rx_, 0), kRing);
	// Loans out: nothing more to lend, copy bursts return nothing.
	ivshm_transport_buf more[4];
	uint64_t mt[4];
	EXPECT_EQ(ivshm_transport_rx_loan(rx_, 0, more, mt, 4), 0);
	std::vector<uint8_t> in(9728);
	ivshm_transport_pkt rp = {in.data(), 9728, 0};
	EXPECT_EQ(ivshm_transport_rx_burst(rx_, 0, &rp, 1), 0);
	EXPECT_EQ(send(kRing, 1), 0u) << "held loans must stall the sender";

	// Return every loan but the first, last to first: nothing goes back.
	for (uint32_t i = kRing - 1; i >= 1; i--)
		ivshm_transport_rx_return(rx_, 0, tok[i]);
	EXPECT_EQ(ivshm_transport_rx_loan(rx_, 0, more, mt, 4), 0);
	EXPECT_EQ(ivshm_transport_rx_loans_out(rx_, 0), kRing);
	EXPECT_EQ(send(kRing, 1), 0u);
	// The buffers of unreturned loans are untouched.
	ASSERT_TRUE(tp::check_pkt((uint8_t *)b[0].data, b[0].len, 0));

	// Returning the head frees the whole ring at the next rx call.
	ivshm_transport_rx_return(rx_, 0, tok[0]);
	ivshm_transport_rx_return(rx_, 0, tok[0]); // twice: no effect
	EXPECT_EQ(ivshm_transport_rx_loan(rx_, 0, more, mt, 4), 0);
	EXPECT_EQ(ivshm_transport_rx_loans_out(rx_, 0), 0u);
	ASSERT_EQ(send(kRing, kRing), kRing);

	// With no loans out, copy bursts work again on the same queue.
	uint64_t seq = kRing;
	for (uint32_t i = 0; i < kRing; i++, seq++) {
		rp.len = 9728;
		ASSERT_EQ(ivshm_transport_rx_burst(rx_, 0, &rp, 1), 1);
		ASSERT_EQ(rp.len, tp::pkt_len(5, seq, 2048));
		ASSERT_TRUE(tp::check_pkt(in.data(), rp.len, seq));
	}
	ivshm_transport_stats st;
	ivshm_transport_stats_get(rx_, &st);
	EXPECT_EQ(st.rx[0].packets, 2u * kRing);
	EXPECT_EQ(st.rx[0].errors, 0u);
	EXPECT_EQ(st.rx[0].drops, 0u);
}

TEST_F(Loans, ChainsAreLentWholeAndRandomReturnOrderLosesNothing)
{
	std::mt19937 rng(42);
	std::vector<std::pair<ivshm_transport_buf, uint64_t>> held;
	std::vector<uint8_t> pkt(9728);
	uint64_t sent = 0, got = 0;
	const uint64_t total = 3000;
	uint64_t deadline = tp::now_ms() + 20000;

	while (got < total && tp::now_ms() < deadline) {
		if (sent < total)
			sent += send(sent, (uint32_t)std::min<uint64_t>(8, total - sent),
				     9000);
		ivshm_transport_buf b[16];
		uint64_t tok[16];
		uint16_t n = ivshm_transport_rx_loan(rx_, 0, b, tok, 16);
		for (uint16_t i = 0; i < n;) {
			// Gather one packet, check it, keep its buffers lent.
			uint32_t off = 0;
			for (;;) {
				ASSERT_LE(off + b[i].len, pkt.size());
				memcpy(&pkt[off], b[i].data, b[i].len);
				off += b[i].len;
				held.push_back({b[i], tok[i]});
				if (!(b[i++].flags & IVSHM_TRANSPORT_F_MORE))
					break;
				ASSERT_LT(i, n) << "chain cut in two";
			}
			ASSERT_EQ(off, tp::pkt_len(5, got, 9000));
			ASSERT_TRUE(tp::check_pkt(pkt.data(), off, got))
				<< "packet " << got;
			got++;
		}
		// Give back a random half of what is held, in random order.
		std::shuffle(held.begin(), held.end(), rng);
		size_t keep = held.size() / 2;
		for (size_t i = keep; i < held.size(); i++)
			ivshm_transport_rx_return(rx_, 0, held[i].second);
		held.resize(keep);
	}
	EXPECT_EQ(got, total);
	for (auto &h : held)
		ivshm_transport_rx_return(rx_, 0, h.second);
	ivshm_transport_buf b[4];
	uint64_t tok[4];
	EXPECT_EQ(ivshm_transport_rx_loan(rx_, 0, b, tok, 4), 0);
	EXPECT_EQ(ivshm_transport_rx_loans_out(rx_, 0), 0u);
	ivshm_transport_stats st;
	ivshm_transport_stats_get(rx_, &st);
	EXPECT_EQ(st.rx[0].packets, total);
	EXPECT_EQ(st.rx[0].errors, 0u);
}

// Lend @p held packets, reset @p who, then check: the old loans ended with
// the re-attach, a full ring of new packets (seq0..) is lent, returning the
// old tokens frees none of its slots, returning the new ones frees them
// all, and the stream goes on.
void Loans::stale_loans_after_reset(ivshm_channel *who, uint32_t held,
				    uint64_t seq0)
{
	ASSERT_EQ(send(0, held), held);
	std::vector<ivshm_transport_buf> b(held);
	std::vector<uint64_t> tok(held);
	ASSERT_EQ(ivshm_transport_rx_loan(rx_, 0, b.data(), tok.data(),
					  (uint16_t)held), held);
	ASSERT_EQ(ivshm_transport_reset(who), 0);
	ASSERT_TRUE(tp::wait_link(tx_, rx_, 3000));
	EXPECT_EQ(ivshm_transport_rx_loans_out(rx_, 0), 0u);
	ASSERT_EQ(send(seq0, kRing), kRing);
	EXPECT_EQ(send(seq0 + kRing, 1), 0u);
	ivshm_transport_buf nb[kRing];
	uint64_t nt[kRing];
	ASSERT_EQ(ivshm_transport_rx_loan(rx_, 0, nb, nt, kRing), kRing);
	for (uint32_t i = 0; i < held; i++)
		ivshm_transport_rx_return(rx_, 0, tok[i]);
	ivshm_transport_buf x[1];
	uint64_t xt[1];
	EXPECT_EQ(ivshm_transport_rx_loan(rx_, 0, x, xt, 1), 0);
	EXPECT_EQ(ivshm_transport_rx_loans_out(rx_, 0), kRing);
	EXPECT_EQ(send(seq0 + kRing, 1), 0u) << "a stale return freed a slot";
	for (uint32_t i = 0; i < kRing; i++) {
		ASSERT_EQ(nb[i].len, tp::pkt_len(5, seq0 + i, 2048));
		ASSERT_TRUE(tp::check_pkt((uint8_t *)nb[i].data, nb[i].len, seq0 + i));
		ivshm_transport_rx_return(rx_, 0, nt[i]);
	}
	EXPECT_EQ(ivshm_transport_rx_loan(rx_, 0, x, xt, 1), 0);
	EXPECT_EQ(ivshm_transport_rx_loans_out(rx_, 0), 0u);
	EXPECT_EQ(send(seq0 + kRing, 1), 1u);
	ASSERT_EQ(ivshm_transport_rx_loan(rx_, 0, x, xt, 1), 1);
	EXPECT_TRUE(tp::check_pkt((uint8_t *)x[0].data, x[0].len, seq0 + kRing));
	ivshm_transport_rx_return(rx_, 0, xt[0]);
}

// The receiver resets while it holds loans.
TEST_F(Loans, ResetEndsLoansAndStaleReturnsAreHarmless)
{
	stale_loans_after_reset(rx_, 8, 100);
}

// The sender resets (as after a restart) while the receiver holds loans:
// the receiver re-attaches to fresh rings all the same.
TEST_F(Loans, PeerResetEndsLoansToo)
{
	stale_loans_after_reset(tx_, 16, 500);
}

// The receive thread lends, a worker thread checks and returns (as a DPDK
// application freeing mbufs on another lcore would); a sender thread
// streams. Runs under ThreadSanitizer (suite concurrency).
TEST_F(Loans, ReturnsFromAnotherThreadWhileStreaming)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	const uint64_t total = 20000;
#else
	const uint64_t total = 200000;
#endif
	std::mutex mu;
	std::condition_variable cv;
	std::deque<std::pair<ivshm_transport_buf, uint64_t>> work;
	std::atomic<bool> done{false};
	std::atomic<uint64_t> checked{0}, bad{0};
	uint64_t deadline = tp::now_ms() + 60000;

	std::thread sender([&] {
		uint64_t s = 0;
		while (s < total && tp::now_ms() < deadline) {
			uint32_t w = send(s, (uint32_t)std::min<uint64_t>(32, total - s));
			s += w;
			if (w == 0)
				std::this_thread::yield();
		}
	});
	std::thread worker([&] {
		uint64_t expect = 0;
		for (;;) {
			std::pair<ivshm_transport_buf, uint64_t> it;
			{
				std::unique_lock<std::mutex> lk(mu);
				cv.wait(lk, [&] { return !work.empty() || done; });
				if (work.empty())
					return;
				it = work.front();
				work.pop_front();
			}
			if (it.first.len != tp::pkt_len(5, expect, 2048) ||
			    !tp::check_pkt((uint8_t *)it.first.data, it.first.len,
					   expect))
				bad++;
			expect++;
			checked++;
			ivshm_transport_rx_return(rx_, 0, it.second);
		}
	});
	uint64_t lent = 0;
	while (lent < total && tp::now_ms() < deadline) {
		ivshm_transport_buf b[32];
		uint64_t tok[32];
		uint16_t n = ivshm_transport_rx_loan(rx_, 0, b, tok, 32);
		if (n == 0) {
			std::this_thread::yield();
			continue;
		}
		{
			std::lock_guard<std::mutex> lk(mu);
			for (uint16_t i = 0; i < n; i++)
				work.push_back({b[i], tok[i]});
		}
		cv.notify_one();
		lent += n;
	}
	{
		std::lock_guard<std::mutex> lk(mu);
		done = true;
	}
	cv.notify_one();
	worker.join();
	sender.join();
	EXPECT_EQ(lent, total);
	EXPECT_EQ(checked.load(), total);
	EXPECT_EQ(bad.load(), 0u);
	ivshm_transport_buf b[1];
	uint64_t tok[1];
	EXPECT_EQ(ivshm_transport_rx_loan(rx_, 0, b, tok, 1), 0);
	EXPECT_EQ(ivshm_transport_rx_loans_out(rx_, 0), 0u);
}

} // namespace
