/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * header_c.c - ivshm/transport.h compiles alone as C11 (the unit test
 * includes it alone first as C++).
 */
#include "ivshm/transport.h"

int ivshm_tp_header_c_probe(void);

int ivshm_tp_header_c_probe(void)
{
	return (int)sizeof(struct ivshm_transport_stats);
}
