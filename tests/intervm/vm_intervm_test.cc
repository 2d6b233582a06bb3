// SPDX-License-Identifier: BSD-3-Clause
// Description: suite vm - two Linux guests under QEMU (TCG, -cpu max,
// Debian's kernel, busybox initramfs from mkguest-intervm.sh) on the
// project's ivshmem-server (a real process), each with an
// ivshmem-doorbell device:
//  - the traffic tool in guest mode (pci:auto): guest 1 to guest 2, guest 2
//    to guest 1, and ping/echo round trips, every count and checksum
//    verified on both sides;
//  - Debian's dpdk-testpmd in each guest loading librte_net_ivshmem.so with
//    pci=auto: txonly in guest 1, rxonly in guest 2, counts equal;
//  - ivshm-fwd on the host between two channels (two server clients)
//    carries gen/sink and ping/echo traffic from guest 1 to guest 2, its
//    per-port counts exact.
// Every child (server, QEMU, forwarder) dies with the test binary
// (PR_SET_PDEATHSIG), has a deadline, and is killed and reaped on every
// path by the Procs guard.
#include <gtest/gtest.h>

#include "guest_util.h"
#include "proc_util.h"

#ifndef IVSHM_TRAFFIC_STATIC
#error "IVSHM_TRAFFIC_STATIC must be defined"
#endif
#ifndef IVSHM_SERVER
#error "IVSHM_SERVER must be defined"
#endif
#ifndef MKGUEST
#error "MKGUEST must be defined"
#endif
#ifndef GUEST_DIR
#error "GUEST_DIR must be defined"
#endif
#ifndef IVSHM_PMD
#define IVSHM_PMD ""
#endif

namespace {

using iv::field;
using iv::sfield;

const int kDeadlineS = 240; // whole test, guests included

// The guest kernel and initramfs images (initrd-dpdk.cpio beside the
// plain one when the PMD is built), built once per test binary run.
const iv::GuestImages &guest()
{
	static const iv::GuestImages g =
		iv::make_guest(MKGUEST, GUEST_DIR, { IVSHM_TRAFFIC_STATIC, IVSHM_PMD });
	return g;
}

// QEMU for one guest on the server's socket; @p cmd is the guest command
// line, words joined with commas (the guest's /init splits them again).
std::vector<std::string> qemu(const std::string &sock, const std::vector<std::string> &cmd,
			      bool dpdk = false)
{
	const iv::GuestImages &g = guest();
	std::vector<std::string> a = iv::qemu_tcg(
		g.kernel, dpdk ? g.dir + "/initrd-dpdk.cpio" : g.initrd, dpdk ? "512" : "256");
	a.insert(a.end(), { "-chardev", "socket,path=" + sock + ",id=ivs",
			    "-device", "ivshmem-doorbell,chardev=ivs,vectors=1" });
	std::vector<std::string> ap = iv::guest_append(cmd);
	a.insert(a.end(), ap.begin(), ap.end());
	return a;
}

// ivshm-traffic in a guest: "/bin/ivshm-traffic ROLE --ep pci:auto ...".
std::vector<std::string> tr(const std::string &role, int channel, std::vector<std::string> more)
{
	std::vector<std::string> a = { "ivshm-traffic", role, "--ep", "pci:auto", "--channel",
				       std::to_string(channel), "--timeout", "90",
				       "--peer-timeout", "10000" };
	a.insert(a.end(), more.begin(), more.end());
	return a;
}

// iv-run.sh CMD + CMD + ...
std::vector<std::string> seq(const std::vector<std::vector<std::string>> &cmds)
{
	std::vector<std::string> a = { "/bin/iv-run.sh" };
	for (size_t i = 0; i < cmds.size(); i++) {
		if (i)
			a.push_back("+");
		a.insert(a.end(), cmds[i].begin(), cmds[i].end());
	}
	return a;
}

class InterVm : public ::testing::Test {
protected:
	void SetUp() override
	{
		const iv::GuestImages &g = guest();
		ASSERT_TRUE(g.ok()) << g.err;
		deadline_ = iv::now_ms() + (int64_t)kDeadlineS * 1000;
		sock_ = "/tmp/" + iv::unique("srv") + ".sock";
	}
	void TearDown() override
	{
		ps_.kill_all();
		ps_.keep_logs(HasFailure());
		unlink(sock_.c_str());
	}

	void start_server(const char *size)
	{
		srv_ = ps_.spawn("server", { IVSHM_SERVER, "-F", "-v", "-S", sock_, "-l", size,
					     "-n", "1" });
		ASSERT_TRUE(iv::wait_path(sock_, iv::now_ms() + 10000)) << ps_.output(srv_);
	}

	// Wait for guests to power off; when one fails (or its kernel
	// panics) the others are stopped at once instead of waiting out their
	// own timeouts for a peer that will never come.
	void wait_guests(const std::vector<size_t> &gs)
	{
		for (;;) {
			bool running = false;
			for (size_t i : gs) {
				if (!ps_.done(i)) {
					running = true;
				} else if (ps_.output(i).find("IVSHM_EXIT rc=0") == std::string::npos) {
					ADD_FAILURE() << ps_[i].name << " failed:\n" << ps_.output(i);
					ps_.kill_all();
					return;
				}
			}
			if (!running || iv::now_ms() > deadline_)
				return;
			usleep(50 * 1000);
		}
	}

	// Wait for a guest to power off; its console output.
	std::string finish_guest(size_t i)
	{
		EXPECT_TRUE(ps_.wait(i, deadline_)) << ps_[i].name << " still running: killed\n"
						    << ps_.output(i);
		if (!ps_.done(i))
			ps_.kill_all();
		std::string out = ps_.output(i);
		EXPECT_NE(out.find("IVSHM_EXIT rc=0"), std::string::npos) << ps_[i].name << ":\n" << out;
		return out;
	}

	std::string line(const std::string &out, const std::string &role, int channel)
	{
		std::string l = iv::result_line(out, "IVSHM_TRAFFIC",
						"role=" + role + " status=ok channel=" +
						std::to_string(channel) + " ");
		EXPECT_FALSE(l.empty()) << "no good " << role << " line for channel " << channel
					<< " in:\n" << out;
		return l;
	}

	void check_gen_sink(const std::string &lg, const std::string &ls, long long n)
	{
		EXPECT_EQ(field(lg, "packets"), n) << lg;
		EXPECT_EQ(field(ls, "packets"), n) << ls;
		EXPECT_EQ(field(lg, "acked"), n) << lg;
		EXPECT_EQ(field(ls, "bytes"), field(lg, "bytes"));
		EXPECT_EQ(field(lg, "peer_bytes"), field(lg, "bytes"));
		for (const char *k : { "lost", "reordered", "corrupt", "dups" })
			EXPECT_EQ(field(ls, k), 0) << k << ": " << ls;
	}

	void check_ping_echo(const std::string &lp, const std::string &le, long long n)
	{
		EXPECT_EQ(field(lp, "packets"), n) << lp;
		EXPECT_EQ(field(le, "packets"), n) << le;
		EXPECT_EQ(field(lp, "bytes"), field(le, "bytes"));
		EXPECT_EQ(field(lp, "corrupt"), 0);
		EXPECT_EQ(field(lp, "reordered"), 0);
		EXPECT_EQ(field(le, "corrupt"), 0);
		EXPECT_EQ(field(le, "lost"), 0);
	}

	iv::Procs ps_{ GUEST_DIR };
	std::string sock_;
	size_t srv_ = 0;
	int64_t deadline_ = 0;
};

// Guest 1 -> guest 2 (channel 0), guest 2 -> guest 1 (channel 2) and round
// trips guest 1 -> 2 -> 1 (channel 1), one after the other in each guest.
TEST_F(InterVm, TrafficToolGuestToGuestAndBack)
{
	start_server("32M");
	const long long n = 40000, m = 30000, p = 5000;
	size_t g1 = ps_.spawn("guest1", qemu(sock_, seq({
		tr("gen", 0, { "--count", std::to_string(n), "--size", "random" }),
		tr("sink", 2, { "--count", std::to_string(m) }),
		tr("ping", 1, { "--count", std::to_string(p), "--window", "16", "--size", "46-1514" }),
	})));
	size_t g2 = ps_.spawn("guest2", qemu(sock_, seq({
		tr("sink", 0, { "--count", std::to_string(n) }),
		tr("gen", 2, { "--count", std::to_string(m), "--size", "64" }),
		tr("echo", 1, {}),
	})));
	wait_guests({ g1, g2 });
	std::string o1 = finish_guest(g1), o2 = finish_guest(g2);
	check_gen_sink(line(o1, "gen", 0), line(o2, "sink", 0), n);
	check_gen_sink(line(o2, "gen", 2), line(o1, "sink", 2), m);
	EXPECT_EQ(field(line(o1, "sink", 2), "bytes"), m * 64);
	check_ping_echo(line(o1, "ping", 1), line(o2, "echo", 1), p);
	EXPECT_EQ(o1.find("IV_RUN rc=1"), std::string::npos) << o1;
	EXPECT_EQ(o2.find("IV_RUN rc=1"), std::string::npos) << o2;
}

#ifdef HAVE_PMD
// Debian's dpdk-testpmd in both guests over net_ivshmem,pci=auto.
TEST_F(InterVm, TestpmdTxonlyGuestToRxonlyGuest)
{
	start_server("16M");
	size_t g1 = ps_.spawn("guest1-tx", qemu(sock_, { "/bin/testpmd-guest.sh", "tx", "3", "64" },
						true));
	size_t g2 = ps_.spawn("guest2-rx", qemu(sock_, { "/bin/testpmd-guest.sh", "rx" }, true));
	wait_guests({ g1, g2 });
	std::string o1 = finish_guest(g1), o2 = finish_guest(g2);
	std::string lt = iv::result_line(o1, "IVSHM_TESTPMD", "role=tx");
	std::string lr = iv::result_line(o2, "IVSHM_TESTPMD", "role=rx");
	ASSERT_EQ(sfield(lt, "status"), "ok") << o1;
	ASSERT_EQ(sfield(lr, "status"), "ok") << o2;
	EXPECT_GT(field(lt, "tx_packets"), 1000) << lt;
	EXPECT_EQ(field(lr, "rx_packets"), field(lt, "tx_packets")) << lt << "\n" << lr;
	EXPECT_EQ(field(lr, "rx_bytes"), field(lr, "rx_packets") * 64);
	EXPECT_EQ(field(lt, "tx_bytes"), field(lt, "tx_packets") * 64);
	EXPECT_EQ(field(lr, "rx_errors"), 0);
	EXPECT_EQ(field(lr, "rx_missed"), 0);
	EXPECT_EQ(field(lt, "tx_errors"), 0);
	EXPECT_EQ(field(lt, "rx_packets"), 0);
	EXPECT_EQ(field(lr, "tx_packets"), 0);
	// Both really ran net_ivshmem on the PCI device.
	EXPECT_NE(o1.find("Driver name: net_ivshmem"), std::string::npos) << o1;
	EXPECT_NE(o2.find("Devargs: pci=auto"), std::string::npos) << o2;
}
#endif

#ifdef IVSHM_FWD
// Guest 1 (channel 0) -> host ivshm-fwd -> guest 2 (channel 1).
TEST_F(InterVm, HostForwarderCarriesGuestToGuest)
{
	start_server("32M");
	std::string prefix = iv::unique("fwd");
	size_t f = ps_.spawn("fwd", {
		IVSHM_FWD, "--no-huge", "-m", "256", "--no-pci", "--file-prefix", prefix,
		"--lcores", "0@0", "--vdev", "net_ivshmem0,socket=" + sock_ + ",id=0",
		"--vdev", "net_ivshmem1,socket=" + sock_ + ",id=1", "--",
		"--interval", "1", "--idle-us", "50" });
	int64_t end = iv::now_ms() + 30000;
	while (ps_.output(f).find("forwarding 1 -> 0") == std::string::npos &&
	       !ps_.done(f) && iv::now_ms() < end)
		usleep(20000);
	ASSERT_NE(ps_.output(f).find("forwarding 1 -> 0"), std::string::npos) << ps_.output(f);

	const long long n = 40000, p = 3000;
	size_t g1 = ps_.spawn("guest1", qemu(sock_, seq({
		tr("gen", 0, { "--count", std::to_string(n), "--size", "random" }),
		tr("ping", 0, { "--count", std::to_string(p), "--window", "8" }),
	})));
	size_t g2 = ps_.spawn("guest2", qemu(sock_, seq({
		tr("sink", 1, { "--count", std::to_string(n) }),
		tr("echo", 1, {}),
	})));
	wait_guests({ g1, g2 });
	std::string o1 = finish_guest(g1), o2 = finish_guest(g2);
	check_gen_sink(line(o1, "gen", 0), line(o2, "sink", 1), n);
	check_ping_echo(line(o1, "ping", 0), line(o2, "echo", 1), p);

	ps_.signal(f, SIGINT);
	ASSERT_TRUE(ps_.wait(f, iv::now_ms() + 20000)) << ps_.output(f);
	EXPECT_EQ(ps_.exit_code(f), 0);
	std::string out = ps_.output(f);
	std::string p0 = iv::result_line(out, "IVSHM_FWD", "port=0");
	std::string p1 = iv::result_line(out, "IVSHM_FWD", "port=1");
	// gen: n DATA + END + BYE one way, the ACK back; ping: p DATA + END +
	// BYE one way, p DATA + END back.
	EXPECT_EQ(field(p0, "rx"), n + 2 + p + 2) << out;
	EXPECT_EQ(field(p1, "tx"), n + 2 + p + 2) << out;
	EXPECT_EQ(field(p1, "rx"), 1 + p + 1) << out;
	EXPECT_EQ(field(p0, "tx"), 1 + p + 1) << out;
	EXPECT_EQ(field(iv::result_line(out, "IVSHM_FWD", "total"), "dropped"), 0) << out;
	std::string rm = "rm -rf /var/run/dpdk/" + prefix;
	EXPECT_EQ(system(rm.c_str()), 0);
}
#endif

} // namespace
