/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The decision half of struct ivshm_copy_tuner (ivshm/copy.h): called once
 * per timed burst, out of line; the copies themselves are inline.
 *
 * A run uses `best` for run_len bursts, counted inline and untimed, and
 * times its last IVSHM_COPY_WINDOW of them. A probe then copies the other
 * way: first a warm-up, not measured (its clock readings are dropped),
 * until every slot of the ring holds a packet copied the new way (packets
 * copied the old way may still wait in it, and while the receiver drains
 * them the sender's rate is theirs), then a timed window. Every window and
 * warm-up spans at least IVSHM_COPY_WINDOW (or IVSHM_COPY_WARM) bursts and
 * a ring's worth of packets: when the ring is full the sender's bursts are
 * small, and a window of few packets would time the filling of a few free
 * slots rather than the receiver's pace.
 *
 * Each window yields two figures: the wall-clock cycles per KiB from its
 * first burst to its last, which include waiting for a receiver that is the
 * slower side (a full ring), and the sender's own cycles per KiB copied.
 * The first is what the application sees, and decides: the other way wins
 * when it moves more bytes per second by a margin of 10 %. Measured here,
 * the losing way costs from about 1.15 times more (64-byte packets on near
 * placements) to 6 times more (1500-byte packets on far ones); the noise
 * is a few percent. The copy figure alone would mislead: streaming stores
 * are posted, so they look as cheap to the sender as cached ones even where
 * the receiver, reading the data back from memory, runs at half the
 * speed. It breaks ties only: when neither way moves more (an application
 * that sends less than either could carry), the one that costs the sender
 * 10 % fewer cycles wins. The two windows are adjacent in time, so a change
 * of load or placement between them is unlikely, and a wrong choice lasts
 * until the next probe: a probe that loses doubles the next run (up to
 * IVSHM_COPY_RUN_MAX bursts); one that wins switches and starts again at
 * IVSHM_COPY_RUN_MIN.
 */
#include "ivshm/copy.h"

enum { RUN, WARM, PROBE };

/* Window figures, cycles per KiB; UINT64_MAX when nothing was timed. */
static uint64_t
per_kib(uint64_t cycles, uint64_t bytes)
{
	return bytes ? cycles * 1024 / bytes : UINT64_MAX;
}

/* Is @p a cheaper than @p b by the margin? (Cycles per KiB stay far below
 * 2^57, so the products fit.) */
static int
cheaper(uint64_t a, uint64_t b)
{
	return a != UINT64_MAX && (b == UINT64_MAX ||
				   a * 100 < b * IVSHM_COPY_MARGIN_PCT);
}

static void
window_add(struct ivshm_copy_tuner *t, uint64_t t0, uint64_t t1, uint64_t bytes,
	   uint32_t pkts)
{
	if (t->bytes == 0)
		t->start = t0;
	t->end = t1;
	t->cyc += t1 - t0;
	t->bytes += bytes;
	t->pkts += pkts;
}

static void
phase_start(struct ivshm_copy_tuner *t, int phase)
{
	t->phase = (uint8_t)phase;
	/* A run's first bursts are only counted (ivshm_copy_tuner_burst). */
	t->timing = phase != RUN;
	t->n = 0;
	t->pkts = 0;
	t->cyc = 0;
	t->bytes = 0;
}

void
ivshm_copy_tuner_account(struct ivshm_copy_tuner *t, uint64_t t0, uint64_t t1,
			 uint64_t bytes, uint32_t pkts)
{
	if (t->policy != IVSHM_COPY_AUTO || bytes == 0 || t1 < t0)
		return;
	t->n++;
	switch (t->phase) {
	case RUN:
		/* Timed from IVSHM_COPY_WINDOW bursts before the run's end. */
		window_add(t, t0, t1, bytes, pkts);
		if (t->n < t->run_len || t->pkts < t->ring)
			return;
		t->best_copy = per_kib(t->cyc, t->bytes);
		t->best_wall = per_kib(t->end - t->start, t->bytes);
		t->stream = (uint8_t)!t->best;
		phase_start(t, WARM);
		return;
	case WARM:
		t->pkts += pkts;
		if (t->n >= IVSHM_COPY_WARM && t->pkts >= t->ring)
			phase_start(t, PROBE);
		return;
	default:
		window_add(t, t0, t1, bytes, pkts);
		if (t->n < IVSHM_COPY_WINDOW || t->pkts < t->ring)
			return;
		break;
	}
	t->probes++;
	uint64_t wall = per_kib(t->end - t->start, t->bytes);
	uint64_t copy = per_kib(t->cyc, t->bytes);
	if (cheaper(wall, t->best_wall) ||
	    (!cheaper(t->best_wall, wall) && cheaper(copy, t->best_copy))) {
		t->best = (uint8_t)!t->best;
		t->switches++;
		t->run_len = IVSHM_COPY_RUN_MIN;
	} else if (t->run_len < IVSHM_COPY_RUN_MAX) {
		t->run_len *= 2;
	}
	t->stream = t->best;
	phase_start(t, RUN);
}
