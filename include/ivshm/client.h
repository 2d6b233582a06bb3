/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file
 * ivshm/client.h - host client of an ivshmem server.
 *
 * Connects to a server that speaks QEMU's ivshmem protocol (the project's
 * ivshmem-server or QEMU's contrib example), validates the set-up sequence
 * (version, own id, memory descriptor), maps the shared region, and keeps
 * track of the other peers and their doorbell eventfds as the server
 * announces them. Nothing blocks unless asked to: the caller polls
 * ivshm_client_fd() and calls ivshm_client_process(), or calls
 * ivshm_client_wait() with a timeout.
 *
 * Threads: ivshm_client_process() and ivshm_client_wait() are called by one
 * thread at a time (the "control" thread). ivshm_client_notify() and the
 * peer queries may be called from any number of threads at once, also while
 * the control thread processes messages. Peer callbacks run on the control
 * thread with no lock held, so they may call any function but close.
 *
 * Every function returns 0 (or a count) on success and a negative errno on
 * failure; the library never logs and sets no errno.
 */
#ifndef IVSHM_CLIENT_H
#define IVSHM_CLIENT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ivshm_client;

/**
 * Peer event: @p joined is 1 when @p peer appeared (its first doorbell is
 * known), 0 when it left. Runs inside ivshm_client_process() or
 * ivshm_client_wait(), after the batch of messages that caused it.
 */
typedef void (*ivshm_client_peer_fn)(void *arg, uint16_t peer, int joined);

/** Optional parameters of ivshm_client_connect(); zero means default. */
struct ivshm_client_params {
	/** Keep retrying connect() while the socket is missing or refuses,
	 *  and wait for the set-up sequence, this many ms in all
	 *  (0: one attempt, with a 5000 ms limit for the set-up; <0: forever). */
	int connect_timeout_ms;
	ivshm_client_peer_fn peer_event; /**< may be NULL */
	void *peer_event_arg;
	/** Do not mmap the region (ivshm_client_base() returns NULL). */
	int no_map;
};

/**
 * Connect to the server listening on UNIX socket @p path and complete the
 * set-up: protocol version 0, own id, shared-memory descriptor, and the own
 * doorbell eventfds that the server sends at once (more own vectors that
 * arrive later are added by ivshm_client_process()). Blocks at most for the
 * connect timeout.
 * @return 0 and *out;
 *   -EINVAL bad argument or path too long;
 *   -ENOENT / -ECONNREFUSED no server there (after retrying);
 *   -ETIMEDOUT the server did not finish the set-up in time;
 *   -ECONNRESET the server closed the connection during set-up (for the
 *    project's server: peer limit reached or ids exhausted);
 *   -EPROTONOSUPPORT the server speaks another protocol version;
 *   -EPROTO malformed set-up message;
 *   -ENOMEM; other -errno from socket, connect, fstat or mmap.
 */
int ivshm_client_connect(const char *path,
			 const struct ivshm_client_params *params,
			 struct ivshm_client **out);

/** Disconnect, unmap, close every descriptor, free. NULL is ignored.
 *  No other call on @p c may run concurrently or after. */
void ivshm_client_close(struct ivshm_client *c);

/** Own peer id (0..65535) given by the server. */
uint16_t ivshm_client_id(const struct ivshm_client *c);

/** The server socket: readable when ivshm_client_process() has work. */
int ivshm_client_fd(const struct ivshm_client *c);

/** The shared-memory descriptor (owned by the client; do not close). */
int ivshm_client_mem_fd(const struct ivshm_client *c);

/** Base of the mapped region, or NULL with params.no_map. */
void *ivshm_client_base(const struct ivshm_client *c);

/** Region size in bytes (the memory descriptor's size). */
uint64_t ivshm_client_size(const struct ivshm_client *c);

/** Number of own vectors (own eventfds received so far). Thread-safe. */
unsigned int ivshm_client_nvectors(const struct ivshm_client *c);

/**
 * Own eventfd for @p vector, for the caller's poll/epoll: readable when a
 * peer rang this vector; read 8 bytes to acknowledge. The descriptor is
 * non-blocking and owned by the client.
 * @return fd; -EINVAL vector out of range.
 */
int ivshm_client_vector_fd(const struct ivshm_client *c, unsigned int vector);

/**
 * Handle every message the server has sent, without blocking; peer
 * callbacks run here. Control thread only.
 * @return number of messages handled (>= 0); -ECONNRESET the server has
 *   gone (the region stays mapped, known peers stay notifiable);
 *   -EPROTO the server sent a malformed message (connection dropped);
 *   other -errno.
 */
int ivshm_client_process(struct ivshm_client *c);

/**
 * Wait up to @p timeout_ms (-1 forever, 0 poll) for an own vector or a
 * server message; handles the messages and acknowledges (reads) the
 * vectors that fired. Control thread only.
 * @param[out] fired  may be NULL; bit v set when own vector v fired.
 * @return 1 something happened; 0 timeout; -ECONNRESET / -EPROTO as for
 *   ivshm_client_process() (vectors still reported in @p fired); other -errno.
 */
int ivshm_client_wait(struct ivshm_client *c, int timeout_ms, uint64_t *fired);

/**
 * Ring @p peer's doorbell @p vector (write 1 to its eventfd). Never blocks.
 * Thread-safe: any number of threads, concurrently with process/wait.
 * A peer may also ring itself (its own id).
 * @return 0; -ENOENT unknown peer; -EINVAL vector out of range for that
 *   peer; other -errno from write (a full eventfd counter is not an error:
 *   the wake-up is pending anyway).
 */
int ivshm_client_notify(struct ivshm_client *c, uint16_t peer,
			unsigned int vector);

/**
 * Known peers (excluding self) in increasing id order. Thread-safe.
 * @return the number of peers (may exceed @p max; only @p max stored).
 */
int ivshm_client_peers(const struct ivshm_client *c, uint16_t *ids,
		       unsigned int max);

/** Vectors known for @p peer (0 if the peer is unknown). Thread-safe. */
unsigned int ivshm_client_peer_nvectors(const struct ivshm_client *c,
					uint16_t peer);

/** 1 if the server connection is up, 0 once it has gone or failed. */
int ivshm_client_connected(const struct ivshm_client *c);

#ifdef __cplusplus
}
#endif

#endif /* IVSHM_CLIENT_H */
