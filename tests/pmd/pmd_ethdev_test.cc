// SPDX-License-Identifier: BSD-3-Clause
//
// Description: the net_ivshmem PMD driven through the ethdev API in one
// process. EAL starts once (--no-huge --no-pci) with two net_ivshmem ports
// on the two sides of one channel of a plain shared file; the tests move
// packets between them and check every byte, every count and every
// statistic, multi-segment mbufs both ways, the link following the peer
// (hot-unplug and re-probe of the other port) with LSC callbacks, and that
// bad devargs fail the probe. A separate binary from the testpmd tests:
// EAL initialises once per process.
#include <gtest/gtest.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <functional>
#include <random>
#include <string>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <rte_bus_vdev.h>
#include <rte_epoll.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

namespace {

std::string g_shm;     // the shared file of the main channel
std::string g_shm2;    // another file for one-off ports
rte_mempool *g_pool;   // 2 KiB mbufs
rte_mempool *g_small;  // 512-byte mbufs: long packets become chains
uint16_t g_p0 = RTE_MAX_ETHPORTS, g_p1 = RTE_MAX_ETHPORTS;
// Two more ports through the project's ivshmem-server (socket=), with
// rx_mode=intr: doorbells and rx interrupts. Absent without IVSHM_SERVER.
uint16_t g_s0 = RTE_MAX_ETHPORTS, g_s1 = RTE_MAX_ETHPORTS;
pid_t g_server = -1;
std::string g_rundir;

int64_t now_ms()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint16_t port_by_name(const char *name)
{
	uint16_t id;
	if (rte_eth_dev_get_port_by_name(name, &id) != 0)
		return RTE_MAX_ETHPORTS;
	return id;
}

int setup_port(uint16_t port, rte_mempool *mp, bool scatter, bool lsc,
	       uint16_t nb_desc = 512)
{
	rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	conf.intr_conf.lsc = lsc ? 1 : 0;
	if (scatter)
		conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
	conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	int r = rte_eth_dev_configure(port, 1, 1, &conf);
	if (r != 0)
		return r;
	r = rte_eth_rx_queue_setup(port, 0, nb_desc, rte_socket_id(), nullptr, mp);
	if (r != 0)
		return r;
	r = rte_eth_tx_queue_setup(port, 0, nb_desc, rte_socket_id(), nullptr);
	if (r != 0)
		return r;
	return rte_eth_dev_start(port);
}

bool wait_link(uint16_t port, int up, int ms)
{
	int64_t end = now_ms() + ms;
	while (now_ms() < end) {
		rte_eth_link l;
		if (rte_eth_link_get_nowait(port, &l) == 0 && l.link_status == up)
			return true;
		usleep(10000);
	}
	return false;
}

// A port's xstat by name, -1 when absent.
long long xstat(uint16_t port, const char *name)
{
	int n = rte_eth_xstats_get_names(port, nullptr, 0);
	if (n <= 0)
		return -1;
	std::vector<rte_eth_xstat_name> names(n);
	std::vector<rte_eth_xstat> xs(n);
	if (rte_eth_xstats_get_names(port, names.data(), n) != n ||
	    rte_eth_xstats_get(port, xs.data(), n) != n)
		return -1;
	for (int i = 0; i < n; i++)
		if (strcmp(names[i].name, name) == 0)
			return (long long)xs[i].value;
	return -1;
}

uint8_t pattern(uint32_t seq, uint32_t j)
{
	return (uint8_t)(seq * 31u + j * 7u + (j >> 8));
}

// A packet of @p len bytes carrying @p seq, spread over mbufs of @p seg
// bytes each (one mbuf when seg >= len).
rte_mbuf *make_pkt(rte_mempool *mp, uint32_t seq, uint32_t len, uint32_t seg)
{
	rte_mbuf *head = nullptr, *tail = nullptr;
	uint32_t j = 0;
	while (j < len) {
		rte_mbuf *m = rte_pktmbuf_alloc(mp);
		if (m == nullptr) {
			rte_pktmbuf_free(head);
			return nullptr;
		}
		uint32_t n = std::min(seg, len - j);
		uint8_t *d = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)n);
		for (uint32_t k = 0; k < n; k++, j++)
			d[k] = pattern(seq, j);
		if (head == nullptr) {
			head = tail = m;
		} else {
			tail->next = m;
			tail = m;
			head->nb_segs++;
			head->pkt_len += n;
		}
	}
	if (len >= 4)
		memcpy(rte_pktmbuf_mtod(head, uint8_t *), &seq, 4);
	return head;
}

// Check a received packet byte for byte; returns its seq or -1.
long check_pkt(rte_mbuf *m, uint32_t want_len)
{
	if (m->pkt_len != want_len)
		return -1;
	uint32_t seq;
	memcpy(&seq, rte_pktmbuf_mtod(m, uint8_t *), 4);
	uint32_t j = 0, total = 0;
	uint16_t segs = 0;
	for (rte_mbuf *s = m; s != nullptr; s = s->next, segs++) {
		const uint8_t *d = rte_pktmbuf_mtod(s, const uint8_t *);
		for (uint32_t k = 0; k < s->data_len; k++, j++)
			if (j >= 4 && d[k] != pattern(seq, j))
				return -1;
		total += s->data_len;
	}
	if (total != want_len || segs != m->nb_segs)
		return -1;
	return seq;
}

// Send @p n packets of lengths len_of(i) from @p tx to @p rx, receiving as
// we go; check every byte and the order, and each received mbuf with
// @p also(mbuf, i) when given. Returns received count.
template <typename LenFn>
uint32_t move_packets(uint16_t tx, uint16_t rx, rte_mempool *mp, uint32_t n,
		      LenFn len_of, uint32_t seg, uint32_t *bad,
		      const std::function<bool(rte_mbuf *, uint32_t)> &also = nullptr)
{
	uint32_t sent = 0, got = 0;
	*bad = 0;
	int64_t end = now_ms() + 30000;
	while (got < n && now_ms() < end) {
		rte_mbuf *out[32];
		uint16_t k = 0;
		while (k < 32 && sent + k < n) {
			out[k] = make_pkt(mp, sent + k, len_of(sent + k), seg);
			if (out[k] == nullptr)
				break;
			k++;
		}
		uint16_t s = rte_eth_tx_burst(tx, 0, out, k);
		for (uint16_t i = s; i < k; i++)
			rte_pktmbuf_free(out[i]);
		sent += s;
		rte_mbuf *in[32];
		uint16_t r = rte_eth_rx_burst(rx, 0, in, 32);
		for (uint16_t i = 0; i < r; i++) {
			long seq = check_pkt(in[i], len_of(got));
			if (seq != (long)got || (also && !also(in[i], got)))
				(*bad)++;
			got++;
			rte_pktmbuf_free(in[i]);
		}
	}
	return got;
}

class Ethdev : public ::testing::Test {};

TEST(Ethdev, TwoPortsProbedOnOneChannel)
{
	ASSERT_LT(g_p0, RTE_MAX_ETHPORTS);
	ASSERT_LT(g_p1, RTE_MAX_ETHPORTS);
	rte_eth_dev_info info;
	ASSERT_EQ(rte_eth_dev_info_get(g_p0, &info), 0);
	EXPECT_STREQ(info.driver_name, "net_ivshmem");
	EXPECT_EQ(info.max_rx_queues, 1);
	EXPECT_EQ(info.max_tx_queues, 1);
	EXPECT_GE(info.max_mtu, 9000);
	EXPECT_GE(info.max_rx_pktlen, 9000u + RTE_ETHER_HDR_LEN);
	EXPECT_TRUE(info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER);
	EXPECT_TRUE(info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS);
	// Sides A and B of one channel: distinct, locally administered MACs.
	rte_ether_addr a, b;
	ASSERT_EQ(rte_eth_macaddr_get(g_p0, &a), 0);
	ASSERT_EQ(rte_eth_macaddr_get(g_p1, &b), 0);
	EXPECT_FALSE(rte_is_same_ether_addr(&a, &b));
	EXPECT_TRUE(rte_is_local_admin_ether_addr(&a));
	EXPECT_TRUE(rte_is_unicast_ether_addr(&b));
}

TEST(Ethdev, ConfigureRejectsMoreQueuesThanTheChannel)
{
	rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	EXPECT_NE(rte_eth_dev_configure(g_p0, 2, 2, &conf), 0);
}

TEST(Ethdev, RxInterruptsNeedIntrModeAndDoorbell)
{
	rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	conf.intr_conf.rxq = 1;
	// rx_mode=poll (the default) and a plain file (no doorbell).
	EXPECT_EQ(rte_eth_dev_configure(g_p0, 1, 1, &conf), -ENOTSUP);
}

TEST(Ethdev, StartAndLinkUp)
{
	ASSERT_EQ(setup_port(g_p0, g_pool, true, true), 0);
	ASSERT_EQ(setup_port(g_p1, g_small, true, true), 0);
	EXPECT_TRUE(wait_link(g_p0, RTE_ETH_LINK_UP, 10000));
	EXPECT_TRUE(wait_link(g_p1, RTE_ETH_LINK_UP, 10000));
	rte_eth_link l;
	ASSERT_EQ(rte_eth_link_get_nowait(g_p0, &l), 0);
	EXPECT_EQ(l.link_duplex, RTE_ETH_LINK_FULL_DUPLEX);
	EXPECT_EQ(rte_eth_promiscuous_get(g_p0), 1);
	EXPECT_EQ(rte_eth_promiscuous_disable(g_p0), 0);
	EXPECT_EQ(rte_eth_promiscuous_enable(g_p0), 0);
	EXPECT_EQ(rte_eth_allmulticast_enable(g_p0), 0);
	EXPECT_EQ(rte_eth_stats_reset(g_p0), 0);
	EXPECT_EQ(rte_eth_stats_reset(g_p1), 0);
}

TEST(Ethdev, MovesEveryByteBothWays)
{
	const uint32_t n = 20000;
	auto len_of = [](uint32_t i) { return 60u + (i * 37u) % 1455u; };
	uint64_t bytes = 0;
	for (uint32_t i = 0; i < n; i++)
		bytes += len_of(i);
	uint32_t bad = 0;
	// p0 -> p1: p1 receives into 512-byte mbufs, so long packets arrive
	// as chains (scatter on).
	EXPECT_EQ(move_packets(g_p0, g_p1, g_pool, n, len_of, 4096, &bad), n);
	EXPECT_EQ(bad, 0u);
	// p1 -> p0: p1 sends chains of 512-byte mbufs.
	EXPECT_EQ(move_packets(g_p1, g_p0, g_small, n, len_of, 500, &bad), n);
	EXPECT_EQ(bad, 0u);

	rte_eth_stats s0, s1;
	ASSERT_EQ(rte_eth_stats_get(g_p0, &s0), 0);
	ASSERT_EQ(rte_eth_stats_get(g_p1, &s1), 0);
	EXPECT_EQ(s0.opackets, n);
	EXPECT_EQ(s0.ipackets, n);
	EXPECT_EQ(s1.opackets, n);
	EXPECT_EQ(s1.ipackets, n);
	EXPECT_EQ(s0.obytes, bytes);
	EXPECT_EQ(s1.ibytes, bytes);
	EXPECT_EQ(s1.obytes, bytes);
	EXPECT_EQ(s0.ibytes, bytes);
	EXPECT_EQ(s0.q_opackets[0], n);
	EXPECT_EQ(s1.q_ipackets[0], n);
	EXPECT_EQ(s0.ierrors + s1.ierrors + s0.oerrors + s1.oerrors, 0u);
	EXPECT_EQ(s0.imissed + s1.imissed, 0u);
}

TEST(Ethdev, JumboMultiSegment)
{
	ASSERT_EQ(rte_eth_dev_set_mtu(g_p0, 9000), 0);
	ASSERT_EQ(rte_eth_dev_set_mtu(g_p1, 9000), 0);
	EXPECT_NE(rte_eth_dev_set_mtu(g_p0, 9800), 0);
	auto len_of = [](uint32_t i) { return 9000u - (i % 3u) * 1000u; };
	uint32_t bad = 0;
	EXPECT_EQ(move_packets(g_p0, g_p1, g_pool, 500, len_of, 1800, &bad), 500u);
	EXPECT_EQ(bad, 0u);
	EXPECT_EQ(move_packets(g_p1, g_p0, g_small, 500, len_of, 512, &bad), 500u);
	EXPECT_EQ(bad, 0u);
}

TEST(Ethdev, OversizedPacketIsRefusedAndCounted)
{
	rte_eth_stats before, after;
	ASSERT_EQ(rte_eth_stats_get(g_p0, &before), 0);
	rte_mbuf *m = make_pkt(g_pool, 1, 12000, 2000);
	ASSERT_NE(m, nullptr);
	// Consumed (freed by the driver) and counted as an error.
	EXPECT_EQ(rte_eth_tx_burst(g_p0, 0, &m, 1), 1);
	ASSERT_EQ(rte_eth_stats_get(g_p0, &after), 0);
	EXPECT_EQ(after.oerrors, before.oerrors + 1);
	EXPECT_EQ(after.opackets, before.opackets);
}

TEST(Ethdev, XstatsPerQueueAndReset)
{
	auto value = [](const char *name) { return xstat(g_p1, name); };
	EXPECT_GT(value("rx_q0_packets"), 0);   // ethdev's per-queue autofill
	EXPECT_GT(value("rx_q0_segments"), value("rx_q0_packets") - 1);
	EXPECT_GT(value("tx_q0_segments"), 0);
	EXPECT_EQ(value("rx_q0_ring_errors"), 0);
	EXPECT_GE(value("link_ups"), 0);     // channel-wide counters present
	EXPECT_GE(value("peer_deaths"), 0);
	EXPECT_EQ(value("tx_q0_copy_stream"), 0); // auto starts cached
	ASSERT_EQ(rte_eth_xstats_reset(g_p1), 0);
	EXPECT_EQ(value("rx_q0_packets"), 0);
	EXPECT_EQ(value("rx_q0_segments"), 0);
	EXPECT_EQ(value("tx_q0_segments"), 0);
	rte_eth_stats s;
	ASSERT_EQ(rte_eth_stats_get(g_p1, &s), 0);
	EXPECT_EQ(s.ipackets + s.opackets + s.ibytes + s.obytes, 0u);
}

int g_lsc_events;

int lsc_cb(uint16_t, rte_eth_event_type type, void *, void *)
{
	if (type == RTE_ETH_EVENT_INTR_LSC)
		__atomic_fetch_add(&g_lsc_events, 1, __ATOMIC_RELAXED);
	return 0;
}

TEST(Ethdev, LinkFollowsPeerWithLscEvents)
{
	ASSERT_EQ(rte_eth_dev_callback_register(g_p0, RTE_ETH_EVENT_INTR_LSC, lsc_cb,
						nullptr), 0);
	int before = __atomic_load_n(&g_lsc_events, __ATOMIC_RELAXED);
	// The peer goes away: close and unplug port 1.
	ASSERT_EQ(rte_eth_dev_stop(g_p1), 0);
	ASSERT_EQ(rte_eth_dev_close(g_p1), 0);
	ASSERT_EQ(rte_vdev_uninit("net_ivshmem1"), 0);
	EXPECT_TRUE(wait_link(g_p0, RTE_ETH_LINK_DOWN, 10000));
	int64_t end = now_ms() + 5000;
	while (__atomic_load_n(&g_lsc_events, __ATOMIC_RELAXED) == before && now_ms() < end)
		usleep(10000);
	EXPECT_GT(__atomic_load_n(&g_lsc_events, __ATOMIC_RELAXED), before);
	// Nothing moves while the link is down.
	rte_mbuf *m = make_pkt(g_pool, 7, 100, 2000);
	ASSERT_NE(m, nullptr);
	EXPECT_EQ(rte_eth_tx_burst(g_p0, 0, &m, 1), 0);
	rte_pktmbuf_free(m);

	// It comes back.
	before = __atomic_load_n(&g_lsc_events, __ATOMIC_RELAXED);
	std::string args = "net_ivshmem1,shm=" + g_shm;
	ASSERT_EQ(rte_dev_probe(args.c_str()), 0);
	g_p1 = port_by_name("net_ivshmem1");
	ASSERT_LT(g_p1, RTE_MAX_ETHPORTS);
	ASSERT_EQ(setup_port(g_p1, g_pool, true, false), 0);
	EXPECT_TRUE(wait_link(g_p0, RTE_ETH_LINK_UP, 10000));
	EXPECT_TRUE(wait_link(g_p1, RTE_ETH_LINK_UP, 10000));
	end = now_ms() + 5000;
	while (__atomic_load_n(&g_lsc_events, __ATOMIC_RELAXED) == before && now_ms() < end)
		usleep(10000);
	EXPECT_GT(__atomic_load_n(&g_lsc_events, __ATOMIC_RELAXED), before);
	// And carries packets again.
	auto len_of = [](uint32_t i) { return 64u + i % 100u; };
	uint32_t bad = 0;
	EXPECT_EQ(move_packets(g_p0, g_p1, g_pool, 1000, len_of, 4096, &bad), 1000u);
	EXPECT_EQ(bad, 0u);
	rte_eth_dev_callback_unregister(g_p0, RTE_ETH_EVENT_INTR_LSC, lsc_cb, nullptr);
}

// l3fwd-power style: the receiver arms its queue's interrupt, sleeps in
// epoll, and the sender's doorbell wakes it.
TEST(Ethdev, RxInterruptWakesASleepingReceiver)
{
	ASSERT_NE(g_server, -1) << "IVSHM_SERVER not set: the socket ports were not created";
	ASSERT_LT(g_s0, RTE_MAX_ETHPORTS);
	ASSERT_LT(g_s1, RTE_MAX_ETHPORTS);
	for (uint16_t p : {g_s0, g_s1}) {
		rte_eth_conf conf;
		memset(&conf, 0, sizeof(conf));
		conf.intr_conf.rxq = 1;
		ASSERT_EQ(rte_eth_dev_configure(p, 1, 1, &conf), 0);
		ASSERT_EQ(rte_eth_rx_queue_setup(p, 0, 512, rte_socket_id(), nullptr, g_pool), 0);
		ASSERT_EQ(rte_eth_tx_queue_setup(p, 0, 512, rte_socket_id(), nullptr), 0);
		ASSERT_EQ(rte_eth_dev_start(p), 0);
	}
	ASSERT_TRUE(wait_link(g_s0, RTE_ETH_LINK_UP, 10000));
	ASSERT_TRUE(wait_link(g_s1, RTE_ETH_LINK_UP, 10000));
	ASSERT_EQ(rte_eth_dev_rx_intr_ctl_q(g_s1, 0, RTE_EPOLL_PER_THREAD,
					    RTE_INTR_EVENT_ADD, nullptr), 0);
	for (int round = 0; round < 3; round++) {
		// Quiet: arm, and drain any wake-up left from the link coming up.
		ASSERT_EQ(rte_eth_dev_rx_intr_enable(g_s1, 0), 0);
		rte_epoll_event ev[4];
		while (rte_epoll_wait(RTE_EPOLL_PER_THREAD, ev, 4, 0) > 0) {
		}
		// Nothing sent: the sleeper times out.
		EXPECT_EQ(rte_epoll_wait(RTE_EPOLL_PER_THREAD, ev, 4, 100), 0);
		// A sender rings the doorbell: the sleeper wakes.
		rte_mbuf *m[5];
		for (uint32_t i = 0; i < 5; i++)
			m[i] = make_pkt(g_pool, i, 100, 4096);
		ASSERT_EQ(rte_eth_tx_burst(g_s0, 0, m, 5), 5);
		EXPECT_EQ(rte_epoll_wait(RTE_EPOLL_PER_THREAD, ev, 4, 5000), 1);
		ASSERT_EQ(rte_eth_dev_rx_intr_disable(g_s1, 0), 0);
		uint32_t got = 0;
		int64_t end = now_ms() + 5000;
		while (got < 5 && now_ms() < end) {
			rte_mbuf *in[8];
			uint16_t r = rte_eth_rx_burst(g_s1, 0, in, 8);
			for (uint16_t i = 0; i < r; i++) {
				EXPECT_EQ(check_pkt(in[i], 100), (long)got);
				got++;
			}
			rte_pktmbuf_free_bulk(in, r);
		}
		EXPECT_EQ(got, 5u);
	}
	rte_eth_xstat_name names[64];
	rte_eth_xstat xs[64];
	int n = rte_eth_xstats_get_names(g_s0, names, 64);
	ASSERT_GT(n, 0);
	ASSERT_EQ(rte_eth_xstats_get(g_s0, xs, 64), n);
	bool found = false;
	for (int i = 0; i < n; i++) {
		if (strcmp(names[i].name, "tx_q0_doorbells") == 0) {
			EXPECT_GE(xs[i].value, 3u);
			found = true;
		}
	}
	EXPECT_TRUE(found);
}

// Two queue pairs on channel 5 of another region: queue q of one side
// delivers to queue q of the other, and only there.
TEST(Ethdev, TwoQueuePairsKeepTheirPackets)
{
	const std::string shm = g_shm + "-mq";
	std::string a = "net_ivshmem30,shm=" + shm + ",size=32M,id=5,queues=2";
	std::string b = "net_ivshmem31,shm=" + shm + ",id=5,queues=2";
	ASSERT_EQ(rte_dev_probe(a.c_str()), 0);
	ASSERT_EQ(rte_dev_probe(b.c_str()), 0);
	uint16_t pa = port_by_name("net_ivshmem30"), pb = port_by_name("net_ivshmem31");
	ASSERT_LT(pa, RTE_MAX_ETHPORTS);
	ASSERT_LT(pb, RTE_MAX_ETHPORTS);
	for (uint16_t p : {pa, pb}) {
		rte_eth_conf conf;
		memset(&conf, 0, sizeof(conf));
		ASSERT_EQ(rte_eth_dev_configure(p, 2, 2, &conf), 0);
		for (uint16_t q = 0; q < 2; q++) {
			ASSERT_EQ(rte_eth_rx_queue_setup(p, q, 512, rte_socket_id(), nullptr, g_pool), 0);
			ASSERT_EQ(rte_eth_tx_queue_setup(p, q, 512, rte_socket_id(), nullptr), 0);
		}
		ASSERT_EQ(rte_eth_dev_start(p), 0);
	}
	ASSERT_TRUE(wait_link(pa, RTE_ETH_LINK_UP, 10000));
	ASSERT_TRUE(wait_link(pb, RTE_ETH_LINK_UP, 10000));
	// 100 packets of 200 bytes on queue 0, 100 of 300 bytes on queue 1.
	for (uint16_t q = 0; q < 2; q++) {
		rte_mbuf *m[100];
		for (uint32_t i = 0; i < 100; i++)
			m[i] = make_pkt(g_pool, i, 200 + 100 * q, 4096);
		uint16_t sent = 0;
		int64_t end = now_ms() + 5000;
		while (sent < 100 && now_ms() < end)
			sent += rte_eth_tx_burst(pa, q, m + sent, (uint16_t)(100 - sent));
		ASSERT_EQ(sent, 100u);
	}
	for (uint16_t q = 0; q < 2; q++) {
		uint32_t got = 0;
		int64_t end = now_ms() + 5000;
		while (got < 100 && now_ms() < end) {
			rte_mbuf *in[32];
			uint16_t r = rte_eth_rx_burst(pb, q, in, 32);
			for (uint16_t i = 0; i < r; i++) {
				EXPECT_EQ(check_pkt(in[i], 200 + 100 * q), (long)got);
				got++;
			}
			rte_pktmbuf_free_bulk(in, r);
		}
		EXPECT_EQ(got, 100u) << "queue " << q;
	}
	rte_eth_stats st;
	ASSERT_EQ(rte_eth_stats_get(pb, &st), 0);
	EXPECT_EQ(st.q_ipackets[0], 100u);
	EXPECT_EQ(st.q_ipackets[1], 100u);
	EXPECT_EQ(st.ibytes, 100u * 200 + 100u * 300);
	EXPECT_EQ(rte_eth_dev_stop(pa), 0);
	EXPECT_EQ(rte_eth_dev_close(pa), 0);
	EXPECT_EQ(rte_vdev_uninit("net_ivshmem30"), 0);
	// Unplugging a port that is still started stops and closes it.
	uint16_t before = rte_eth_dev_count_avail();
	EXPECT_EQ(rte_vdev_uninit("net_ivshmem31"), 0);
	EXPECT_EQ(rte_eth_dev_count_avail(), before - 1);
	EXPECT_EQ(port_by_name("net_ivshmem31"), RTE_MAX_ETHPORTS);
	unlink(shm.c_str());
}

// zero_copy=1 on the receiving port: packets from copybreak (256) on arrive
// in mbufs whose external buffer is the sender's slot in the region;
// shorter ones are copied. Held mbufs hold their slots: the sender stalls
// once the ring is full, and slots go back in ring order as mbufs are
// freed in any order. A port closed while mbufs are held keeps the region
// mapped and its channel open until they are freed.
TEST(Ethdev, ZeroCopyLendsBuffersUntilMbufsAreFreed)
{
	const std::string shm = g_shm2 + "-zc";
	const std::string va = "net_ivshmem40,shm=" + shm + ",size=8M,ring_size=64,id=5";
	const std::string vb = "net_ivshmem41,shm=" + shm + ",ring_size=64,id=5,zero_copy=1";
	ASSERT_EQ(rte_dev_probe(va.c_str()), 0);
	ASSERT_EQ(rte_dev_probe(vb.c_str()), 0);
	uint16_t pa = port_by_name("net_ivshmem40"), pb = port_by_name("net_ivshmem41");
	ASSERT_LT(pa, RTE_MAX_ETHPORTS);
	ASSERT_LT(pb, RTE_MAX_ETHPORTS);
	ASSERT_EQ(setup_port(pa, g_pool, true, false, 64), 0);
	// 512-byte mbufs and no scatter: packets up to 255 bytes are copied
	// into them, longer ones must arrive whole all the same (lent).
	ASSERT_EQ(setup_port(pb, g_small, false, false, 64), 0);
	ASSERT_TRUE(wait_link(pa, RTE_ETH_LINK_UP, 10000));
	ASSERT_TRUE(wait_link(pb, RTE_ETH_LINK_UP, 10000));

	// Mixed lengths, every byte checked; long ones must be lent.
	auto len_of = [](uint32_t i) { return i % 3 == 0 ? 60u + i % 190u : 256u + (i * 37u) % 1259u; };
	uint32_t bad = 0, lent = 0, copied = 0;
	const uint32_t n = 20000, sent = n;
	uint32_t got = move_packets(pa, pb, g_pool, n, len_of, 4096, &bad,
				    [&](rte_mbuf *m, uint32_t i) {
		bool ext = RTE_MBUF_HAS_EXTBUF(m);
		(ext ? lent : copied)++;
		return ext == (len_of(i) >= 256) && m->nb_segs == 1;
	});
	EXPECT_EQ(got, n);
	EXPECT_EQ(bad, 0u);
	EXPECT_GT(lent, 0u);
	EXPECT_GT(copied, 0u);

	// Hold a ring's worth of lent mbufs: the sender stalls.
	std::vector<rte_mbuf *> held;
	uint32_t seq = sent;
	int64_t end = now_ms() + 10000;
	while (held.size() < 64 && now_ms() < end) {
		rte_mbuf *m = make_pkt(g_pool, seq, 1000, 4096);
		ASSERT_NE(m, nullptr);
		if (rte_eth_tx_burst(pa, 0, &m, 1) == 1)
			seq++;
		else
			rte_pktmbuf_free(m);
		rte_mbuf *in[32];
		uint16_t r = rte_eth_rx_burst(pb, 0, in, 32);
		held.insert(held.end(), in, in + r);
	}
	ASSERT_EQ(held.size(), 64u);
	rte_mbuf *extra = make_pkt(g_pool, seq, 1000, 4096);
	ASSERT_NE(extra, nullptr);
	for (int i = 0; i < 20; i++) {
		rte_mbuf *in[4];
		EXPECT_EQ(rte_eth_rx_burst(pb, 0, in, 4), 0);
		EXPECT_EQ(rte_eth_tx_burst(pa, 0, &extra, 1), 0) << "sender not stalled";
	}
	for (size_t i = 0; i < held.size(); i++)
		EXPECT_EQ(check_pkt(held[i], 1000), (long)(sent + i));
	// Freed last to first: nothing moves until the oldest is freed.
	for (size_t i = held.size() - 1; i >= 1; i--)
		rte_pktmbuf_free(held[i]);
	rte_mbuf *in[4];
	EXPECT_EQ(rte_eth_rx_burst(pb, 0, in, 4), 0);
	EXPECT_EQ(rte_eth_tx_burst(pa, 0, &extra, 1), 0);
	rte_pktmbuf_free(held[0]);
	EXPECT_EQ(rte_eth_rx_burst(pb, 0, in, 4), 0); // hands the slots back
	// (the sender skips a few calls after finding its ring full)
	uint16_t w = 0;
	for (int i = 0; i < 10 && w == 0; i++)
		w = rte_eth_tx_burst(pa, 0, &extra, 1);
	ASSERT_EQ(w, 1);
	uint16_t r = 0;
	for (int i = 0; i < 1000 && r == 0; i++)
		r = rte_eth_rx_burst(pb, 0, in, 4);
	ASSERT_EQ(r, 1);
	EXPECT_EQ(check_pkt(in[0], 1000), (long)seq);

	// Close the receiving port while it still lends a buffer: the
	// channel stays open (the peer's link stays up) until that mbuf is
	// freed, then it closes and the peer's link goes down.
	EXPECT_EQ(rte_eth_dev_stop(pb), 0);
	EXPECT_EQ(rte_eth_dev_close(pb), 0);
	EXPECT_EQ(check_pkt(in[0], 1000), (long)seq);
	usleep(100000);
	rte_eth_link l;
	ASSERT_EQ(rte_eth_link_get_nowait(pa, &l), 0);
	EXPECT_EQ(l.link_status, RTE_ETH_LINK_UP);
	rte_pktmbuf_free(in[0]);
	EXPECT_TRUE(wait_link(pa, RTE_ETH_LINK_DOWN, 10000));
	EXPECT_EQ(rte_eth_dev_stop(pa), 0);
	EXPECT_EQ(rte_eth_dev_close(pa), 0);
	EXPECT_EQ(rte_vdev_uninit("net_ivshmem40"), 0);
	EXPECT_EQ(rte_vdev_uninit("net_ivshmem41"), 0);
	unlink(shm.c_str());
}

// tx_copy=stream (non-temporal stores, whole lines, ivshm/copy.h) and
// tx_copy=auto long enough to probe the other way: every length from 4 to
// past one buffer (chains are copied with cached stores in either mode),
// every byte checked, both ways.
TEST(Ethdev, StreamingAndTunedTransmitCopiesMoveEveryByte)
{
	struct Case {
		const char *arg;
		uint32_t n;
		int stream; // tx_q0_copy_stream expected after the run, -1: either
	} cases[] = {{"stream", 12000, 1}, {"cached", 4000, 0}, {"auto", 60000, -1}};
	int id = 6;
	for (const Case &c : cases) {
		const std::string shm = g_shm2 + "-copy-" + c.arg;
		const std::string common = ",ring_size=256,id=" + std::to_string(id++) +
					   ",tx_copy=" + c.arg;
		const std::string va = "net_ivshmem42,shm=" + shm + ",size=8M" + common;
		const std::string vb = "net_ivshmem43,shm=" + shm + common;
		ASSERT_EQ(rte_dev_probe(va.c_str()), 0) << c.arg;
		ASSERT_EQ(rte_dev_probe(vb.c_str()), 0) << c.arg;
		uint16_t pa = port_by_name("net_ivshmem42"), pb = port_by_name("net_ivshmem43");
		ASSERT_LT(pa, RTE_MAX_ETHPORTS);
		ASSERT_LT(pb, RTE_MAX_ETHPORTS);
		ASSERT_EQ(setup_port(pa, g_pool, true, false, 256), 0);
		ASSERT_EQ(setup_port(pb, g_small, true, false, 256), 0);
		ASSERT_TRUE(wait_link(pa, RTE_ETH_LINK_UP, 10000));
		ASSERT_TRUE(wait_link(pb, RTE_ETH_LINK_UP, 10000));

		auto len_of = [](uint32_t i) { return 4u + (i * 53u) % 2600u; };
		uint32_t bad = 0;
		EXPECT_EQ(move_packets(pa, pb, g_pool, c.n, len_of, 2048, &bad), c.n) << c.arg;
		EXPECT_EQ(bad, 0u) << c.arg;
		EXPECT_EQ(move_packets(pb, pa, g_small, c.n / 4, len_of, 500, &bad), c.n / 4)
			<< c.arg;
		EXPECT_EQ(bad, 0u) << c.arg;
		if (c.stream >= 0) {
			EXPECT_EQ(xstat(pa, "tx_q0_copy_stream"), c.stream) << c.arg;
			EXPECT_EQ(xstat(pa, "tx_q0_copy_probes"), 0) << c.arg;
		} else {
			// Bursts of up to 32 packets: at least one whole run of
			// IVSHM_COPY_RUN_MIN bursts and its probe went by.
			EXPECT_GE(xstat(pa, "tx_q0_copy_probes"), 1) << c.arg;
			long long st = xstat(pa, "tx_q0_copy_stream");
			EXPECT_TRUE(st == 0 || st == 1) << st;
		}
		rte_eth_stats sa, sb;
		ASSERT_EQ(rte_eth_stats_get(pa, &sa), 0);
		ASSERT_EQ(rte_eth_stats_get(pb, &sb), 0);
		EXPECT_EQ(sa.opackets, c.n);
		EXPECT_EQ(sb.ipackets, c.n);
		EXPECT_EQ(sa.obytes, sb.ibytes);
		EXPECT_EQ(sa.oerrors + sb.ierrors + sb.imissed, 0u);
		EXPECT_EQ(rte_eth_dev_stop(pa), 0);
		EXPECT_EQ(rte_eth_dev_stop(pb), 0);
		EXPECT_EQ(rte_eth_dev_close(pa), 0);
		EXPECT_EQ(rte_eth_dev_close(pb), 0);
		EXPECT_EQ(rte_vdev_uninit("net_ivshmem42"), 0);
		EXPECT_EQ(rte_vdev_uninit("net_ivshmem43"), 0);
		unlink(shm.c_str());
	}
}

TEST(Ethdev, BadDevargsFailTheProbe)
{
	uint16_t before = rte_eth_dev_count_avail();
	const std::string shm = "shm=" + g_shm2 + ",size=8M";
	const char *bad[] = {",queues=99", ",bogus=1", ",ring_size=100",
			     ",rx_mode=sometimes", ",mac=01:00:00:00:00:01",
			     ",zero_copy=yes", ",copybreak=-1",
			     ",zero_copy=1,buf_size=65536", ",tx_copy=fast",
			     ",tx_copy="};
	int i = 0;
	for (const char *b : bad) {
		std::string a = "net_ivshmem" + std::to_string(10 + i++) + "," + shm + b;
		EXPECT_NE(rte_dev_probe(a.c_str()), 0) << a;
	}
	EXPECT_NE(rte_dev_probe("net_ivshmem20"), 0);
	EXPECT_EQ(rte_eth_dev_count_avail(), before);
	// A good one on the same file still works afterwards.
	std::string good = "net_ivshmem21," + shm;
	EXPECT_EQ(rte_dev_probe(good.c_str()), 0);
	EXPECT_EQ(rte_eth_dev_count_avail(), before + 1);
	uint16_t p = port_by_name("net_ivshmem21");
	ASSERT_LT(p, RTE_MAX_ETHPORTS);
	EXPECT_EQ(rte_eth_dev_close(p), 0);
	EXPECT_EQ(rte_vdev_uninit("net_ivshmem21"), 0);
}

} // namespace

int main(int argc, char **argv)
{
	::testing::InitGoogleTest(&argc, argv);
	std::random_device rd;
	char tag[64];
	snprintf(tag, sizeof(tag), "%d_%08x", (int)getpid(), (unsigned)rd());
	g_shm = std::string("/dev/shm/ivshm-ethdev-") + tag;
	g_shm2 = g_shm + "-2";
	std::string prefix = std::string("ethdev") + tag;
	std::string v0 = "net_ivshmem0,shm=" + g_shm + ",size=16M";
	std::string v1 = "net_ivshmem1,shm=" + g_shm;
	std::vector<std::string> args = {"pmd_ethdev_test", "--no-huge", "-m", "512",
		"--no-pci", "--file-prefix", prefix, "--vdev", v0, "--vdev", v1,
		"--log-level", "pmd.net.ivshmem:info", "--no-telemetry"};
	if (const char *srv = getenv("IVSHM_SERVER")) {
		const char *home = getenv("HOME");
		std::string base = std::string(home ? home : "/root") + "/.cache";
		mkdir(base.c_str(), 0700);
		std::string tmpl = base + "/ivshm-ethdev-XXXXXX";
		std::vector<char> b(tmpl.begin(), tmpl.end());
		b.push_back('\0');
		if (mkdtemp(b.data()) != nullptr) {
			g_rundir = b.data();
			std::string sock = g_rundir + "/srv.sock";
			g_server = fork();
			if (g_server == 0) {
				prctl(PR_SET_PDEATHSIG, SIGKILL);
				execl(srv, srv, "-F", "-q", "-S", sock.c_str(), "-l", "16M", "-n",
				      "2", (char *)nullptr);
				_exit(127);
			}
			for (int i = 0; i < 500 && access(sock.c_str(), F_OK) != 0; i++)
				usleep(10000);
			args.push_back("--vdev");
			args.push_back("net_ivshmem2,socket=" + sock + ",rx_mode=intr");
			args.push_back("--vdev");
			args.push_back("net_ivshmem3,socket=" + sock + ",rx_mode=intr");
		}
	}
	std::vector<char *> av;
	for (auto &a : args)
		av.push_back(&a[0]);
	if (rte_eal_init((int)av.size(), av.data()) < 0) {
		fprintf(stderr, "rte_eal_init failed\n");
		unlink(g_shm.c_str());
		return 1;
	}
	g_pool = rte_pktmbuf_pool_create("ivshm_big", 8192, 256, 0,
					 RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
	g_small = rte_pktmbuf_pool_create("ivshm_small", 16384, 256, 0,
					  512 + RTE_PKTMBUF_HEADROOM, (int)rte_socket_id());
	g_p0 = port_by_name("net_ivshmem0");
	g_p1 = port_by_name("net_ivshmem1");
	g_s0 = port_by_name("net_ivshmem2");
	g_s1 = port_by_name("net_ivshmem3");
	int ret = 1;
	if (g_pool != nullptr && g_small != nullptr)
		ret = RUN_ALL_TESTS();
	else
		fprintf(stderr, "mempool creation failed\n");
	uint16_t p;
	RTE_ETH_FOREACH_DEV(p) {
		rte_eth_dev_stop(p);
		rte_eth_dev_close(p);
	}
	rte_eal_cleanup();
	if (g_server > 0) {
		kill(g_server, SIGTERM);
		waitpid(g_server, nullptr, 0);
	}
	if (!g_rundir.empty()) {
		unlink((g_rundir + "/srv.sock").c_str());
		rmdir(g_rundir.c_str());
	}
	unlink(g_shm.c_str());
	unlink(g_shm2.c_str());
	return ret;
}
