// SPDX-License-Identifier: BSD-3-Clause
// Description: ivshm-traffic as real processes (suite unit): gen into sink
// and ping against echo over a plain file (shm:) and over the project's
// ivshmem-server (socket:, polling and doorbell interrupts), fixed, random
// and jumbo (multi-buffer) sizes, two channels of one region at once, a
// duration run; every count exact on both sides, no loss, reordering or
// corruption. Failure paths: no peer (bounded wait, status fail), a sink
// expecting another count, bad arguments (exit 2).
#include <gtest/gtest.h>

#include "proc_util.h"

#ifndef IVSHM_TRAFFIC
#error "IVSHM_TRAFFIC (path of ivshm-traffic) must be defined"
#endif
#ifndef IVSHM_SERVER
#error "IVSHM_SERVER (path of ivshmem-server) must be defined"
#endif

namespace {

using iv::field;
using iv::sfield;

const int kDeadlineMs = 60000;

std::vector<std::string> tool(const std::string &role, const std::string &ep,
			      std::vector<std::string> more)
{
	// A 10 s peer timeout: on a loaded 2-core machine a process can miss
	// 3 s of heartbeats; these tests check data, not liveness detection.
	std::vector<std::string> a = { IVSHM_TRAFFIC, role, "--ep", ep, "--timeout", "20",
				       "--peer-timeout", "10000" };
	a.insert(a.end(), more.begin(), more.end());
	return a;
}

class Traffic : public ::testing::Test {
protected:
	void SetUp() override
	{
		shm_ = "/dev/shm/" + iv::unique("tr");
		deadline_ = iv::now_ms() + kDeadlineMs;
	}
	void TearDown() override
	{
		ps_.kill_all();
		ps_.keep_logs(HasFailure());
		unlink(shm_.c_str());
		if (!sock_.empty())
			unlink(sock_.c_str());
	}
	std::string shm_ep(const char *size = "16M") { return "shm:" + shm_ + "?size=" + size; }

	// Start the project's server (a real process); wait for its socket.
	std::string start_server(const char *size = "16M", const char *vectors = "2")
	{
		sock_ = "/tmp/" + iv::unique("srv") + ".sock";
		srv_ = ps_.spawn("server", { IVSHM_SERVER, "-F", "-S", sock_, "-l", size,
					     "-n", vectors });
		EXPECT_TRUE(iv::wait_path(sock_, iv::now_ms() + 10000)) << ps_.output(srv_);
		return "socket:" + sock_;
	}

	// Wait for the tool processes (not the server) and return their lines.
	std::string finish(size_t i)
	{
		EXPECT_TRUE(ps_.wait(i, deadline_)) << ps_[i].name << " still running";
		if (!ps_.done(i))
			ps_.kill_all();
		std::string out = ps_.output(i);
		std::string line = iv::result_line(out, "IVSHM_TRAFFIC");
		EXPECT_FALSE(line.empty()) << ps_[i].name << ":\n" << out;
		return line;
	}

	// gen -> sink with these extra arguments; checks both sides.
	void gen_sink(const std::string &ep, uint64_t count, std::vector<std::string> gen_args,
		      std::vector<std::string> sink_args = {}, const std::string &size = "64")
	{
		sink_args.insert(sink_args.end(), { "--count", std::to_string(count) });
		gen_args.insert(gen_args.end(), { "--count", std::to_string(count), "--size", size });
		size_t s = ps_.spawn("sink", tool("sink", ep, sink_args));
		size_t g = ps_.spawn("gen", tool("gen", ep, gen_args));
		std::string lg = finish(g), ls = finish(s);
		check_pair(g, s, lg, ls);
		EXPECT_EQ(field(lg, "packets"), (long long)count) << lg;
		if (size.find_first_not_of("0123456789") == std::string::npos) {
			EXPECT_EQ(field(ls, "bytes"), (long long)count * std::stoll(size)) << ls;
		}
	}

	void check_pair(size_t g, size_t s, const std::string &lg, const std::string &ls)
	{
		EXPECT_EQ(sfield(lg, "status"), "ok") << ps_.output(g);
		EXPECT_EQ(sfield(ls, "status"), "ok") << ps_.output(s);
		EXPECT_EQ(ps_.exit_code(g), 0);
		EXPECT_EQ(ps_.exit_code(s), 0);
		EXPECT_GT(field(lg, "packets"), 0);
		// The sink's own report and the ACK the generator got agree,
		// and both equal what the generator sent.
		EXPECT_EQ(field(ls, "packets"), field(lg, "packets"));
		EXPECT_EQ(field(ls, "bytes"), field(lg, "bytes"));
		EXPECT_EQ(field(ls, "expected"), field(lg, "packets"));
		EXPECT_EQ(field(lg, "acked"), field(lg, "packets"));
		EXPECT_EQ(field(lg, "peer_bytes"), field(lg, "bytes"));
		for (const char *k : { "lost", "reordered", "corrupt", "dups", "dropped" })
			EXPECT_EQ(field(ls, k), 0) << k << ": " << ls;
		for (const char *k : { "peer_lost", "peer_reordered", "peer_corrupt", "peer_dups" })
			EXPECT_EQ(field(lg, k), 0) << k << ": " << lg;
	}

	void ping_echo(const std::string &ep, uint64_t count, std::vector<std::string> ping_args,
		       std::vector<std::string> echo_args = {})
	{
		ping_args.insert(ping_args.end(), { "--count", std::to_string(count) });
		size_t e = ps_.spawn("echo", tool("echo", ep, echo_args));
		size_t p = ps_.spawn("ping", tool("ping", ep, ping_args));
		std::string lp = finish(p), le = finish(e);
		EXPECT_EQ(sfield(lp, "status"), "ok") << ps_.output(p);
		EXPECT_EQ(sfield(le, "status"), "ok") << ps_.output(e);
		EXPECT_EQ(field(lp, "packets"), (long long)count);
		EXPECT_EQ(field(le, "packets"), (long long)count);
		EXPECT_EQ(field(le, "expected"), (long long)count);
		EXPECT_EQ(field(lp, "bytes"), field(le, "bytes"));
		EXPECT_EQ(field(lp, "reordered"), 0);
		EXPECT_EQ(field(lp, "corrupt"), 0);
		EXPECT_EQ(field(le, "corrupt"), 0);
		EXPECT_EQ(field(le, "lost"), 0);
		EXPECT_GT(std::stod(sfield(lp, "rtt_max_us")), 0.0) << lp;
	}

	iv::Procs ps_;
	std::string shm_, sock_;
	size_t srv_ = 0;
	int64_t deadline_ = 0;
};

TEST_F(Traffic, ShmGenToSink64) { gen_sink(shm_ep(), 300000, {}); }

TEST_F(Traffic, ShmGenToSinkRandomSizes) { gen_sink(shm_ep(), 100000, {}, {}, "random"); }

// 46..9000-byte frames: jumbo ones span several 2 KiB buffers.
TEST_F(Traffic, ShmGenToSinkJumboChains)
{
	gen_sink(shm_ep(), 20000, { "--seed", "7" }, {}, "46-9000");
}

// Both sides send with streaming stores (echo and ack traffic included);
// the sink checks every payload byte.
TEST_F(Traffic, ShmGenToSinkStreamingCopies)
{
	gen_sink(shm_ep(), 100000, { "--tx-copy", "stream" }, { "--tx-copy", "stream" },
		 "46-2048");
}

TEST_F(Traffic, ShmGenToSinkSmallRingBurst1)
{
	gen_sink(shm_ep(), 50000, { "--burst", "1", "--ring-size", "16", "--buf-size", "128",
				    "--max-pkt", "1024" },
		 { "--ring-size", "16", "--buf-size", "128", "--max-pkt", "1024", "--burst", "7" },
		 "46-1024");
}

TEST_F(Traffic, ShmDurationRun)
{
	size_t s = ps_.spawn("sink", tool("sink", shm_ep(), {}));
	size_t g = ps_.spawn("gen", tool("gen", shm_ep(), { "--duration", "1", "--size", "128" }));
	std::string lg = finish(g), ls = finish(s);
	check_pair(g, s, lg, ls);
	EXPECT_EQ(field(ls, "bytes"), field(ls, "packets") * 128);
}

TEST_F(Traffic, ShmTwoChannelsAtOnce)
{
	std::string ep = shm_ep("32M");
	size_t s0 = ps_.spawn("sink0", tool("sink", ep, { "--channel", "0", "--count", "100000" }));
	size_t s5 = ps_.spawn("sink5", tool("sink", ep, { "--channel", "5", "--count", "70000" }));
	size_t g0 = ps_.spawn("gen0", tool("gen", ep, { "--channel", "0", "--count", "100000" }));
	size_t g5 = ps_.spawn("gen5", tool("gen", ep, { "--channel", "5", "--count", "70000",
							"--size", "random" }));
	std::string lg0 = finish(g0), ls0 = finish(s0), lg5 = finish(g5), ls5 = finish(s5);
	check_pair(g0, s0, lg0, ls0);
	check_pair(g5, s5, lg5, ls5);
	EXPECT_EQ(field(ls0, "packets"), 100000);
	EXPECT_EQ(field(ls5, "packets"), 70000);
	EXPECT_EQ(field(ls5, "channel"), 5);
}

TEST_F(Traffic, ShmPingEchoWindow1) { ping_echo(shm_ep(), 5000, { "--mode", "poll" }, { "--mode", "poll" }); }

TEST_F(Traffic, ShmPingEchoWindow64RandomSizes)
{
	ping_echo(shm_ep(), 50000, { "--window", "64", "--size", "random" });
}

TEST_F(Traffic, SocketGenToSinkPolling)
{
	std::string ep = start_server();
	gen_sink(ep, 200000, { "--mode", "poll" }, { "--mode", "poll" }, "random");
}

// The sink sleeps on its doorbell eventfd; the generator rings it.
TEST_F(Traffic, SocketGenToSinkInterrupts)
{
	std::string ep = start_server();
	gen_sink(ep, 100000, { "--mode", "intr" }, { "--mode", "intr" });
}

TEST_F(Traffic, SocketPingEchoInterrupts)
{
	std::string ep = start_server();
	ping_echo(ep, 2000, { "--mode", "intr" }, { "--mode", "intr" });
}

// Same host, same clock: the sink reports one-way latency from the
// generator's time stamps, one sample per packet.
TEST_F(Traffic, ShmOneWayLatency)
{
	size_t s = ps_.spawn("sink", tool("sink", shm_ep(), { "--one-way" }));
	size_t g = ps_.spawn("gen", tool("gen", shm_ep(), { "--count", "10000", "--rate", "200000" }));
	std::string lg = finish(g), ls = finish(s);
	check_pair(g, s, lg, ls);
	std::string ll = iv::result_line(ps_.output(s), "IVSHM_TRAFFIC_LATENCY");
	EXPECT_EQ(field(ll, "samples"), 10000) << ll;
	double mn = std::stod(sfield(ll, "lat_min_us")), av = std::stod(sfield(ll, "lat_avg_us")),
	       mx = std::stod(sfield(ll, "lat_max_us"));
	EXPECT_GT(mn, 0.0) << ll;
	EXPECT_LE(mn, av) << ll;
	EXPECT_LE(av, mx) << ll;
}

// Damaged packets are caught: by the payload check, and by the checksum
// alone (--no-verify); both ends fail, the sink counts each one.
TEST_F(Traffic, ShmCorruptionDetected)
{
	for (bool checksum_only : { false, true }) {
		iv::Procs ps;
		std::vector<std::string> sa = { "--count", "10000" };
		if (checksum_only)
			sa.push_back("--no-verify");
		std::string verify = checksum_only ? "checksum only" : "payload check";
		std::string f = shm_ + (checksum_only ? "-csum" : "-full");
		std::string ep = "shm:" + f + "?size=16M";
		size_t s = ps.spawn("sink", tool("sink", ep, sa));
		size_t g = ps.spawn("gen", tool("gen", ep, { "--count", "10000", "--size", "64-300",
							     "--corrupt-every", "100" }));
		ASSERT_TRUE(ps.wait(g, deadline_));
		ASSERT_TRUE(ps.wait(s, deadline_));
		std::string lg = iv::result_line(ps.output(g), "IVSHM_TRAFFIC");
		std::string ls = iv::result_line(ps.output(s), "IVSHM_TRAFFIC");
		EXPECT_EQ(sfield(ls, "status"), "fail") << ls;
		EXPECT_EQ(sfield(lg, "status"), "fail") << lg;
		EXPECT_EQ(ps.exit_code(s), 1);
		EXPECT_EQ(ps.exit_code(g), 1);
		EXPECT_EQ(field(ls, "corrupt"), 100) << verify << ": " << ls;
		EXPECT_EQ(field(ls, "packets"), 9900) << ls;
		EXPECT_EQ(field(ls, "expected"), 10000) << ls;
		EXPECT_EQ(field(lg, "peer_corrupt"), 100) << lg;
		unlink(f.c_str());
	}
}

TEST_F(Traffic, NoPeerFailsWithinTimeout)
{
	int64_t t0 = iv::now_ms();
	size_t s = ps_.spawn("sink", { IVSHM_TRAFFIC, "sink", "--ep", shm_ep(), "--timeout", "1" });
	std::string l = finish(s);
	EXPECT_EQ(sfield(l, "status"), "fail");
	EXPECT_EQ(sfield(l, "reason"), "no-link");
	EXPECT_EQ(ps_.exit_code(s), 1);
	EXPECT_LT(iv::now_ms() - t0, 15000);
}

// A sink told to expect another count fails; the generator, whose ACK
// still reports every packet intact, passes.
TEST_F(Traffic, SinkDetectsWrongCount)
{
	size_t s = ps_.spawn("sink", tool("sink", shm_ep(), { "--count", "999" }));
	size_t g = ps_.spawn("gen", tool("gen", shm_ep(), { "--count", "1000" }));
	std::string lg = finish(g), ls = finish(s);
	EXPECT_EQ(sfield(ls, "status"), "fail") << ls;
	EXPECT_EQ(ps_.exit_code(s), 1);
	EXPECT_EQ(field(ls, "packets"), 1000);
	EXPECT_EQ(sfield(lg, "status"), "ok") << lg;
}

// Packets on a channel whose other side uses different ring parameters:
// the second opener is refused with a clear message.
TEST_F(Traffic, MismatchedParametersRefused)
{
	size_t s = ps_.spawn("sink", tool("sink", shm_ep(), { "--timeout", "3" }));
	usleep(300000);
	size_t g = ps_.spawn("gen", tool("gen", shm_ep(), { "--count", "10", "--ring-size", "64" }));
	std::string lg = finish(g), ls = finish(s);
	EXPECT_EQ(sfield(lg, "status"), "fail");
	EXPECT_EQ(sfield(lg, "reason"), "channel") << ps_.output(g);
	EXPECT_NE(ps_.output(g).find("differ"), std::string::npos) << ps_.output(g);
	EXPECT_EQ(sfield(ls, "status"), "fail");
}

TEST_F(Traffic, BadArgumentsExit2)
{
	const std::vector<std::vector<std::string>> bad = {
		{ IVSHM_TRAFFIC },
		{ IVSHM_TRAFFIC, "flood", "--ep", shm_ep() },
		{ IVSHM_TRAFFIC, "gen", "--ep", shm_ep() },            // no count/duration
		{ IVSHM_TRAFFIC, "sink" },                             // no --ep
		{ IVSHM_TRAFFIC, "gen", "--ep", shm_ep(), "--count", "1", "--size", "10" },
		{ IVSHM_TRAFFIC, "gen", "--ep", shm_ep(), "--count", "1", "--size", "9-8" },
		{ IVSHM_TRAFFIC, "sink", "--ep", shm_ep(), "--channel", "64" },
		{ IVSHM_TRAFFIC, "sink", "--ep", shm_ep(), "--mode", "busy" },
		{ IVSHM_TRAFFIC, "sink", "--ep", shm_ep(), "--ring-size", "100" },
		{ IVSHM_TRAFFIC, "gen", "--ep", shm_ep(), "--count", "-5" },
		{ IVSHM_TRAFFIC, "gen", "--ep", shm_ep(), "--count", "5x" },
		{ IVSHM_TRAFFIC, "sink", "--ep", shm_ep(), "extra" },
	};
	for (const auto &a : bad) {
		iv::Procs p;
		size_t i = p.spawn("bad", a);
		ASSERT_TRUE(p.wait(i, iv::now_ms() + 10000));
		std::string cmd;
		for (auto &s : a)
			cmd += s + " ";
		EXPECT_EQ(p.exit_code(i), 2) << cmd << "\n" << p.output(i);
		EXPECT_FALSE(p.output(i).empty()) << cmd; // says why
	}
	struct stat st;
	EXPECT_NE(stat(shm_.c_str(), &st), 0); // nothing was created
}

} // namespace
