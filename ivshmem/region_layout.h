/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * region_layout.h - the region header at offset 0 of every shared region.
 *
 * Shared-memory layout only (as memif.h): nothing else belongs here. All
 * fields are little-endian fixed-width integers (every peer is an x86-64 or
 * other little-endian host here; the magic would not match otherwise).
 *
 * Formatting: the server formats the region it creates before it hands the
 * memory fd to anyone. For a plain shared file, the first peer to
 * compare-and-swap init_state from UNINIT to FORMATTING formats it, then
 * publishes READY with a release store; others load init_state with acquire
 * and wait for READY (and may take over from a formatter whose pid is gone).
 * After READY every reader still validates magic, version, hdr_size and
 * size against what it mapped: any peer can rewrite these bytes.
 *
 * The first IVSHM_REGION_HDR_SIZE (4096) bytes belong to ivshmem/; the rest
 * belongs to the transport, which formats its own area with its own init
 * word.
 */
#ifndef IVSHM_REGION_LAYOUT_H
#define IVSHM_REGION_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "ivshm/ivshmem.h"

#ifdef __cplusplus
#define IVSHM__STATIC_ASSERT static_assert
#else
#define IVSHM__STATIC_ASSERT _Static_assert
#endif

#define IVSHM_REGION_MAGIC   UINT64_C(0x4e4752484d485356) /* "VSHMHRGN" LE */
#define IVSHM_REGION_VERSION 1u

enum ivshm_region_state {
	IVSHM_REGION_UNINIT = 0,
	IVSHM_REGION_FORMATTING = 1,
	IVSHM_REGION_READY = 2,
};

struct ivshm_region_hdr {
	uint64_t magic;        /* IVSHM_REGION_MAGIC */
	uint32_t version;      /* IVSHM_REGION_VERSION */
	uint32_t init_state;   /* enum ivshm_region_state; CAS/acquire/release */
	uint64_t size;         /* whole region in bytes (power of two) */
	uint32_t hdr_size;     /* IVSHM_REGION_HDR_SIZE */
	uint32_t formatter_pid;/* pid of the formatting process (plain files) */
	uint64_t format_id;    /* random per formatting: tells reformats apart */
	uint8_t reserved[IVSHM_REGION_HDR_SIZE - 40];
};

IVSHM__STATIC_ASSERT(sizeof(struct ivshm_region_hdr) == IVSHM_REGION_HDR_SIZE,
	       "region header fills its page");
IVSHM__STATIC_ASSERT(offsetof(struct ivshm_region_hdr, init_state) == 12, "layout");
IVSHM__STATIC_ASSERT(offsetof(struct ivshm_region_hdr, size) == 16, "layout");
IVSHM__STATIC_ASSERT(offsetof(struct ivshm_region_hdr, format_id) == 32, "layout");

#endif /* IVSHM_REGION_LAYOUT_H */
