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

#include <signal.h>
#include <sys/wait.h>

#include "qtest_harness.h"
#include "test_util.h"

/* region_layout.h is C-only (_Static_assert); C++17 spells it static_assert. */
#define _Static_assert static_assert
#include "region_layout.h"
#undef _Static_assert

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
	start_server();
	Qemu *a = start_qemu();
	Qemu *b = start_qemu();
	ASSERT_TRUE(a && b);
	connect_host();
	Ivshmem da, db;
	da.setup(*a);
	db.setup(*b);
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
	start_server();
	Qemu *a = start_qemu();
	Qemu *b = start_qemu();
	ASSERT_TRUE(a && b);
	connect_host();
	Ivshmem da, db;
	da.setup(*a);
	db.setup(*b);
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
