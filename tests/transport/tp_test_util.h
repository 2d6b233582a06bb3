// SPDX-License-Identifier: BSD-3-Clause
// Description: helpers shared by the transport tests: unique shm names,
// self-describing packets (sequence number, length, checksum over a
// payload derived from the sequence number), a housekeeping thread, and
// child processes with deadlines.
#ifndef IVSHM_TP_TEST_UTIL_H
#define IVSHM_TP_TEST_UTIL_H

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <random>
#include <string>
#include <thread>

#include "ivshm/ivshmem.h"
#include "ivshm/transport.h"
#include "../common/mix.h"

namespace tp {

inline std::string unique_shm(const char *tag)
{
	std::random_device rd;
	return std::string("/dev/shm/ivshm-tp-") + tag + "-" +
	       std::to_string(getpid()) + "-" + std::to_string(rd());
}

inline uint64_t now_ms()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

using iv::mix;

// Length of packet @seq in stream @salt: 1..max, biased to cover small,
// MTU-sized and jumbo packets.
inline uint32_t pkt_len(uint64_t salt, uint64_t seq, uint32_t max)
{
	uint64_t r = mix(seq * 7919u + salt);
	switch (r & 3u) {
	case 0:
		return 1u + (uint32_t)((r >> 8) % 64u);
	case 1:
		return 1u + (uint32_t)((r >> 8) % 1514u);
	default:
		return 1u + (uint32_t)((r >> 8) % max);
	}
}

// Packet layout: [seq u64][len u32][csum u32][payload...]; the payload is
// 64-bit words derived from (seq, word index), the checksum folds them. A
// packet shorter than 16 bytes carries the first bytes of that header only.
inline uint64_t pay_word(uint64_t seq, uint32_t k)
{
	return mix(seq * UINT64_C(0x9e3779b97f4a7c15) + k);
}

inline uint32_t fill_pkt(uint8_t *p, uint64_t seq, uint32_t len)
{
	uint8_t hdr[16];
	uint64_t sum = 0;
	uint32_t k = 0;

	for (uint32_t i = 16; i < len; i += 8, k++) {
		uint64_t w = pay_word(seq, k);
		uint32_t c = len - i < 8 ? len - i : 8;
		memcpy(p + i, &w, c);
		if (c < 8)
			w &= (UINT64_C(1) << (c * 8)) - 1;
		sum += w;
	}
	uint32_t csum = (uint32_t)(sum ^ (sum >> 32));
	memcpy(hdr, &seq, 8);
	memcpy(hdr + 8, &len, 4);
	memcpy(hdr + 12, &csum, 4);
	memcpy(p, hdr, len < 16 ? len : 16);
	return len;
}

// Returns true if @p (len bytes) is exactly packet @seq of length len.
inline bool check_pkt(const uint8_t *p, uint32_t len, uint64_t seq)
{
	uint8_t want[16];
	uint64_t sum = 0;
	uint32_t k = 0;

	for (uint32_t i = 16; i < len; i += 8, k++) {
		uint64_t w = pay_word(seq, k), got = 0;
		uint32_t c = len - i < 8 ? len - i : 8;
		memcpy(&got, p + i, c);
		if (c < 8)
			w &= (UINT64_C(1) << (c * 8)) - 1;
		if (got != w)
			return false;
		sum += w;
	}
	uint32_t csum = (uint32_t)(sum ^ (sum >> 32));
	memcpy(want, &seq, 8);
	memcpy(want + 8, &len, 4);
	memcpy(want + 12, &csum, 4);
	return memcmp(p, want, len < 16 ? len : 16) == 0;
}

// Sequence number of a received packet of length >= 8.
inline uint64_t pkt_seq(const uint8_t *p)
{
	uint64_t s;
	memcpy(&s, p, 8);
	return s;
}

// Runs housekeeping on a channel every few ms until stopped.
class Housekeeper {
public:
	explicit Housekeeper(ivshm_channel *ch) : ch_(ch)
	{
		th_ = std::thread([this] {
			while (!stop_.load(std::memory_order_relaxed)) {
				ivshm_transport_housekeeping(ch_);
				std::this_thread::sleep_for(
					std::chrono::milliseconds(2));
			}
		});
	}
	~Housekeeper() { stop(); }
	void stop()
	{
		stop_.store(true);
		if (th_.joinable())
			th_.join();
	}

private:
	ivshm_channel *ch_;
	std::atomic<bool> stop_{false};
	std::thread th_;
};

// Housekeeping on @a and @b (same thread) until both links are up or the
// deadline passes.
inline bool wait_link(ivshm_channel *a, ivshm_channel *b, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	while (now_ms() < end) {
		int la = ivshm_transport_housekeeping(a);
		int lb = b ? ivshm_transport_housekeeping(b) : 1;
		if (la == 1 && lb == 1)
			return true;
		usleep(1000);
	}
	return false;
}

// A child process running @fn; its exit code is fn's return value.
inline pid_t spawn(const std::function<int()> &fn)
{
	pid_t pid = fork();
	if (pid == 0) {
		int rc = 99;
		try {
			rc = fn();
		} catch (...) {
		}
		_exit(rc);
	}
	return pid;
}

// Wait for @pid up to @ms; kill it (SIGKILL) past the deadline.
// Returns the exit status (0..255), 128+signal, or -1 on timeout.
inline int reap(pid_t pid, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	int st = 0;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (r < 0)
			return -2;
		if (now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		usleep(2000);
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -3;
}

} // namespace tp

#endif
