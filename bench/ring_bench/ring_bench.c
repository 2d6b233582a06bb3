/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ring_bench.c - cross-core SPSC throughput and one-way latency of the ivshm
 * ring, against DPDK's rte_ring (SP/SC, 16-byte elements through the _elem
 * API) placed in memory of our own with rte_ring_get_memsize_elem() and
 * rte_ring_init(), so no EAL is needed.
 *
 * Throughput: a producer thread pinned to CPU 0 and a consumer pinned to
 * CPU 1 move 16-byte elements (a sequence number and a filler word) in
 * bursts of 1, 8 and 32 through a 1024-slot ring; the consumer checks every
 * sequence number and counts what it received in a fixed time. Latency: a
 * ping-pong of one element through two rings, round-trip time / 2. The two
 * rings run alternately, several repetitions each; medians are printed,
 * then one line: RESULT ring_bench spsc_burst32_Mops=... rte_ring_burst32_Mops=...
 * ratio=... ratio_burst1=...
 *
 * Environment: RING_BENCH_REPS (default 15), RING_BENCH_MS per run (150): about
 * 20 s in all.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ivshm/ring.h"

#ifdef RING_BENCH_HAVE_RTE_RING
#include <rte_ring.h>
#include <rte_ring_elem.h>
#endif

#define CAPACITY 1024u
#define ESZ 16u
#define MAX_BURST 32u
#define MAX_REPS 64

struct elem {
	uint64_t seq;
	uint64_t filler;
};
_Static_assert(sizeof(struct elem) == ESZ, "16-byte elements");

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static int pin_failed;

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
		__atomic_store_n(&pin_failed, 1, __ATOMIC_RELAXED);
}

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* How much of its measuring window a thread spent on a CPU: a run in which
 * either thread was preempted (other programs share the CPUs) measures the
 * scheduler, not the ring. */
#define WINDOW_BEGIN() uint64_t w0_ = now_ns(), c0_ = cpu_ns()
#define WINDOW_END(r, side)                                                    \
	do {                                                                   \
		(r)->wall[side] = now_ns() - w0_;                              \
		(r)->on_cpu[side] = cpu_ns() - c0_;                            \
	} while (0)

/* One run's shared state. The flags sit on their own lines so that polling
 * them does not disturb the rings. */
struct run {
	_Alignas(64) int go;
	_Alignas(64) int stop;
	_Alignas(64) uint64_t dur_ns;
	unsigned burst;
	uint64_t count;   /* elements received (throughput) or round trips */
	uint64_t elapsed; /* ns */
	uint64_t errors;  /* sequence errors seen by the consumer */
	uint64_t wall[2], on_cpu[2]; /* per thread: window length, CPU time in it */
	uint64_t calls[2], short_calls[2]; /* producer, consumer: calls, calls moving < burst */
	void *ring_a, *ring_b; /* implementation-specific handles */
};

static void wait_go(struct run *r)
{
	while (!__atomic_load_n(&r->go, __ATOMIC_ACQUIRE))
		relax();
}

/*
 * The loops, written once and instantiated per implementation so that each
 * ring's inline fast path is inlined into its own loop (an indirect call per
 * burst would hide the difference we measure).
 *   ENQ(handle, elems, n) and DEQ(handle, elems, n) return the count moved.
 */
#define DEFINE_LOOPS(NAME, HANDLE_T, ENQ, DEQ)                                 \
static void *NAME##_producer(void *arg)                                        \
{                                                                              \
	struct run *r = arg;                                                   \
	HANDLE_T *h = r->ring_a;                                               \
	struct elem buf[MAX_BURST];                                            \
	uint64_t seq = 0, calls = 0, shorts = 0;                               \
	unsigned b = r->burst, i, got;                                         \
                                                                               \
	pin(0);                                                                \
	wait_go(r);                                                            \
	WINDOW_BEGIN();                                                        \
	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {                 \
		for (i = 0; i < b; i++) {                                      \
			buf[i].seq = seq + i;                                  \
			buf[i].filler = seq;                                   \
		}                                                              \
		got = (unsigned)ENQ(h, buf, b);                                \
		seq += got;                                                    \
		calls++;                                                       \
		shorts += got < b;                                             \
	}                                                                      \
	WINDOW_END(r, 0);                                                      \
	r->calls[0] = calls;                                                   \
	r->short_calls[0] = shorts;                                            \
	return NULL;                                                           \
}                                                                              \
                                                                               \
static void *NAME##_consumer(void *arg)                                        \
{                                                                              \
	struct run *r = arg;                                                   \
	HANDLE_T *h = r->ring_a;                                               \
	struct elem buf[MAX_BURST];                                            \
	uint64_t expect = 0, errors = 0, t0, t = 0, calls = 0, shorts = 0;     \
	unsigned b = r->burst, iter = 0;                                       \
	int n, i;                                                              \
                                                                               \
	pin(1);                                                                \
	wait_go(r);                                                            \
	WINDOW_BEGIN();                                                        \
	t0 = now_ns();                                                         \
	for (;;) {                                                             \
		n = (int)DEQ(h, buf, b);                                       \
		calls++;                                                       \
		shorts += (unsigned)n < b;                                     \
		for (i = 0; i < n; i++)                                        \
			errors += buf[i].seq != expect + (unsigned)i;          \
		expect += (unsigned)(n > 0 ? n : 0);                           \
		if ((++iter & 255) == 0) {                                     \
			t = now_ns();                                          \
			if (t - t0 >= r->dur_ns)                               \
				break;                                         \
		}                                                              \
	}                                                                      \
	WINDOW_END(r, 1);                                                      \
	r->calls[1] = calls;                                                   \
	r->short_calls[1] = shorts;                                            \
	r->count = expect;                                                     \
	r->elapsed = t - t0;                                                   \
	r->errors = errors;                                                    \
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);                       \
	return NULL;                                                           \
}                                                                              \
                                                                               \
/* Ping side (CPU 0): send one element on ring a, wait for it on ring b. */    \
static void *NAME##_ping(void *arg)                                            \
{                                                                              \
	struct run *r = arg;                                                   \
	HANDLE_T *out = r->ring_a;                                             \
	HANDLE_T *in = (HANDLE_T *)r->ring_b;                                  \
	struct elem e = {0, 0};                                                \
	uint64_t trips = 0, errors = 0, t0, t = 0;                             \
                                                                               \
	pin(0);                                                                \
	wait_go(r);                                                            \
	WINDOW_BEGIN();                                                        \
	t0 = now_ns();                                                         \
	for (;;) {                                                             \
		e.seq = trips;                                                 \
		while (ENQ(out, &e, 1) != 1)                                   \
			;                                                      \
		while (DEQ(in, &e, 1) != 1)                                    \
			;                                                      \
		errors += e.seq != trips;                                      \
		trips++;                                                       \
		if ((trips & 63) == 0) {                                       \
			t = now_ns();                                          \
			if (t - t0 >= r->dur_ns)                               \
				break;                                         \
		}                                                              \
	}                                                                      \
	WINDOW_END(r, 0);                                                      \
	r->count = trips;                                                      \
	r->elapsed = t - t0;                                                   \
	r->errors = errors;                                                    \
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);                       \
	return NULL;                                                           \
}                                                                              \
                                                                               \
/* Pong side (CPU 1): echo what arrives on ring a back on ring b. */          \
static void *NAME##_pong(void *arg)                                            \
{                                                                              \
	struct run *r = arg;                                                   \
	HANDLE_T *in = r->ring_a;                                              \
	HANDLE_T *out = (HANDLE_T *)r->ring_b;                                 \
	struct elem e;                                                         \
                                                                               \
	pin(1);                                                                \
	wait_go(r);                                                            \
	WINDOW_BEGIN();                                                        \
	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {                 \
		if (DEQ(in, &e, 1) != 1)                                       \
			continue;                                              \
		while (ENQ(out, &e, 1) != 1)                                   \
			;                                                      \
	}                                                                      \
	WINDOW_END(r, 1);                                                      \
	return NULL;                                                           \
}

/* ---- ivshm ring ---------------------------------------------------------- */

/* Each side has its own handle, as two processes would: h[0] the producer,
 * h[1] the consumer, each on lines of its own (a handle shared with the
 * other CPU's handle on one line would measure false sharing, not the
 * ring). In ping-pong, ring b runs from CPU 1 to CPU 0, so there the
 * thread on CPU 1 uses h[0] and the thread on CPU 0 uses h[1]. */
struct ivshm_handle {
	_Alignas(128) struct ivshm_ring h;
};
struct ivshm_pair {
	struct ivshm_handle side[2];
};

#define IV_ENQ(p, e, n) ivshm_ring_enqueue_burst(&(p)->side[0].h, (e), (n))
#define IV_DEQ(p, e, n) ivshm_ring_dequeue_burst(&(p)->side[1].h, (e), (n))
DEFINE_LOOPS(iv, struct ivshm_pair, IV_ENQ, IV_DEQ)

static void *iv_mem[2];

static int iv_setup(struct ivshm_pair *p, void *mem)
{
	size_t len = ivshm_ring_memsize(CAPACITY, ESZ);
	int ret = ivshm_ring_format(mem, len, CAPACITY, ESZ);

	if (ret == 0)
		ret = ivshm_ring_attach(&p->side[0].h, mem, len, CAPACITY, ESZ,
					IVSHM_RING_PRODUCER);
	if (ret == 0)
		ret = ivshm_ring_attach(&p->side[1].h, mem, len, CAPACITY, ESZ,
					IVSHM_RING_CONSUMER);
	return ret;
}

/* ---- rte_ring ------------------------------------------------------------ */

#ifdef RING_BENCH_HAVE_RTE_RING
#define RTE_ENQ(r, e, n) rte_ring_sp_enqueue_burst_elem((r), (e), ESZ, (n), NULL)
#define RTE_DEQ(r, e, n) rte_ring_sc_dequeue_burst_elem((r), (e), ESZ, (n), NULL)
DEFINE_LOOPS(rte, struct rte_ring, RTE_ENQ, RTE_DEQ)

static void *rte_mem[2];

static int rte_setup(struct rte_ring **out, void *mem, const char *name)
{
	struct rte_ring *r = mem;
	int ret = rte_ring_init(r, name, CAPACITY, RING_F_SP_ENQ | RING_F_SC_DEQ);

	*out = r;
	return ret;
}
#endif

/* ---- driver -------------------------------------------------------------- */

static int run_threads(struct run *r, void *(*a)(void *), void *(*b)(void *))
{
	pthread_t ta, tb;

	r->go = 0;
	r->stop = 0;
	r->count = r->elapsed = r->errors = 0;
	if (pthread_create(&ta, NULL, a, r) != 0)
		return -1;
	if (pthread_create(&tb, NULL, b, r) != 0) {
		__atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&r->go, 1, __ATOMIC_RELEASE);
		pthread_join(ta, NULL);
		return -1;
	}
	__atomic_store_n(&r->go, 1, __ATOMIC_RELEASE);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median of n values; v is left in its (time) order. */
static double median(const double *v, int n)
{
	double s[MAX_REPS];

	memcpy(s, v, sizeof(*v) * (size_t)n);
	qsort(s, (size_t)n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* The smaller of the two threads' on-CPU shares of their windows. */
static double share(const struct run *r)
{
	double a = r->wall[0] ? (double)r->on_cpu[0] / (double)r->wall[0] : 0;
	double b = r->wall[1] ? (double)r->on_cpu[1] / (double)r->wall[1] : 0;

	return a < b ? a : b;
}

#define CLEAN_SHARE 0.9
#define MIN_CLEAN 3

/*
 * Keep the repetitions in which both runs (ours and rte_ring, or ours
 * alone) had both threads on a CPU for CLEAN_SHARE of the time, if at least
 * MIN_CLEAN did; else keep all. Writes the kept indices, returns how many.
 */
static int pick_clean(const double *sa, const double *sb, int reps, int *keep,
		      int *nclean)
{
	int n = 0, r;

	for (r = 0; r < reps; r++)
		if (sa[r] >= CLEAN_SHARE && (!sb || sb[r] >= CLEAN_SHARE))
			keep[n++] = r;
	*nclean = n;
	if (n >= MIN_CLEAN)
		return n;
	for (r = 0; r < reps; r++)
		keep[r] = r;
	return reps;
}

static double median_of(const double *v, const int *keep, int n)
{
	double t[MAX_REPS];
	int i;

	for (i = 0; i < n; i++)
		t[i] = v[keep[i]];
	return median(t, n);
}

static void loadavg(char *buf, size_t len)
{
	FILE *f = fopen("/proc/loadavg", "r");

	buf[0] = 0;
	if (f) {
		if (!fgets(buf, (int)len, f))
			buf[0] = 0;
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = 0;
}

enum { IMPL_IV, IMPL_RTE, NIMPL };
static const unsigned bursts[] = {1, 8, 32};
#define NB (sizeof(bursts) / sizeof(bursts[0]))

int main(void)
{
	const char *s;
	int reps = 15, have_rte = 0, rep, i, fail = 0;
	uint64_t ms = 150, errors = 0;
	double mops[NIMPL][NB][MAX_REPS], lat[NIMPL][MAX_REPS];
	double mshare[NIMPL][NB][MAX_REPS], lshare[NIMPL][MAX_REPS];
	double full_frac[NIMPL][NB][MAX_REPS], empty_frac[NIMPL][NB][MAX_REPS];
	double med_mops[NIMPL][NB], med_lat[NIMPL];
	int clean_mops[NB], clean_lat;
	double pair[NB + 1][MAX_REPS], med_pair[NB + 1];
	static struct run run;
	static struct ivshm_pair ivp[2];
	char la0[128], la1[128];
	size_t iv_len = ivshm_ring_memsize(CAPACITY, ESZ);

	if ((s = getenv("RING_BENCH_REPS")) && atoi(s) > 0)
		reps = atoi(s) < MAX_REPS ? atoi(s) : MAX_REPS;
	if ((s = getenv("RING_BENCH_MS")) && atoi(s) > 0)
		ms = (uint64_t)atoi(s);
	run.dur_ns = ms * 1000000u;

	for (i = 0; i < 2; i++) {
		iv_mem[i] = aligned_alloc(4096, (iv_len + 4095) & ~(size_t)4095);
		if (!iv_mem[i])
			return 1;
	}
#ifdef RING_BENCH_HAVE_RTE_RING
	{
		ssize_t rlen = rte_ring_get_memsize_elem(ESZ, CAPACITY);

		have_rte = rlen > 0;
		for (i = 0; have_rte && i < 2; i++) {
			rte_mem[i] = aligned_alloc(4096, ((size_t)rlen + 4095) &
							 ~(size_t)4095);
			have_rte = rte_mem[i] != NULL;
		}
	}
#endif
	loadavg(la0, sizeof(la0));

	for (rep = 0; rep < reps; rep++) {
		for (i = 0; i < (int)NB; i++) {
			for (int impl = 0; impl < NIMPL; impl++) {
				/* Alternate which goes first, so neither always
				 * runs right after the same neighbour. */
				int which = (rep + impl) % 2 ? IMPL_RTE : IMPL_IV;

				run.burst = bursts[i];
				if (which == IMPL_IV) {
					if (iv_setup(&ivp[0], iv_mem[0]) != 0)
						return 1;
					run.ring_a = &ivp[0];
					fail |= run_threads(&run, iv_producer,
							    iv_consumer);
				} else {
#ifdef RING_BENCH_HAVE_RTE_RING
					struct rte_ring *rr;

					if (!have_rte)
						continue;
					if (rte_setup(&rr, rte_mem[0], "rb0") != 0)
						return 1;
					run.ring_a = rr;
					fail |= run_threads(&run, rte_producer,
							    rte_consumer);
#else
					continue;
#endif
				}
				errors += run.errors;
				mshare[which][i][rep] = share(&run);
				full_frac[which][i][rep] = run.calls[0]
					? (double)run.short_calls[0] / (double)run.calls[0] : 0;
				empty_frac[which][i][rep] = run.calls[1]
					? (double)run.short_calls[1] / (double)run.calls[1] : 0;
				mops[which][i][rep] = run.elapsed
					? (double)run.count * 1e3 / (double)run.elapsed
					: 0;
			}
		}
		for (int impl = 0; impl < NIMPL; impl++) {
			int which = (rep + impl) % 2 ? IMPL_RTE : IMPL_IV;

			if (which == IMPL_IV) {
				/* a: CPU 0 -> CPU 1, b: CPU 1 -> CPU 0. */
				if (iv_setup(&ivp[0], iv_mem[0]) != 0 ||
				    iv_setup(&ivp[1], iv_mem[1]) != 0)
					return 1;
				run.ring_a = &ivp[0];
				run.ring_b = &ivp[1];
				fail |= run_threads(&run, iv_ping, iv_pong);
			} else {
#ifdef RING_BENCH_HAVE_RTE_RING
				struct rte_ring *ra, *rb;

				if (!have_rte)
					continue;
				if (rte_setup(&ra, rte_mem[0], "rl0") != 0 ||
				    rte_setup(&rb, rte_mem[1], "rl1") != 0)
					return 1;
				run.ring_a = ra;
				run.ring_b = rb;
				fail |= run_threads(&run, rte_ping, rte_pong);
#else
				continue;
#endif
			}
			errors += run.errors;
			lshare[which][rep] = share(&run);
			lat[which][rep] = run.count
				? (double)run.elapsed / (double)run.count / 2
				: 0;
		}
	}
	loadavg(la1, sizeof(la1));

	{
		int keep[MAX_REPS], n;

		for (i = 0; i < (int)NB; i++) {
			n = pick_clean(mshare[IMPL_IV][i],
				       have_rte ? mshare[IMPL_RTE][i] : NULL, reps,
				       keep, &clean_mops[i]);
			for (int impl = 0; impl < NIMPL; impl++)
				med_mops[impl][i] = median_of(mops[impl][i], keep, n);
			for (rep = 0; rep < n; rep++)
				pair[i][rep] = mops[IMPL_IV][i][keep[rep]] /
					       mops[IMPL_RTE][i][keep[rep]];
			med_pair[i] = median(pair[i], n);
		}
		n = pick_clean(lshare[IMPL_IV], have_rte ? lshare[IMPL_RTE] : NULL,
			       reps, keep, &clean_lat);
		for (int impl = 0; impl < NIMPL; impl++)
			med_lat[impl] = median_of(lat[impl], keep, n);
		for (rep = 0; rep < n; rep++)
			pair[NB][rep] = lat[IMPL_RTE][keep[rep]] / lat[IMPL_IV][keep[rep]];
		med_pair[NB] = median(pair[NB], n);
	}
	if (!have_rte) {
		for (i = 0; i < (int)NB; i++)
			med_mops[IMPL_RTE][i] = med_pair[i] = 0.0 / 0.0;
		med_lat[IMPL_RTE] = med_pair[NB] = 0.0 / 0.0;
	}

	printf("ring_bench: SPSC, %u-byte elements, %u slots, producer CPU 0, consumer CPU 1%s\n",
	       ESZ, CAPACITY, pin_failed ? " (pinning FAILED: unpinned)" : "");
	printf("  %d repetitions x %llu ms per case, ivshm_ring and rte_ring alternating; medians\n",
	       reps, (unsigned long long)ms);
	printf("  loadavg before: %s | after: %s\n", la0, la1);
	printf("  rte_ring: %s\n", have_rte ? "DPDK " RING_BENCH_RTE_VERSION
					      ", sp_enqueue/sc_dequeue_burst_elem"
					    : "not built (no DPDK): ratios are nan");
	printf("\n%-24s %12s %12s %8s %11s %7s\n", "case", "ivshm_ring", "rte_ring",
	       "ratio", "pair-ratio", "clean");
	for (i = 0; i < (int)NB; i++) {
		char name[32];

		snprintf(name, sizeof(name), "burst %-2u  Mops/s", bursts[i]);
		printf("%-24s %12.1f %12.1f %8.2f %11.2f %4d/%-2d\n", name,
		       med_mops[IMPL_IV][i], med_mops[IMPL_RTE][i],
		       med_mops[IMPL_IV][i] / med_mops[IMPL_RTE][i], med_pair[i],
		       clean_mops[i], reps);
	}
	printf("%-24s %12.1f %12.1f %8.2f %11.2f %4d/%-2d\n", "one-way latency ns",
	       med_lat[IMPL_IV], med_lat[IMPL_RTE],
	       med_lat[IMPL_RTE] / med_lat[IMPL_IV], med_pair[NB], clean_lat, reps);
	printf("  ratio: of the medians; pair-ratio: median of the ratios of the two runs\n"
	       "  of each repetition (adjacent in time, so less hurt by other load);\n"
	       "  for latency both are rte_ring / ivshm_ring: above 1 means ours is faster.\n"
	       "  clean: repetitions in which every thread was on a CPU >= %.0f%% of its\n"
	       "  window; medians use only those when there are >= %d, else all.\n",
	       CLEAN_SHARE * 100, MIN_CLEAN);
	{
		double all[NIMPL * (NB + 1) * MAX_REPS];
		int k = 0;

		for (int impl = 0; impl < (have_rte ? NIMPL : 1); impl++) {
			for (i = 0; i < (int)NB; i++)
				for (rep = 0; rep < reps; rep++)
					all[k++] = mshare[impl][i][rep];
			for (rep = 0; rep < reps; rep++)
				all[k++] = lshare[impl][rep];
		}
		qsort(all, (size_t)k, sizeof(*all), cmp_double);
		printf("  on-CPU share of the less lucky thread, median over all runs: %.0f%%\n",
		       all[k / 2] * 100);
	}
	printf("  calls that moved less than a burst (median %%; producer: ring full,\n"
	       "  consumer: ring short), ivshm_ring / rte_ring:");
	for (i = 0; i < (int)NB; i++)
		printf(" b%u prod %.0f/%.0f cons %.0f/%.0f;", bursts[i],
		       median(full_frac[IMPL_IV][i], reps) * 100,
		       have_rte ? median(full_frac[IMPL_RTE][i], reps) * 100 : 0.0 / 0.0,
		       median(empty_frac[IMPL_IV][i], reps) * 100,
		       have_rte ? median(empty_frac[IMPL_RTE][i], reps) * 100 : 0.0 / 0.0);
	printf("\n");
	printf("  burst 32 Mops/s per repetition, in time order, ivshm_ring:");
	for (rep = 0; rep < reps; rep++)
		printf(" %.0f", mops[IMPL_IV][NB - 1][rep]);
	if (have_rte) {
		printf("; rte_ring:");
		for (rep = 0; rep < reps; rep++)
			printf(" %.0f", mops[IMPL_RTE][NB - 1][rep]);
	}
	printf("\n  sequence errors: %llu%s\n", (unsigned long long)errors,
	       fail ? " (thread start FAILED)" : "");
	printf("RESULT ring_bench spsc_burst32_Mops=%.1f rte_ring_burst32_Mops=%.1f ratio=%.2f ratio_burst1=%.2f\n",
	       med_mops[IMPL_IV][NB - 1], med_mops[IMPL_RTE][NB - 1],
	       med_mops[IMPL_IV][NB - 1] / med_mops[IMPL_RTE][NB - 1],
	       med_mops[IMPL_IV][0] / med_mops[IMPL_RTE][0]);
	for (i = 0; i < 2; i++) {
		free(iv_mem[i]);
#ifdef RING_BENCH_HAVE_RTE_RING
		free(rte_mem[i]);
#endif
	}
	return errors || fail ? 1 : 0;
}
