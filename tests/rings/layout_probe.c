/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * layout_probe.c - exports rings/ring_layout.h offsets to the C++ tests,
 * which cannot include that C11 header, so their mirror is checked.
 */
#include <stddef.h>

#include "ring_layout.h"

size_t ivshm_test_ring_layout(int what);

size_t ivshm_test_ring_layout(int what)
{
	switch (what) {
	case 0: return sizeof(struct ivshm_ring_ctrl);
	case 1: return offsetof(struct ivshm_ring_ctrl, magic);
	case 2: return offsetof(struct ivshm_ring_ctrl, capacity);
	case 3: return offsetof(struct ivshm_ring_ctrl, elem_size);
	case 4: return offsetof(struct ivshm_ring_ctrl, prod_idx);
	case 5: return offsetof(struct ivshm_ring_ctrl, cons_idx);
	case 6: return offsetof(struct ivshm_ring_ctrl, wake);
	default: return (size_t)-1;
	}
}
