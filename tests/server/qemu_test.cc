/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Description: QEMU's own ivshmem-doorbell device (qemu-system-x86_64, q35,
 * TCG, driven through qtest; no guest runs) against the project's server
 * and host client: IVPosition equals the id the server gave; bytes written
 * through one QEMU's BAR2 are seen by a second QEMU and by a host client,
 * and back; a Doorbell write in BAR0 wakes the host client's eventfd for
 * that vector; a host client's notify (and another QEMU's doorbell) makes
 * QEMU deliver the MSI-X message, which lands in guest RAM; a QEMU that is
 * killed is announced to the others, and its id is not handed out again.
 * Every QEMU is killed by pid, with a deadline, on every path.
 */
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include "qtest_harness.h"
#include "test_util.h"

#include "region_layout.h"

using namespace ivshm_test;
using ivshm_qtest::Ivshmem;
using ivshm_qtest::Qemu;

namespace {

constexpr unsigned int kVectors = 4;
constexpr uint64_t kSize = 1 << 20;
/* Guest RAM where MSI-X messages are pointed (plain memory, not the APIC). */
constexpr uint64_t kMsiBase = 0x200000;

class QemuTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		ASSERT_FALSE(dir.path().empty());
		sock = dir.file("ivshmem.sock");
	}
	void TearDown() override
	{
		for (auto &q : qemus)
			q->kill();
		if (host)
			ivshm_client_close(host);
		server.stop();
	}
	void start_server()
	{
		ASSERT_EQ(server.start(default_params(sock, kSize, kVectors)), 0)
			<< server.log.all();
	}
	/* Start a QEMU with an ivshmem-doorbell on our server; returns its
	 * index in qemus. */
	Qemu *start_qemu()
	{
		auto q = std::make_unique<Qemu>();
		std::vector<std::string> args = {
			"-chardev", "socket,path=" + sock + ",id=ivshm0",
			"-device", "ivshmem-doorbell,chardev=ivshm0,vectors=" +
					   std::to_string(kVectors),
		};
		int ret = q->start(args);
		EXPECT_EQ(ret, 0) << q->error();
		if (ret)
			return nullptr;
		qemus.push_back(std::move(q));
		return qemus.back().get();
	}
	void connect_host()
	{
		ivshm_client_params cp;
		memset(&cp, 0, sizeof(cp));
		cp.connect_timeout_ms = 5000;
		cp.peer_event = PeerLog::cb;
		cp.peer_event_arg = &hlog;
		ASSERT_EQ(ivshm_client_connect(sock.c_str(), &cp, &host), 0);
	}
	/* Server, two QEMUs, then the host client; both devices set up. */
	void start_two_qemus_and_host(Qemu **a, Qemu **b, Ivshmem *da, Ivshmem *db)
	{
		start_server();
		*a = start_qemu();
		*b = start_qemu();
		ASSERT_TRUE(*a && *b);
		connect_host();
		da->setup(**a);
		db->setup(**b);
	}
	/* The id of the next peer the host hears of, after @p seen joins. */
	int next_join(size_t seen)
	{
		int id = -1;
		pump_until(host, [&] {
			std::lock_guard<std::mutex> g(hlog.mu);
			size_t n = 0;
			for (auto &e : hlog.ev)
				if (e.second == 1 && n++ == seen) {
					id = e.first;
					return true;
				}
			return false;
		}, 10000);
		return id;
	}
	bool host_knows_all_vectors(uint16_t peer)
	{
		return pump_until(host, [&] {
			return ivshm_client_peer_nvectors(host, peer) == kVectors;
		}, 10000);
	}

	TempDir dir;
	std::string sock;
	ServerThread server;
	std::vector<std::unique_ptr<Qemu>> qemus;
	ivshm_client *host = nullptr;
	PeerLog hlog;
};

} // namespace

TEST_F(QemuTest, IvPositionIsTheIdTheServerGave)
{
	start_server();
	connect_host();
	EXPECT_EQ(ivshm_client_id(host), 0);
	Qemu *a = start_qemu();
	ASSERT_TRUE(a);
	int ida = next_join(0);
	ASSERT_EQ(ida, 1);
	Qemu *b = start_qemu();
	ASSERT_TRUE(b);
	int idb = next_join(1);
	ASSERT_EQ(idb, 2);
	Ivshmem da, db;
	da.setup(*a);
	db.setup(*b);
	EXPECT_TRUE(da.has_msix);
	EXPECT_EQ(da.bar2_size, kSize);
	EXPECT_EQ(da.iv_position(), (uint32_t)ida);
	EXPECT_EQ(db.iv_position(), (uint32_t)idb);
	EXPECT_EQ(ivshm_server_npeers(server.srv), 3u);
}

TEST_F(QemuTest, BytesFlowBetweenTwoQemusAndHost)
{
	Qemu *a = nullptr, *b = nullptr;
	Ivshmem da, db;
	ASSERT_NO_FATAL_FAILURE(start_two_qemus_and_host(&a, &b, &da, &db));
	/* QEMU maps the very region the server formatted. */
	EXPECT_EQ(a->readq(da.bar2 + 0), IVSHM_REGION_MAGIC);
	EXPECT_EQ(b->readl(db.bar2 + 8), IVSHM_REGION_VERSION);
	EXPECT_EQ(a->readq(da.bar2 + 16), kSize);

	/* A writes through BAR2; B and the host read every byte. */
	const size_t len = 4096;
	std::vector<uint8_t> pat(len);
	for (size_t i = 0; i < len; i++)
		pat[i] = (uint8_t)(i * 31 + 7);
	const uint64_t off1 = 8192;
	a->write(da.bar2 + off1, pat.data(), len);
	EXPECT_EQ(b->read(db.bar2 + off1, len), pat);
	auto *h = static_cast<uint8_t *>(ivshm_client_base(host));
	ASSERT_TRUE(h);
	EXPECT_EQ(memcmp(h + off1, pat.data(), len), 0);

	/* And back: the host writes, both QEMUs read. */
	const uint64_t off2 = kSize - len;
	for (size_t i = 0; i < len; i++)
		h[off2 + i] = (uint8_t)(255 - i % 251);
	std::vector<uint8_t> want(h + off2, h + off2 + len);
	EXPECT_EQ(a->read(da.bar2 + off2, len), want);
	EXPECT_EQ(b->read(db.bar2 + off2, len), want);
	/* Word-sized accesses too. */
	b->writel(db.bar2 + 0x10000, 0xdeadbeef);
	EXPECT_EQ(a->readl(da.bar2 + 0x10000), 0xdeadbeefu);
	uint32_t w;
	memcpy(&w, h + 0x10000, 4);
	EXPECT_EQ(w, 0xdeadbeefu);
}

TEST_F(QemuTest, DoorbellWakesHostEventfd)
{
	start_server();
	Qemu *a = start_qemu();
	ASSERT_TRUE(a);
	connect_host();
	uint16_t hid = ivshm_client_id(host);
	Ivshmem da;
	da.setup(*a);
	for (unsigned int v = 0; v < kVectors; v++) {
		int fd = ivshm_client_vector_fd(host, v);
		ASSERT_GE(fd, 0);
		/* QEMU learns of the host's eventfds asynchronously after the
		 * host connected; until then its doorbells are dropped. Ring
		 * until the first one arrives, with a deadline. */
		bool woke = false;
		for (int i = 0; i < 200 && !woke; i++) {
			da.doorbell(hid, v);
			uint64_t fired = 0;
			ivshm_client_wait(host, 50, &fired);
			if (fired) {
				EXPECT_EQ(fired, UINT64_C(1) << v);
				woke = true;
			}
		}
		ASSERT_TRUE(woke) << "vector " << v;
		/* Now exactly: three rings, counter 3, no other vector. */
		uint64_t cnt = 0;
		while (read(fd, &cnt, 8) == 8) {
		}
		for (int i = 0; i < 3; i++)
			da.doorbell(hid, v);
		ASSERT_TRUE(wait_until([&] {
			uint64_t c;
			if (read(fd, &c, 8) == 8)
				cnt += c;
			return cnt >= 3;
		}));
		EXPECT_EQ(cnt, 3u);
		for (unsigned int o = 0; o < kVectors; o++) {
			uint64_t c;
			if (o != v) {
				EXPECT_NE(read(ivshm_client_vector_fd(host, o), &c, 8), 8);
			}
		}
	}
}

TEST_F(QemuTest, HostNotifyAndQemuDoorbellDeliverMsix)
{
	Qemu *a = nullptr, *b = nullptr;
	Ivshmem da, db;
	ASSERT_NO_FATAL_FAILURE(start_two_qemus_and_host(&a, &b, &da, &db));
	uint16_t ida = (uint16_t)da.iv_position(), idb = (uint16_t)db.iv_position();
	for (unsigned int v = 0; v < kVectors; v++) {
		a->writel(kMsiBase + 16 * v, 0);
		b->writel(kMsiBase + 16 * v, 0);
		da.enable_msix_vector(v, kMsiBase + 16 * v, 0xa0de0000u | v);
		db.enable_msix_vector(v, kMsiBase + 16 * v, 0xb0de0000u | v);
	}
	ASSERT_TRUE(host_knows_all_vectors(ida));
	ASSERT_TRUE(host_knows_all_vectors(idb));

	/* Host -> QEMU A, each vector: the MSI write lands in A's RAM. */
	for (unsigned int v = 0; v < kVectors; v++) {
		ASSERT_EQ(ivshm_client_notify(host, ida, v), 0);
		EXPECT_TRUE(wait_until([&] {
			return a->readl(kMsiBase + 16 * v) == (0xa0de0000u | v);
		}, 10000)) << "vector " << v;
		/* Only that vector. */
		for (unsigned int o = v + 1; o < kVectors; o++)
			EXPECT_EQ(a->readl(kMsiBase + 16 * o), 0u);
	}
	/* QEMU A's doorbell -> QEMU B, through the server's eventfds. */
	const unsigned int v = kVectors - 1;
	bool landed = false;
	for (int i = 0; i < 200 && !landed; i++) {
		da.doorbell(idb, v);
		landed = wait_until([&] {
			return b->readl(kMsiBase + 16 * v) == (0xb0de0000u | v);
		}, 50);
	}
	EXPECT_TRUE(landed);
	for (unsigned int o = 0; o < v; o++)
		EXPECT_EQ(b->readl(kMsiBase + 16 * o), 0u);
}

TEST_F(QemuTest, KilledQemuIsAnnouncedAndItsIdNotReused)
{
	start_server();
	connect_host();
	Qemu *a = start_qemu();
	Qemu *b = start_qemu();
	ASSERT_TRUE(a && b);
	int ida = next_join(0), idb = next_join(1);
	ASSERT_GE(ida, 0);
	ASSERT_GE(idb, 0);
	ASSERT_TRUE(host_knows_all_vectors((uint16_t)ida));
	ASSERT_TRUE(wait_until([&] { return ivshm_server_npeers(server.srv) == 3; }));

	b->kill();
	EXPECT_TRUE(pump_until(host, [&] { return hlog.has((uint16_t)idb, 0); }, 10000));
	EXPECT_TRUE(wait_until([&] { return ivshm_server_npeers(server.srv) == 2; }));
	EXPECT_EQ(ivshm_client_notify(host, (uint16_t)idb, 0), -ENOENT);

	/* A is undisturbed: its doorbell still reaches the host. */
	Ivshmem da;
	da.setup(*a);
	bool woke = false;
	for (int i = 0; i < 200 && !woke; i++) {
		da.doorbell(ivshm_client_id(host), 0);
		uint64_t fired = 0;
		ivshm_client_wait(host, 50, &fired);
		woke = fired & 1;
	}
	EXPECT_TRUE(woke);

	/* A new QEMU gets a fresh id (QEMU 7.2 crashes on a reused one). */
	Qemu *c = start_qemu();
	ASSERT_TRUE(c);
	int idc = next_join(2);
	EXPECT_GT(idc, idb);
	Ivshmem dc;
	dc.setup(*c);
	EXPECT_EQ(dc.iv_position(), (uint32_t)idc);
	/* A saw B leave and C arrive without crashing: it still answers. */
	EXPECT_EQ(da.iv_position(), (uint32_t)ida);
}

TEST_F(QemuTest, SizesAboveFourGiBAndNonPowerOfTwoWorkWithQemu)
{
	/* 6 GiB: not a power of two (QEMU would abort) and above 4 GiB (QEMU's
	 * example server truncates it): the server hands QEMU 8 GiB. The memfd
	 * is sparse: only touched pages cost memory. */
	ASSERT_EQ(server.start(default_params(sock, UINT64_C(6) << 30, kVectors)), 0);
	EXPECT_TRUE(server.log.contains("rounded up"));
	Qemu *a = start_qemu();
	ASSERT_TRUE(a);
	connect_host();
	Ivshmem da;
	da.setup(*a, 0xe0000000u, 0xe0001000u, UINT64_C(0x800000000)); /* 32 GiB */
	EXPECT_EQ(da.bar2_size, UINT64_C(8) << 30);
	EXPECT_EQ(ivshm_client_size(host), UINT64_C(8) << 30);
	auto *h = static_cast<volatile uint8_t *>(ivshm_client_base(host));
	for (uint64_t off : { UINT64_C(5) << 30, (UINT64_C(8) << 30) - 8 }) {
		a->writeq(da.bar2 + off, 0x0123456789abcdefULL ^ off);
		uint64_t got;
		memcpy(&got, const_cast<uint8_t *>(h) + off, 8);
		EXPECT_EQ(got, 0x0123456789abcdefULL ^ off);
		h[off + 3] = 0x5a;
		EXPECT_EQ(a->readb(da.bar2 + off + 3), 0x5a);
	}
	EXPECT_EQ(a->readq(da.bar2 + 16), UINT64_C(8) << 30); /* header size field */
}

TEST_F(QemuTest, WithTheServerProgramAsDocumented)
{
	/* The README's set-up: the ivshmem-server program, QEMU with
	 * -chardev socket + -device ivshmem-doorbell, and a host client. */
	const char *bin = getenv("IVSHM_SERVER_BIN");
	ASSERT_TRUE(bin) << "IVSHM_SERVER_BIN not set";
	std::string err_path = dir.file("server.err");
	pid_t spid = fork();
	ASSERT_GE(spid, 0);
	if (spid == 0) {
		int e = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(e, 2);
		execl(bin, bin, "-F", "-v", "-S", sock.c_str(), "-l", "1M", "-n",
		      std::to_string(kVectors).c_str(), (char *)nullptr);
		_exit(127);
	}
	auto reap = [&](int sig) {
		int st = -1;
		kill(spid, sig);
		for (int i = 0; i < 5000; i++) {
			if (waitpid(spid, &st, WNOHANG) == spid)
				return st;
			std::this_thread::sleep_for(std::chrono::milliseconds(2));
		}
		kill(spid, SIGKILL);
		waitpid(spid, &st, 0);
		return -1;
	};
	bool up = wait_until([&] {
		struct stat st;
		return lstat(sock.c_str(), &st) == 0;
	});
	if (!up) {
		reap(SIGKILL);
		FAIL() << "server did not start";
	}
	connect_host();
	Qemu *a = start_qemu();
	int ida = a ? next_join(0) : -1;
	if (a && ida >= 0) {
		Ivshmem da;
		da.setup(*a);
		EXPECT_EQ(da.iv_position(), (uint32_t)ida);
		bool woke = false;
		for (int i = 0; i < 200 && !woke; i++) {
			da.doorbell(ivshm_client_id(host), 1);
			uint64_t fired = 0;
			ivshm_client_wait(host, 50, &fired);
			woke = fired == 2;
		}
		EXPECT_TRUE(woke);
		a->write(da.bar2 + 4096, "ivshm", 5);
		EXPECT_EQ(memcmp(static_cast<char *>(ivshm_client_base(host)) + 4096, "ivshm", 5), 0);
	} else {
		ADD_FAILURE() << "QEMU did not join";
	}
	if (a) {
		a->kill();
		EXPECT_TRUE(pump_until(host, [&] { return hlog.has((uint16_t)ida, 0); }, 10000));
	}
	int st = reap(SIGTERM);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	struct stat sst;
	EXPECT_NE(lstat(sock.c_str(), &sst), 0);
}
