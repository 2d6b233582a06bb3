/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ring_stress_test.cc - Description: a producer and a consumer move many
 * 16-byte elements (sequence number + checksum) through one ring, in two
 * processes (fork) over a MAP_SHARED memfd mapped at different addresses,
 * and in two threads (so ThreadSanitizer sees every access). Bursts vary
 * and both the copying and the zero-copy calls are used; the indices start
 * just below 2^32 so the index wrap happens early. The consumer checks
 * every element: none lost, duplicated, reordered or torn.
 *
 * Counts: IVSHM_RING_STRESS_COUNT (processes; default 100 million, 10
 * million under sanitizers or without optimisation) and
 * IVSHM_RING_STRESS_THREAD_COUNT (threads; default 2 million, 1 million
 * under sanitizers).
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "ivshm/ring.h"
#include "ring_test_util.h"

using namespace ringtest;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RING_TEST_SLOW 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define RING_TEST_SLOW 1
#endif
#endif
#if !defined(RING_TEST_SLOW) && !defined(__OPTIMIZE__)
#define RING_TEST_SLOW 1
#endif
#ifdef RING_TEST_SLOW
static const uint64_t kProcDefault = 10000000;
static const uint64_t kThreadDefault = 1000000;
#else
static const uint64_t kProcDefault = 100000000;
static const uint64_t kThreadDefault = 2000000;
#endif

namespace {

const uint32_t kCap = 1024;
const uint32_t kEsz = 16;
const uint32_t kStart = 0xffffffffu - 5000; /* index wrap after 5000 */
const double kDeadline = 240.0;             /* seconds, below the meson timeout */

/* Back off while the peer has nothing for us: the two vCPUs are shared,
 * so a spinning side must let a descheduled peer run. */
void backoff(uint32_t *idle)
{
	if (++*idle < 64) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
	} else {
		sched_yield();
	}
}

/* Returns "" on success or a description of the first error. */
std::string produce(struct ivshm_ring *r, uint64_t total, uint32_t seed)
{
	uint64_t seq = 0;
	uint32_t idle = 0;
	uint8_t buf[64 * kEsz];
	double end = now_s() + kDeadline;
	while (seq < total) {
		uint32_t n = 1 + xorshift(&seed) % 64;
		if (n > total - seq)
			n = (uint32_t)(total - seq);
		int got;
		if (xorshift(&seed) % 4 == 0) {
			uint32_t st;
			got = ivshm_ring_reserve(r, n, &st);
			if (got < 0)
				return "reserve: " + std::to_string(got);
			for (int i = 0; i < got; i++)
				stamp(ivshm_ring_slot(r, st + i), kEsz, seq + i);
			int c = ivshm_ring_commit(r, (uint32_t)got);
			if (c != 0)
				return "commit: " + std::to_string(c);
		} else {
			for (uint32_t i = 0; i < n; i++)
				stamp(buf + i * kEsz, kEsz, seq + i);
			got = ivshm_ring_enqueue_burst(r, buf, n);
			if (got < 0 || (uint32_t)got > n)
				return "enqueue: " + std::to_string(got);
		}
		seq += (uint32_t)got;
		if (got == 0) {
			backoff(&idle);
			if ((idle & 0xfff) == 0 && now_s() > end)
				return "producer deadline at seq " + std::to_string(seq);
		} else {
			idle = 0;
		}
	}
	return "";
}

std::string consume(struct ivshm_ring *r, uint64_t total, uint32_t seed)
{
	uint64_t seq = 0;
	uint32_t idle = 0;
	uint8_t buf[64 * kEsz];
	double end = now_s() + kDeadline;
	char msg[160];
	while (seq < total) {
		uint32_t n = 1 + xorshift(&seed) % 64;
		int got;
		if (xorshift(&seed) % 4 == 0) {
			uint32_t st;
			got = ivshm_ring_peek(r, n, &st);
			if (got < 0)
				return "peek: " + std::to_string(got);
			for (int i = 0; i < got; i++) {
				const void *e = ivshm_ring_slot(r, st + i);
				if (!stamp_ok(e, kEsz, seq + i)) {
					snprintf(msg, sizeof(msg),
						 "peek: expected seq %llu, slot holds %llu",
						 (unsigned long long)(seq + i),
						 (unsigned long long)*(const uint64_t *)e);
					return msg;
				}
			}
			int c = ivshm_ring_release(r, (uint32_t)got);
			if (c != 0)
				return "release: " + std::to_string(c);
		} else {
			got = ivshm_ring_dequeue_burst(r, buf, n);
			if (got < 0 || (uint32_t)got > n)
				return "dequeue: " + std::to_string(got);
			for (int i = 0; i < got; i++) {
				if (!stamp_ok(buf + i * kEsz, kEsz, seq + i)) {
					snprintf(msg, sizeof(msg),
						 "dequeue: expected seq %llu, got %llu",
						 (unsigned long long)(seq + i),
						 (unsigned long long)*(uint64_t *)(buf + i * kEsz));
					return msg;
				}
			}
		}
		seq += (uint32_t)got;
		if (got == 0) {
			backoff(&idle);
			if ((idle & 0xfff) == 0 && now_s() > end)
				return "consumer deadline at seq " + std::to_string(seq);
		} else {
			idle = 0;
		}
	}
	/* Nothing more than what was sent. */
	int left = ivshm_ring_count(r);
	if (left != 0)
		return "ring not empty at the end: " + std::to_string(left);
	return "";
}

} // namespace

TEST(RingStress, TwoProcessesSharedMemfd)
{
	uint64_t total = env_u64("IVSHM_RING_STRESS_COUNT", kProcDefault);
	size_t need = ivshm_ring_memsize(kCap, kEsz);
	size_t len = (need + 4095) & ~(size_t)4095;
	char name[64];
	snprintf(name, sizeof(name), "ivshm-ring-stress-%d", (int)getpid());
	int fd = memfd_create(name, MFD_CLOEXEC);
	ASSERT_GE(fd, 0) << strerror(errno);
	ASSERT_EQ(ftruncate(fd, (off_t)len), 0);
	void *a = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(a, MAP_FAILED);
	ASSERT_EQ(ivshm_ring_format(a, len, kCap, kEsz), 0);
	poke(a, kOffProd, kStart);
	poke(a, kOffCons, kStart);

	pid_t pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* A second mapping: the producer sees the ring elsewhere. */
		void *b = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED,
			       fd, 0);
		if (b == MAP_FAILED || b == a)
			_exit(2);
		munmap(a, len);
		struct ivshm_ring p;
		if (ivshm_ring_attach(&p, b, len, kCap, kEsz,
				      IVSHM_RING_PRODUCER) != 0)
			_exit(3);
		std::string err = produce(&p, total, 12345);
		if (!err.empty()) {
			fprintf(stderr, "producer: %s\n", err.c_str());
			_exit(4);
		}
		_exit(0);
	}
	struct ivshm_ring c;
	ASSERT_EQ(ivshm_ring_attach(&c, a, len, kCap, kEsz, IVSHM_RING_CONSUMER), 0);
	double t0 = now_s();
	std::string err = consume(&c, total, 777);
	double t = now_s() - t0;
	if (!err.empty())
		kill(pid, SIGKILL);
	int status = 0;
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	EXPECT_EQ(err, "");
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		<< "producer status " << status;
	EXPECT_EQ(peek_word(a, kOffProd), kStart + (uint32_t)total);
	EXPECT_EQ(peek_word(a, kOffCons), kStart + (uint32_t)total);
	printf("moved %llu elements between two processes in %.2f s\n",
	       (unsigned long long)total, t);
	munmap(a, len);
	close(fd);
}

TEST(RingStress, TwoThreads)
{
	uint64_t total = env_u64("IVSHM_RING_STRESS_THREAD_COUNT", kThreadDefault);
	Area area(ivshm_ring_memsize(kCap, kEsz));
	ASSERT_EQ(ivshm_ring_format(area.mem, area.len, kCap, kEsz), 0);
	poke(area.mem, kOffProd, kStart);
	poke(area.mem, kOffCons, kStart);
	struct ivshm_ring p, c;
	ASSERT_EQ(ivshm_ring_attach(&p, area.mem, area.len, kCap, kEsz,
				    IVSHM_RING_PRODUCER), 0);
	ASSERT_EQ(ivshm_ring_attach(&c, area.mem, area.len, kCap, kEsz,
				    IVSHM_RING_CONSUMER), 0);
	std::string perr;
	std::thread prod([&] { perr = produce(&p, total, 99); });
	std::string cerr = consume(&c, total, 42);
	prod.join();
	EXPECT_EQ(perr, "");
	EXPECT_EQ(cerr, "");
	EXPECT_EQ(peek_word(area.mem, kOffCons), kStart + (uint32_t)total);
}

TEST(RingStress, TwoThreadsWakeFlag)
{
	/* The doorbell handshake under concurrency: the consumer sleeps on a
	 * futex-like condition only after wake_enable() returned 0, and the
	 * producer "rings" (bumps a counter) only when needs_wake() says so.
	 * A lost wake-up would hang the consumer; the deadline catches it. */
	uint64_t total = env_u64("IVSHM_RING_STRESS_THREAD_COUNT", kThreadDefault) / 4;
	Area area(ivshm_ring_memsize(64, kEsz));
	ASSERT_EQ(ivshm_ring_format(area.mem, area.len, 64, kEsz), 0);
	struct ivshm_ring p, c;
	ASSERT_EQ(ivshm_ring_attach(&p, area.mem, area.len, 64, kEsz,
				    IVSHM_RING_PRODUCER), 0);
	ASSERT_EQ(ivshm_ring_attach(&c, area.mem, area.len, 64, kEsz,
				    IVSHM_RING_CONSUMER), 0);
	uint32_t bell = 0; /* doorbell count, atomic */
	std::string perr;
	std::thread prod([&] {
		uint8_t buf[8 * kEsz];
		uint64_t seq = 0;
		double end = now_s() + kDeadline;
		while (seq < total && perr.empty()) {
			uint32_t n = (uint32_t)std::min<uint64_t>(8, total - seq);
			for (uint32_t i = 0; i < n; i++)
				stamp(buf + i * kEsz, kEsz, seq + i);
			int got = ivshm_ring_enqueue_burst(&p, buf, n);
			if (got < 0) {
				perr = "enqueue " + std::to_string(got);
				break;
			}
			seq += (uint32_t)got;
			int w = ivshm_ring_needs_wake(&p);
			if (w < 0)
				perr = "needs_wake " + std::to_string(w);
			if (w == 1)
				__atomic_fetch_add(&bell, 1, __ATOMIC_RELEASE);
			if (got == 0)
				sched_yield();
			if (now_s() > end)
				perr = "producer deadline";
		}
	});
	uint64_t seq = 0, sleeps = 0;
	uint8_t buf[16 * kEsz];
	std::string cerr;
	double end = now_s() + kDeadline;
	while (seq < total && cerr.empty()) {
		int got = ivshm_ring_dequeue_burst(&c, buf, 16);
		if (got < 0) {
			cerr = "dequeue " + std::to_string(got);
			break;
		}
		for (int i = 0; i < got; i++)
			if (!stamp_ok(buf + i * kEsz, kEsz, seq + i))
				cerr = "bad element at " + std::to_string(seq + i);
		seq += (uint32_t)got;
		if (got > 0)
			continue;
		/* Going to sleep: read the bell first, then arm the flag. */
		uint32_t seen = __atomic_load_n(&bell, __ATOMIC_ACQUIRE);
		int avail = ivshm_ring_wake_enable(&c);
		if (avail < 0) {
			cerr = "wake_enable " + std::to_string(avail);
			break;
		}
		if (avail == 0) {
			sleeps++;
			while (__atomic_load_n(&bell, __ATOMIC_ACQUIRE) == seen &&
			       cerr.empty()) {
				sched_yield();
				if (now_s() > end)
					cerr = "lost wake-up at seq " + std::to_string(seq);
			}
		}
		ivshm_ring_wake_disable(&c);
	}
	prod.join();
	EXPECT_EQ(perr, "");
	EXPECT_EQ(cerr, "");
	EXPECT_EQ(seq, total);
	printf("consumer slept %llu times, %u doorbells\n",
	       (unsigned long long)sleeps, bell);
}
