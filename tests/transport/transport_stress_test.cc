// SPDX-License-Identifier: BSD-3-Clause
// Description: the transport across real processes over each backend:
// "shm:" (a plain file, polling with back-off) and "socket:" (the
// project's ivshmem server run in-process, doorbells and peer events,
// adaptive receive). Two forked peers exchange streams of numbered,
// checksummed packets of random sizes 1..9000 in both directions; a peer
// is SIGKILLed mid-stream and restarted; a hostile process scribbles random
// bytes over the whole region while two peers run, then the channel is
// reset and must carry intact streams again. Every wait has a deadline;
// every child is killed if it overstays.
#include <gtest/gtest.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <random>
#include <string>
#include <thread>

#include "ivshm/ivshmem.h"
#include "ivshm/server.h"
#include "ivshm/transport.h"
#include "tp_peer.h"
#include "transport_layout.h"

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr uint64_t kStreamPkts = 200000;
#else
constexpr uint64_t kStreamPkts = 2000000;
#endif

uint64_t stream_pkts()
{
	const char *e = getenv("IVSHM_TP_STREAM_PKTS");
	return e ? strtoull(e, nullptr, 10) : kStreamPkts;
}

constexpr uint64_t kRegion = 16u << 20;

class Backend : public ::testing::TestWithParam<const char *> {
protected:
	void SetUp() override
	{
		std::random_device rd;
		kind_ = GetParam();
		if (kind_ == "shm") {
			path_ = tp::unique_shm("s");
			desc_ = "shm:" + path_;
		} else {
			path_ = "/tmp/ivshm-tp-sock-" + std::to_string(getpid()) +
				"-" + std::to_string(rd());
			ivshm_server_params sp{};
			sp.socket_path = path_.c_str();
			sp.size = kRegion;
			sp.vectors = 2;
			ASSERT_EQ(ivshm_server_create(&sp, &srv_), 0);
			thr_ = std::thread([this] { ivshm_server_run(srv_); });
			desc_ = "socket:" + path_;
		}
		sh_ = tp::map_shared(4);
		ASSERT_NE(sh_, nullptr);
	}
	void TearDown() override
	{
		for (pid_t p : kids_) {
			kill(p, SIGKILL);
			tp::reap(p, 5000);
		}
		if (srv_) {
			ivshm_server_stop(srv_);
			thr_.join();
			ivshm_server_destroy(srv_);
		} else {
			unlink(path_.c_str());
		}
		if (sh_)
			munmap(sh_, 4 * sizeof(tp::PeerShared));
	}
	tp::PeerConfig cfg(uint64_t salt, uint64_t peer_salt) const
	{
		tp::PeerConfig c;
		c.desc = desc_;
		c.ep_size = kind_ == "shm" ? kRegion : 0;
		c.channel = 7;
		c.params.ring_size = 256;
		c.params.buf_size = 2048;
		c.params.max_pkt_len = 9000;
		c.params.peer_timeout_ms = 2000;
		// Four busy threads on two cores would starve each other:
		// spin briefly, then sleep on the doorbell (socket) or back
		// off (shm).
		c.params.rx_mode = IVSHM_TRANSPORT_RX_ADAPTIVE;
		c.params.spin_us = 20;
		c.salt = salt;
		c.peer_salt = peer_salt;
		return c;
	}
	pid_t start(const tp::PeerConfig &c, int idx, int peer_idx = -1)
	{
		tp::PeerShared *me = &sh_[idx];
		tp::PeerShared *peer = peer_idx >= 0 ? &sh_[peer_idx] : nullptr;
		pid_t p = tp::spawn([c, me, peer] { return tp::run_peer(c, me, peer); });
		EXPECT_GT(p, 0);
		kids_.push_back(p);
		return p;
	}
	int finish(pid_t p, int ms)
	{
		int rc = tp::reap(p, ms);
		for (auto it = kids_.begin(); it != kids_.end(); ++it)
			if (*it == p) {
				kids_.erase(it);
				break;
			}
		return rc;
	}
	void reset_shared(int idx)
	{
		memset((void *)&sh_[idx], 0, sizeof(tp::PeerShared));
	}
	// Wait until pred() or the deadline.
	template <class F> bool wait_for(F pred, int ms)
	{
		uint64_t end = tp::now_ms() + (uint64_t)ms;
		while (tp::now_ms() < end) {
			if (pred())
				return true;
			usleep(2000);
		}
		return pred();
	}

	std::string kind_, path_, desc_;
	ivshm_server *srv_ = nullptr;
	std::thread thr_;
	tp::PeerShared *sh_ = nullptr;
	std::vector<pid_t> kids_;
};

TEST_P(Backend, TwoProcessesExchangeMillionsOfPacketsIntact)
{
	uint64_t n = stream_pkts();
	tp::PeerConfig a = cfg(11, 22), b = cfg(22, 11);
	a.tx_count = b.tx_count = n;
	a.rx_expect = b.rx_expect = n;
	a.deadline_ms = b.deadline_ms = 240000;
	pid_t pa = start(a, 0, 1), pb = start(b, 1, 0);
	EXPECT_EQ(finish(pa, 250000), 0);
	EXPECT_EQ(finish(pb, 250000), 0);
	for (int i = 0; i < 2; i++) {
		SCOPED_TRACE(i);
		EXPECT_EQ(sh_[i].open_ret.load(), 0);
		EXPECT_EQ(sh_[i].sent.load(), n);
		EXPECT_EQ(sh_[i].rcvd.load(), n);
		EXPECT_EQ(sh_[i].bad.load(), 0u);
		EXPECT_EQ(sh_[i].jumps.load(), 0u);
		EXPECT_EQ(sh_[i].first_seq.load(), 1u);
		EXPECT_EQ(sh_[i].last_seq.load(), n);
		EXPECT_EQ(sh_[i].errors.load(), 0u);
		EXPECT_EQ(sh_[i].link_ups.load(), 1u);
	}
	if (kind_ == "socket") {
		// Adaptive receivers slept at times and were woken by doorbells.
		EXPECT_GT(sh_[0].doorbells.load() + sh_[1].doorbells.load(), 0u);
		EXPECT_GT(sh_[0].wakeups.load() + sh_[1].wakeups.load(), 0u);
	}
}

TEST_P(Backend, ReceiverKilledMidStreamThenRestarted)
{
	tp::PeerConfig a = cfg(31, 32), b = cfg(32, 31);
	a.deadline_ms = b.deadline_ms = 60000;
	pid_t pa = start(a, 0);
	pid_t pb = start(b, 1);
	ASSERT_TRUE(wait_for([&] { return sh_[1].rcvd.load() > 50000; }, 30000))
		<< "B received " << sh_[1].rcvd.load();
	uint64_t last_b = sh_[1].last_seq.load();
	ASSERT_EQ(kill(pb, SIGKILL), 0);
	EXPECT_EQ(finish(pb, 5000), 128 + SIGKILL);
	uint64_t sent_at_kill = sh_[0].sent.load();
	// The survivor sees the link go down.
	ASSERT_TRUE(wait_for([&] { return sh_[0].link.load() == 0; }, 5000));
	EXPECT_GE(sh_[0].deaths.load(), 1u);

	// A replacement takes B's side; the stream continues.
	uint64_t b_rcvd_before = sh_[1].rcvd.load();
	reset_shared(2);
	b.tx_seq0 = UINT64_C(1) << 40; // B's stream restarts far ahead
	pid_t pb2 = start(b, 2);
	ASSERT_TRUE(wait_for([&] { return sh_[2].rcvd.load() > 50000; }, 30000))
		<< "B' received " << sh_[2].rcvd.load();
	sh_[0].cmd = tp::CMD_STOP;
	sh_[2].cmd = tp::CMD_STOP;
	EXPECT_EQ(finish(pa, 20000), 0);
	EXPECT_EQ(finish(pb2, 20000), 0);
	EXPECT_GT(b_rcvd_before, 0u);
	EXPECT_EQ(sh_[1].bad.load(), 0u);
	EXPECT_EQ(sh_[2].bad.load(), 0u);
	EXPECT_EQ(sh_[2].jumps.load(), 0u);
	// B' starts after everything B saw, and no later than A had sent.
	EXPECT_GT(sh_[2].first_seq.load(), last_b);
	EXPECT_GE(sh_[2].first_seq.load(), 1u);
	EXPECT_LE(sh_[2].first_seq.load(), sent_at_kill + 1 + 256);
	EXPECT_GE(sh_[0].link_ups.load(), 2u);
	EXPECT_GE(sh_[0].link_downs.load(), 1u);
	EXPECT_EQ(sh_[0].bad.load(), 0u);
	// A also receives B's and then B''s stream: one jump at most per
	// link change, nothing corrupted.
	EXPECT_LE(sh_[0].jumps.load(), sh_[0].link_ups.load());
}

TEST_P(Backend, SenderKilledMidStreamThenRestarted)
{
	tp::PeerConfig a = cfg(41, 42), b = cfg(42, 41);
	a.deadline_ms = b.deadline_ms = 60000;
	pid_t pa = start(a, 0);
	pid_t pb = start(b, 1);
	ASSERT_TRUE(wait_for([&] { return sh_[1].rcvd.load() > 50000; }, 30000));
	ASSERT_EQ(kill(pa, SIGKILL), 0);
	EXPECT_EQ(finish(pa, 5000), 128 + SIGKILL);
	ASSERT_TRUE(wait_for([&] { return sh_[1].link.load() == 0; }, 5000));
	uint64_t last = sh_[1].last_seq.load();
	// The replacement numbers its stream from far ahead.
	a.tx_seq0 = UINT64_C(1) << 40;
	reset_shared(2);
	pid_t pa2 = start(a, 2);
	ASSERT_TRUE(wait_for([&] { return sh_[1].rcvd.load() > last + 50000; },
			     30000));
	sh_[1].cmd = tp::CMD_STOP;
	sh_[2].cmd = tp::CMD_STOP;
	EXPECT_EQ(finish(pa2, 20000), 0);
	EXPECT_EQ(finish(pb, 20000), 0);
	EXPECT_EQ(sh_[1].bad.load(), 0u);
	EXPECT_EQ(sh_[1].jumps.load(), 1u);
	EXPECT_GT(sh_[1].last_seq.load(), (UINT64_C(1) << 40) + 50000);
	EXPECT_GE(sh_[1].link_ups.load(), 2u);
	EXPECT_EQ(sh_[2].bad.load(), 0u);
}

// Scribble random bytes over the whole region through an endpoint of our
// own (a third peer on the socket backend) for @ms milliseconds.
int scribble(const std::string &desc, uint64_t size, int ms)
{
	ivshm_endpoint *ep = nullptr;
	ivshm_endpoint_params p = {};
	p.size = size;
	if (ivshm_endpoint_open(desc.c_str(), &p, &ep))
		return 20;
	uint8_t *m = (uint8_t *)ivshm_endpoint_base(ep);
	uint64_t n = ivshm_endpoint_size(ep);
	uint64_t x = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull;
	uint64_t end = tp::now_ms() + (uint64_t)ms;
	uint64_t rounds = 0;
	while (tp::now_ms() < end) {
		for (int i = 0; i < 4096; i++) {
			x = tp::mix(x + 1);
			uint64_t off = (x >> 8) % (n - 8);
			// Favour the small-offset metadata and the ring
			// control blocks; hit everything now and then.
			if ((x & 3) == 0)
				off %= 65536;
			else if ((x & 3) == 1)
				off %= 1u << 20;
			uint64_t v = tp::mix(x);
			memcpy(m + off, &v, (x >> 3) & 1 ? 8 : 4);
		}
		if (++rounds % 64 == 0) {
			// Now and then a whole random stretch.
			x = tp::mix(x);
			uint64_t off = (x >> 8) % (n - 4096);
			for (int i = 0; i < 4096; i++)
				m[off + (uint64_t)i] = (uint8_t)tp::mix(x + (uint64_t)i);
		}
		if (rounds % 16 == 0)
			usleep(100);
	}
	ivshm_endpoint_close(ep);
	return 0;
}

// The channel's shared state, for failure messages.
std::string dump_channel(const std::string &desc, uint64_t size, uint32_t id)
{
	ivshm_endpoint *ep = nullptr;
	ivshm_endpoint_params p = {};
	p.size = size;
	if (ivshm_endpoint_open(desc.c_str(), &p, &ep))
		return "(cannot open)";
	auto *e = (ivshm_tp_chan *)((uint8_t *)ivshm_endpoint_base(ep) +
				    IVSHM_TP_TABLE_OFF + id * IVSHM_TP_CHAN_SIZE);
	std::string out = "geom " + std::to_string(e->geom_state);
	for (int s = 0; s < 2; s++) {
		ivshm_tp_side &b = e->side[s];
		out += " | side " + std::to_string(s) + " tok " +
		       std::to_string(b.occupant % 1000) + " state " +
		       std::to_string(b.state) + " gen " + std::to_string(b.gen) +
		       " ack " + std::to_string(b.ack) + " rreq " +
		       std::to_string(b.reset_req) + " hb " +
		       std::to_string(b.heartbeat);
	}
	ivshm_endpoint_close(ep);
	return out;
}

TEST_P(Backend, HostileWriterThenResetRecovers)
{
	tp::PeerConfig a = cfg(51, 52), b = cfg(52, 51);
	a.deadline_ms = b.deadline_ms = 90000;
	a.lenient = b.lenient = true;
	pid_t pa = start(a, 0);
	pid_t pb = start(b, 1);
	ASSERT_TRUE(wait_for([&] {
		return sh_[0].rcvd.load() > 20000 && sh_[1].rcvd.load() > 20000;
	}, 30000));
	std::string d = desc_;
	uint64_t sz = kind_ == "shm" ? kRegion : 0;
	pid_t ph = tp::spawn([d, sz] { return scribble(d, sz, 3000); });
	kids_.push_back(ph);
	EXPECT_EQ(finish(ph, 20000), 0);
	// Both survived and noticed.
	EXPECT_EQ(waitpid(pa, nullptr, WNOHANG), 0);
	EXPECT_EQ(waitpid(pb, nullptr, WNOHANG), 0);
	uint64_t noticed = sh_[0].errors.load() + sh_[1].errors.load() +
			   sh_[0].bad.load() + sh_[1].bad.load();
	EXPECT_GT(noticed, 0u);

	// Reset the channel on both sides; then both streams must be intact.
	sh_[0].cmd = tp::CMD_RESET;
	sh_[1].cmd = tp::CMD_RESET;
	ASSERT_TRUE(wait_for([&] {
		return sh_[0].strict_rcvd.load() > 30000 &&
		       sh_[1].strict_rcvd.load() > 30000;
	}, 40000)) << "strict A " << sh_[0].strict_rcvd.load() << " B "
		   << sh_[1].strict_rcvd.load() << " links " << sh_[0].link.load()
		   << sh_[1].link.load() << " "
		   << dump_channel(desc_, kind_ == "shm" ? kRegion : 0, 7);
	sh_[0].cmd = tp::CMD_STOP;
	sh_[1].cmd = tp::CMD_STOP;
	EXPECT_EQ(finish(pa, 20000), 0);
	EXPECT_EQ(finish(pb, 20000), 0);
	EXPECT_EQ(sh_[0].strict_bad.load(), 0u);
	EXPECT_EQ(sh_[1].strict_bad.load(), 0u);
	EXPECT_GE(sh_[0].resets.load(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Transport, Backend,
			 ::testing::Values("shm", "socket"),
			 [](const ::testing::TestParamInfo<const char *> &i) {
				 return std::string(i.param);
			 });

} // namespace
