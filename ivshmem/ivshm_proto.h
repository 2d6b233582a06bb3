/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ivshm_proto.h - the ivshmem server wire protocol (QEMU protocol version 0).
 *
 * Wire layout only (as memif.h): nothing else belongs here; the functions
 * that encode, send and receive these messages are declared in proto.h.
 *
 * The server and its clients talk over a SOCK_STREAM AF_UNIX socket. Every
 * message the server sends is one signed 64-bit integer in little-endian
 * byte order (QEMU decodes it with le64_to_cpu), optionally with exactly one
 * file descriptor attached as SCM_RIGHTS ancillary data on its first byte.
 * Clients send nothing. Sequence for a new client (docs/protocol.md):
 *   1. IVSHM_PROTO_VERSION, no fd;
 *   2. the client's own id (0..IVSHM_PROTO_MAX_ID), no fd;
 *   3. IVSHM_PROTO_SHM_ID (-1) with the shared-memory fd;
 *   then, in any order, zero or more of:
 *   - id with an eventfd: the next vector (0, 1, ...) of peer "id"; when id
 *     is the client's own, the eventfd is its own interrupt for that vector;
 *   - id without fd: peer "id" has left; forget its eventfds.
 */
#ifndef IVSHM_PROTO_WIRE_H
#define IVSHM_PROTO_WIRE_H

#include <stdint.h>

/** Protocol version sent first; QEMU accepts only 0. */
#define IVSHM_PROTO_VERSION INT64_C(0)
/** Message value that carries the shared-memory file descriptor. */
#define IVSHM_PROTO_SHM_ID INT64_C(-1)
/** Largest peer id (QEMU's IVSHMEM_MAX_PEERS = UINT16_MAX). */
#define IVSHM_PROTO_MAX_ID 65535
/** Number of distinct ids; ids wrap only here. */
#define IVSHM_PROTO_NUM_IDS 65536u
/** Bytes of one message on the wire. */
#define IVSHM_PROTO_MSG_SIZE 8u
/** Most eventfds (interrupt vectors) per peer. */
#define IVSHM_PROTO_MAX_VECTORS 64u

#ifdef __cplusplus
static_assert(IVSHM_PROTO_MSG_SIZE == sizeof(int64_t), "one int64 per message");
#else
_Static_assert(IVSHM_PROTO_MSG_SIZE == sizeof(int64_t), "one int64 per message");
#endif

#endif /* IVSHM_PROTO_WIRE_H */
