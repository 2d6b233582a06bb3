// SPDX-License-Identifier: BSD-3-Clause
// Description: ivshm-fwd between two net_ivshmem channels of one region
// (suite dpdk), with ivshm-traffic processes at both ends: gen on channel 0,
// sink on channel 1 (and the sink's ACK back), ping against echo through the
// forwarder, a destination MAC rewrite seen by the sink; shutdown on SIGINT
// and SIGTERM with exact per-port counts; bad arguments refused.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>

#include <set>

#include "proc_util.h"
#include "traffic_frame.h" // tr_csum(): the tool's own checksum

#ifndef IVSHM_TRAFFIC
#error "IVSHM_TRAFFIC must be defined"
#endif
#ifndef IVSHM_FWD
#error "IVSHM_FWD must be defined"
#endif

namespace {

using iv::field;
using iv::sfield;

const int kDeadlineMs = 120000;

class Fwd : public ::testing::Test {
protected:
	void SetUp() override
	{
		tag_ = iv::unique("fwd");
		shm_ = "/dev/shm/" + tag_;
		deadline_ = iv::now_ms() + kDeadlineMs;
	}
	void TearDown() override
	{
		ps_.kill_all();
		ps_.keep_logs(HasFailure());
		unlink(shm_.c_str());
		std::string rm = "rm -rf /var/run/dpdk/" + tag_ + " 2>/dev/null";
		if (system(rm.c_str()) != 0)
			fprintf(stderr, "could not remove the EAL runtime folder\n");
	}

	size_t start_fwd(std::vector<std::string> app, std::string port1 = "")
	{
		if (port1.empty())
			port1 = "net_ivshmem1,shm=" + shm_ + ",size=16M,id=1";
		std::vector<std::string> a = {
			IVSHM_FWD, "--no-huge", "-m", "256", "--no-pci", "--file-prefix", tag_,
			"--lcores", "0@0", "--log-level", "pmd.net.ivshmem:info",
			"--vdev", "net_ivshmem0,shm=" + shm_ + ",size=16M,id=0",
			"--vdev", port1, "--" };
		a.insert(a.end(), app.begin(), app.end());
		size_t f = ps_.spawn("fwd", a);
		// Ready once both ports forward.
		int64_t end = iv::now_ms() + 30000;
		while (ps_.output(f).find("forwarding 1 -> 0") == std::string::npos &&
		       ps_.output(f).find("forwarding 0 -> 1") == std::string::npos) {
			if (ps_.done(f) || iv::now_ms() > end)
				break;
			usleep(20000);
		}
		EXPECT_NE(ps_.output(f).find("forwarding 0 -> 1"), std::string::npos)
			<< ps_.output(f);
		return f;
	}

	std::vector<std::string> tool(const std::string &role, int channel,
				      std::vector<std::string> more)
	{
		std::vector<std::string> a = { IVSHM_TRAFFIC, role, "--ep",
					       "shm:" + shm_ + "?size=16M", "--channel",
					       std::to_string(channel), "--timeout", "30",
					       "--peer-timeout", "10000" };
		a.insert(a.end(), more.begin(), more.end());
		return a;
	}

	std::string finish(size_t i)
	{
		EXPECT_TRUE(ps_.wait(i, deadline_)) << ps_[i].name << " still running";
		if (!ps_.done(i))
			ps_.kill_all();
		std::string out = ps_.output(i);
		return iv::result_line(out, "IVSHM_TRAFFIC");
	}

	// Stop the forwarder with @p sig; returns its output.
	std::string stop_fwd(size_t f, int sig)
	{
		ps_.signal(f, sig);
		EXPECT_TRUE(ps_.wait(f, iv::now_ms() + 20000)) << "fwd ignored the signal";
		EXPECT_EQ(ps_.exit_code(f), 0) << ps_.output(f);
		return ps_.output(f);
	}

	iv::Procs ps_;
	std::string tag_, shm_;
	int64_t deadline_ = 0;
};

TEST_F(Fwd, GenToSinkThroughForwarderSigint)
{
	const long long n = 200000;
	size_t f = start_fwd({ "--interval", "1" });
	size_t s = ps_.spawn("sink", tool("sink", 1, { "--count", std::to_string(n) }));
	size_t g = ps_.spawn("gen", tool("gen", 0, { "--count", std::to_string(n),
						     "--size", "random" }));
	std::string lg = finish(g), ls = finish(s);
	EXPECT_EQ(sfield(lg, "status"), "ok") << ps_.output(g);
	EXPECT_EQ(sfield(ls, "status"), "ok") << ps_.output(s);
	EXPECT_EQ(field(ls, "packets"), n);
	EXPECT_EQ(field(lg, "acked"), n);
	EXPECT_EQ(field(ls, "bytes"), field(lg, "bytes"));
	for (const char *k : { "lost", "reordered", "corrupt", "dups" })
		EXPECT_EQ(field(ls, k), 0) << k;
	std::string out = stop_fwd(f, SIGINT);
	std::string p0 = iv::result_line(out, "IVSHM_FWD", "port=0");
	std::string p1 = iv::result_line(out, "IVSHM_FWD", "port=1");
	std::string tot = iv::result_line(out, "IVSHM_FWD", "total");
	// Channel 0 -> 1: every DATA packet, END and BYE; 1 -> 0: the ACK.
	EXPECT_EQ(field(p0, "rx"), n + 2) << out;
	EXPECT_EQ(field(p1, "tx"), n + 2) << out;
	EXPECT_EQ(field(p1, "rx"), 1) << out;
	EXPECT_EQ(field(p0, "tx"), 1) << out;
	EXPECT_EQ(field(p1, "tx_bytes"), field(p0, "rx_bytes"));
	EXPECT_EQ(field(tot, "fwd"), n + 3) << out;
	EXPECT_EQ(field(tot, "dropped"), 0) << out;
	EXPECT_EQ(sfield(tot, "status"), "ok");
	// Rates were printed while it ran.
	EXPECT_NE(out.find("Mpps"), std::string::npos);
}

TEST_F(Fwd, PingEchoThroughForwarderSigterm)
{
	const long long n = 20000;
	size_t f = start_fwd({ "--interval", "0" });
	size_t e = ps_.spawn("echo", tool("echo", 1, {}));
	size_t p = ps_.spawn("ping", tool("ping", 0, { "--count", std::to_string(n),
						       "--window", "32", "--size", "46-1514" }));
	std::string lp = finish(p), le = finish(e);
	EXPECT_EQ(sfield(lp, "status"), "ok") << ps_.output(p);
	EXPECT_EQ(sfield(le, "status"), "ok") << ps_.output(e);
	EXPECT_EQ(field(lp, "packets"), n);
	EXPECT_EQ(field(le, "packets"), n);
	EXPECT_EQ(field(lp, "corrupt"), 0);
	EXPECT_EQ(field(lp, "reordered"), 0);
	std::string out = stop_fwd(f, SIGTERM);
	std::string p0 = iv::result_line(out, "IVSHM_FWD", "port=0");
	std::string p1 = iv::result_line(out, "IVSHM_FWD", "port=1");
	// 0 -> 1: DATA, END, BYE; 1 -> 0: DATA and END reflected.
	EXPECT_EQ(field(p0, "rx"), n + 2) << out;
	EXPECT_EQ(field(p1, "rx"), n + 1) << out;
	EXPECT_EQ(field(p1, "tx"), n + 2) << out;
	EXPECT_EQ(field(p0, "tx"), n + 1) << out;
	EXPECT_EQ(field(iv::result_line(out, "IVSHM_FWD", "total"), "dropped"), 0);
}

TEST_F(Fwd, DestinationMacRewrite)
{
	const long long n = 5000;
	size_t f = start_fwd({ "--eth-dst", "1=02:00:00:00:00:99", "--interval", "0" });
	std::string out0 = ps_.output(f);
	size_t s = ps_.spawn("sink", tool("sink", 1, {}));
	size_t g = ps_.spawn("gen", tool("gen", 0, { "--count", std::to_string(n) }));
	std::string lg = finish(g), ls = finish(s);
	EXPECT_EQ(sfield(ls, "status"), "ok") << ps_.output(s);
	EXPECT_EQ(sfield(lg, "status"), "ok") << ps_.output(g);
	EXPECT_EQ(sfield(ls, "mac_dst"), "02:00:00:00:00:99") << ls;
	// The source MAC is the forwarder's port 1.
	size_t m = out0.find("port 1 net_ivshmem1 mac ");
	ASSERT_NE(m, std::string::npos) << out0;
	std::string mac = out0.substr(m + strlen("port 1 net_ivshmem1 mac "), 17);
	for (auto &c : mac)
		c = (char)tolower(c);
	EXPECT_EQ(sfield(ls, "mac_src"), mac);
	stop_fwd(f, SIGINT);
}

// net_ivshmem to another PMD: Debian's net_tap. The generator's frames
// come out of the kernel side of the tap interface, captured with a packet
// socket: every sequence number once, every frame intact.
TEST_F(Fwd, IvshmemToTapInterface)
{
	const long long n = 3000;
	std::string ifname = "ivt" + std::to_string(getpid() % 100000);
	size_t f = start_fwd({ "--oneway", "--interval", "0" }, "net_tap0,iface=" + ifname);
	unsigned idx = if_nametoindex(ifname.c_str());
	ASSERT_NE(idx, 0u) << "no interface " << ifname << "\n" << ps_.output(f);
	int s = socket(AF_PACKET, SOCK_RAW, htons(0x88b5));
	ASSERT_GE(s, 0) << strerror(errno);
	int big = 64 << 20;
	setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	struct sockaddr_ll sll = {};
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(0x88b5);
	sll.sll_ifindex = (int)idx;
	ASSERT_EQ(bind(s, (struct sockaddr *)&sll, sizeof(sll)), 0) << strerror(errno);

	size_t g = ps_.spawn("gen", tool("gen", 0, { "--count", std::to_string(n), "--no-ack",
						     "--rate", "20000", "--size", "100" }));
	std::set<uint64_t> seqs;
	long long bad = 0, other = 0;
	int64_t end = iv::now_ms() + 30000;
	while ((long long)seqs.size() < n && iv::now_ms() < end) {
		struct pollfd p = { s, POLLIN, 0 };
		if (poll(&p, 1, 200) <= 0)
			continue;
		uint8_t b[2048];
		ssize_t r = recv(s, b, sizeof(b), 0);
		if (r < 0)
			break;
		uint32_t magic, len;
		uint16_t type;
		uint64_t seq;
		if (r < 46) {
			bad++;
			continue;
		}
		memcpy(&magic, b + 14, 4);
		memcpy(&type, b + 18, 2);
		memcpy(&len, b + 22, 4);
		memcpy(&seq, b + 30, 8);
		uint32_t csum;
		memcpy(&csum, b + 26, 4);
		memset(b + 26, 0, 4);
		if (magic != 0x52545649u || r != 100 || len != 100 ||
		    csum != tr_csum(b + 14, (uint32_t)r - 14)) {
			bad++;
			continue;
		}
		if (type != 1) {
			other++; // END, BYE
			continue;
		}
		EXPECT_TRUE(seqs.insert(seq).second) << "duplicate " << seq;
	}
	close(s);
	std::string lg = finish(g);
	EXPECT_EQ(sfield(lg, "status"), "ok") << ps_.output(g);
	EXPECT_EQ((long long)seqs.size(), n);
	EXPECT_EQ(bad, 0);
	if (!seqs.empty()) {
		EXPECT_EQ(*seqs.begin(), 0u);
		EXPECT_EQ(*seqs.rbegin(), (uint64_t)n - 1);
	}
	std::string out = stop_fwd(f, SIGINT);
	std::string p1 = iv::result_line(out, "IVSHM_FWD", "port=1");
	EXPECT_GE(field(p1, "tx"), n) << out;
	EXPECT_NE(sfield(p1, "name"), "") << out;
}

TEST_F(Fwd, BadArgumentsRefused)
{
	for (const auto &bad : std::vector<std::vector<std::string>>{
		     { "--pairs", "0:5" }, { "--pairs", "0:0" }, { "--burst", "0" },
		     { "--eth-dst", "1=zz" }, { "--bogus" } }) {
		std::vector<std::string> a = {
			IVSHM_FWD, "--no-huge", "-m", "128", "--no-pci", "--file-prefix", tag_,
			"--vdev", "net_ivshmem0,shm=" + shm_ + ",size=16M,id=0",
			"--vdev", "net_ivshmem1,shm=" + shm_ + ",size=16M,id=1", "--" };
		a.insert(a.end(), bad.begin(), bad.end());
		iv::Procs p;
		size_t i = p.spawn("bad", a);
		ASSERT_TRUE(p.wait(i, iv::now_ms() + 30000));
		EXPECT_EQ(p.exit_code(i), 2) << bad[0] << "\n" << p.output(i);
	}
}

} // namespace
