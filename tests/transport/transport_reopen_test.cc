// SPDX-License-Identifier: BSD-3-Clause
// Description: a channel over "socket:" (the project's server on a thread)
// closed by both ends and at once re-opened by two new ends, 20 times in a
// row. Each round both ends connect a new client (new peer ids), open
// channel 0 concurrently, and the link must come up and one packet must
// pass each way, byte for byte. Regression test for a newcomer's side being
// judged by the previous holder's pid/peer id (still in the side block
// until the newcomer published its own), which let the other opener take
// the same side over: the link never came up and the side stayed claimed.
// No timing is measured: only a generous deadline bounds each wait.
#include <gtest/gtest.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>

#include "ivshm/ivshmem.h"
#include "ivshm/server.h"
#include "ivshm/transport.h"

namespace {

constexpr int kRounds = 20;
constexpr uint64_t kDeadlineMs = 20000; // per wait, far beyond normal

uint64_t now_ms()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void fill(uint8_t *p, uint32_t len, uint32_t round, uint32_t from)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7u + round * 13u + from * 101u);
}

// One end of one round: returns 0, or a negative step code / -errno.
int run_end(const std::string &desc, uint32_t round, uint32_t who,
	    int *side_out, std::atomic<int> *received)
{
	ivshm_endpoint_params ep{};
	ivshm_transport_params p{};
	ivshm_endpoint *e = nullptr;
	ivshm_channel *ch = nullptr;
	uint64_t deadline = now_ms() + kDeadlineMs;
	uint8_t out[300], in[2048];
	int ret;

	ret = ivshm_endpoint_open(desc.c_str(), &ep, &e);
	if (ret)
		return ret;
	p.ring_size = 64;
	p.buf_size = 1024;
	p.peer_timeout_ms = 2000;
	do {
		ret = ivshm_transport_open(e, 0, &p, &ch);
		if (ret == -EBUSY)
			usleep(1000);
	} while (ret == -EBUSY && now_ms() < deadline);
	if (ret) {
		ivshm_endpoint_close(e);
		return ret;
	}
	*side_out = (int)ivshm_transport_side(ch);
	while (ivshm_transport_housekeeping(ch) != 1 && now_ms() < deadline)
		usleep(1000);
	if (!ivshm_transport_link(ch)) {
		ret = -1000; // link never came up
		goto out;
	}
	fill(out, sizeof(out), round, who);
	{
		ivshm_transport_pkt tx{};
		tx.data = out;
		tx.len = sizeof(out);
		while (ivshm_transport_tx_burst(ch, 0, &tx, 1) != 1) {
			if (now_ms() >= deadline) {
				ret = -1001;
				goto out;
			}
			ivshm_transport_housekeeping(ch);
			usleep(100);
		}
	}
	for (;;) {
		ivshm_transport_pkt rx{};
		rx.data = in;
		rx.len = sizeof(in);
		if (ivshm_transport_rx_burst(ch, 0, &rx, 1) == 1) {
			uint8_t want[sizeof(out)];
			fill(want, sizeof(want), round, who ^ 1u);
			if (rx.len != sizeof(want) ||
			    memcmp(in, want, sizeof(want)) != 0)
				ret = -1002; // wrong bytes
			break;
		}
		if (now_ms() >= deadline) {
			ret = -1003;
			break;
		}
		ivshm_transport_housekeeping(ch);
		usleep(100);
	}
	// Both ends must have received before either closes (a close drops
	// the link, and the peer's receive with it).
	received->fetch_add(1);
	while (ret == 0 && received->load() < 2) {
		if (now_ms() >= deadline) {
			ret = -1004;
			break;
		}
		ivshm_transport_housekeeping(ch);
		usleep(100);
	}
out:
	ivshm_transport_close(ch);
	ivshm_endpoint_close(e);
	return ret;
}

class Reopen : public ::testing::Test {
protected:
	void SetUp() override
	{
		std::random_device rd;
		path_ = "/tmp/ivshm-tp-reopen-" + std::to_string(getpid()) + "-" +
			std::to_string(rd());
		ivshm_server_params sp{};
		sp.socket_path = path_.c_str();
		sp.size = 4u << 20;
		sp.vectors = 1;
		ASSERT_EQ(ivshm_server_create(&sp, &srv_), 0);
		thr_ = std::thread([this] { ivshm_server_run(srv_); });
		desc_ = "socket:" + path_;
	}
	void TearDown() override
	{
		if (srv_) {
			ivshm_server_stop(srv_);
			thr_.join();
			ivshm_server_destroy(srv_);
		}
	}
	std::string path_, desc_;
	ivshm_server *srv_ = nullptr;
	std::thread thr_;
};

TEST_F(Reopen, LinkComesUpEveryTimeAfterBothEndsReopen)
{
	for (int r = 0; r < kRounds; r++) {
		SCOPED_TRACE(r);
		int ra = -1, rb = -1, sa = -1, sb = -1;
		std::atomic<int> received{0};
		std::thread ta([&] {
			ra = run_end(desc_, (uint32_t)r, 0, &sa, &received);
		});
		std::thread tb([&] {
			rb = run_end(desc_, (uint32_t)r, 1, &sb, &received);
		});
		ta.join();
		tb.join();
		ASSERT_EQ(ra, 0);
		ASSERT_EQ(rb, 0);
		// The two ends hold the two different sides.
		EXPECT_NE(sa, sb);
	}
}

} // namespace
