/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_ring.c - libFuzzer target: the SPSC ring's index validation.
 *
 * A ring of 1..32 slots lives in a heap block of exactly
 * ivshm_ring_memsize() bytes, so AddressSanitizer flags any access outside
 * it. A producer and a consumer handle drive it with the input's operations
 * (enqueue, dequeue, reserve/commit, peek/release, count, wake flags)
 * interleaved with a hostile peer's scribbles over the control block
 * (indices, wake word, geometry) or over the whole block before attach.
 * Checked: no access outside the block; every count is within the request
 * and the capacity; and as long as nobody scribbled, the ring is an exact
 * FIFO (every element dequeued is the next sequence number enqueued).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ivshm/ring.h"
#include "ring_layout.h"

struct in {
	const uint8_t *p;
	size_t n;
};

static uint8_t take8(struct in *in)
{
	uint8_t v = 0;

	if (in->n) {
		v = *in->p++;
		in->n--;
	}
	return v;
}

static uint32_t take32(struct in *in)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v |= (uint32_t)take8(in) << (8 * i);
	return v;
}

#define CHECK(c)                                                          \
	do {                                                              \
		if (!(c)) {                                               \
			fprintf(stderr, "fuzz_ring: check failed: %s (line %d)\n", \
				#c, __LINE__);                            \
			abort();                                          \
		}                                                         \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };
	uint8_t g = take8(&in);
	uint32_t cap = 1u << (g % 6);
	uint32_t esz = (g & 0x40) ? 16 : 8;
	size_t len = ivshm_ring_memsize(cap, esz);
	struct ivshm_ring prod, cons;
	struct ivshm_ring_ctrl *ctrl;
	uint64_t next_put = 0, next_get = 0; /* sequence numbers (honest path) */
	int honest = 1, prod_ok, cons_ok;
	uint8_t *mem;

	CHECK(len != 0);
	mem = aligned_alloc(64, (len + 63) & ~(size_t)63);
	CHECK(mem != NULL);
	CHECK(ivshm_ring_format(mem, len, cap, esz) == 0);
	ctrl = (struct ivshm_ring_ctrl *)mem;
	if (g & 0x80) {
		/* The peer wrote the control block before we attach. */
		size_t k = in.n < sizeof(*ctrl) ? in.n : sizeof(*ctrl);

		k = take8(&in) % (k + 1);
		for (size_t i = 0; i < k; i++)
			mem[take8(&in) % sizeof(*ctrl)] = take8(&in);
		honest = 0;
	}
	prod_ok = ivshm_ring_attach(&prod, mem, len, cap, esz,
				    IVSHM_RING_PRODUCER) == 0;
	cons_ok = ivshm_ring_attach(&cons, mem, len, cap, esz,
				    IVSHM_RING_CONSUMER) == 0;
	if (honest)
		CHECK(prod_ok && cons_ok);

	while (in.n) {
		uint8_t op = take8(&in);
		uint32_t n = take8(&in) % (2 * cap + 2);
		uint64_t buf[(2 * 32 + 2) * 2];
		const uint32_t w = esz / 8; /* words per element */
		uint32_t start = 0;
		int r;

		switch (op % 10) {
		case 0: /* enqueue */
			if (!prod_ok)
				break;
			for (uint32_t i = 0; i < n; i++)
				buf[i * w] = buf[i * w + w - 1] = next_put + i;
			r = ivshm_ring_enqueue_burst(&prod, buf, n);
			CHECK(r <= (int)n && r <= (int)cap);
			if (r > 0)
				next_put += (uint32_t)r;
			if (honest)
				CHECK(r >= 0);
			break;
		case 1: /* dequeue */
			if (!cons_ok)
				break;
			r = ivshm_ring_dequeue_burst(&cons, buf, n);
			CHECK(r <= (int)n && r <= (int)cap);
			if (honest) {
				CHECK(r >= 0);
				for (int i = 0; i < r; i++)
					CHECK(buf[(uint32_t)i * w] == next_get + (uint64_t)i);
			}
			if (r > 0)
				next_get += (uint32_t)r;
			break;
		case 2: { /* reserve, fill, commit part */
			uint32_t m;

			if (!prod_ok)
				break;
			r = ivshm_ring_reserve(&prod, n, &start);
			CHECK(r <= (int)n && r <= (int)cap);
			if (r <= 0)
				break;
			for (int i = 0; i < r; i++) {
				uint64_t v = next_put + (uint64_t)i;

				memcpy(ivshm_ring_slot(&prod, start + (uint32_t)i),
				       &v, sizeof(v));
			}
			m = take8(&in) % ((uint32_t)r + 2);
			if (m > (uint32_t)r) {
				CHECK(ivshm_ring_commit(&prod, m) < 0);
				m = (uint32_t)r;
			}
			CHECK(ivshm_ring_commit(&prod, m) == 0);
			/* Uncommitted reservations stay pending: commit them too
			 * so the honest FIFO stays exact. */
			if ((uint32_t)r > m)
				CHECK(ivshm_ring_commit(&prod, (uint32_t)r - m) == 0);
			next_put += (uint32_t)r;
			break;
		}
		case 3: { /* peek, check, release part */
			uint32_t m;

			if (!cons_ok)
				break;
			r = ivshm_ring_peek(&cons, n, &start);
			CHECK(r <= (int)n && r <= (int)cap);
			if (r <= 0)
				break;
			for (int i = 0; i < r; i++) {
				uint64_t v;

				memcpy(&v, ivshm_ring_slot(&cons, start + (uint32_t)i),
				       sizeof(v));
				if (honest)
					CHECK(v == next_get + (uint64_t)i);
			}
			m = take8(&in) % ((uint32_t)r + 2);
			if (m > (uint32_t)r) {
				CHECK(ivshm_ring_release(&cons, m) < 0);
				m = (uint32_t)r;
			}
			CHECK(ivshm_ring_release(&cons, m) == 0);
			if ((uint32_t)r > m)
				CHECK(ivshm_ring_release(&cons, (uint32_t)r - m) == 0);
			next_get += (uint32_t)r;
			break;
		}
		case 4: /* counts */
			if (prod_ok) {
				r = ivshm_ring_count(&prod);
				CHECK(r <= (int)cap);
				if (honest)
					CHECK(r == (int)(next_put - next_get));
			}
			if (cons_ok) {
				r = ivshm_ring_count(&cons);
				CHECK(r <= (int)cap);
			}
			break;
		case 5: /* doorbell suppression */
			if (cons_ok) {
				r = ivshm_ring_wake_enable(&cons);
				CHECK(r <= (int)cap);
				if (op & 0x10)
					ivshm_ring_wake_disable(&cons);
			}
			if (prod_ok) {
				r = ivshm_ring_needs_wake(&prod);
				CHECK(r == 0 || r == 1);
			}
			break;
		case 6: /* hostile peer: producer index */
			__atomic_store_n(&ctrl->prod_idx, take32(&in), __ATOMIC_RELAXED);
			honest = 0;
			break;
		case 7: /* hostile peer: consumer index or wake word */
			if (op & 0x10)
				__atomic_store_n(&ctrl->wake, take32(&in), __ATOMIC_RELAXED);
			else
				__atomic_store_n(&ctrl->cons_idx, take32(&in),
						 __ATOMIC_RELAXED);
			honest = 0;
			break;
		case 8: /* hostile peer: any byte of the block, slots included */
			mem[take32(&in) % len] = take8(&in);
			honest = 0;
			break;
		case 9: /* re-attach a handle to the ring as it is now */
			if (op & 0x10)
				prod_ok = ivshm_ring_attach(&prod, mem, len, cap, esz,
							    IVSHM_RING_PRODUCER) == 0;
			else
				cons_ok = ivshm_ring_attach(&cons, mem, len, cap, esz,
							    IVSHM_RING_CONSUMER) == 0;
			/* Re-attach keeps indices but forgets pending work. */
			honest = 0;
			break;
		}
	}
	free(mem);
	return 0;
}
