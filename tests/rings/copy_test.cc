// SPDX-License-Identifier: BSD-3-Clause
//
// ivshm/copy.h: the streaming copy (every length, every source alignment,
// the padding it writes and what it leaves alone) and the tuner's decisions,
// fed with made-up clock readings (no timers: the decisions are a function
// of the readings).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

#include "ivshm/copy.h"

namespace {

constexpr size_t kMax = 4160;

TEST(CopyStream, EveryLengthAndSourceAlignment)
{
	alignas(64) static uint8_t dst[kMax + 256];
	static uint8_t src[kMax + 64];
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 131 + 7);
	for (uint32_t n = 1; n <= kMax; n += (n < 300 ? 1 : 37)) {
		for (uint32_t off = 0; off < 16; off += (n < 300 ? 1 : 5)) {
			memset(dst, 0xAA, sizeof(dst));
			ivshm_copy_stream(dst, src + off, n);
			ivshm_copy_stream_fence();
			ASSERT_EQ(0, memcmp(dst, src + off, n)) << "n=" << n << " off=" << off;
			size_t end = IVSHM_COPY_HAVE_STREAM ? (n + 63) / 64 * 64 : n;
			for (size_t i = n; i < end; i++)
				ASSERT_EQ(0, dst[i]) << "padding at " << i << " n=" << n;
			for (size_t i = end; i < sizeof(dst); i++)
				ASSERT_EQ(0xAA, dst[i]) << "byte " << i << " past the line, n=" << n;
		}
	}
}

// A destination off a line boundary gets a plain copy: nothing past n.
TEST(CopyStream, UnalignedDestinationTouchesOnlyItsBytes)
{
	alignas(64) static uint8_t dst[512];
	uint8_t src[300];
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(255 - i);
	for (uint32_t d = 1; d < 64; d += 7) {
		memset(dst, 0xAA, sizeof(dst));
		ivshm_copy_stream(dst + d, src, 100);
		ASSERT_EQ(0, memcmp(dst + d, src, 100));
		for (size_t i = 0; i < sizeof(dst); i++) {
			if (i < d || i >= d + 100) {
				ASSERT_EQ(0xAA, dst[i]) << "d=" << d << " i=" << i;
			}
		}
	}
}

constexpr uint32_t kRing = 1024;

// A simulated sender: each burst copies 1 KiB in `pkts` packets, taking
// copy[mode] cycles, then waits gap[mode] cycles (a receiver that is
// slower) before the next.
struct Sim {
	uint64_t now = 1000;
	uint64_t copy[2];
	uint64_t gap[2];
	uint32_t pkts = 32;

	void bursts(ivshm_copy_tuner *t, uint32_t n)
	{
		for (uint32_t i = 0; i < n; i++) {
			int m = t->stream;
			uint64_t t0 = now;
			now += copy[m];
			ivshm_copy_tuner_burst(t, t0, now, 1024, pkts);
			now += gap[m];
		}
	}
};

// Bursts from the start of a run until the end of its probe (bursts of 32
// packets: every window and warm-up spans a ring's worth).
constexpr uint32_t kFirstCycle = IVSHM_COPY_RUN_MIN + IVSHM_COPY_WARM + IVSHM_COPY_WINDOW;

// The receiver's prefetch window counts lines: ivshm_copy_prefetch() must
// say how many lines [p, p + len) touches, at any offset in a line, and
// asking for the last bytes before an inaccessible page must not fault.
TEST(CopyPrefetch, CountsTheLinesOfAnyRangeAndNeverFaults)
{
	const long pg = sysconf(_SC_PAGESIZE);
	uint8_t *map = (uint8_t *)mmap(nullptr, 2 * (size_t)pg, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, (void *)map);
	ASSERT_EQ(0, mprotect(map + pg, (size_t)pg, PROT_NONE));
	for (uint32_t off = 0; off < 64; off++) {
		for (uint32_t len = 0; len <= 4096 - 64; len += (len < 200 ? 1 : 61)) {
			uint32_t first = off / 64, last = (off + len + 63) / 64;
			uint32_t want = len == 0 ? 0 : last - first;
			ASSERT_EQ(want, ivshm_copy_prefetch(map + off, len))
				<< "off=" << off << " len=" << len;
		}
		// Ends exactly at the guard page.
		uint32_t len = (uint32_t)pg - off;
		EXPECT_EQ(len / 64 + (len % 64 != 0), ivshm_copy_prefetch(map + off, len));
	}
	EXPECT_EQ(0u, ivshm_copy_lines(0));
	EXPECT_EQ(1u, ivshm_copy_lines(1));
	EXPECT_EQ(1u, ivshm_copy_lines(64));
	EXPECT_EQ(24u, ivshm_copy_lines(1500));
	EXPECT_EQ(32u, ivshm_copy_lines(2048));
	munmap(map, 2 * (size_t)pg);
}

// The window a receiver keeps while it copies a burst: with 1500-byte
// buffers (24 lines) the two after the one being copied are asked for,
// with 64-byte ones (1 line) the next 48; nothing is asked for twice or
// left out, and a jump past the window starts it again.
static std::vector<uint32_t> window_run(uint32_t n, uint32_t len, uint32_t jump_at,
					std::vector<uint32_t> *ahead_of)
{
	alignas(64) static uint8_t bufs[64][2048];
	struct ivshm_copy_window w = {0, 0};
	std::vector<uint32_t> asked;
	for (uint32_t i = 0; i < n; i = (i == jump_at ? i + 10 : i + 1)) {
		ivshm_copy_window_at(&w, i, ivshm_copy_lines(len));
		for (; ivshm_copy_window_open(&w, n); w.next++) {
			asked.push_back(w.next);
			w.lines += ivshm_copy_prefetch(bufs[w.next], len);
		}
		ahead_of->push_back(w.next - i - 1);
	}
	return asked;
}

TEST(CopyPrefetch, WindowKeepsLinesAheadOfTheCopy)
{
	std::vector<uint32_t> ahead;
	std::vector<uint32_t> asked = window_run(32, 1500, UINT32_MAX, &ahead);
	ASSERT_EQ(31u, asked.size());
	for (uint32_t k = 0; k < asked.size(); k++)
		EXPECT_EQ(k + 1, asked[k]);
	for (uint32_t i = 0; i < 30; i++)
		EXPECT_EQ(2u, ahead[i]) << "while copying " << i;
	EXPECT_EQ(1u, ahead[30]);
	EXPECT_EQ(0u, ahead[31]);

	ahead.clear();
	asked = window_run(64, 64, UINT32_MAX, &ahead);
	ASSERT_EQ(63u, asked.size());
	EXPECT_EQ(48u, ahead[0]);
	EXPECT_EQ(48u, ahead[15]);
	EXPECT_EQ(0u, ahead[63]);

	// A chain of ten buffers copied at once after buffer 4: the window
	// restarts behind it, and the skipped buffers are not asked for again.
	ahead.clear();
	asked = window_run(32, 1500, 4, &ahead);
	for (uint32_t k = 1; k < asked.size(); k++)
		EXPECT_LT(asked[k - 1], asked[k]);
	EXPECT_EQ(2u, ahead[5]); // copying buffer 14
	EXPECT_EQ(15u, asked[6]); // 1..6 before the jump, then 15 on
}

TEST(CopyTuner, FixedPoliciesNeverProbe)
{
	ivshm_copy_tuner c, s;
	ivshm_copy_tuner_init(&c, IVSHM_COPY_CACHED, kRing);
	ivshm_copy_tuner_init(&s, IVSHM_COPY_STREAM, kRing);
	EXPECT_EQ(0, c.stream);
	EXPECT_EQ(IVSHM_COPY_HAVE_STREAM, s.stream);
	Sim sim{1000, {1000, 10}, {0, 0}};
	sim.bursts(&c, 10 * kFirstCycle);
	Sim sim2{1000, {10, 1000}, {0, 0}};
	sim2.bursts(&s, 10 * kFirstCycle);
	EXPECT_EQ(0, c.stream);
	EXPECT_EQ(IVSHM_COPY_HAVE_STREAM, s.stream);
	EXPECT_EQ(0u, c.probes + c.switches + s.probes + s.switches);
}

// A tuner under IVSHM_COPY_AUTO, on a machine with streaming stores.
class AutoTuner : public ::testing::Test {
protected:
	void SetUp() override
	{
		if (!IVSHM_COPY_HAVE_STREAM)
			GTEST_SKIP() << "no streaming stores on this machine";
		ivshm_copy_tuner_init(&t, IVSHM_COPY_AUTO, kRing);
	}
	ivshm_copy_tuner t;
};

TEST_F(AutoTuner, SwitchesToTheCheaperWayAndBack)
{
	ASSERT_EQ(0, t.stream);
	// Far placement: cached stores cost ten times more.
	Sim sim{1000, {1000, 100}, {0, 0}};
	sim.bursts(&t, IVSHM_COPY_RUN_MIN - 1);
	EXPECT_EQ(0, t.stream) << "probed before the run ended";
	sim.bursts(&t, 1);
	EXPECT_EQ(1, t.stream) << "the probe copies the other way";
	sim.bursts(&t, IVSHM_COPY_WARM + IVSHM_COPY_WINDOW);
	EXPECT_EQ(1, t.best);
	EXPECT_EQ(1, t.stream);
	EXPECT_EQ(1u, t.switches);
	EXPECT_EQ(IVSHM_COPY_RUN_MIN, t.run_len);
	// The vCPUs move: now streaming costs more. The next probe returns.
	sim.copy[0] = 60;
	sim.copy[1] = 100;
	sim.bursts(&t, kFirstCycle);
	EXPECT_EQ(0, t.best);
	EXPECT_EQ(0, t.stream);
	EXPECT_EQ(2u, t.switches);
	EXPECT_EQ(2u, t.probes);
}

TEST_F(AutoTuner, ProbesBackOffWhileTheChoiceHolds)
{
	// Streaming is 5 % cheaper: inside the margin, so noise.
	Sim sim{1000, {100, 95}, {0, 0}};
	uint32_t run = IVSHM_COPY_RUN_MIN;
	for (int i = 0; i < 10; i++) {
		sim.bursts(&t, run + IVSHM_COPY_WARM + IVSHM_COPY_WINDOW);
		EXPECT_EQ(0, t.best);
		EXPECT_EQ(0, t.stream);
		run = run < IVSHM_COPY_RUN_MAX ? run * 2 : run;
		EXPECT_EQ(run, t.run_len);
	}
	EXPECT_EQ(10u, t.probes);
	EXPECT_EQ(0u, t.switches);
}

// Streaming stores cost the sender less, but the receiver, reading the data
// from memory, is slower, and the ring makes the sender wait for it: the
// wall clock says no.
TEST_F(AutoTuner, CheaperCopyThatMovesLessLoses)
{
	Sim sim{1000, {100, 50}, {0, 300}};
	sim.bursts(&t, 3 * kFirstCycle);
	EXPECT_EQ(0, t.best);
	EXPECT_EQ(0u, t.switches);
	EXPECT_GE(t.probes, 2u);
}

// Near placement after far: streaming stores, posted, cost the sender no
// more than cached ones, but the receiver reads the streamed data from
// memory and the ring makes the sender wait for it. Cached stores move
// three times the bytes per second: back to them.
TEST_F(AutoTuner, MoreBytesPerSecondWinsAtTheSameCopyCost)
{
	Sim sim{1000, {1000, 64}, {0, 0}};
	sim.bursts(&t, kFirstCycle);
	ASSERT_EQ(1, t.best);
	sim.copy[0] = 64;
	sim.gap[1] = 256;
	sim.bursts(&t, kFirstCycle);
	EXPECT_EQ(0, t.best);
	EXPECT_EQ(2u, t.switches);
}

// An application that sends less than either way could carry: every burst
// starts 2000 cycles after the last, whatever the copy took. The wall clock
// ties; the cheaper copy wins.
TEST_F(AutoTuner, AtTheSamePaceTheCheaperCopyWins)
{
	Sim sim{1000, {1000, 100}, {1000, 1900}};
	sim.bursts(&t, kFirstCycle);
	EXPECT_EQ(1, t.best);
	EXPECT_EQ(1u, t.switches);
	// And a copy only 5 % cheaper at the same pace is noise.
	sim.copy[0] = 95;
	sim.gap[0] = 1905;
	sim.bursts(&t, kFirstCycle);
	EXPECT_EQ(1, t.best);
	EXPECT_EQ(1u, t.switches);
}

// The clock is read only where a figure needs it: the last
// IVSHM_COPY_WINDOW bursts of a run, and probes. The rest of a run is
// counted.
TEST_F(AutoTuner, OnlyTheLastBurstsOfARunAreTimed)
{
	Sim sim{1000, {100, 100}, {0, 0}};
	EXPECT_EQ(0, t.timing);
	sim.bursts(&t, IVSHM_COPY_RUN_MIN - IVSHM_COPY_WINDOW - 1);
	EXPECT_EQ(0, t.timing);
	sim.bursts(&t, 1);
	EXPECT_EQ(1, t.timing);
	sim.bursts(&t, IVSHM_COPY_WINDOW + IVSHM_COPY_WARM + IVSHM_COPY_WINDOW);
	EXPECT_EQ(1u, t.probes);
	EXPECT_EQ(0, t.timing) << "a new run starts untimed";
}

// A full ring makes the sender's bursts small: windows and the warm-up then
// last a ring's worth of packets, not just so many bursts. (Packets copied
// the old way still fill the ring when a probe starts; timing the new way
// while the receiver drains them would time the old way.)
TEST_F(AutoTuner, WindowsAndWarmUpSpanARingOfPackets)
{
	Sim sim{1000, {1000, 100}, {0, 0}};
	sim.pkts = 1;
	// The run's window began IVSHM_COPY_WINDOW bursts before its end and
	// must reach kRing packets.
	const uint32_t run = IVSHM_COPY_RUN_MIN - IVSHM_COPY_WINDOW + kRing;
	sim.bursts(&t, run - 1);
	EXPECT_EQ(0, t.stream) << "window ended with too few packets";
	sim.bursts(&t, 1);
	EXPECT_EQ(1, t.stream);
	// Warm-up, then the timed window: a ring's worth each.
	sim.bursts(&t, 2 * kRing - 1);
	EXPECT_EQ(0u, t.probes) << "probe ended with too few packets";
	sim.bursts(&t, 1);
	EXPECT_EQ(1u, t.probes);
	EXPECT_EQ(1, t.best);
	EXPECT_EQ(1u, t.switches);
}

// Bursts that copied nothing, or whose clock went backwards (a migrated
// thread on a machine without a synchronised TSC), are not counted.
TEST_F(AutoTuner, EmptyAndBackwardBurstsAreIgnored)
{
	for (uint32_t i = 0; i < 10 * kFirstCycle; i++) {
		ivshm_copy_tuner_burst(&t, 100, 200, 0, 0);
		ivshm_copy_tuner_burst(&t, 200, 100, 1024, 32);
	}
	EXPECT_LT(t.n, IVSHM_COPY_RUN_MIN);
	EXPECT_EQ(1, t.timing);
	EXPECT_EQ(0u, t.probes);
	EXPECT_EQ(0, t.stream);
}

} // namespace
