/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * proto.h - encode, send and receive ivshmem server messages (private).
 *
 * The wire format is in ivshm_proto.h. These helpers never block (they pass
 * MSG_DONTWAIT), never raise SIGPIPE (MSG_NOSIGNAL), check every length,
 * and close every descriptor they receive that the protocol does not
 * expect, so a hostile peer cannot make us leak descriptors. Thread-safe
 * for distinct sockets; one socket is used by one thread at a time.
 */
#ifndef IVSHM_PROTO_H
#define IVSHM_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ivshm_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Store @p v little-endian into @p out (IVSHM_PROTO_MSG_SIZE bytes). */
void ivshm_proto_encode(int64_t v, uint8_t out[IVSHM_PROTO_MSG_SIZE]);

/** Read a little-endian message value from @p in. */
int64_t ivshm_proto_decode(const uint8_t in[IVSHM_PROTO_MSG_SIZE]);

/**
 * Send bytes [@p off, 8) of message @p v on @p sock, with @p fd attached
 * (SCM_RIGHTS) when @p off is 0 and @p fd >= 0.
 * @return bytes sent (> 0; fewer than asked means a partial send, resume
 *         with the new offset and no descriptor); -EAGAIN socket full;
 *         -EINVAL bad offset; other -errno from sendmsg (-EPIPE, ...).
 */
ssize_t ivshm_proto_send_part(int sock, int64_t v, int fd, size_t off);

/** Receive state of one stream: a partly read message and its descriptor. */
struct ivshm_proto_rx {
	uint8_t buf[IVSHM_PROTO_MSG_SIZE];
	unsigned int have; /* bytes of buf filled */
	int fd;            /* descriptor received for this message, or -1 */
};

/** Start empty. */
void ivshm_proto_rx_init(struct ivshm_proto_rx *rx);

/** Forget a partial message and close its descriptor, if any. */
void ivshm_proto_rx_reset(struct ivshm_proto_rx *rx);

/**
 * Receive one whole message without blocking.
 * @param[out] v   message value
 * @param[out] fd  its descriptor (caller owns it) or -1
 * @return 1 a message is complete; -EAGAIN not yet (partial data kept in
 *         @p rx); -ECONNRESET orderly end of stream at a message boundary;
 *         -EPROTO end of stream inside a message, more than one descriptor
 *         on a message, truncated ancillary data, or ancillary data of an
 *         unexpected kind (every descriptor received has been closed);
 *         other -errno from recvmsg.
 */
int ivshm_proto_recv(int sock, struct ivshm_proto_rx *rx, int64_t *v, int *fd);

/**
 * Read and throw away up to @p max bytes a peer sent that the protocol
 * does not allow (clients send nothing), closing any descriptor in them.
 * @return bytes discarded (> 0); 0 end of stream; -EAGAIN nothing pending;
 *         other -errno.
 */
ssize_t ivshm_proto_discard(int sock, size_t max);

#ifdef __cplusplus
}
#endif

#endif /* IVSHM_PROTO_H */
