/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * transport_layout.h - the transport's part of a shared region.
 *
 * Shared-memory layout only (as memif.h). All fields are little-endian
 * fixed-width integers, accessed through common/ivshm_atomic.h. Every value
 * here may be rewritten by any peer at any time: readers load once into a
 * local and validate. docs/layout.md describes the same layout in prose;
 * the static assertions below pin every offset it quotes.
 *
 * Region map (offsets from the region base):
 *   0       4096   ivshmem region header (ivshmem/region_layout.h)
 *   4096    4096   struct ivshm_tp_hdr      transport header
 *   8192    32768  struct ivshm_tp_chan[64] channel table (512 bytes each)
 *   40960   ...    channel areas, allocated by a bump pointer (4 KiB aligned)
 *
 * A channel area (offsets from its start; nq queues, rs = ring_size,
 * bs = buf_size, R = ivshm_ring_memsize(rs, 8) rounded up to 64):
 *   ring(dir, q)  at (dir * nq + q) * R            descriptor rings
 *   buf(dir, q)   at B0 + (dir * nq + q) * rs * bs  rs buffers of bs bytes,
 *                 B0 = 2 * nq * R rounded up to 4096
 * dir 0 carries side A -> side B (A produces, owns the buffers), dir 1 B -> A.
 * Slot i of ring(dir, q) always describes buffer i of buf(dir, q).
 */
#ifndef IVSHM_TRANSPORT_LAYOUT_H
#define IVSHM_TRANSPORT_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "ivshm/ivshmem.h"
#include "ivshm/transport.h"

#define IVSHM_TP_MAGIC   UINT64_C(0x54524f50534e5254) /* "TRNSPORT" LE */
#define IVSHM_TP_VERSION 1u

#define IVSHM_TP_HDR_OFF   IVSHM_REGION_HDR_SIZE  /* 4096 */
#define IVSHM_TP_HDR_SIZE  4096u
#define IVSHM_TP_TABLE_OFF (IVSHM_TP_HDR_OFF + IVSHM_TP_HDR_SIZE) /* 8192 */
#define IVSHM_TP_CHAN_SIZE 512u
#define IVSHM_TP_TABLE_SIZE (IVSHM_TRANSPORT_MAX_CHANNELS * IVSHM_TP_CHAN_SIZE)
#define IVSHM_TP_DATA_OFF  (IVSHM_TP_TABLE_OFF + IVSHM_TP_TABLE_SIZE) /* 40960 */
#define IVSHM_TP_AREA_ALIGN 4096u
#define IVSHM_TP_RING_ALIGN 64u

/* Transport header init word (same protocol as the region header's). */
enum ivshm_tp_init {
	IVSHM_TP_HDR_UNINIT = 0,
	IVSHM_TP_HDR_FORMATTING = 1,
	IVSHM_TP_HDR_READY = 2,
};

struct ivshm_tp_hdr {
	uint64_t magic;        /* IVSHM_TP_MAGIC */
	uint32_t version;      /* IVSHM_TP_VERSION */
	uint32_t init_state;   /* enum ivshm_tp_init: CAS, release/acquire */
	uint64_t region_size;  /* whole region, as mapped by the formatter */
	uint32_t max_channels; /* IVSHM_TRANSPORT_MAX_CHANNELS */
	uint32_t chan_size;    /* IVSHM_TP_CHAN_SIZE */
	uint64_t table_off;    /* IVSHM_TP_TABLE_OFF */
	uint64_t data_off;     /* IVSHM_TP_DATA_OFF */
	uint64_t alloc_next;   /* bump pointer for channel areas: CAS */
	uint32_t formatter_pid;
	uint32_t pad0;
	uint64_t region_id;    /* random per transport formatting */
	uint8_t reserved[IVSHM_TP_HDR_SIZE - 72];
};

/* Channel geometry word states (ivshm_tp_chan.geom_state). */
enum ivshm_tp_geom {
	IVSHM_TP_GEOM_NONE = 0,
	IVSHM_TP_GEOM_ALLOCATING = 1,
	IVSHM_TP_GEOM_READY = 2,
};

/* Side states (ivshm_tp_side.state). */
enum ivshm_tp_state {
	IVSHM_TP_ABSENT = 0,  /* nobody, or leaving */
	IVSHM_TP_DOWN = 1,    /* present; own tx rings not usable (formatting) */
	IVSHM_TP_SIDE_READY = 2, /* own tx rings formatted for generation gen */
};

/* Descriptor flags (low 16 bits of ivshm_tp_desc.flags). */
#define IVSHM_TP_D_MORE    IVSHM_TRANSPORT_F_MORE /* packet continues */
#define IVSHM_TP_D_DISCARD (1u << 1)              /* empty slot: skip */
#define IVSHM_TP_D_VALID   (IVSHM_TP_D_MORE | IVSHM_TP_D_DISCARD)

/* One ring element: the buffer is implied by the slot index. */
struct ivshm_tp_desc {
	uint32_t len;    /* bytes used in the slot's buffer */
	uint32_t flags;  /* IVSHM_TP_D_* */
};

/*
 * A side's status block: written only by the process holding the side
 * (except occupant, which a newcomer may take over by CAS from a dead
 * holder), read by the other side. Two cache lines: the heartbeat, written
 * every housekeeping period, sits apart from the state words.
 */
struct ivshm_tp_side {
	uint64_t occupant;   /* random token of the holder, 0 = free: CAS */
	uint32_t state;      /* enum ivshm_tp_state: release after formatting */
	uint32_t gen;        /* generation of own tx rings (never 0 when READY) */
	uint32_t ack;        /* peer gen whose rings we consume, 0 = detached */
	uint32_t reset_req;  /* bumped to ask the peer to reset its rings */
	uint32_t pid;        /* holder's pid (meaningful with the same boot_id) */
	uint32_t ep_id;      /* holder's ivshmem peer id, 0xffffffff = none */
	uint64_t boot_hash;  /* hash of the holder's kernel boot_id, 0 = unknown */
	uint32_t nvectors;   /* holder's interrupt vectors */
	uint32_t pad0;
	/* Token of the holder that wrote pid..nvectors: release store after
	 * them. A side just claimed still shows the previous holder's identity
	 * until this equals occupant; until then it describes nobody. */
	uint64_t id_token;
	uint8_t pad1[IVSHM_CACHE_LINE - 56];
	uint64_t heartbeat;  /* bumped by every housekeeping call */
	uint8_t pad2[IVSHM_CACHE_LINE - 8];
};

/* A channel table entry: geometry line, then the two side blocks. */
struct ivshm_tp_chan {
	uint32_t geom_state;  /* enum ivshm_tp_geom: CAS, release/acquire */
	uint32_t nb_queues;
	uint32_t ring_size;
	uint32_t buf_size;
	uint32_t max_pkt_len;
	uint32_t pad0;
	uint64_t mem_off;     /* channel area, from the region base */
	uint64_t mem_size;
	uint8_t pad1[IVSHM_CACHE_LINE - 40];
	struct ivshm_tp_side side[2];
	uint8_t reserved[IVSHM_TP_CHAN_SIZE - IVSHM_CACHE_LINE -
			 2 * sizeof(struct ivshm_tp_side)];
};

#ifndef __cplusplus
_Static_assert(sizeof(struct ivshm_tp_hdr) == IVSHM_TP_HDR_SIZE, "hdr size");
_Static_assert(offsetof(struct ivshm_tp_hdr, init_state) == 12, "layout");
_Static_assert(offsetof(struct ivshm_tp_hdr, alloc_next) == 48, "layout");
_Static_assert(offsetof(struct ivshm_tp_hdr, region_id) == 64, "layout");
_Static_assert(sizeof(struct ivshm_tp_desc) == 8, "descriptor size");
_Static_assert(sizeof(struct ivshm_tp_side) == 2 * IVSHM_CACHE_LINE,
	       "side block: two lines");
_Static_assert(offsetof(struct ivshm_tp_side, id_token) == 48, "layout");
_Static_assert(offsetof(struct ivshm_tp_side, heartbeat) == IVSHM_CACHE_LINE,
	       "heartbeat on its own line");
_Static_assert(sizeof(struct ivshm_tp_chan) == IVSHM_TP_CHAN_SIZE,
	       "channel entry size");
_Static_assert(offsetof(struct ivshm_tp_chan, side) == IVSHM_CACHE_LINE,
	       "side blocks after the geometry line");
_Static_assert(IVSHM_TP_DATA_OFF == 40960, "first channel area");
#endif

#endif /* IVSHM_TRANSPORT_LAYOUT_H */
