/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * reliab_test.cc - Description: the server under chaos and under load,
 * with real processes (suite stress).
 *
 * Chaos: the real ivshmem-server binary and 8 chaos_peer processes (4
 * channels, one pair each) move checked packet streams through the
 * transport over socket endpoints (doorbells, peer events) while, for
 * IVSHM_CHAOS_SECONDS (default 60), random peers of three pairs are
 * killed with SIGKILL and restarted. The fourth pair is never killed: its
 * streams must arrive complete (every packet, counted at both ends). Every
 * peer checks every byte, sequence number and checksum it receives (a
 * peer that sees corruption exits 2 and fails the test). Afterwards every
 * peer's link must have recovered (it received from its current partner),
 * and the server must hold exactly the descriptors it held before the
 * chaos with the same peers connected (/proc/PID/fd) and no more memory
 * than before plus a small allowance (VmRSS; not asserted in sanitizer
 * builds, where the server's LeakSanitizer run at exit counts instead).
 *
 * Load: 1000 clients connect to one server (--max-peers 1000) at once
 * and read their set-up; the server must hold all of them (2 descriptors
 * per peer); a 1001st client is refused (the client library gets
 * -ECONNRESET, ivshmem-client prints why, the server logs the limit); then
 * all leave and the server's descriptors return to their baseline and its
 * memory to near it; a second round must not grow it (no leak per peer).
 *
 * Figures are printed as "CHAOS ..." and "LOAD ..." lines.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ivshm/client.h"
#include "ivshm/transport.h"

namespace {

const char *env_or(const char *name, const char *def)
{
	const char *v = getenv(name);
	return v && *v ? v : def;
}

std::string server_bin() { return env_or("IVSHM_SERVER_BIN", "apps/ivshmem-server/ivshmem-server"); }
std::string client_bin() { return env_or("IVSHM_CLIENT_BIN", "apps/ivshmem-client/ivshmem-client"); }
std::string peer_bin() { return env_or("IVSHM_CHAOS_PEER_BIN", "tests/reliab/chaos_peer"); }

class TempDir {
public:
	TempDir()
	{
		char t[96];
		snprintf(t, sizeof(t), "/tmp/ivshm-reliab-%d-XXXXXX", (int)getpid());
		if (mkdtemp(t))
			path_ = t;
	}
	~TempDir()
	{
		if (!path_.empty() && system(("rm -rf '" + path_ + "'").c_str()) != 0) {
		}
	}
	std::string file(const std::string &n) const { return path_ + "/" + n; }
	bool ok() const { return !path_.empty(); }

private:
	std::string path_;
};

bool wait_until(const std::function<bool()> &c, int ms)
{
	auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
	while (std::chrono::steady_clock::now() < end) {
		if (c())
			return true;
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	}
	return c();
}

int proc_fds(pid_t pid)
{
	std::string d = "/proc/" + std::to_string(pid) + "/fd";
	DIR *dir = opendir(d.c_str());
	int n = 0;
	if (!dir)
		return -1;
	while (struct dirent *e = readdir(dir))
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

long proc_rss_kb(pid_t pid)
{
	std::ifstream f("/proc/" + std::to_string(pid) + "/status");
	std::string line;
	while (std::getline(f, line))
		if (line.rfind("VmRSS:", 0) == 0)
			return atol(line.c_str() + 6);
	return -1;
}

std::string slurp(const std::string &path)
{
	std::ifstream f(path);
	std::stringstream ss;
	ss << f.rdbuf();
	return ss.str();
}

size_t count_of(const std::string &hay, const std::string &needle)
{
	size_t n = 0;
	for (size_t p = hay.find(needle); p != std::string::npos;
	     p = hay.find(needle, p + 1))
		n++;
	return n;
}

/* fork + exec with stdout/stderr appended to @p log. */
pid_t spawn(const std::vector<std::string> &argv, const std::string &log)
{
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		std::vector<char *> a;
		for (auto &s : argv)
			a.push_back(const_cast<char *>(s.c_str()));
		a.push_back(nullptr);
		execv(a[0], a.data());
		_exit(127);
	}
	return pid;
}

/* Wait for @p pid up to @p ms; SIGKILL it at the deadline. Returns status. */
int reap(pid_t pid, int ms)
{
	int st = 0;
	if (wait_until([&] { return waitpid(pid, &st, WNOHANG) == pid; }, ms))
		return st;
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

struct Server {
	pid_t pid = -1;
	std::string sock, log;
	bool start(const TempDir &d, const std::vector<std::string> &extra)
	{
		sock = d.file("srv.sock");
		log = d.file("server.log");
		std::vector<std::string> a = { server_bin(), "-F", "-v", "-S", sock };
		a.insert(a.end(), extra.begin(), extra.end());
		pid = spawn(a, log);
		struct stat st;
		return pid > 0 && wait_until([&] { return stat(sock.c_str(), &st) == 0; }, 10000);
	}
	~Server()
	{
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, nullptr, 0);
		}
	}
	/* SIGTERM and wait: returns the exit status (0: clean, no leak report). */
	int stop()
	{
		kill(pid, SIGTERM);
		int st = reap(pid, 20000);
		pid = -1;
		return st;
	}
};

bool sanitized()
{
#ifdef IVSHM_SANITIZED
	return true;
#else
	return false;
#endif
}

/* ---- chaos ---------------------------------------------------------------- */

struct Peer {
	pid_t pid = -1;
	int chan;
	bool killable;
	int restarts = 0;
};

std::map<std::string, std::string> parse_result(const std::string &line)
{
	std::map<std::string, std::string> m;
	std::istringstream is(line);
	std::string tok;
	while (is >> tok) {
		size_t eq = tok.find('=');
		if (eq != std::string::npos)
			m[tok.substr(0, eq)] = tok.substr(eq + 1);
	}
	return m;
}

TEST(Reliab, ChaosKillAndRestartPeers)
{
	const int pairs = 4, chaos_s = atoi(env_or("IVSHM_CHAOS_SECONDS", "60"));
	TempDir d;
	ASSERT_TRUE(d.ok());
	struct ivshm_transport_params tp = {};
	tp.nb_queues = 1;
	tp.ring_size = 256;
	tp.buf_size = 2048;
	tp.max_pkt_len = 4096;
	uint64_t size = ivshm_transport_region_size(pairs, &tp);
	ASSERT_GT(size, 0u);

	Server srv;
	ASSERT_TRUE(srv.start(d, { "-l", std::to_string(size), "-n", "1" })) << slurp(srv.log);
	std::string results = d.file("results"), peer_log = d.file("peers.log");
	const int base_fds = proc_fds(srv.pid);

	std::vector<Peer> peers;
	for (int c = 0; c < pairs; c++)
		for (int s = 0; s < 2; s++) {
			Peer p;
			p.chan = c;
			p.killable = c < pairs - 1; /* the last pair is the control */
			peers.push_back(p);
		}
	auto start_peer = [&](Peer &p) {
		p.pid = spawn({ peer_bin(), srv.sock, std::to_string(p.chan), results }, peer_log);
	};
	for (auto &p : peers)
		start_peer(p);
	auto all_connected = [&] { return proc_fds(srv.pid) == base_fds + 2 * (int)peers.size(); };
	ASSERT_TRUE(wait_until(all_connected, 20000)) << slurp(srv.log);
	std::this_thread::sleep_for(std::chrono::seconds(2)); /* links up, traffic */
	const int fds0 = proc_fds(srv.pid);
	const long rss0 = proc_rss_kb(srv.pid);

	/* A peer that exits by itself (not killed by us) has failed. */
	auto check_alive = [&]() {
		for (auto &p : peers) {
			int st;
			if (waitpid(p.pid, &st, WNOHANG) == p.pid) {
				ADD_FAILURE() << "peer on channel " << p.chan
					      << " exited by itself, status " << st << "\n"
					      << slurp(peer_log);
				p.pid = -1;
				return false;
			}
		}
		return kill(srv.pid, 0) == 0;
	};

	unsigned seed = (unsigned)std::chrono::steady_clock::now().time_since_epoch().count();
	std::mt19937 rng(seed);
	int kills = 0;
	auto end = std::chrono::steady_clock::now() + std::chrono::seconds(chaos_s);
	while (std::chrono::steady_clock::now() < end) {
		std::this_thread::sleep_for(std::chrono::milliseconds(200 + rng() % 600));
		ASSERT_TRUE(check_alive()) << "seed " << seed << "\n" << slurp(srv.log);
		Peer &v = peers[rng() % (2 * (pairs - 1))];
		kill(v.pid, SIGKILL);
		int st = 0;
		waitpid(v.pid, &st, 0);
		ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
			<< "peer exited before the kill, status " << st << "\n" << slurp(peer_log);
		kills++;
		std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 200));
		start_peer(v);
		v.restarts++;
	}
	/* Settle: every peer connected again, links recovered. */
	EXPECT_TRUE(wait_until(all_connected, 20000))
		<< "server fds " << proc_fds(srv.pid) << ", expected " << base_fds + 16;
	std::this_thread::sleep_for(std::chrono::seconds(3));
	ASSERT_TRUE(check_alive()) << slurp(srv.log);
	const int fds1 = proc_fds(srv.pid);
	const long rss1 = proc_rss_kb(srv.pid);

	/* Stop the traffic: each peer drains and reports. */
	for (auto &p : peers)
		kill(p.pid, SIGTERM);
	for (auto &p : peers) {
		int st = reap(p.pid, 20000);
		EXPECT_TRUE(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
			<< "peer on channel " << p.chan << " status " << st << "\n" << slurp(peer_log);
		p.pid = -1;
	}
	EXPECT_TRUE(wait_until([&] { return proc_fds(srv.pid) == base_fds; }, 10000))
		<< "server still holds " << proc_fds(srv.pid) << " fds, baseline " << base_fds;
	const int fds2 = proc_fds(srv.pid);
	const long rss2 = proc_rss_kb(srv.pid);

	/* Results: one line per final peer. */
	std::vector<std::map<std::string, std::string>> res;
	{
		std::istringstream is(slurp(results));
		std::string line;
		while (std::getline(is, line))
			if (line.rfind("RESULT", 0) == 0)
				res.push_back(parse_result(line));
	}
	ASSERT_EQ(res.size(), peers.size()) << slurp(results) << slurp(peer_log);
	uint64_t sent = 0, recvd = 0, lost = 0, gaps = 0;
	std::map<std::string, std::map<std::string, std::string>> control;
	for (auto &r : res) {
		sent += std::stoull(r["sent"]);
		recvd += std::stoull(r["recvd"]);
		lost += std::stoull(r["lost"]);
		gaps += std::stoull(r["gaps"]);
		EXPECT_GT(std::stoull(r["cur_recvd"]), 0u)
			<< "channel " << r["chan"] << " side " << r["side"]
			<< ": no packet from its current partner: link did not recover";
		EXPECT_EQ(r["rx_errors"], "0") << "channel " << r["chan"];
		if (std::stoi(r["chan"]) == pairs - 1)
			control[r["side"]] = r;
	}
	ASSERT_EQ(control.size(), 2u);
	/* The untouched pair: every packet sent arrived, exactly once. */
	EXPECT_EQ(control["A"]["sent"], control["B"]["recvd"]);
	EXPECT_EQ(control["B"]["sent"], control["A"]["recvd"]);
	EXPECT_EQ(control["A"]["lost"], "0");
	EXPECT_EQ(control["B"]["lost"], "0");
	EXPECT_EQ(control["A"]["incarnations"], "1");
	EXPECT_EQ(control["B"]["incarnations"], "1");

	/* The server: same descriptors with the same peers, memory flat. */
	EXPECT_EQ(fds1, fds0);
	EXPECT_EQ(fds2, base_fds);
	if (!sanitized()) {
		EXPECT_LE(rss1, rss0 + 1024) << "server RSS grew from " << rss0 << " kB";
	}
	/* Every peer that joined has left (a peer killed while still
	 * starting may never have joined). */
	std::string slog = slurp(srv.log);
	const size_t joins = count_of(slog, " connected (");
	EXPECT_LE(joins, peers.size() + (size_t)kills);
	EXPECT_GE(joins, peers.size() + (size_t)kills / 2);
	EXPECT_EQ(count_of(slog, " left ("), joins);
	int st = srv.stop();
	EXPECT_TRUE(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
		<< "server exit status " << st << "\n" << slurp(srv.log);
	printf("CHAOS seed=%u seconds=%d peers=%zu kills=%d server_joins=%zu "
	       "server_fds base=%d before=%d after=%d end=%d "
	       "server_rss_kb before=%ld after=%ld end=%ld "
	       "final_peers_sent=%llu final_peers_recvd=%llu lost_in_resets=%llu gaps=%llu "
	       "control_pair_sent=%s+%s control_pair_lost=0\n",
	       seed, chaos_s, peers.size(), kills, joins, base_fds, fds0, fds1, fds2,
	       rss0, rss1, rss2, (unsigned long long)sent, (unsigned long long)recvd,
	       (unsigned long long)lost, (unsigned long long)gaps,
	       control["A"]["sent"].c_str(), control["B"]["sent"].c_str());
}

/* ---- load ------------------------------------------------------------------ */

/* Connect @p n raw clients at once and read until each has its set-up
 * (version, id, memory fd: 24 bytes); keeps draining (closing every
 * descriptor received) while @p until() is false. */
struct Crowd {
	int ep = -1;
	std::vector<int> socks;
	std::vector<size_t> got;

	~Crowd() { leave(); }
	void leave()
	{
		for (int s : socks)
			close(s);
		socks.clear();
		got.clear();
		if (ep >= 0)
			close(ep);
		ep = -1;
	}
	bool join(const std::string &path, int n)
	{
		struct sockaddr_un sa = {};
		sa.sun_family = AF_UNIX;
		memcpy(sa.sun_path, path.c_str(), path.size());
		ep = epoll_create1(EPOLL_CLOEXEC);
		for (int i = 0; i < n; i++) {
			int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
				ADD_FAILURE() << "client " << i << ": " << strerror(errno);
				if (s >= 0)
					close(s);
				return false;
			}
			fcntl(s, F_SETFL, O_NONBLOCK);
			struct epoll_event ev = {};
			ev.events = EPOLLIN;
			ev.data.u32 = (uint32_t)socks.size();
			epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
			socks.push_back(s);
			got.push_back(0);
		}
		return true;
	}
	/* Read what is pending; returns the number of clients with a set-up. */
	size_t pump(int ms)
	{
		struct epoll_event evs[256];
		int n = epoll_wait(ep, evs, 256, ms);
		for (int i = 0; i < n; i++) {
			uint32_t k = evs[i].data.u32;
			for (;;) {
				char buf[4096];
				union {
					struct cmsghdr a;
					char b[CMSG_SPACE(64 * sizeof(int))];
				} ctl;
				struct iovec iov = { buf, sizeof(buf) };
				struct msghdr m = {};
				m.msg_iov = &iov;
				m.msg_iovlen = 1;
				m.msg_control = ctl.b;
				m.msg_controllen = sizeof(ctl.b);
				ssize_t r = recvmsg(socks[k], &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
				if (r <= 0)
					break;
				for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
					size_t nf = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
					for (size_t j = 0; j < nf; j++) {
						int fd;
						memcpy(&fd, CMSG_DATA(c) + j * sizeof(int), sizeof(int));
						close(fd);
					}
				}
				got[k] += (size_t)r;
			}
		}
		size_t ready = 0;
		for (size_t g : got)
			ready += g >= 24;
		return ready;
	}
};

TEST(Reliab, LoadThousandClientsThenLimit)
{
	const int n = atoi(env_or("IVSHM_LOAD_CLIENTS", "1000"));
	struct rlimit rl;
	ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max < (rlim_t)(n + 200))
		GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << rl.rlim_max << " < " << n + 200;
	rl.rlim_cur = rl.rlim_max;
	ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);

	TempDir d;
	ASSERT_TRUE(d.ok());
	Server srv;
	ASSERT_TRUE(srv.start(d, { "-l", "64K", "--max-peers", std::to_string(n) }))
		<< slurp(srv.log);
	const int base_fds = proc_fds(srv.pid);
	const long rss_base = proc_rss_kb(srv.pid);
	long rss_full[2] = { 0, 0 }, rss_after[2] = { 0, 0 };
	int fds_full[2] = { 0, 0 }, fds_after[2] = { 0, 0 };
	double join_ms[2] = { 0, 0 };

	for (int round = 0; round < 2; round++) {
		Crowd crowd;
		auto t0 = std::chrono::steady_clock::now();
		ASSERT_TRUE(crowd.join(srv.sock, n));
		/* Everyone gets its set-up and the server holds every peer:
		 * a socket and an eventfd each. */
		ASSERT_TRUE(wait_until([&] {
			return crowd.pump(20) == (size_t)n &&
			       proc_fds(srv.pid) == base_fds + 2 * n;
		}, 120000)) << "ready " << crowd.pump(0) << " fds " << proc_fds(srv.pid);
		join_ms[round] = std::chrono::duration<double, std::milli>(
			std::chrono::steady_clock::now() - t0).count();
		/* Drain the announcements so the server's queues empty. */
		for (int i = 0; i < 20; i++)
			crowd.pump(10);
		fds_full[round] = proc_fds(srv.pid);
		rss_full[round] = proc_rss_kb(srv.pid);

		if (round == 0) {
			/* One too many: refused, with a reason in the server log. */
			struct ivshm_client_params cp = {};
			cp.no_map = 1;
			struct ivshm_client *c = nullptr;
			EXPECT_EQ(ivshm_client_connect(srv.sock.c_str(), &cp, &c), -ECONNRESET);
			EXPECT_EQ(c, nullptr);
			std::string cl_log = d.file("client.log");
			pid_t cp_pid = spawn({ client_bin(), "-S", srv.sock, "--list" }, cl_log);
			int st = reap(cp_pid, 30000);
			EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2) << st;
			std::string cl = slurp(cl_log);
			EXPECT_NE(cl.find("refused this peer: its peer limit"), std::string::npos) << cl;
			EXPECT_TRUE(wait_until([&] {
				return count_of(slurp(srv.log), "peer limit (" + std::to_string(n) +
						") reached: connection refused") >= 2;
			}, 10000)) << slurp(srv.log).substr(0, 2000);
			EXPECT_EQ(count_of(slurp(srv.log), "(" + std::to_string(n) + " peers)"), 1u);
		}
		crowd.leave();
		EXPECT_TRUE(wait_until([&] { return proc_fds(srv.pid) == base_fds; }, 60000))
			<< "server holds " << proc_fds(srv.pid) << " fds, baseline " << base_fds;
		fds_after[round] = proc_fds(srv.pid);
		/* The server trims its heap after closing the last peer's
		 * descriptors: give that a moment (bounded) before reading
		 * the memory figure checked below. */
		const long rss_limit = round == 0 ? rss_base + 4096 : rss_after[0] + 512;
		if (!sanitized())
			wait_until([&] { return proc_rss_kb(srv.pid) <= rss_limit; }, 10000);
		rss_after[round] = proc_rss_kb(srv.pid);
	}
	EXPECT_EQ(fds_after[0], base_fds);
	EXPECT_EQ(fds_after[1], base_fds);
	if (!sanitized()) {
		/* Memory back near the baseline, and a second crowd leaves no
		 * more behind than the first (nothing leaks per peer). */
		EXPECT_LE(rss_after[0], rss_base + 4096);
		EXPECT_LE(rss_after[1], rss_after[0] + 512);
	}
	int st = srv.stop();
	EXPECT_TRUE(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
		<< "server exit status " << st << "\n" << slurp(srv.log).substr(0, 4000);
	printf("LOAD clients=%d peers_held=%d refused=1 join_ms=%.0f,%.0f "
	       "server_fds base=%d full=%d,%d after=%d,%d "
	       "server_rss_kb base=%ld full=%ld,%ld after=%ld,%ld\n",
	       n, (fds_full[0] - base_fds) / 2, join_ms[0], join_ms[1], base_fds,
	       fds_full[0], fds_full[1], fds_after[0], fds_after[1], rss_base,
	       rss_full[0], rss_full[1], rss_after[0], rss_after[1]);
}

} // namespace
