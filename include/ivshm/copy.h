/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file
 * ivshm/copy.h - copying packets into shared buffers another core will read.
 *
 * A sender copies each packet into a region buffer that the receiver read a
 * ring's turn ago. With ordinary (cached) stores every line of that buffer
 * must first be taken back from the receiver's cache. Where the two cores
 * share a last-level cache this is cheap and the data stays close to the
 * receiver: cached stores win. Where they do not (two CCDs of one EPYC,
 * two sockets, or two vCPUs the hypervisor placed that way) each line costs
 * a round trip of a few hundred nanoseconds, and the sender's store queue
 * stalls on them: measured here, 1500-byte packets fell from about 22 to
 * 1.5 million per second. Non-temporal ("streaming") stores write whole
 * lines without reading them first and leave them in memory, where the
 * receiver's prefetches (ivshm_copy_prefetch() below) find them: about 8.5
 * million per second in both placements. Neither wins everywhere, and
 * which one applies can change while a process runs (the hypervisor moves
 * vCPUs), so a sender measures.
 *
 * ivshm_copy_stream() copies with streaming stores, whole lines only: it
 * rounds the destination up to a 64-byte boundary with zeros, so the
 * buffer needs that room (region buffers are multiples of 64 bytes). Its
 * stores are weakly ordered: call ivshm_copy_stream_fence() before
 * publishing the buffers (a release store alone does not order them).
 *
 * struct ivshm_copy_tuner chooses, per sending queue, between the two. With
 * IVSHM_COPY_AUTO it counts bursts, times the copies of the last ones before
 * a probe (two TSC reads each), and every so often copies a short run of
 * bursts the other way, timed too, and compares bytes moved per second of
 * wall-clock time (which a slower receiver limits), with a margin against
 * noise; the sender's own cycles per byte break ties (rings/copy.c
 * explains). Probes back off (up to IVSHM_COPY_RUN_MAX bursts apart) while
 * the choice holds, and come quickly again after a change. The decision
 * logic takes the timestamps as arguments, so it is tested without timers.
 *
 * Thread safety: a tuner belongs to one sending thread.
 */
#ifndef IVSHM_COPY_H
#define IVSHM_COPY_H

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__SSE2__)
#include <emmintrin.h>
#include <x86intrin.h>
#define IVSHM_COPY_HAVE_STREAM 1
#else
#define IVSHM_COPY_HAVE_STREAM 0
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** How a sender copies packets into region buffers. */
enum ivshm_copy_policy {
	IVSHM_COPY_AUTO = 0,   /**< measure, and use the cheaper (default) */
	IVSHM_COPY_CACHED = 1, /**< ordinary stores (memcpy) */
	IVSHM_COPY_STREAM = 2, /**< non-temporal stores, whole lines */
};

/** Bursts between probes: first, and the most after repeated confirmation. */
#define IVSHM_COPY_RUN_MIN 1024u
#define IVSHM_COPY_RUN_MAX 65536u
/** Bursts timed for a comparison, after IVSHM_COPY_WARM untimed ones. Both
 *  also last at least a ring's worth of packets (see rings/copy.c). */
#define IVSHM_COPY_WINDOW 128u
#define IVSHM_COPY_WARM 32u
/** The other way must be this much cheaper (percent of cycles) to win. */
#define IVSHM_COPY_MARGIN_PCT 90u

/** Per sending queue; set up with ivshm_copy_tuner_init(). */
struct ivshm_copy_tuner {
	uint8_t policy;    /**< enum ivshm_copy_policy */
	uint8_t stream;    /**< this burst: 1 streaming stores, 0 cached */
	uint8_t best;      /**< the choice outside probes */
	uint8_t phase;     /**< 0 run, 1 probe warming up, 2 probe timed */
	uint8_t timing;    /**< 1: bursts are timed (windows and probes) */
	uint32_t n;        /**< bursts in this phase */
	uint32_t run_len;  /**< bursts until the next probe */
	uint32_t ring;     /**< packets a ring holds: the least a window or a
				warm-up spans */
	uint64_t pkts;     /**< packets in this phase's window (or warm-up) */
	uint64_t cyc;      /**< copy cycles and bytes timed in this window */
	uint64_t bytes;
	uint64_t start;    /**< clock at the window's first and last burst */
	uint64_t end;
	uint64_t best_copy; /**< `best` at the end of the last run: copy */
	uint64_t best_wall; /**< and wall-clock cycles per KiB */
	uint64_t switches;  /**< times `best` changed */
	uint64_t probes;    /**< probes finished */
};

/**
 * Set the policy; AUTO and CACHED start cached, STREAM streams. @p ring:
 * slots of the ring the queue fills (a probe must outlast the packets
 * copied the other way that still wait in it).
 */
static inline void
ivshm_copy_tuner_init(struct ivshm_copy_tuner *t, enum ivshm_copy_policy p,
		      uint32_t ring)
{
	memset(t, 0, sizeof(*t));
	/* Nothing to choose from without streaming stores. */
	if (!IVSHM_COPY_HAVE_STREAM && p == IVSHM_COPY_AUTO)
		p = IVSHM_COPY_CACHED;
	t->policy = (uint8_t)p;
	t->stream = t->best = (uint8_t)(IVSHM_COPY_HAVE_STREAM &&
					p == IVSHM_COPY_STREAM);
	t->run_len = IVSHM_COPY_RUN_MIN;
	t->ring = ring;
}

/**
 * Count one timed burst of @p pkts packets, @p bytes in all, copied the way
 * t->stream says, between clock readings @p t0 and @p t1. Decides at the
 * end of a run or a probe and sets t->stream for the next burst. Called by
 * ivshm_copy_tuner_burst() while t->timing is set.
 */
void ivshm_copy_tuner_account(struct ivshm_copy_tuner *t, uint64_t t0,
			      uint64_t t1, uint64_t bytes, uint32_t pkts);

/**
 * Count one burst (under IVSHM_COPY_AUTO; otherwise nothing). Most bursts of
 * a run are only counted, here, inline; the last IVSHM_COPY_WINDOW of a run
 * and every burst of a probe are timed (@p t0, @p t1: clock readings around
 * the copies) and go to ivshm_copy_tuner_account().
 */
static inline void
ivshm_copy_tuner_burst(struct ivshm_copy_tuner *t, uint64_t t0, uint64_t t1,
		       uint64_t bytes, uint32_t pkts)
{
	if (t->policy != IVSHM_COPY_AUTO || bytes == 0)
		return;
	if (t->timing)
		ivshm_copy_tuner_account(t, t0, t1, bytes, pkts);
	else if (++t->n + IVSHM_COPY_WINDOW >= t->run_len)
		t->timing = 1;
}

/** Cycle counter for timing a burst (0 where there is none). */
static inline uint64_t
ivshm_copy_clock(void)
{
#if IVSHM_COPY_HAVE_STREAM
	return __rdtsc();
#else
	return 0;
#endif
}

/** Timestamp to pass to ivshm_copy_burst_end(), or 0 when not timing. */
static inline uint64_t
ivshm_copy_burst_begin(const struct ivshm_copy_tuner *t)
{
	return t->timing ? ivshm_copy_clock() : 0;
}

/** Order streamed stores before the release store that publishes them. */
static inline void
ivshm_copy_stream_fence(void)
{
#if IVSHM_COPY_HAVE_STREAM
	_mm_sfence();
#endif
}

/**
 * After a burst's copies (@p pkts packets, @p bytes in all): fence the
 * streamed stores and, under AUTO, account the burst. Call before
 * publishing the buffers.
 */
static inline void
ivshm_copy_burst_end(struct ivshm_copy_tuner *t, uint64_t t0, uint64_t bytes,
		     uint32_t pkts)
{
	if (t->stream)
		ivshm_copy_stream_fence();
	ivshm_copy_tuner_burst(t, t0, t->timing ? ivshm_copy_clock() : 0, bytes,
			       pkts);
}

/**
 * Copy @p n bytes to @p dst with streaming stores, zero-filling up to the
 * next 64-byte boundary. @p dst must be 64-byte aligned with that much
 * room; otherwise (or without SSE2) this is memcpy. Reads exactly @p n
 * bytes of @p src.
 */
static inline void
ivshm_copy_stream(void *dst, const void *src, uint32_t n)
{
#if IVSHM_COPY_HAVE_STREAM
	if (((uintptr_t)dst & 63) == 0) {
		__m128i *d = (__m128i *)dst;
		const uint8_t *s = (const uint8_t *)src;
		uint32_t i, full = n / 16, rem = n % 16;

		for (i = 0; i < full; i++)
			_mm_stream_si128(d + i,
					 _mm_loadu_si128((const __m128i *)(s + 16 * i)));
		/* A line written partly with cached stores would be read for
		 * ownership and would flush the write-combining buffer: the
		 * tail and the padding stream too. */
		if (rem) {
			__m128i tail = _mm_setzero_si128();

			memcpy(&tail, s + 16 * full, rem);
			_mm_stream_si128(d + i++, tail);
		}
		for (; i % 4; i++)
			_mm_stream_si128(d + i, _mm_setzero_si128());
		return;
	}
#endif
	memcpy(dst, src, n);
}

/**
 * Start moving the @p len bytes at @p p into this core's L2 cache, ahead of
 * copying them out (the receiver's side of a copy); returns the number of
 * lines asked for. A receiver keeps about IVSHM_COPY_PREFETCH_LINES lines
 * asked for beyond the packet it copies (two packets of 1500 bytes, a whole
 * burst of small ones, whose misses then overlap), and the next packet's
 * first line into L1 as well (small packets are copied from L1 then).
 * Measured here with 1500-byte packets (bench/pmd_vs_memif's pair, rxonly
 * side): with the two cores sharing a cache, 3-5 % more packets than with
 * only the next packet's first line into L1; with streamed lines read from
 * memory, about 60 % more (8.5 against 5.2 million per second). 64-byte
 * packets: no change. Whole packets into L1 did not help: those prefetches
 * hold the fill buffers that the copy's own loads need. A prefetch never
 * faults, so @p len may be the peer's word; callers bound it to the buffer
 * all the same.
 */
#define IVSHM_COPY_PREFETCH_LINES 48u

static inline uint32_t
ivshm_copy_prefetch(const void *p, uint32_t len)
{
	const char *c = (const char *)((uintptr_t)p & ~(uintptr_t)63);
	const char *end = (const char *)p + len;
	uint32_t lines = 0;

	if (len == 0)
		return 0;
	for (; c < end; c += 64, lines++)
		__builtin_prefetch(c, 0, 2);
	return lines;
}

/** Lines of a buffer of @p len bytes that starts on a line (64-byte) boundary. */
static inline uint32_t
ivshm_copy_lines(uint32_t len)
{
	return (len + 63u) / 64u;
}

/**
 * A receiver's prefetch window over the buffers of a burst: buffers
 * [i + 1, next) are asked for, @c lines lines of them, where i is the one
 * being copied. Start it zeroed; for each buffer i copied, in increasing
 * order (skipping is fine: a jump past @c next restarts the window):
 *
 *	ivshm_copy_window_at(&w, i, lines_asked_for_i);
 *	for (; ivshm_copy_window_open(&w, n); w.next++)
 *		w.lines += ivshm_copy_prefetch(buffer w.next, its length);
 */
struct ivshm_copy_window {
	uint32_t next;  /**< the first buffer not asked for yet */
	uint32_t lines; /**< lines asked for beyond the one being copied */
};

/** Buffer @p i is copied now; @p lines: what was asked for it (0 if none). */
static inline void
ivshm_copy_window_at(struct ivshm_copy_window *w, uint32_t i, uint32_t lines)
{
	if (w->next <= i) {
		w->next = i + 1;
		w->lines = 0;
	} else {
		w->lines -= w->lines < lines ? w->lines : lines;
	}
}

/** Whether buffer w->next, of @p n, is to be asked for now. */
static inline int
ivshm_copy_window_open(const struct ivshm_copy_window *w, uint32_t n)
{
	return w->next < n && w->lines < IVSHM_COPY_PREFETCH_LINES;
}

#ifdef __cplusplus
}
#endif

#endif /* IVSHM_COPY_H */
