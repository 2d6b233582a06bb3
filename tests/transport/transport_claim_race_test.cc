// SPDX-License-Identifier: BSD-3-Clause
// Description: two openers of one channel over "socket:" racing for its
// sides while one of them is slow and the other has not yet heard of it
// from the server (the case the ASan chaos run found: both ends of a pair
// on one side, the link never up). A relay between a client and the
// project's server (in-process, on a thread) forwards the set-up and the
// client's own vectors at once and holds back, or delays, the
// announcements of other peers: the client then opens the channel with a
// peer table that lacks a live holder. That holder must keep its side.
//
// StoppedAndUnannouncedHolderKeepsItsSide: a holder in another process
// claims side A, is stopped (SIGSTOP) before its next housekeeping call,
// and the second opener connects through the relay with the holder's
// announcement held back; the opener must take side B. Then the holder
// resumes, the announcement is released, the link must come up and one
// packet must pass each way, byte for byte.
// ManyPairsWithLateAnnouncements: several channels, both ends of each
// opening at once, every client behind the relay with each peer
// announcement delayed by a random 0..80 ms, several rounds: every pair
// must end on two different sides and pass a packet each way.
// No timing is asserted: deadlines only bound the waits.
#include <gtest/gtest.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ivshm/ivshmem.h"
#include "ivshm/server.h"
#include "ivshm/transport.h"

namespace {

constexpr uint64_t kDeadlineMs = 20000; // per wait, far beyond normal

uint64_t now_ms()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

std::string unique_path(const char *tag)
{
	std::random_device rd;
	return std::string("/tmp/ivshm-claim-") + tag + "-" +
	       std::to_string(getpid()) + "-" + std::to_string(rd());
}

void fill(uint8_t *p, uint32_t len, uint32_t salt, uint32_t from)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7u + salt * 13u + from * 101u);
}

ivshm_transport_params chan_params()
{
	ivshm_transport_params p{};
	p.ring_size = 64;
	p.buf_size = 1024;
	p.peer_timeout_ms = 2000;
	p.open_timeout_ms = 300;
	return p;
}

// ---- relay ------------------------------------------------------------------

// One ivshmem server message: a little-endian int64 and at most one fd.
struct Msg {
	int64_t v;
	int fd;
	uint64_t due_ms;
};

// Read one whole message (8 bytes, the fd arrives with the first byte).
// Returns 1, 0 on EOF, -1 on error.
int read_msg(int s, Msg *m)
{
	uint8_t b[8];
	size_t got = 0;
	m->fd = -1;
	while (got < sizeof(b)) {
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(sizeof(int) * 4)];
		} ctl;
		struct iovec iov = { b + got, sizeof(b) - got };
		struct msghdr mh {};
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		ssize_t n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? 0 : -1;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < nfd; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (m->fd < 0)
					m->fd = fd;
				else
					close(fd);
			}
		}
		got += (size_t)n;
	}
	uint64_t u = 0;
	for (int i = 0; i < 8; i++)
		u |= (uint64_t)b[i] << (8 * i);
	m->v = (int64_t)u;
	return 1;
}

bool write_msg(int s, const Msg &m)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)((uint64_t)m.v >> (8 * i));
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { b, sizeof(b) };
	struct msghdr mh {};
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (m.fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &m.fd, sizeof(int));
	}
	ssize_t n;
	do
		n = sendmsg(s, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(b); // 8 bytes fit any socket buffer here
}

// A UNIX socket relay in front of the real server. For each client it
// connects to the server and forwards the server's messages: the set-up
// (version, id, memory) and the client's own vectors at once; every other
// message (another peer's vector or departure) is held while `hold` is
// set, or delayed by a random 0..max_delay_ms, order kept. Clients send
// nothing in this protocol; a client's hang-up closes its server link.
class Relay {
public:
	Relay(std::string server_path, unsigned max_delay_ms)
		: server_(std::move(server_path)), max_delay_ms_(max_delay_ms),
		  rng_(std::random_device{}())
	{
		path_ = unique_path("relay");
		lsock_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un sa {};
		sa.sun_family = AF_UNIX;
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path_.c_str());
		if (lsock_ < 0 || bind(lsock_, (struct sockaddr *)&sa, sizeof(sa)) ||
		    listen(lsock_, 64)) {
			if (lsock_ >= 0)
				close(lsock_);
			lsock_ = -1;
			return;
		}
		acceptor_ = std::thread([this] { accept_loop(); });
	}
	~Relay()
	{
		stop_ = true;
		if (acceptor_.joinable())
			acceptor_.join();
		for (auto &t : conns_)
			t.join();
		if (lsock_ >= 0)
			close(lsock_);
		unlink(path_.c_str());
	}
	bool ok() const { return lsock_ >= 0; }
	std::string desc() const { return "socket:" + path_; }
	void hold(bool on) { hold_ = on; }
	// Messages held back or delayed so far (all connections).
	unsigned held() const { return held_; }

private:
	void accept_loop()
	{
		while (!stop_) {
			struct pollfd p = { lsock_, POLLIN, 0 };
			if (poll(&p, 1, 20) <= 0)
				continue;
			int c = accept4(lsock_, nullptr, nullptr, SOCK_CLOEXEC);
			if (c < 0)
				continue;
			unsigned seed;
			{
				std::lock_guard<std::mutex> g(mu_);
				seed = (unsigned)rng_();
			}
			conns_.emplace_back([this, c, seed] { serve(c, seed); });
		}
	}

	void serve(int c, unsigned seed)
	{
		std::mt19937 rng(seed);
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un sa {};
		sa.sun_family = AF_UNIX;
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", server_.c_str());
		if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			if (s >= 0)
				close(s);
			close(c);
			return;
		}
		std::deque<Msg> q; // held or delayed, in order
		int nmsg = 0;
		int64_t own = -1;
		bool up = true;
		while (up && !stop_) {
			uint64_t now = now_ms();
			// Forward what is due (in order: a held message blocks
			// everything after it, as a slow server would).
			while (!q.empty() && !hold_ && q.front().due_ms <= now) {
				up = write_msg(c, q.front());
				if (q.front().fd >= 0)
					close(q.front().fd);
				q.pop_front();
			}
			struct pollfd p[2] = { { s, POLLIN, 0 }, { c, POLLIN, 0 } };
			if (poll(p, 2, 5) < 0 && errno != EINTR)
				break;
			if (p[1].revents) // the client hung up (it sends nothing)
				break;
			if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			Msg m;
			if (read_msg(s, &m) != 1)
				break; // server gone: flush nothing more
			nmsg++;
			if (nmsg == 2)
				own = m.v;
			// Set-up (3 messages) and own vectors pass at once, unless
			// something is queued before them (keep the order).
			if (q.empty() && (nmsg <= 3 || (m.v == own && m.fd >= 0))) {
				up = write_msg(c, m);
				if (m.fd >= 0)
					close(m.fd);
				continue;
			}
			m.due_ms = now_ms() +
				   (max_delay_ms_ ? rng() % (max_delay_ms_ + 1) : 0);
			if (!q.empty() && m.due_ms < q.back().due_ms)
				m.due_ms = q.back().due_ms;
			held_++;
			q.push_back(m);
		}
		for (auto &m : q)
			if (m.fd >= 0)
				close(m.fd);
		close(s);
		close(c);
	}

	std::string server_, path_;
	unsigned max_delay_ms_;
	int lsock_ = -1;
	std::atomic<bool> stop_{ false }, hold_{ false };
	std::atomic<unsigned> held_{ 0 };
	std::mutex mu_;
	std::mt19937 rng_;
	std::thread acceptor_;
	std::vector<std::thread> conns_; // touched by the acceptor only, then ~
};

// The project's server, in-process on a thread.
class Server {
public:
	explicit Server(uint64_t size)
	{
		path_ = unique_path("srv");
		ivshm_server_params sp{};
		sp.socket_path = path_.c_str();
		sp.size = size;
		sp.vectors = 1;
		if (ivshm_server_create(&sp, &srv_) == 0)
			thr_ = std::thread([this] { ivshm_server_run(srv_); });
		else
			srv_ = nullptr;
	}
	~Server()
	{
		if (srv_) {
			ivshm_server_stop(srv_);
			thr_.join();
			ivshm_server_destroy(srv_);
		}
	}
	bool ok() const { return srv_ != nullptr; }
	const std::string &path() const { return path_; }

private:
	std::string path_;
	ivshm_server *srv_ = nullptr;
	std::thread thr_;
};

// ---- one end ------------------------------------------------------------------

// Housekeeping until @p cond() or the deadline; false on timeout.
template <typename F> bool hk_until(ivshm_channel *ch, uint64_t deadline, F cond)
{
	while (!cond()) {
		if (now_ms() >= deadline)
			return false;
		ivshm_transport_housekeeping(ch);
		usleep(200);
	}
	return true;
}

// Link up, send one packet, receive the partner's and check every byte.
// Returns 0 or a negative step code.
int exchange(ivshm_channel *ch, uint32_t salt, uint32_t who, uint64_t deadline)
{
	uint8_t out[300], in[2048], want[300];
	if (!hk_until(ch, deadline, [&] { return ivshm_transport_link(ch) == 1; }))
		return -1000; // link never came up
	fill(out, sizeof(out), salt, who);
	ivshm_transport_pkt tx{};
	tx.data = out;
	tx.len = sizeof(out);
	if (!hk_until(ch, deadline,
		      [&] { return ivshm_transport_tx_burst(ch, 0, &tx, 1) == 1; }))
		return -1001;
	ivshm_transport_pkt rx{};
	if (!hk_until(ch, deadline, [&] {
		    rx.data = in;
		    rx.len = sizeof(in);
		    return ivshm_transport_rx_burst(ch, 0, &rx, 1) == 1;
	    }))
		return -1003;
	fill(want, sizeof(want), salt, who ^ 1u);
	if (rx.len != sizeof(want) || memcmp(in, want, sizeof(want)) != 0)
		return -1002; // wrong bytes
	return 0;
}

// ---- a holder in another process, stopped while the other end opens ----------

bool read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (uint8_t *)buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return true;
}

// The child: wait for the server path, open channel 0, report the side,
// then exchange one packet and wait for the parent's "done" before closing.
// Exit status: 0 ok, else the failing step.
[[noreturn]] void holder_child(int rd, int wr, uint32_t salt)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	char path[200] = {};
	uint32_t len = 0;
	if (!read_full(rd, &len, sizeof(len)) || len >= sizeof(path) ||
	    !read_full(rd, path, len))
		_exit(10);
	ivshm_endpoint_params ep{};
	ivshm_endpoint *e = nullptr;
	if (ivshm_endpoint_open(path, &ep, &e))
		_exit(11);
	ivshm_transport_params p = chan_params();
	ivshm_channel *ch = nullptr;
	if (ivshm_transport_open(e, 0, &p, &ch))
		_exit(12);
	int32_t side = (int32_t)ivshm_transport_side(ch);
	if (write(wr, &side, sizeof(side)) != (ssize_t)sizeof(side))
		_exit(13);
	uint64_t deadline = now_ms() + kDeadlineMs + 5000;
	int ret = exchange(ch, salt, (uint32_t)side, deadline);
	if (ret == 0) {
		// Keep the link (housekeeping) until the parent has received.
		int32_t ok = 0;
		if (write(wr, &ok, sizeof(ok)) != (ssize_t)sizeof(ok))
			ret = -14;
		struct pollfd pf = { rd, POLLIN, 0 };
		while (ret == 0 && poll(&pf, 1, 1) == 0) {
			if (now_ms() >= deadline)
				ret = -15;
			ivshm_transport_housekeeping(ch);
		}
	}
	ivshm_transport_close(ch);
	ivshm_endpoint_close(e);
	_exit(ret == 0 ? 0 : 20 + (-ret % 100));
}

TEST(ClaimRace, StoppedAndUnannouncedHolderKeepsItsSide)
{
	const uint32_t salt = 77;
	int to_child[2], from_child[2];
	ASSERT_EQ(pipe2(to_child, O_CLOEXEC), 0);
	ASSERT_EQ(pipe2(from_child, O_CLOEXEC), 0);
	// Fork before any thread of this test exists.
	pid_t pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		close(to_child[1]);
		close(from_child[0]);
		holder_child(to_child[0], from_child[1], salt);
	}
	close(to_child[0]);
	close(from_child[1]);
	struct Reaper {
		pid_t pid;
		int fds[2];
		~Reaper()
		{
			close(fds[0]);
			close(fds[1]);
			if (pid > 0) {
				kill(pid, SIGKILL);
				waitpid(pid, nullptr, 0);
			}
		}
	} reaper{ pid, { to_child[1], from_child[0] } };

	Server srv(4u << 20);
	ASSERT_TRUE(srv.ok());
	Relay relay(srv.path(), 0);
	ASSERT_TRUE(relay.ok());

	// The holder connects straight to the server and takes side A.
	std::string d = "socket:" + srv.path();
	uint32_t len = (uint32_t)d.size();
	ASSERT_EQ(write(to_child[1], &len, sizeof(len)), (ssize_t)sizeof(len));
	ASSERT_EQ(write(to_child[1], d.data(), len), (ssize_t)len);
	int32_t hside = -1;
	ASSERT_TRUE(read_full(from_child[0], &hside, sizeof(hside)));
	ASSERT_EQ(hside, (int32_t)IVSHM_TRANSPORT_SIDE_A);

	// The holder is slow: stopped, its heartbeat still. The second opener
	// has not heard of it from the server (announcement held back).
	ASSERT_EQ(kill(pid, SIGSTOP), 0);
	relay.hold(true);
	ivshm_endpoint_params ep{};
	ivshm_endpoint *e = nullptr;
	ASSERT_EQ(ivshm_endpoint_open(relay.desc().c_str(), &ep, &e), 0);
	std::unique_ptr<ivshm_endpoint, void (*)(ivshm_endpoint *)> eg(
		e, ivshm_endpoint_close);
	// The relay holds the holder's vector: our table does not know it.
	uint64_t deadline = now_ms() + kDeadlineMs;
	while (relay.held() == 0 && now_ms() < deadline)
		usleep(1000);
	ASSERT_GE(relay.held(), 1u);
	uint16_t ids[8];
	EXPECT_EQ(ivshm_endpoint_peers(e, ids, 8), 0);

	ivshm_transport_params p = chan_params();
	ivshm_channel *ch = nullptr;
	ASSERT_EQ(ivshm_transport_open(e, 0, &p, &ch), 0);
	std::unique_ptr<ivshm_channel, void (*)(ivshm_channel *)> cg(
		ch, ivshm_transport_close);
	// A live holder absent from our peer table keeps its side.
	EXPECT_EQ(ivshm_transport_side(ch), IVSHM_TRANSPORT_SIDE_B);

	relay.hold(false);
	ASSERT_EQ(kill(pid, SIGCONT), 0);
	EXPECT_EQ(exchange(ch, salt, (uint32_t)ivshm_transport_side(ch),
			   now_ms() + kDeadlineMs), 0);
	int32_t hok = -1;
	EXPECT_TRUE(read_full(from_child[0], &hok, sizeof(hok)));
	EXPECT_EQ(hok, 0);
	char done = 1;
	EXPECT_EQ(write(to_child[1], &done, 1), 1);
	if (HasFailure())
		kill(pid, SIGKILL); // do not wait out its deadlines
	int st = -1;
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	reaper.pid = -1;
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "holder status " << st;
}

// ---- many pairs, every announcement late ----------------------------------------

TEST(ClaimRace, ManyPairsWithLateAnnouncements)
{
	constexpr int kChannels = 4, kRounds = 6;
	ivshm_transport_params p = chan_params();
	uint64_t size = ivshm_transport_region_size(kChannels, &p);
	ASSERT_GT(size, 0u);
	Server srv(size);
	ASSERT_TRUE(srv.ok());
	Relay relay(srv.path(), 80);
	ASSERT_TRUE(relay.ok());

	for (int r = 0; r < kRounds; r++) {
		SCOPED_TRACE(r);
		struct End {
			int ret = -1, side = -1;
		};
		std::vector<End> ends(2 * kChannels);
		std::atomic<int> received[kChannels];
		for (auto &x : received)
			x = 0;
		std::vector<std::thread> th;
		for (int i = 0; i < 2 * kChannels; i++) {
			th.emplace_back([&, i] {
				const uint32_t chan = (uint32_t)(i / 2);
				uint64_t deadline = now_ms() + kDeadlineMs;
				ivshm_endpoint_params ep{};
				ivshm_endpoint *e = nullptr;
				ivshm_channel *ch = nullptr;
				int ret = ivshm_endpoint_open(relay.desc().c_str(), &ep, &e);
				if (ret) {
					ends[i].ret = ret;
					return;
				}
				do {
					ret = ivshm_transport_open(e, chan, &p, &ch);
					if (ret == -EBUSY)
						usleep(1000);
				} while (ret == -EBUSY && now_ms() < deadline);
				if (ret == 0) {
					ends[i].side = (int)ivshm_transport_side(ch);
					ret = exchange(ch, (uint32_t)(r * 16 + chan),
						       (uint32_t)ends[i].side, deadline);
					// Both ends received before either closes.
					received[chan].fetch_add(1);
					if (ret == 0 &&
					    !hk_until(ch, deadline,
						      [&] { return received[chan].load() >= 2; }))
						ret = -1004;
					ivshm_transport_close(ch);
				}
				ivshm_endpoint_close(e);
				ends[i].ret = ret;
			});
		}
		for (auto &t : th)
			t.join();
		for (int c = 0; c < kChannels; c++) {
			SCOPED_TRACE(c);
			EXPECT_EQ(ends[2 * c].ret, 0);
			EXPECT_EQ(ends[2 * c + 1].ret, 0);
			// The two ends hold the two different sides.
			EXPECT_NE(ends[2 * c].side, ends[2 * c + 1].side);
		}
		if (HasFailure())
			break;
	}
	// The relay did delay announcements (the race was exercised).
	EXPECT_GT(relay.held(), 0u);
}

} // namespace
