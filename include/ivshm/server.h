/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file
 * ivshm/server.h - an ivshmem server: shared memory plus doorbell eventfds
 * for QEMU's ivshmem-doorbell device and for host clients (ivshm/client.h).
 *
 * Speaks QEMU's ivshmem server protocol, version 0 (docs/protocol.md), so an
 * unmodified `-device ivshmem-doorbell,chardev=...` connects to it. The
 * server creates the memory (memfd, a file in a directory such as
 * hugetlbfs, or a POSIX shm object), formats the region header at offset 0
 * (ivshmem/region_layout.h), listens on a UNIX socket and runs an epoll loop:
 *  - ids are handed out in increasing order and reused only after wrapping
 *    at 65536 (QEMU 7.2 crashes when an id comes back too soon);
 *  - each peer has its own outgoing queue: a client that never reads, or
 *    vanishes at any moment, delays nobody; every send is checked and a
 *    peer whose socket fails is dropped and announced to the others;
 *  - a peer whose queue exceeds the bound is dropped as not reading.
 *
 * Threads: one thread runs ivshm_server_run() (or ivshm_server_process());
 * ivshm_server_stop() may be called from any thread or a signal handler;
 * ivshm_server_npeers() from any thread. Returns 0 or a negative errno.
 * The library logs only through the caller's callback.
 */
#ifndef IVSHM_SERVER_H
#define IVSHM_SERVER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ivshm_server;

/** Where the shared memory comes from. */
enum ivshm_server_mem {
	IVSHM_SERVER_MEM_MEMFD = 0, /**< anonymous memfd (default) */
	IVSHM_SERVER_MEM_DIR = 1,   /**< unlinked file in directory mem_path */
	IVSHM_SERVER_MEM_SHM = 2,   /**< POSIX shm object named mem_path */
};

/** Log levels are syslog's (LOG_ERR=3 ... LOG_DEBUG=7). */
typedef void (*ivshm_server_log_fn)(void *arg, int level, const char *msg);

/** Flags of struct ivshm_server_params. */
#define IVSHM_SERVER_F_NUMA  (1u << 0) /**< bind memory to numa_node */
#define IVSHM_SERVER_F_GROUP (1u << 1) /**< chown the socket to socket_gid */

/** Server parameters; zero fields take the documented default. */
struct ivshm_server_params {
	const char *socket_path;     /**< required */
	enum ivshm_server_mem mem;
	const char *mem_path;        /**< directory (MEM_DIR) or name (MEM_SHM) */
	/** Region size in bytes; required (0 is an error). A size that is
	 *  not a power of two is rounded up with a warning; at least 4096. */
	uint64_t size;
	unsigned int vectors;        /**< 1..64; 0 means 1 */
	unsigned int max_peers;      /**< 1..65536; 0 means 65536 */
	unsigned int flags;          /**< IVSHM_SERVER_F_* */
	int numa_node;               /**< with IVSHM_SERVER_F_NUMA */
	unsigned int socket_mode;    /**< chmod the socket if non-zero */
	unsigned int socket_gid;     /**< with IVSHM_SERVER_F_GROUP */
	/** Messages queued to one peer, beyond its own connection set-up,
	 *  before it is dropped as not reading; 0 means 65536. */
	unsigned int max_queue;
	ivshm_server_log_fn log;     /**< may be NULL */
	void *log_arg;
};

/**
 * Create the memory, format its header and listen on the socket. Logs the
 * reason of every failure through the callback.
 * A socket file left by a dead server is replaced; a live server there is
 * not disturbed.
 * @return 0 and *out;
 *   -EINVAL bad parameter (no socket path, size 0, too small or too large
 *    to round up, vectors > 64, max_peers > 65536, path too long);
 *   -ENOENT the socket's directory or the memory directory does not exist;
 *   -EADDRINUSE a live server already listens on socket_path;
 *   -EEXIST socket_path exists and is not a socket;
 *   -ENOTSUP NUMA requested but libnuma is absent or NUMA unavailable;
 *   -ENOMEM; other -errno from memfd_create, open, shm_open, ftruncate,
 *   mmap, mbind, socket, bind, chmod, chown or listen.
 */
int ivshm_server_create(const struct ivshm_server_params *params,
			struct ivshm_server **out);

/**
 * Run the event loop until ivshm_server_stop(). Blocks.
 * @return 0 after a stop; -errno if epoll fails.
 */
int ivshm_server_run(struct ivshm_server *srv);

/**
 * One loop iteration: wait up to @p timeout_ms (-1 forever) and handle
 * what is ready. For callers with their own loop (poll ivshm_server_fd()).
 * @return 0, 1 once stopped, -errno if epoll fails.
 */
int ivshm_server_process(struct ivshm_server *srv, int timeout_ms);

/** The epoll descriptor: readable when ivshm_server_process() has work. */
int ivshm_server_fd(const struct ivshm_server *srv);

/**
 * Ask the loop to return. Async-signal-safe and thread-safe.
 * @return 0, or -errno from write.
 */
int ivshm_server_stop(struct ivshm_server *srv);

/**
 * Disconnect every peer, close the memory, remove the socket file (if it is
 * still ours) and a POSIX shm object this server created; free. NULL is
 * ignored. Not concurrent with run/process.
 */
void ivshm_server_destroy(struct ivshm_server *srv);

/** Region size after rounding. */
uint64_t ivshm_server_size(const struct ivshm_server *srv);

/** Vectors per peer. */
unsigned int ivshm_server_vectors(const struct ivshm_server *srv);

/** Connected peers now. Thread-safe (a snapshot). */
unsigned int ivshm_server_npeers(const struct ivshm_server *srv);

/** The memory descriptor (owned by the server; do not close). */
int ivshm_server_mem_fd(const struct ivshm_server *srv);

#ifdef __cplusplus
}
#endif

#endif /* IVSHM_SERVER_H */
