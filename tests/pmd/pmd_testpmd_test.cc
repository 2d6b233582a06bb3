// SPDX-License-Identifier: BSD-3-Clause
//
// Description: Debian's unmodified dpdk-testpmd over net_ivshmem. Two
// testpmd processes (--no-huge --no-pci, distinct file prefixes, the plugin
// loaded with -d from a private 0700 folder) share one channel, over a plain
// shared file (shm=) and over the project's ivshmem server (socket=):
//  - txonly into rxonly: the sender's TX-packets equal the receiver's
//    RX-packets, and RX-bytes equal packets x size;
//  - io forwarding both ways, started with one tx_first burst: every
//    packet is accounted for on both sides at the end;
//  - the link goes down when the peer quits and up when it returns, with
//    an LSC event each time;
//  - bad devargs make testpmd fail with one log line naming the argument.
// Environment: IVSHM_PMD (the built plugin), IVSHM_SERVER (the server
// binary; socket= tests need it).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "testpmd_runner.h"

using namespace ivshm_test;

namespace {

const int kStartMs = 60000;

class PmdTestpmd : public ::testing::Test {
protected:
	void SetUp() override
	{
		const char *pmd = getenv("IVSHM_PMD");
		ASSERT_NE(pmd, nullptr) << "IVSHM_PMD is not set (run through meson test)";
		ASSERT_TRUE(dir_.ok());
		plugin_ = dir_.copy_in(pmd, "librte_net_ivshmem.so");
		ASSERT_FALSE(plugin_.empty());
		tag_ = unique_tag();
		shm_ = "/dev/shm/ivshm-pmdtest-" + tag_;
		sock_ = dir_.path() + "/srv.sock";
	}

	void TearDown() override
	{
		stop_server();
		unlink(shm_.c_str());
	}

	std::vector<std::string> eal(const std::string &name, const std::string &vdev,
				     const char *cores)
	{
		return {"--no-huge", "-m", "1024", "--no-pci", "--file-prefix",
			name + tag_, "--lcores", cores, "-d", plugin_, "--vdev", vdev,
			"--log-level", "pmd.net.ivshmem:info"};
	}

	static std::vector<std::string> app(const std::string &mode)
	{
		return {"-i", "--total-num-mbufs=16384", "--no-mlockall",
			"--forward-mode=" + mode, "--print-event", "intr_lsc"};
	}

	std::string shm_vdev() const
	{
		return "net_ivshmem0,shm=" + shm_ + ",size=16M";
	}
	std::string sock_vdev() const { return "net_ivshmem0,socket=" + sock_; }

	bool start_server()
	{
		const char *srv = getenv("IVSHM_SERVER");
		if (srv == nullptr)
			return false;
		server_pid_ = fork();
		if (server_pid_ == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			execl(srv, srv, "-F", "-q", "-S", sock_.c_str(), "-l", "16M",
			      "-n", "4", (char *)nullptr);
			_exit(127);
		}
		for (int i = 0; i < 500 && access(sock_.c_str(), F_OK) != 0; i++)
			usleep(10000);
		return access(sock_.c_str(), F_OK) == 0;
	}

	void stop_server()
	{
		if (server_pid_ > 0) {
			kill(server_pid_, SIGTERM);
			int64_t end = now_ms() + 5000;
			while (waitpid(server_pid_, nullptr, WNOHANG) == 0) {
				if (now_ms() > end) {
					kill(server_pid_, SIGKILL);
					waitpid(server_pid_, nullptr, 0);
					break;
				}
				usleep(10000);
			}
			server_pid_ = -1;
		}
	}

	static bool wait_link(Testpmd &t, const std::string &want, int ms)
	{
		int64_t end = now_ms() + ms;
		while (now_ms() < end) {
			if (link_status(t, 0) == want)
				return true;
			usleep(50000);
		}
		return false;
	}

	// Poll until counter @p key of port 0 reaches @p want (deadline): the
	// tests wait for an amount of traffic, never for an amount of time.
	static uint64_t wait_count(Testpmd &t, const char *key, uint64_t want, int ms)
	{
		int64_t end = now_ms() + ms;
		uint64_t v = 0;
		for (;;) {
			v = port_stats(t, 0)[key];
			if (v >= want || now_ms() > end)
				return v;
			usleep(100000);
		}
	}

	void txonly_into_rxonly(const std::string &vdev, int size)
	{
		Testpmd rx, tx;
		ASSERT_TRUE(rx.start(eal("rx", vdev, "0@0,1@1"), app("rxonly")));
		ASSERT_TRUE(rx.wait_ready(kStartMs)) << rx.output();
		std::vector<std::string> ta = app("txonly");
		ta.push_back("--txpkts=" + std::to_string(size));
		ASSERT_TRUE(tx.start(eal("tx", vdev, "0@1,1@0"), ta));
		ASSERT_TRUE(tx.wait_ready(kStartMs)) << tx.output();
		ASSERT_TRUE(wait_link(tx, "up", 10000)) << tx.output();
		ASSERT_TRUE(wait_link(rx, "up", 10000)) << rx.output();
		rx.command("start");
		tx.command("start");
		EXPECT_GE(wait_count(rx, "RX-packets", 20000, 60000), 20000u);
		tx.command("stop");
		auto ts = port_stats(tx, 0);
		uint64_t rx_pkts = wait_count(rx, "RX-packets", ts["TX-packets"], 30000);
		rx.command("stop");
		auto rs = port_stats(rx, 0);

		EXPECT_GE(ts["TX-packets"], 20000u) << tx.output();
		EXPECT_EQ(ts["TX-packets"], rx_pkts)
			<< rx.command("show port xstats 0") << tx.command("show port xstats 0")
			<< rx.output() << tx.output();
		EXPECT_EQ(rs["RX-packets"], ts["TX-packets"]);
		// testpmd counts bytes without CRC: exactly size per packet.
		EXPECT_EQ(rs["RX-bytes"], rs["RX-packets"] * (uint64_t)size);
		EXPECT_EQ(ts["TX-bytes"], ts["TX-packets"] * (uint64_t)size);
		EXPECT_EQ(rs["RX-errors"], 0u);
		EXPECT_EQ(rs["RX-missed"], 0u);
		EXPECT_EQ(tx.quit(), 0) << tx.output();
		EXPECT_EQ(rx.quit(), 0) << rx.output();
	}

	void io_both_ways(const std::string &vdev, unsigned size = 64)
	{
		Testpmd a, b;
		ASSERT_TRUE(b.start(eal("b", vdev, "0@0,1@1"), app("io")));
		ASSERT_TRUE(b.wait_ready(kStartMs)) << b.output();
		std::vector<std::string> aa = app("io");
		aa.push_back("--txpkts=" + std::to_string(size));
		ASSERT_TRUE(a.start(eal("a", vdev, "0@1,1@0"), aa));
		ASSERT_TRUE(a.wait_ready(kStartMs)) << a.output();
		ASSERT_TRUE(wait_link(a, "up", 10000)) << a.output();
		ASSERT_TRUE(wait_link(b, "up", 10000)) << b.output();
		b.command("start");
		// One burst of 32 packets from A, then both sides forward what
		// they receive back out of the same port: 32 packets circulate.
		a.command("start tx_first");
		EXPECT_GE(wait_count(a, "RX-packets", 20000, 60000), 20000u);
		a.command("stop");
		// B drains the A->B ring (A polls no more): wait until it has
		// received all A sent, then stop it.
		uint64_t a_sent = port_stats(a, 0)["TX-packets"];
		wait_count(b, "RX-packets", a_sent, 30000);
		b.command("stop");
		auto as = port_stats(a, 0);
		auto bs = port_stats(b, 0);
		EXPECT_GE(as["RX-packets"], 20000u) << a.output() << b.output();
		// B received everything A sent and forwarded all of it...
		EXPECT_EQ(bs["RX-packets"], as["TX-packets"]);
		EXPECT_EQ(bs["TX-packets"], bs["RX-packets"]);
		// ...and A sent the first burst plus everything it received:
		// the 32 packets now wait in the B->A ring.
		EXPECT_EQ(as["TX-packets"], as["RX-packets"] + 32) << a.output() << b.output();
		EXPECT_EQ(as["TX-bytes"], as["TX-packets"] * size);
		EXPECT_EQ(bs["RX-bytes"], bs["RX-packets"] * size);
		EXPECT_EQ(a.quit(), 0) << a.output();
		EXPECT_EQ(b.quit(), 0) << b.output();
	}

	void link_follows_peer(const std::string &vdev)
	{
		Testpmd a;
		ASSERT_TRUE(a.start(eal("a", vdev, "0@0,1@1"), app("rxonly")));
		ASSERT_TRUE(a.wait_ready(kStartMs)) << a.output();
		a.command("start");
		EXPECT_EQ(link_status(a, 0), "down");
		for (int round = 0; round < 2; round++) {
			size_t mark = a.output().size();
			Testpmd b;
			ASSERT_TRUE(b.start(eal("b" + std::to_string(round), vdev, "0@1,1@0"),
					    app("txonly")));
			ASSERT_TRUE(b.wait_ready(kStartMs)) << b.output();
			ASSERT_TRUE(wait_link(a, "up", 10000)) << a.output();
			EXPECT_NE(a.wait_for("link state change event", 5000, mark), std::string::npos)
				<< a.output().substr(mark);
			mark = a.output().size();
			EXPECT_EQ(b.quit(), 0) << b.output();
			ASSERT_TRUE(wait_link(a, "down", 10000)) << a.output();
			EXPECT_NE(a.wait_for("link state change event", 5000, mark), std::string::npos)
				<< a.output().substr(mark);
		}
		EXPECT_EQ(a.quit(), 0) << a.output();
	}

	PrivateDir dir_;
	std::string plugin_, tag_, shm_, sock_;
	pid_t server_pid_ = -1;
};

TEST_F(PmdTestpmd, ShmTxonlyIntoRxonly64) { txonly_into_rxonly(shm_vdev(), 64); }

TEST_F(PmdTestpmd, ShmTxonlyIntoRxonly1500) { txonly_into_rxonly(shm_vdev(), 1500); }

// 9000-byte frames span several 2 KiB transport buffers and, on the
// receive side, a chain of mbufs (testpmd enables scatter as needed).
TEST_F(PmdTestpmd, ShmTxonlyIntoRxonlyMultiSegment)
{
	Testpmd rx, tx;
	std::string vdev = shm_vdev();
	std::vector<std::string> ra = app("rxonly");
	ra.push_back("--max-pkt-len=9018");
	ra.push_back("--enable-scatter");
	ASSERT_TRUE(rx.start(eal("rx", vdev, "0@0,1@1"), ra));
	ASSERT_TRUE(rx.wait_ready(kStartMs)) << rx.output();
	std::vector<std::string> ta = app("txonly");
	ta.push_back("--max-pkt-len=9018");
	ta.push_back("--txpkts=2000,2000,2000,2000,1000");
	ta.push_back("--tx-offloads=0x8000"); // RTE_ETH_TX_OFFLOAD_MULTI_SEGS
	ASSERT_TRUE(tx.start(eal("tx", vdev, "0@1,1@0"), ta));
	ASSERT_TRUE(tx.wait_ready(kStartMs)) << tx.output();
	ASSERT_TRUE(wait_link(tx, "up", 10000));
	rx.command("start");
	tx.command("start");
	EXPECT_GE(wait_count(rx, "RX-packets", 2000, 60000), 2000u);
	tx.command("stop");
	auto ts = port_stats(tx, 0);
	uint64_t rx_pkts = wait_count(rx, "RX-packets", ts["TX-packets"], 30000);
	rx.command("stop");
	auto rs = port_stats(rx, 0);
	EXPECT_GE(ts["TX-packets"], 2000u) << tx.output();
	EXPECT_EQ(rx_pkts, ts["TX-packets"]);
	EXPECT_EQ(rs["RX-bytes"], rs["RX-packets"] * 9000u);
	EXPECT_EQ(rs["RX-errors"], 0u);
	EXPECT_EQ(tx.quit(), 0) << tx.output();
	EXPECT_EQ(rx.quit(), 0) << rx.output();
}

TEST_F(PmdTestpmd, ShmIoForwardBothWays) { io_both_ways(shm_vdev()); }

// zero_copy=1: received mbufs lend the region's buffers (from 256 bytes).
TEST_F(PmdTestpmd, ShmZeroCopyTxonlyIntoRxonly1500)
{
	txonly_into_rxonly(shm_vdev() + ",zero_copy=1", 1500);
}

// io forwarding transmits the lent mbufs (1000-byte packets: above
// copybreak) straight back; freeing them returns their loans, even with
// testpmd's fast-free default.
TEST_F(PmdTestpmd, ShmZeroCopyIoForwardBothWays)
{
	io_both_ways(shm_vdev() + ",zero_copy=1", 1000);
}

// tx_copy=stream: the sender copies with non-temporal stores (whole lines,
// fenced before the ring index moves); every packet arrives, at its size.
TEST_F(PmdTestpmd, ShmStreamingCopyTxonlyIntoRxonly1500)
{
	txonly_into_rxonly(shm_vdev() + ",tx_copy=stream", 1500);
}

TEST_F(PmdTestpmd, ShmLinkFollowsPeer) { link_follows_peer(shm_vdev()); }

TEST_F(PmdTestpmd, SocketTxonlyIntoRxonly)
{
	ASSERT_TRUE(start_server()) << "IVSHM_SERVER not set or server did not start";
	txonly_into_rxonly(sock_vdev(), 64);
}

TEST_F(PmdTestpmd, SocketIoForwardBothWays)
{
	ASSERT_TRUE(start_server()) << "IVSHM_SERVER not set or server did not start";
	io_both_ways(sock_vdev());
}

TEST_F(PmdTestpmd, SocketLinkFollowsPeer)
{
	ASSERT_TRUE(start_server()) << "IVSHM_SERVER not set or server did not start";
	link_follows_peer(sock_vdev());
}

// Each bad devarg fails the probe: EAL reports the vdev probe failure,
// testpmd finds no port, and the PMD's log names the argument.
TEST_F(PmdTestpmd, BadDevargsFailCleanly)
{
	struct Case {
		std::string args;
		std::string expect;
	};
	std::string shm = "shm=" + shm_ + ",size=16M";
	const std::vector<Case> cases = {
		{"", "give one of socket=PATH"},
		{shm + ",colour=blue", "unknown devarg 'colour'"},
		{shm + ",socket=/nonexistent", "conflicts with"},
		{shm + ",queues=0", "queues=0 is invalid"},
		{shm + ",queues=17", "queues=17 is invalid"},
		{shm + ",queues=2x", "queues=2x is invalid"},
		{shm + ",ring_size=1000", "ring_size=1000 is invalid"},
		{shm + ",buf_size=100", "buf_size=100 is invalid"},
		{shm + ",id=64", "id=64 is invalid"},
		{shm + ",id=-1", "id=-1 is invalid"},
		{shm + ",mac=02:00:00:00:00", "mac=02:00:00:00:00 is not a MAC"},
		{shm + ",rx_mode=pol", "rx_mode=pol is invalid"},
		{shm + ",id=1,id=2", "id= given more than once"},
		{"socket=/nonexistent/x.sock,size=1M", "size= applies to shm= only"},
		{"pci=zz:1", "pci=zz:1 is not a PCI address"},
		{"shm=" + shm_ + "-missing", "give size= to create it"},
	};
	int i = 0;
	for (const Case &c : cases) {
		Testpmd t;
		std::string vdev = "net_ivshmem0" + (c.args.empty() ? "" : "," + c.args);
		ASSERT_TRUE(t.start(eal("bad" + std::to_string(i++), vdev, "0@0,1@1"),
				    app("io")));
		ASSERT_TRUE(t.wait_ready(kStartMs)) << vdev << "\n" << t.output();
		const std::string &out = t.output();
		EXPECT_NE(out.find(c.expect), std::string::npos)
			<< vdev << " should log '" << c.expect << "':\n" << out;
		EXPECT_NE(out.find("failed to initialize net_ivshmem0"), std::string::npos)
			<< vdev << "\n" << out;
		EXPECT_NE(out.find("No probed ethernet devices"), std::string::npos)
			<< vdev << "\n" << out;
		EXPECT_EQ(t.quit(), 0) << vdev << "\n" << t.output();
	}
	// Nothing was created for the missing file.
	EXPECT_NE(access((shm_ + "-missing").c_str(), F_OK), 0);
}

} // namespace
