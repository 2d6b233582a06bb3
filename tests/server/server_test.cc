/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Description: the server library on a thread with real clients in the
 * same process (QEMU's ivshmem-test style): the set-up sequence on the
 * wire, the region header, ids, peer join/leave, doorbells through real
 * eventfds, memory kinds, and bad input (sizes, missing directory, stale
 * and live sockets, peer limit, a client that never reads, garbage and
 * descriptors from a client, 100 clients coming and going at random).
 */
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <set>

#include "ivshm_atomic.h"
#include "proto.h"
#include "region_layout.h"
#include "test_util.h"

using namespace ivshm_test;

namespace {

struct sockaddr_un unix_addr(const std::string &path)
{
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
	return sa;
}

int raw_connect(const std::string &path)
{
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = unix_addr(path);
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(s);
		return -errno;
	}
	return s;
}

/* A listening socket at @p path for a fake server; -errno on failure. */
int raw_listen(const std::string &path)
{
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = unix_addr(path);
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 4) < 0) {
		int ret = -errno;
		close(s);
		return ret;
	}
	return s;
}

/* Blocking read of one message on a raw socket, with a deadline. */
int raw_recv(int s, int64_t *v, int *fd, int ms = 5000)
{
	struct ivshm_proto_rx rx;
	ivshm_proto_rx_init(&rx);
	auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
	for (;;) {
		int ret = ivshm_proto_recv(s, &rx, v, fd);
		if (ret != -EAGAIN)
			return ret;
		if (std::chrono::steady_clock::now() > end)
			return -ETIMEDOUT;
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	}
}

class ServerTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		ASSERT_FALSE(dir.path().empty());
		sock = dir.file("ivshmem.sock");
	}
	ivshm_client *connect(PeerLog *log = nullptr, int timeout = 2000)
	{
		ivshm_client_params cp;
		memset(&cp, 0, sizeof(cp));
		cp.connect_timeout_ms = timeout;
		if (log) {
			cp.peer_event = PeerLog::cb;
			cp.peer_event_arg = log;
		}
		ivshm_client *c = nullptr;
		int ret = ivshm_client_connect(sock.c_str(), &cp, &c);
		EXPECT_EQ(ret, 0) << strerror(-ret);
		return c;
	}
	TempDir dir;
	std::string sock;
	ServerThread server;
};

} // namespace

TEST_F(ServerTest, SetupSequenceOnTheWire)
{
	ASSERT_EQ(server.start(default_params(sock, 1 << 20, 3)), 0);
	int s = raw_connect(sock);
	ASSERT_GE(s, 0);
	fcntl(s, F_SETFL, O_NONBLOCK);
	int64_t v;
	int fd;
	ASSERT_EQ(raw_recv(s, &v, &fd), 1);
	EXPECT_EQ(v, 0); /* version */
	EXPECT_EQ(fd, -1);
	ASSERT_EQ(raw_recv(s, &v, &fd), 1);
	EXPECT_EQ(v, 0); /* first id */
	EXPECT_EQ(fd, -1);
	ASSERT_EQ(raw_recv(s, &v, &fd), 1);
	EXPECT_EQ(v, -1);
	ASSERT_GE(fd, 0);
	struct stat st;
	ASSERT_EQ(fstat(fd, &st), 0);
	EXPECT_EQ((uint64_t)st.st_size, 1u << 20);
	/* The region header, formatted and published. */
	auto *h = static_cast<ivshm_region_hdr *>(
		mmap(nullptr, IVSHM_REGION_HDR_SIZE, PROT_READ, MAP_SHARED, fd, 0));
	ASSERT_NE(h, MAP_FAILED);
	/* Pairs with the server's release store of READY. */
	EXPECT_EQ(ivshm_load_acquire(&h->init_state), (uint32_t)IVSHM_REGION_READY);
	EXPECT_EQ(h->magic, IVSHM_REGION_MAGIC);
	EXPECT_EQ(h->version, IVSHM_REGION_VERSION);
	EXPECT_EQ(h->size, 1u << 20);
	EXPECT_EQ(h->hdr_size, IVSHM_REGION_HDR_SIZE);
	munmap(h, IVSHM_REGION_HDR_SIZE);
	close(fd);
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(raw_recv(s, &v, &fd), 1);
		EXPECT_EQ(v, 0);
		ASSERT_GE(fd, 0);
		close(fd);
	}
	EXPECT_EQ(raw_recv(s, &v, &fd, 50), -ETIMEDOUT);
	close(s);
}

TEST_F(ServerTest, PeersJoinAndLeave)
{
	ASSERT_EQ(server.start(default_params(sock, 1 << 20, 2)), 0);
	PeerLog la, lb;
	ivshm_client *a = connect(&la);
	ASSERT_TRUE(a);
	EXPECT_EQ(ivshm_client_id(a), 0);
	EXPECT_EQ(ivshm_client_nvectors(a), 2u);
	EXPECT_EQ(ivshm_client_size(a), 1u << 20);
	ivshm_client *b = connect(&lb);
	ASSERT_TRUE(b);
	EXPECT_EQ(ivshm_client_id(b), 1);
	/* b learns of a during connect; a hears of b. */
	EXPECT_TRUE(lb.has(0, 1));
	EXPECT_TRUE(pump_until(a, [&] { return la.has(1, 1); }));
	EXPECT_TRUE(pump_until(a, [&] { return ivshm_client_peer_nvectors(a, 1) == 2; }));
	ivshm_client *c = connect();
	ASSERT_TRUE(c);
	EXPECT_EQ(ivshm_client_id(c), 2);
	EXPECT_TRUE(pump_until(a, [&] { return la.has(2, 1); }));
	uint16_t ids[8];
	EXPECT_EQ(ivshm_client_peers(a, ids, 8), 2);
	EXPECT_EQ(ids[0], 1);
	EXPECT_EQ(ids[1], 2);
	ivshm_client_close(b);
	EXPECT_TRUE(pump_until(a, [&] { return la.has(1, 0); }));
	EXPECT_EQ(ivshm_client_peers(a, ids, 8), 1);
	EXPECT_EQ(ids[0], 2);
	EXPECT_EQ(ivshm_client_notify(a, 1, 0), -ENOENT);
	/* Ids are never reused before wrapping: the next one is 3. */
	ivshm_client *d = connect();
	ASSERT_TRUE(d);
	EXPECT_EQ(ivshm_client_id(d), 3);
	EXPECT_TRUE(wait_until([&] { return ivshm_server_npeers(server.srv) == 3; }));
	ivshm_client_close(c);
	ivshm_client_close(d);
	EXPECT_TRUE(pump_until(a, [&] { return la.has(2, 0) && la.has(3, 0); }));
	EXPECT_EQ(ivshm_client_peers(a, ids, 8), 0);
	ivshm_client_close(a);
	EXPECT_TRUE(wait_until([&] { return ivshm_server_npeers(server.srv) == 0; }));
}

TEST_F(ServerTest, SharedMemoryIsShared)
{
	ASSERT_EQ(server.start(default_params(sock, 1 << 20, 1)), 0);
	ivshm_client *a = connect();
	ivshm_client *b = connect();
	ASSERT_TRUE(a && b);
	auto *pa = static_cast<uint8_t *>(ivshm_client_base(a));
	auto *pb = static_cast<uint8_t *>(ivshm_client_base(b));
	ASSERT_TRUE(pa && pb);
	for (size_t i = IVSHM_REGION_HDR_SIZE; i < (1u << 20); i++)
		pa[i] = (uint8_t)(i * 7 + 3);
	size_t bad = 0;
	for (size_t i = IVSHM_REGION_HDR_SIZE; i < (1u << 20); i++)
		bad += pb[i] != (uint8_t)(i * 7 + 3);
	EXPECT_EQ(bad, 0u);
	ivshm_client_close(a);
	ivshm_client_close(b);
}

TEST_F(ServerTest, NotifyReachesEveryVector)
{
	const unsigned int nv = 5;
	ASSERT_EQ(server.start(default_params(sock, 1 << 20, nv)), 0);
	ivshm_client *a = connect();
	ivshm_client *b = connect();
	ASSERT_TRUE(a && b);
	uint16_t bid = ivshm_client_id(b), aid = ivshm_client_id(a);
	ASSERT_TRUE(pump_until(a, [&] { return ivshm_client_peer_nvectors(a, bid) == nv; }));
	EXPECT_EQ(ivshm_client_notify(a, bid, nv), -EINVAL);
	for (unsigned int v = 0; v < nv; v++) {
		ASSERT_EQ(ivshm_client_notify(a, bid, v), 0);
		uint64_t fired = 0;
		ASSERT_EQ(ivshm_client_wait(b, 2000, &fired), 1);
		EXPECT_EQ(fired, UINT64_C(1) << v);
	}
	/* Nothing else pending. */
	uint64_t fired = 1;
	EXPECT_EQ(ivshm_client_wait(b, 20, &fired), 0);
	EXPECT_EQ(fired, 0u);
	/* The other way, and to oneself. */
	ASSERT_EQ(ivshm_client_notify(b, aid, 3), 0);
	ASSERT_EQ(ivshm_client_wait(a, 2000, &fired), 1);
	EXPECT_EQ(fired, UINT64_C(1) << 3);
	ASSERT_EQ(ivshm_client_notify(a, aid, 4), 0);
	uint64_t cnt = 0;
	int vfd = ivshm_client_vector_fd(a, 4);
	ASSERT_GE(vfd, 0);
	ASSERT_TRUE(wait_until([&] { return read(vfd, &cnt, 8) == 8; }));
	EXPECT_EQ(cnt, 1u);
	EXPECT_EQ(ivshm_client_vector_fd(a, nv), -EINVAL);
	ivshm_client_close(a);
	ivshm_client_close(b);
}

TEST_F(ServerTest, ConcurrentNotifyDuringPeerChurn)
{
	ASSERT_EQ(server.start(default_params(sock, 1 << 16, 2)), 0);
	ivshm_client *a = connect();
	ivshm_client *b = connect();
	ASSERT_TRUE(a && b);
	uint16_t bid = ivshm_client_id(b);
	ASSERT_TRUE(pump_until(a, [&] { return ivshm_client_peer_nvectors(a, bid) == 2; }));
	std::atomic<bool> done{ false };
	std::atomic<uint64_t> sent{ 0 };
	std::vector<std::thread> th;
	for (int t = 0; t < 3; t++)
		th.emplace_back([&] {
			for (int i = 0; i < 2000; i++) {
				int ret = ivshm_client_notify(a, bid, (unsigned int)(i & 1));
				ASSERT_EQ(ret, 0);
				sent++;
				/* Peers that come and go: unknown or present. */
				ret = ivshm_client_notify(a, (uint16_t)(bid + 1 + (i % 4)), 0);
				ASSERT_TRUE(ret == 0 || ret == -ENOENT) << ret;
			}
		});
	/* Control thread of a processes joins/leaves while others notify. */
	std::thread churn([&] {
		for (int i = 0; i < 10; i++) {
			ivshm_client *x = connect();
			if (x)
				ivshm_client_close(x);
		}
	});
	std::thread control([&] {
		while (!done)
			ivshm_client_wait(a, 5, nullptr);
	});
	churn.join();
	for (auto &t : th)
		t.join();
	done = true;
	control.join();
	/* Every notify counted: eventfd counters sum to what was sent. */
	uint64_t total = 0;
	for (unsigned int v = 0; v < 2; v++) {
		uint64_t cnt;
		int fd = ivshm_client_vector_fd(b, v);
		if (read(fd, &cnt, 8) == 8)
			total += cnt;
	}
	EXPECT_EQ(total, sent.load());
	EXPECT_EQ(total, 6000u);
	ivshm_client_close(a);
	ivshm_client_close(b);
}

TEST_F(ServerTest, BadSizes)
{
	for (uint64_t size : { UINT64_C(0), UINT64_C(100), UINT64_MAX,
			       UINT64_C(1) << 47, (UINT64_C(1) << 63) + 1 }) {
		ServerThread s;
		EXPECT_EQ(s.start(default_params(sock, size)), -EINVAL) << size;
		EXPECT_FALSE(s.log.all().empty());
		struct stat st;
		EXPECT_NE(lstat(sock.c_str(), &st), 0) << "no socket left behind";
	}
	ServerThread s;
	EXPECT_EQ(s.start(default_params(sock, 0)), -EINVAL);
	EXPECT_TRUE(s.log.contains("must not be 0"));
}

TEST_F(ServerTest, NonPowerOfTwoSizeIsRoundedUp)
{
	ASSERT_EQ(server.start(default_params(sock, 5000 * 1000)), 0);
	EXPECT_TRUE(server.log.contains("not a power of two"));
	EXPECT_EQ(ivshm_server_size(server.srv), 8u << 20);
	ivshm_client *a = connect();
	ASSERT_TRUE(a);
	EXPECT_EQ(ivshm_client_size(a), 8u << 20);
	ivshm_client_close(a);
}

TEST_F(ServerTest, SizeAboveFourGiB)
{
	/* 5 GiB rounds up to 8 GiB; memfd pages are allocated on touch only. */
	const uint64_t size = UINT64_C(5) << 30;
	ASSERT_EQ(server.start(default_params(sock, size, 1)), 0);
	EXPECT_EQ(ivshm_server_size(server.srv), UINT64_C(8) << 30);
	ivshm_client *a = connect();
	ivshm_client *b = connect();
	ASSERT_TRUE(a && b);
	EXPECT_EQ(ivshm_client_size(a), UINT64_C(8) << 30);
	auto *pa = static_cast<volatile uint8_t *>(ivshm_client_base(a));
	auto *pb = static_cast<volatile uint8_t *>(ivshm_client_base(b));
	const uint64_t offs[] = { UINT64_C(4) << 30, (UINT64_C(4) << 30) + 4097,
				  (UINT64_C(8) << 30) - 1 };
	for (uint64_t o : offs)
		pa[o] = (uint8_t)(o >> 3);
	for (uint64_t o : offs)
		EXPECT_EQ(pb[o], (uint8_t)(o >> 3)) << o;
	ivshm_client_close(a);
	ivshm_client_close(b);
}

TEST_F(ServerTest, VectorsOutOfRange)
{
	ServerThread s;
	EXPECT_EQ(s.start(default_params(sock, 1 << 20, 65)), -EINVAL);
	EXPECT_TRUE(s.log.contains("at most 64"));
	ASSERT_EQ(server.start(default_params(sock, 1 << 20, 64)), 0);
	ivshm_client *a = connect();
	ASSERT_TRUE(a);
	EXPECT_EQ(ivshm_client_nvectors(a), 64u);
	ivshm_client_close(a);
}

TEST_F(ServerTest, MissingSocketDirectory)
{
	std::string bad = dir.file("no/such/dir/sock");
	ServerThread s;
	EXPECT_EQ(s.start(default_params(bad)), -ENOENT);
	EXPECT_TRUE(s.log.contains("socket directory")) << s.log.all();
	ivshm_client *c = nullptr;
	EXPECT_EQ(ivshm_client_connect(bad.c_str(), nullptr, &c), -ENOENT);
	EXPECT_EQ(c, nullptr);
}

TEST_F(ServerTest, MissingMemoryDirectory)
{
	auto p = default_params(sock);
	std::string d = dir.file("nodir");
	p.mem = IVSHM_SERVER_MEM_DIR;
	p.mem_path = d.c_str();
	ServerThread s;
	EXPECT_EQ(s.start(p), -ENOENT);
	EXPECT_TRUE(s.log.contains("memory directory")) << s.log.all();
}

TEST_F(ServerTest, StaleSocketIsReplacedLiveOneIsNot)
{
	/* A socket file whose server died: bound, never unlinked. */
	{
		int s = socket(AF_UNIX, SOCK_STREAM, 0);
		struct sockaddr_un sa = unix_addr(sock);
		ASSERT_EQ(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
		close(s);
	}
	ASSERT_EQ(server.start(default_params(sock)), 0);
	EXPECT_TRUE(server.log.contains("stale"));
	ivshm_client *a = connect();
	ASSERT_TRUE(a);
	/* A second server on the same path must not steal it. */
	ServerThread second;
	EXPECT_EQ(second.start(default_params(sock)), -EADDRINUSE);
	EXPECT_TRUE(second.log.contains("already listening"));
	ivshm_client *b = connect();
	ASSERT_TRUE(b);
	/* The second server's probe was a (short-lived) peer: id 1. */
	EXPECT_EQ(ivshm_client_id(b), 2);
	ivshm_client_close(a);
	ivshm_client_close(b);
	/* Not a socket: refused, file untouched. */
	std::string f = dir.file("plain");
	FILE *fp = fopen(f.c_str(), "w");
	ASSERT_TRUE(fp);
	fclose(fp);
	ServerThread third;
	EXPECT_EQ(third.start(default_params(f)), -EEXIST);
	struct stat st;
	EXPECT_EQ(stat(f.c_str(), &st), 0);
	EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST_F(ServerTest, ShutdownRemovesSocket)
{
	ASSERT_EQ(server.start(default_params(sock)), 0);
	ivshm_client *a = connect();
	ASSERT_TRUE(a);
	struct stat st;
	EXPECT_EQ(lstat(sock.c_str(), &st), 0);
	server.stop();
	EXPECT_NE(lstat(sock.c_str(), &st), 0);
	/* The client sees the server go; its region stays mapped. */
	EXPECT_TRUE(wait_until([&] { return ivshm_client_process(a) == -ECONNRESET; }));
	EXPECT_EQ(ivshm_client_connected(a), 0);
	static_cast<volatile uint8_t *>(ivshm_client_base(a))[8192] = 1;
	ivshm_client_close(a);
}

TEST_F(ServerTest, PeerLimit)
{
	auto p = default_params(sock);
	p.max_peers = 2;
	ASSERT_EQ(server.start(p), 0);
	PeerLog la;
	ivshm_client *a = connect(&la);
	ivshm_client *b = connect();
	ASSERT_TRUE(a && b);
	ivshm_client_params cp;
	memset(&cp, 0, sizeof(cp));
	ivshm_client *c = nullptr;
	EXPECT_EQ(ivshm_client_connect(sock.c_str(), &cp, &c), -ECONNRESET);
	EXPECT_TRUE(server.log.contains("peer limit (2) reached"));
	/* The refused one disturbed nobody. */
	ASSERT_EQ(ivshm_client_notify(b, ivshm_client_id(a), 0), 0);
	uint64_t fired = 0;
	EXPECT_EQ(ivshm_client_wait(a, 2000, &fired), 1);
	EXPECT_EQ(fired & 1, 1u);
	ivshm_client_close(b);
	EXPECT_TRUE(pump_until(a, [&] { return la.has(1, 0); }));
	ASSERT_TRUE(wait_until([&] { return ivshm_server_npeers(server.srv) == 1; }));
	c = connect();
	ASSERT_TRUE(c);
	EXPECT_EQ(ivshm_client_id(c), 2); /* not 1: ids are not reused */
	ivshm_client_close(c);
	ivshm_client_close(a);
}

TEST_F(ServerTest, ClientThatNeverReadsDisturbsNobody)
{
	auto p = default_params(sock, 1 << 20, 8);
	ASSERT_EQ(server.start(p), 0);
	int lazy = raw_connect(sock); /* never reads a byte */
	ASSERT_GE(lazy, 0);
	ASSERT_TRUE(wait_until([&] { return ivshm_server_npeers(server.srv) == 1; }));
	PeerLog lo;
	ivshm_client *obs = connect(&lo);
	ASSERT_TRUE(obs);
	for (int i = 0; i < 60; i++) {
		ivshm_client *x = connect();
		ASSERT_TRUE(x);
		ivshm_client_close(x);
	}
	/* obs saw all 60 come and go, plus the lazy one's join. */
	EXPECT_TRUE(pump_until(obs, [&] { return lo.count(0) == 60; }));
	EXPECT_EQ(lo.count(1), 61u);
	close(lazy);
	EXPECT_TRUE(pump_until(obs, [&] { return lo.has(0, 0); }));
	ivshm_client_close(obs);
}

TEST_F(ServerTest, NonReaderIsDroppedWhenItsQueueOverflows)
{
	auto p = default_params(sock, 1 << 20, 64);
	p.max_queue = 300;
	ASSERT_EQ(server.start(p), 0);
	int lazy = raw_connect(sock);
	ASSERT_GE(lazy, 0);
	ASSERT_TRUE(wait_until([&] { return ivshm_server_npeers(server.srv) == 1; }));
	PeerLog lo;
	ivshm_client *obs = connect(&lo);
	ASSERT_TRUE(obs);
	/* Each newcomer queues 64 eventfds + a departure to the lazy peer;
	 * its socket fills, then its queue, and it is dropped. */
	for (int i = 0; i < 40 && !lo.has(0, 0); i++) {
		ivshm_client *x = connect();
		ASSERT_TRUE(x);
		ivshm_client_close(x);
		ivshm_client_process(obs);
	}
	EXPECT_TRUE(pump_until(obs, [&] { return lo.has(0, 0); }));
	EXPECT_TRUE(server.log.contains("not read")) << server.log.all();
	/* Everyone else still works. */
	ivshm_client *y = connect();
	ASSERT_TRUE(y);
	ASSERT_TRUE(pump_until(obs, [&] { return lo.has(ivshm_client_id(y), 1); }));
	ASSERT_TRUE(pump_until(obs, [&] {
		return ivshm_client_peer_nvectors(obs, ivshm_client_id(y)) == 64;
	}));
	EXPECT_EQ(ivshm_client_notify(obs, ivshm_client_id(y), 63), 0);
	uint64_t fired = 0;
	EXPECT_EQ(ivshm_client_wait(y, 2000, &fired), 1);
	EXPECT_EQ(fired, UINT64_C(1) << 63);
	ivshm_client_close(y);
	ivshm_client_close(obs);
	close(lazy);
}

TEST_F(ServerTest, MaliciousClientSendingGarbageAndDescriptors)
{
	ASSERT_EQ(server.start(default_params(sock)), 0);
	ASSERT_TRUE(wait_until([&] { return ivshm_server_npeers(server.srv) == 0; }));
	int before = count_fds();
	int evil = raw_connect(sock);
	ASSERT_GE(evil, 0);
	int pfd[2];
	ASSERT_EQ(pipe2(pfd, O_CLOEXEC), 0);
	std::mt19937 rng(1234);
	for (int i = 0; i < 200; i++) {
		uint8_t junk[37];
		for (auto &b : junk)
			b = (uint8_t)rng();
		struct iovec iov = { junk, sizeof(junk) };
		char ctl[CMSG_SPACE(2 * sizeof(int))];
		struct msghdr msg;
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		if (i % 2) {
			memset(ctl, 0, sizeof(ctl));
			msg.msg_control = ctl;
			msg.msg_controllen = sizeof(ctl);
			struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(2 * sizeof(int));
			memcpy(CMSG_DATA(c), pfd, 2 * sizeof(int));
		}
		ASSERT_EQ(sendmsg(evil, &msg, MSG_NOSIGNAL), (ssize_t)sizeof(junk));
	}
	/* Others are served meanwhile. */
	ivshm_client *a = connect();
	ivshm_client *b = connect();
	ASSERT_TRUE(a && b);
	ASSERT_TRUE(pump_until(a, [&] { return ivshm_client_peer_nvectors(a, ivshm_client_id(b)) == 4; }));
	ASSERT_EQ(ivshm_client_notify(a, ivshm_client_id(b), 0), 0);
	uint64_t fired = 0;
	EXPECT_EQ(ivshm_client_wait(b, 2000, &fired), 1);
	EXPECT_TRUE(server.log.contains("unexpected data"));
	ivshm_client_close(a);
	ivshm_client_close(b);
	close(evil);
	close(pfd[0]);
	close(pfd[1]);
	ASSERT_TRUE(wait_until([&] { return ivshm_server_npeers(server.srv) == 0; }));
	/* Every descriptor the evil client passed was closed by the server. */
	EXPECT_TRUE(wait_until([&] { return count_fds() == before; }))
		<< count_fds() << " vs " << before;
}

TEST_F(ServerTest, HundredClientsComeAndGoAtRandom)
{
	ASSERT_EQ(server.start(default_params(sock, 1 << 20, 4)), 0);
	PeerLog lo;
	ivshm_client *obs = connect(&lo);
	ASSERT_TRUE(obs);
	std::mutex mu;
	std::set<uint16_t> ids;
	std::atomic<int> failures{ 0 };
	std::vector<std::thread> th;
	for (int t = 0; t < 4; t++)
		th.emplace_back([&, t] {
			std::mt19937 rng(1000 + t);
			for (int i = 0; i < 25; i++) {
				int mode = (int)(rng() % 4);
				if (mode == 0) {
					/* Hang up before reading anything. */
					int s = raw_connect(sock);
					if (s >= 0)
						close(s);
					continue;
				}
				if (mode == 1) {
					/* Read part of the set-up, then vanish. */
					int s = raw_connect(sock);
					if (s >= 0) {
						char b[11];
						if (read(s, b, sizeof(b)) < 0) {
						}
						close(s);
					}
					continue;
				}
				ivshm_client *c = nullptr;
				ivshm_client_params cp;
				memset(&cp, 0, sizeof(cp));
				cp.connect_timeout_ms = 3000;
				if (ivshm_client_connect(sock.c_str(), &cp, &c)) {
					failures++;
					continue;
				}
				{
					std::lock_guard<std::mutex> g(mu);
					if (!ids.insert(ivshm_client_id(c)).second)
						failures++;
				}
				std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
				if (mode == 3)
					ivshm_client_process(c);
				ivshm_client_close(c);
			}
		});
	for (auto &t : th)
		t.join();
	EXPECT_EQ(failures.load(), 0);
	ASSERT_TRUE(wait_until([&] { return ivshm_server_npeers(server.srv) == 1; }));
	/* The observer ends with no peers, and saw as many leaves as joins. */
	uint16_t buf[8];
	EXPECT_TRUE(pump_until(obs, [&] { return ivshm_client_peers(obs, buf, 8) == 0; }));
	EXPECT_EQ(lo.count(1), lo.count(0));
	/* The server still works. */
	ivshm_client *x = connect();
	ASSERT_TRUE(x);
	EXPECT_EQ(ivshm_client_notify(x, ivshm_client_id(obs), 2), 0);
	uint64_t fired = 0;
	EXPECT_EQ(ivshm_client_wait(obs, 2000, &fired), 1);
	EXPECT_EQ(fired, 4u);
	ivshm_client_close(x);
	ivshm_client_close(obs);
}

TEST_F(ServerTest, MemoryFromDirectoryAndPosixShm)
{
	{
		auto p = default_params(sock);
		p.mem = IVSHM_SERVER_MEM_DIR;
		p.mem_path = dir.path().c_str();
		ServerThread s;
		ASSERT_EQ(s.start(p), 0);
		ivshm_client *a = connect();
		ivshm_client *b = connect();
		ASSERT_TRUE(a && b);
		static_cast<volatile uint8_t *>(ivshm_client_base(a))[5000] = 0x5a;
		EXPECT_EQ(static_cast<volatile uint8_t *>(ivshm_client_base(b))[5000], 0x5a);
		ivshm_client_close(a);
		ivshm_client_close(b);
	}
	{
		char name[64];
		snprintf(name, sizeof(name), "/ivshm-test-%d-%u", (int)getpid(),
			 (unsigned int)std::random_device()());
		auto p = default_params(sock);
		p.mem = IVSHM_SERVER_MEM_SHM;
		p.mem_path = name;
		ServerThread s;
		ASSERT_EQ(s.start(p), 0);
		ivshm_client *a = connect();
		ASSERT_TRUE(a);
		/* Another process would open it by name. */
		int fd = shm_open(name, O_RDWR, 0);
		ASSERT_GE(fd, 0);
		auto *m = static_cast<uint8_t *>(
			mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
		ASSERT_NE(m, MAP_FAILED);
		m[70000] = 0x77;
		EXPECT_EQ(static_cast<volatile uint8_t *>(ivshm_client_base(a))[70000], 0x77);
		munmap(m, 1 << 20);
		close(fd);
		ivshm_client_close(a);
		s.stop();
		EXPECT_LT(shm_open(name, O_RDWR, 0), 0) << "created object removed";
	}
}

TEST_F(ServerTest, SocketModeAndGroup)
{
	auto p = default_params(sock);
	p.socket_mode = 0660;
	p.flags = IVSHM_SERVER_F_GROUP;
	p.socket_gid = (unsigned int)getgid();
	ASSERT_EQ(server.start(p), 0);
	struct stat st;
	ASSERT_EQ(lstat(sock.c_str(), &st), 0);
	EXPECT_EQ(st.st_mode & 07777, 0660u);
	EXPECT_EQ(st.st_gid, getgid());
}

TEST_F(ServerTest, NumaPlacement)
{
	auto p = default_params(sock);
	p.flags = IVSHM_SERVER_F_NUMA;
	p.numa_node = 9999;
	ServerThread s;
	int ret = s.start(p);
	if (ret == -ENOTSUP)
		GTEST_SKIP() << "built without libnuma or NUMA unavailable: " << s.log.all();
	EXPECT_EQ(ret, -EINVAL);
	EXPECT_TRUE(s.log.contains("does not exist"));
	p.numa_node = 0;
	ASSERT_EQ(server.start(p), 0) << server.log.all();
	ivshm_client *a = connect();
	ASSERT_TRUE(a);
	static_cast<volatile uint8_t *>(ivshm_client_base(a))[100000] = 1;
	ivshm_client_close(a);
}

TEST_F(ServerTest, ClientConnectRetriesUntilServerAppears)
{
	std::thread late([&] {
		std::this_thread::sleep_for(std::chrono::milliseconds(200));
		ASSERT_EQ(server.start(default_params(sock)), 0);
	});
	ivshm_client *a = nullptr;
	ivshm_client_params cp;
	memset(&cp, 0, sizeof(cp));
	cp.connect_timeout_ms = 5000;
	EXPECT_EQ(ivshm_client_connect(sock.c_str(), &cp, &a), 0);
	late.join();
	ASSERT_TRUE(a);
	ivshm_client_close(a);
	/* No server at all: a clear error once the timeout passes. */
	std::string none = dir.file("none.sock");
	cp.connect_timeout_ms = 100;
	EXPECT_EQ(ivshm_client_connect(none.c_str(), &cp, &a), -ENOENT);
}

TEST_F(ServerTest, ClientRejectsMalformedServer)
{
	/* A fake server that sends a wrong version, then one that sends a
	 * bad id, then garbage after a valid set-up. */
	int ls = raw_listen(sock);
	ASSERT_GE(ls, 0) << strerror(-ls);
	int before = count_fds();
	/* Messages from index @p late on are sent 200 ms later. */
	auto serve = [&](std::vector<std::pair<int64_t, bool>> msgs, size_t late = 99) {
		return std::thread([&, msgs, late] {
			int s = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
			int mfd = memfd_create("t", MFD_CLOEXEC);
			if (ftruncate(mfd, 1 << 16)) {
			}
			for (size_t i = 0; i < msgs.size(); i++) {
				if (i == late)
					std::this_thread::sleep_for(std::chrono::milliseconds(200));
				ivshm_proto_send_part(s, msgs[i].first,
						      msgs[i].second ? mfd : -1, 0);
			}
			std::this_thread::sleep_for(std::chrono::milliseconds(100));
			close(mfd);
			close(s);
		});
	};
	ivshm_client_params cp;
	memset(&cp, 0, sizeof(cp));
	cp.connect_timeout_ms = 2000;
	ivshm_client *c = nullptr;
	auto t1 = serve({ { 1, false } });
	EXPECT_EQ(ivshm_client_connect(sock.c_str(), &cp, &c), -EPROTONOSUPPORT);
	t1.join();
	auto t2 = serve({ { 0, false }, { 70000, false } });
	EXPECT_EQ(ivshm_client_connect(sock.c_str(), &cp, &c), -EPROTO);
	t2.join();
	auto t3 = serve({ { 0, false }, { 5, false }, { -1, false } });
	EXPECT_EQ(ivshm_client_connect(sock.c_str(), &cp, &c), -EPROTO);
	t3.join();
	auto t4 = serve({ { 0, false }, { 5, false }, { -1, true }, { 5, true },
			  { -7, true } }, 4);
	EXPECT_EQ(ivshm_client_connect(sock.c_str(), &cp, &c), 0);
	if (!c) {
		t4.join();
		close(ls);
		FAIL();
	}
	EXPECT_EQ(ivshm_client_id(c), 5);
	EXPECT_TRUE(wait_until([&] { return ivshm_client_process(c) == -EPROTO; }));
	t4.join();
	ivshm_client_close(c);
	close(ls);
	EXPECT_EQ(count_fds(), before - 1);
}

TEST_F(ServerTest, FloodingClientIsDropped)
{
	ASSERT_EQ(server.start(default_params(sock)), 0);
	PeerLog lo;
	ivshm_client *obs = connect(&lo);
	ASSERT_TRUE(obs);
	int evil = raw_connect(sock);
	ASSERT_GE(evil, 0);
	ASSERT_TRUE(pump_until(obs, [&] { return lo.has(1, 1); }));
	std::vector<char> junk(65536, 'x');
	/* 2 MiB of junk: dropped after 1 MiB; later sends fail (EPIPE). */
	for (int i = 0; i < 32; i++)
		if (send(evil, junk.data(), junk.size(), MSG_NOSIGNAL) < 0)
			break;
	EXPECT_TRUE(pump_until(obs, [&] { return lo.has(1, 0); }));
	EXPECT_TRUE(server.log.contains("dropping it")) << server.log.all();
	close(evil);
	ivshm_client_close(obs);
}

TEST_F(ServerTest, ClientAcceptsExampleServerOrder)
{
	/* QEMU's example server sends the other peers' vectors first and the
	 * newcomer's own vectors last; a pause in between must not cost the
	 * client its vectors. */
	int ls = raw_listen(sock);
	ASSERT_GE(ls, 0) << strerror(-ls);
	std::thread fake([&] {
		int s = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
		int mfd = memfd_create("t", MFD_CLOEXEC);
		if (ftruncate(mfd, 1 << 16)) {
		}
		std::vector<int> efds;
		auto send_ev = [&](int64_t id) {
			int e = eventfd(0, EFD_CLOEXEC);
			efds.push_back(e);
			ivshm_proto_send_part(s, id, e, 0);
		};
		ivshm_proto_send_part(s, 0, -1, 0);
		ivshm_proto_send_part(s, 9, -1, 0);
		ivshm_proto_send_part(s, -1, mfd, 0);
		for (int p : { 2, 4 })
			for (int v = 0; v < 3; v++)
				send_ev(p);
		std::this_thread::sleep_for(std::chrono::milliseconds(100));
		send_ev(9);
		std::this_thread::sleep_for(std::chrono::milliseconds(5));
		send_ev(9);
		send_ev(9);
		std::this_thread::sleep_for(std::chrono::milliseconds(300));
		/* The client rings peer 4's vector 2: that eventfd fires. */
		uint64_t c = 0;
		EXPECT_EQ(read(efds[5], &c, 8), 8);
		EXPECT_EQ(c, 1u);
		ivshm_proto_send_part(s, 2, -1, 0); /* peer 2 leaves */
		std::this_thread::sleep_for(std::chrono::milliseconds(100));
		for (int e : efds)
			close(e);
		close(mfd);
		close(s);
	});
	PeerLog lo;
	ivshm_client *c = connect(&lo);
	ASSERT_TRUE(c);
	EXPECT_EQ(ivshm_client_id(c), 9);
	EXPECT_EQ(ivshm_client_nvectors(c), 3u);
	EXPECT_EQ(ivshm_client_peer_nvectors(c, 2), 3u);
	EXPECT_EQ(ivshm_client_peer_nvectors(c, 4), 3u);
	EXPECT_TRUE(lo.has(2, 1) && lo.has(4, 1));
	EXPECT_EQ(ivshm_client_notify(c, 4, 2), 0);
	EXPECT_TRUE(pump_until(c, [&] { return lo.has(2, 0); }));
	fake.join();
	EXPECT_TRUE(wait_until([&] { return ivshm_client_process(c) == -ECONNRESET; }));
	ivshm_client_close(c);
	close(ls);
}

TEST_F(ServerTest, NewcomerSetUpIsNotLimitedByTheQueueBound)
{
	/* A tiny queue bound with 64 vectors and several peers: a newcomer's
	 * set-up (3 + 64 x 5 messages) is far beyond it and must still pass. */
	auto p = default_params(sock, 1 << 20, 64);
	p.max_queue = 1;
	ASSERT_EQ(server.start(p), 0);
	std::vector<ivshm_client *> cs;
	for (int i = 0; i < 5; i++) {
		ivshm_client *c = connect();
		ASSERT_TRUE(c);
		cs.push_back(c);
		/* Everyone reads, so nobody is over the bound for long. */
		for (auto *o : cs)
			ivshm_client_process(o);
	}
	ivshm_client *last = cs.back();
	EXPECT_EQ(ivshm_client_nvectors(last), 64u);
	for (int i = 0; i < 4; i++)
		EXPECT_TRUE(pump_until(last, [&] {
			return ivshm_client_peer_nvectors(last, (uint16_t)i) == 64;
		})) << i;
	EXPECT_EQ(ivshm_server_npeers(server.srv), 5u);
	for (auto *c : cs)
		ivshm_client_close(c);
}
