// SPDX-License-Identifier: BSD-3-Clause
// Description: suite vm - the one test program (ivshm_peer, only
// ivshm/ivshmem.h) passes on the host against the server, inside Linux
// guests (QEMU TCG, Debian's kernel, busybox initramfs from mkguest.sh)
// against a host client, between two guests, and over a plain file shared
// by a host process and a guest's ivshmem-plain device. Doorbells: guests
// write BAR0, hosts write eventfds; host peers wait on their eventfds
// (interrupt mode), guests poll, or wait on MSI-X eventfds through VFIO
// behind QEMU's virtual intel-iommu.
//
// The server runs in-process on a thread (QEMU's ivshmem-test does the
// same). Every child (QEMU, host peers) gets PR_SET_PDEATHSIG and a
// deadline; a guard kills and reaps whatever is left on every path.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <thread>

#include "guest_util.h"
#include "ivshm/server.h"
#include "proc_util.h"

#ifndef IVSHM_PEER
#error "IVSHM_PEER (path of the static peer program) must be defined"
#endif
#ifndef MKGUEST
#error "MKGUEST (path of mkguest.sh) must be defined"
#endif
#ifndef GUEST_DIR
#error "GUEST_DIR (where the guest kernel link and initramfs go) must be defined"
#endif

namespace {

const int kRounds = 40;       // messages each way per test
const int kPeerTimeoutS = 60; // peer's own deadline (after boot)
const int kDeadlineS = 120;   // the harness kills everything after this

using iv::now_ms;
using iv::slurp;
using iv::unique;

// The shared child guard (tests/common/proc_util.h) with its logs beside the
// guest images, and a deadline that reports each child it had to kill.
class Procs : public iv::Procs {
public:
	Procs() : iv::Procs(GUEST_DIR) {}

	// Wait for every child until the deadline; then kill the rest and,
	// with @p report, fail the test naming each. False if any was killed.
	bool wait_all(int64_t deadline, bool report = true)
	{
		bool ok = iv::Procs::wait_all(deadline);
		for (size_t i = 0; report && i < size(); i++)
			if ((*this)[i].killed)
				ADD_FAILURE() << (*this)[i].name << " still running at the "
					      << "deadline: killed";
		return ok;
	}
};

// The guest kernel and initramfs, built once per test binary run.
const iv::GuestImages &guest()
{
	static const iv::GuestImages g = iv::make_guest(MKGUEST, GUEST_DIR, { IVSHM_PEER });
	return g;
}

// Arguments of the peer program, joined with commas for the guest's
// kernel command line (the guest's /init turns them back into spaces).
std::vector<std::string> peer_args(const std::string &ep, char role,
				   const std::string &wait, unsigned vector = 0)
{
	return { IVSHM_PEER, "--ep", ep, "--role", std::string(1, role),
		 "--rounds", std::to_string(kRounds), "--wait", wait,
		 "--vector", std::to_string(vector),
		 "--timeout", std::to_string(kPeerTimeoutS) };
}

struct GuestOpts {
	std::string chardev_socket; // ivshmem-doorbell via this server socket
	unsigned vectors = 2;
	std::string plain_file;     // ivshmem-plain backed by this file
	uint64_t plain_size = 0;
	bool vfio = false;          // intel-iommu + vfio-pci in the guest
};

// A guest with an ivshmem-doorbell device of @p vectors on the server
// socket @p sock, behind a virtual IOMMU with @p vfio.
GuestOpts doorbell(const std::string &sock, unsigned vectors, bool vfio = false)
{
	GuestOpts o;
	o.chardev_socket = sock;
	o.vectors = vectors;
	o.vfio = vfio;
	return o;
}

std::vector<std::string> qemu_args(const GuestOpts &o,
				   const std::vector<std::string> &peer)
{
	const iv::GuestImages &g = guest();
	std::vector<std::string> a = iv::qemu_tcg(g.kernel, g.initrd, "256");
	if (o.vfio) {
		a.push_back("-device");
		a.push_back("intel-iommu");
	}
	if (!o.chardev_socket.empty()) {
		a.insert(a.end(), { "-chardev", "socket,path=" + o.chardev_socket + ",id=ivs",
				    "-device", "ivshmem-doorbell,chardev=ivs,vectors=" +
				    std::to_string(o.vectors) });
	}
	if (!o.plain_file.empty()) {
		a.insert(a.end(), { "-object", "memory-backend-file,id=ivm,share=on,size=" +
				    std::to_string(o.plain_size) + ",mem-path=" + o.plain_file,
				    "-device", "ivshmem-plain,memdev=ivm" });
	}
	// The peer program is /bin/ivshm_peer inside the guest.
	std::vector<std::string> cmd = peer;
	if (!cmd.empty() && cmd[0] == IVSHM_PEER)
		cmd[0] = "/bin/ivshm_peer";
	std::vector<std::string> ap =
		iv::guest_append(cmd, o.vfio ? " intel_iommu=on ivshm_vfio=1" : "");
	a.insert(a.end(), ap.begin(), ap.end());
	return a;
}

// The peer's result line, or "" if it printed none.
std::string result_line(const std::string &out)
{
	return iv::result_line(out, "IVSHM_PEER");
}

// A field of the result line; absent reads as a value no peer reports.
long long field(const std::string &line, const std::string &key)
{
	return iv::field(line, key, -1000000);
}

// Checks one peer's report: OK, every round, the same byte count as the
// other side; returns the line.
std::string expect_ok(const Procs &ps, size_t i, bool guest_side)
{
	std::string out = ps.output(i);
	std::string line = result_line(out);
	EXPECT_EQ(line.rfind("IVSHM_PEER OK", 0), 0u)
		<< ps[i].name << " output:\n" << out;
	EXPECT_EQ(field(line, "rounds"), kRounds) << line;
	if (guest_side)
		EXPECT_NE(out.find("IVSHM_EXIT rc=0"), std::string::npos)
			<< ps[i].name << " output:\n" << out;
	else
		EXPECT_TRUE(WIFEXITED(ps[i].status) && WEXITSTATUS(ps[i].status) == 0)
			<< ps[i].name << " status " << ps[i].status << "\n" << out;
	return line;
}

class Server {
public:
	explicit Server(unsigned vectors, uint64_t size = 1 << 20)
	{
		path_ = "/tmp/" + unique("srv") + ".sock";
		ivshm_server_params p{};
		p.socket_path = path_.c_str();
		p.size = size;
		p.vectors = vectors;
		ret_ = ivshm_server_create(&p, &srv_);
		if (ret_ == 0)
			thr_ = std::thread([this] { ivshm_server_run(srv_); });
	}
	~Server()
	{
		if (srv_ == nullptr)
			return;
		ivshm_server_stop(srv_);
		thr_.join();
		ivshm_server_destroy(srv_);
	}
	int ret() const { return ret_; }
	const std::string &path() const { return path_; }
	// Wait (bounded) until @p n peers are connected: QEMU must know the
	// host peer before the guest rings it.
	bool await_peers(unsigned n, int ms = 30000)
	{
		int64_t end = now_ms() + ms;
		while (ivshm_server_npeers(srv_) < n)
			if (now_ms() > end)
				return false;
			else
				usleep(10 * 1000);
		return true;
	}

private:
	std::string path_;
	ivshm_server *srv_ = nullptr;
	std::thread thr_;
	int ret_ = -1;
};

class Vm : public ::testing::Test {
protected:
	void SetUp() override
	{
		const iv::GuestImages &g = guest();
		ASSERT_TRUE(g.ok()) << g.err;
		deadline_ = now_ms() + (int64_t)kDeadlineS * 1000;
	}
	void TearDown() override
	{
		ps_.kill_all();
		// Logs of a failed test stay for reading; others go.
		ps_.keep_logs(HasFailure());
	}
	// Peer a, then, once the server counts it (QEMU drops a doorbell for
	// a peer it has not heard of yet), peer b, both on @p srv; waits for
	// both and checks each report (expect_ok). An argv is a guest's when
	// it starts QEMU, else a host process's. Result lines in *la, *lb.
	void run_pair(Server &srv, const std::vector<std::string> &a,
		      const std::vector<std::string> &b, std::string *la, std::string *lb)
	{
		bool ga = a[0] != IVSHM_PEER, gb = b[0] != IVSHM_PEER;
		size_t ia = ps_.spawn(ga ? "guest-a" : "host-a", a);
		ASSERT_TRUE(srv.await_peers(1));
		size_t ib = ps_.spawn(gb ? "guest-b" : "host-b", b);
		EXPECT_TRUE(ps_.wait_all(deadline_));
		*la = expect_ok(ps_, ia, ga);
		*lb = expect_ok(ps_, ib, gb);
	}

	Procs ps_;
	int64_t deadline_ = 0;
};

// ---- host only: the same program, no guest ----------------------------

TEST_F(Vm, HostPlainFile)
{
	std::string f = "/dev/shm/" + unique("plain");
	std::string ep = "shm:" + f + "?size=1M";
	size_t a = ps_.spawn("host-a", peer_args(ep, 'a', "poll"));
	size_t b = ps_.spawn("host-b", peer_args(ep, 'b', "poll"));
	EXPECT_TRUE(ps_.wait_all(deadline_));
	std::string la = expect_ok(ps_, a, false), lb = expect_ok(ps_, b, false);
	EXPECT_EQ(field(la, "bytes"), field(lb, "bytes"));
	EXPECT_EQ(field(la, "caps"), 0);
	unlink(f.c_str());
}

TEST_F(Vm, HostServerInterrupts)
{
	Server srv(2);
	ASSERT_EQ(srv.ret(), 0);
	std::string ep = "socket:" + srv.path();
	size_t a = ps_.spawn("host-a", peer_args(ep, 'a', "irq", 1));
	size_t b = ps_.spawn("host-b", peer_args(ep, 'b', "irq", 1));
	EXPECT_TRUE(ps_.wait_all(deadline_));
	std::string la = expect_ok(ps_, a, false), lb = expect_ok(ps_, b, false);
	EXPECT_EQ(field(la, "bytes"), field(lb, "bytes"));
	// Every round was announced by a doorbell and woke the other side.
	EXPECT_EQ(field(la, "wakeups"), kRounds);
	EXPECT_EQ(field(lb, "wakeups"), kRounds);
	EXPECT_EQ(field(la, "notifies"), kRounds);
}

// ---- a guest against a host process -------------------------------------

TEST_F(Vm, PlainDeviceInGuestVsHostProcessOnBackingFile)
{
	std::string f = "/dev/shm/" + unique("plain");
	GuestOpts o;
	o.plain_file = f;
	o.plain_size = 1 << 20;
	size_t h = ps_.spawn("host-a", peer_args("shm:" + f + "?size=1M", 'a', "poll"));
	size_t g = ps_.spawn("guest-b", qemu_args(o, peer_args("pci:auto", 'b', "poll")));
	EXPECT_TRUE(ps_.wait_all(deadline_));
	std::string lh = expect_ok(ps_, h, false), lg = expect_ok(ps_, g, true);
	EXPECT_EQ(field(lh, "bytes"), field(lg, "bytes"));
	EXPECT_EQ(field(lg, "kind"), 2); // pci, seen as a plain region
	EXPECT_EQ(field(lg, "caps"), 0);
	unlink(f.c_str());
}

// Host client waits on its eventfd: woken by the guest's BAR0 doorbell each
// round. The guest polls (no driver); the host rings it through its eventfd.
TEST_F(Vm, GuestDoorbellWakesHostClient)
{
	Server srv(2);
	ASSERT_EQ(srv.ret(), 0);
	GuestOpts o = doorbell(srv.path(), 2);
	std::string lh, lg;
	ASSERT_NO_FATAL_FAILURE(run_pair(srv, peer_args("socket:" + srv.path(), 'a', "irq", 1),
					 qemu_args(o, peer_args("pci:auto", 'b', "poll", 1)),
					 &lh, &lg));
	EXPECT_EQ(field(lh, "bytes"), field(lg, "bytes"));
	EXPECT_EQ(field(lh, "wakeups"), kRounds); // every BAR0 write arrived
	EXPECT_EQ(field(lg, "notifies"), kRounds);
	EXPECT_EQ(field(lh, "notifies"), kRounds);
	EXPECT_GE(field(lg, "id"), 0);
	EXPECT_EQ(field(lg, "peer"), field(lh, "id"));
}

// Two guests on one server, both polling, both ringing BAR0 doorbells.
TEST_F(Vm, TwoGuestsPolling)
{
	Server srv(1);
	ASSERT_EQ(srv.ret(), 0);
	GuestOpts o = doorbell(srv.path(), 1);
	std::string la, lb;
	ASSERT_NO_FATAL_FAILURE(run_pair(srv, qemu_args(o, peer_args("pci:auto", 'a', "poll")),
					 qemu_args(o, peer_args("pci:auto", 'b', "poll")),
					 &la, &lb));
	EXPECT_EQ(field(la, "bytes"), field(lb, "bytes"));
	EXPECT_EQ(field(la, "peer"), field(lb, "id"));
	EXPECT_EQ(field(lb, "peer"), field(la, "id"));
}

// ---- interrupt mode in guests: VFIO behind QEMU's virtual intel-iommu -----
// Debian's kernel has no VFIO no-IOMMU mode, and uio_pci_generic knows only
// INTx (ivshmem-doorbell raises MSI-X only), so the guest gets a virtual
// IOMMU; /init binds the device to vfio-pci and the endpoint routes MSI-X
// vectors to eventfds.

const unsigned kCapDoorbell = 1, kCapInterrupt = 2, kCapPeerId = 8;

TEST_F(Vm, GuestInterruptsViaVfioBothWays)
{
	Server srv(2);
	ASSERT_EQ(srv.ret(), 0);
	GuestOpts o = doorbell(srv.path(), 2, true);
	std::string lh, lg;
	ASSERT_NO_FATAL_FAILURE(run_pair(srv, peer_args("socket:" + srv.path(), 'a', "irq", 1),
					 qemu_args(o, peer_args("pci:auto", 'b', "irq", 1)),
					 &lh, &lg));
	EXPECT_EQ(field(lh, "bytes"), field(lg, "bytes"));
	// Host eventfd -> QEMU -> MSI-X vector 1 -> guest eventfd, every round;
	// guest BAR0 -> QEMU -> host eventfd, every round.
	EXPECT_EQ(field(lg, "wakeups"), kRounds);
	EXPECT_EQ(field(lh, "wakeups"), kRounds);
	EXPECT_EQ(field(lg, "caps"), (long long)(kCapDoorbell | kCapInterrupt | kCapPeerId));
}

TEST_F(Vm, TwoGuestsInterruptsViaVfio)
{
	Server srv(1);
	ASSERT_EQ(srv.ret(), 0);
	GuestOpts o = doorbell(srv.path(), 1, true);
	std::string la, lb;
	ASSERT_NO_FATAL_FAILURE(run_pair(srv, qemu_args(o, peer_args("pci:auto", 'a', "irq")),
					 qemu_args(o, peer_args("pci:auto", 'b', "irq")),
					 &la, &lb));
	EXPECT_EQ(field(la, "bytes"), field(lb, "bytes"));
	EXPECT_EQ(field(la, "wakeups"), kRounds);
	EXPECT_EQ(field(lb, "wakeups"), kRounds);
}

// IVSHM_EP_F_POLL on a device that could interrupt: no CAP_INTERRUPT, the
// guest polls, its doorbells still wake the host.
TEST_F(Vm, GuestForcedPollingWithVfio)
{
	Server srv(1);
	ASSERT_EQ(srv.ret(), 0);
	GuestOpts o = doorbell(srv.path(), 1, true);
	std::vector<std::string> pa = peer_args("pci:auto", 'b', "poll");
	pa.insert(pa.end(), { "--force-poll", "1" });
	std::string lh, lg;
	ASSERT_NO_FATAL_FAILURE(run_pair(srv, peer_args("socket:" + srv.path(), 'a', "irq"),
					 qemu_args(o, pa), &lh, &lg));
	EXPECT_EQ(field(lg, "caps"), (long long)(kCapDoorbell | kCapPeerId));
	EXPECT_EQ(field(lh, "wakeups"), kRounds);
}

// The harness itself: a guest that never finishes is killed at the
// deadline and reaped, not left running.
TEST_F(Vm, HungGuestIsKilledAtDeadline)
{
	GuestOpts o;
	std::vector<std::string> cmd = { "/bin/sleep", "600" };
	size_t g = ps_.spawn("guest-hung", qemu_args(o, cmd));
	int64_t start = now_ms();
	EXPECT_FALSE(ps_.wait_all(start + 5000, false));
	EXPECT_LT(now_ms() - start, 15000);
	EXPECT_TRUE(WIFSIGNALED(ps_[g].status) && WTERMSIG(ps_[g].status) == SIGKILL)
		<< "status " << ps_[g].status;
	EXPECT_EQ(ps_[g].pid, -1); // reaped: no pid kept
}

#ifdef IVSHM_SERVER_BIN
// The project's server daemon (not the in-process library) between QEMU
// and a host client, interrupts both ways.
TEST_F(Vm, ServerDaemonGuestAndHostClient)
{
	std::string sock = "/tmp/" + unique("daemon") + ".sock";
	ps_.spawn("server", { IVSHM_SERVER_BIN, "-F", "-S", sock, "-l", "1M", "-n", "2" });
	ASSERT_TRUE(iv::wait_path(sock, now_ms() + 10000)) << "server socket never appeared";
	size_t h = ps_.spawn("host-a", peer_args("socket:" + sock, 'a', "irq", 1));
	GuestOpts o = doorbell(sock, 2, true);
	size_t g = ps_.spawn("guest-b", qemu_args(o, peer_args("pci:auto", 'b', "irq", 1)));
	// The peers finish; the daemon runs until we stop it.
	int64_t dl = deadline_;
	while ((!ps_.done(h) || !ps_.done(g)) && now_ms() < dl)
		usleep(20 * 1000);
	ps_.kill_all();
	std::string lh = expect_ok(ps_, h, false), lg = expect_ok(ps_, g, true);
	EXPECT_EQ(field(lh, "wakeups"), kRounds);
	EXPECT_EQ(field(lg, "wakeups"), kRounds);
	unlink(sock.c_str());
}
#endif

} // namespace
