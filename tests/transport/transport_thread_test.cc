// SPDX-License-Identifier: BSD-3-Clause
// Description: the transport's thread model under ThreadSanitizer: two
// channel ends in one process (two endpoints on the same region), each
// with a transmit thread, a receive thread and a control thread doing
// housekeeping, over "shm:" and over "socket:" with the server on a thread.
// Streams in both directions are checked packet by packet; one variant
// resets the channel every few milliseconds while traffic flows, so the
// control thread re-formats rings that datapath threads have just left.
#include <gtest/gtest.h>

#include <stdint.h>
#include <unistd.h>

#include <memory>
#include <random>
#include <string>
#include <thread>

#include "ivshm/ivshmem.h"
#include "ivshm/server.h"
#include "ivshm/transport.h"
#include "tp_peer.h"

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr uint64_t kPkts = 30000;
#else
constexpr uint64_t kPkts = 200000;
#endif

class Threads : public ::testing::TestWithParam<const char *> {
protected:
	void SetUp() override
	{
		std::random_device rd;
		kind_ = GetParam();
		if (kind_ == "shm") {
			path_ = tp::unique_shm("t");
			desc_ = "shm:" + path_;
		} else {
			path_ = "/tmp/ivshm-tp-thr-" + std::to_string(getpid()) +
				"-" + std::to_string(rd());
			ivshm_server_params sp{};
			sp.socket_path = path_.c_str();
			sp.size = 8u << 20;
			sp.vectors = 1;
			ASSERT_EQ(ivshm_server_create(&sp, &srv_), 0);
			thr_ = std::thread([this] { ivshm_server_run(srv_); });
			desc_ = "socket:" + path_;
		}
		sh_.reset(new tp::PeerShared[2]());
	}
	void TearDown() override
	{
		if (srv_) {
			ivshm_server_stop(srv_);
			thr_.join();
			ivshm_server_destroy(srv_);
		} else {
			unlink(path_.c_str());
		}
	}
	tp::PeerConfig cfg(uint64_t salt, uint64_t peer_salt) const
	{
		tp::PeerConfig c;
		c.desc = desc_;
		c.ep_size = kind_ == "shm" ? (8u << 20) : 0;
		c.channel = 1;
		c.params.ring_size = 128;
		c.params.buf_size = 1024;
		c.params.max_pkt_len = 9000;
		c.params.peer_timeout_ms = 2000;
		c.params.rx_mode = IVSHM_TRANSPORT_RX_ADAPTIVE;
		c.params.spin_us = 10;
		c.salt = salt;
		c.peer_salt = peer_salt;
		c.deadline_ms = 200000;
		return c;
	}
	// kPkts each way between @p a and @p b, each on its own thread: both
	// return 0, and each side receives every packet intact and in order.
	void stream_both_ways(tp::PeerConfig a, tp::PeerConfig b)
	{
		a.tx_count = b.tx_count = kPkts;
		a.rx_expect = b.rx_expect = kPkts;
		int ra = -1, rb = -1;
		tp::PeerShared *sh = sh_.get();
		std::thread ta([&] { ra = tp::run_peer(a, &sh[0], &sh[1]); });
		std::thread tb([&] { rb = tp::run_peer(b, &sh[1], &sh[0]); });
		ta.join();
		tb.join();
		EXPECT_EQ(ra, 0);
		EXPECT_EQ(rb, 0);
		for (int i = 0; i < 2; i++) {
			SCOPED_TRACE(i);
			EXPECT_EQ(sh[i].rcvd.load(), kPkts);
			EXPECT_EQ(sh[i].bad.load(), 0u);
			EXPECT_EQ(sh[i].jumps.load(), 0u);
			EXPECT_EQ(sh[i].errors.load(), 0u);
		}
	}

	// A resets the channel every 30 ms while both stream; run until each
	// side has half of kPkts and A saw 10 link-ups (60 s at most). Packets
	// in flight at a reset may be lost (one jump per link-up at most),
	// none may arrive damaged.
	void resets_during_traffic(tp::PeerConfig a, tp::PeerConfig b)
	{
		a.reset_every_ms = 30;
		int ra = -1, rb = -1;
		tp::PeerShared *sh = sh_.get();
		std::thread ta([&] { ra = tp::run_peer(a, &sh[0]); });
		std::thread tb([&] { rb = tp::run_peer(b, &sh[1]); });
		uint64_t end = tp::now_ms() + 60000;
		while (tp::now_ms() < end &&
		       (sh[0].rcvd.load() < kPkts / 2 || sh[1].rcvd.load() < kPkts / 2 ||
			sh[0].link_ups.load() < 10))
			usleep(5000);
		sh[0].cmd = tp::CMD_STOP;
		sh[1].cmd = tp::CMD_STOP;
		ta.join();
		tb.join();
		EXPECT_EQ(ra, 0);
		EXPECT_EQ(rb, 0);
		EXPECT_GE(sh[0].link_ups.load(), 10u);
		for (int i = 0; i < 2; i++) {
			SCOPED_TRACE(i);
			EXPECT_GE(sh[i].rcvd.load(), kPkts / 2);
			EXPECT_EQ(sh[i].bad.load(), 0u);
			EXPECT_LE(sh[i].jumps.load(), sh[i].link_ups.load());
		}
	}

	std::string kind_, path_, desc_;
	ivshm_server *srv_ = nullptr;
	std::thread thr_;
	std::unique_ptr<tp::PeerShared[]> sh_;
};

TEST_P(Threads, StreamsBothWaysIntact)
{
	stream_both_ways(cfg(1, 2), cfg(2, 1));
	for (int i = 0; i < 2; i++) {
		SCOPED_TRACE(i);
		EXPECT_EQ(sh_[i].last_seq.load(), kPkts);
	}
}

TEST_P(Threads, ZeroCopyStreamsBothWaysIntact)
{
	tp::PeerConfig a = cfg(5, 6), b = cfg(6, 5);
	a.zero_copy = true; // A: reserve/commit and peek/release
	stream_both_ways(a, b);
}

TEST_P(Threads, ResetsDuringZeroCopyTrafficLoseOnlyInFlightPackets)
{
	tp::PeerConfig a = cfg(7, 8), b = cfg(8, 7);
	a.zero_copy = b.zero_copy = true;
	resets_during_traffic(a, b);
}

TEST_P(Threads, ResetsDuringTrafficLoseOnlyInFlightPackets)
{
	resets_during_traffic(cfg(3, 4), cfg(4, 3));
}

INSTANTIATE_TEST_SUITE_P(Transport, Threads, ::testing::Values("shm", "socket"),
			 [](const ::testing::TestParamInfo<const char *> &i) {
				 return std::string(i.param);
			 });

} // namespace
