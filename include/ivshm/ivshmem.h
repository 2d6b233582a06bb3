/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file
 * ivshm/ivshmem.h - one endpoint interface for hosts, guests and plain files.
 *
 * An endpoint is this process's attachment to one shared region:
 *  - "socket:PATH"  a client of an ivshmem server (the project's, or QEMU's
 *                   example server): region from the server's memory fd,
 *                   doorbells through the peers' eventfds, peer join/leave
 *                   announced by the server;
 *  - "pci:BDF", "pci:auto"  the ivshmem PCI device (1af4:1110) inside a Linux
 *                   guest: BAR2 mapped as the region, BAR0's Doorbell and
 *                   IVPosition registers; interrupts through VFIO or UIO where
 *                   the guest kernel offers them, else polling;
 *  - "shm:PATH[?size=N]"  a plain file (in /dev/shm or hugetlbfs) shared with
 *                   no server and no doorbell: polling only. Also what an
 *                   ivshmem-plain device is, seen from a guest
 *                   ("pci:..." on a device without BAR0 doorbells behaves so).
 *
 * The first IVSHM_REGION_HDR_SIZE bytes of every region belong to this
 * module (magic, layout version, size, init state; formatted by the server,
 * or by the first peer of a plain file chosen by compare-and-swap); the rest
 * belongs to the caller (the transport). ivshm_endpoint_open() returns only
 * once the header is valid and ready.
 *
 * What a backend cannot do it reports with -ENOTSUP, never a silent no-op.
 * Functions return 0 (or a count) on success and a negative errno on error.
 */
#ifndef IVSHM_IVSHMEM_H
#define IVSHM_IVSHMEM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Bytes at the start of each region reserved for the region header. */
#define IVSHM_REGION_HDR_SIZE 4096u

/** Most interrupt vectors per peer (ivshmem-doorbell's "vectors" ≤ 64). */
#define IVSHM_MAX_VECTORS 64u

struct ivshm_endpoint;

/** Backend of an endpoint. */
enum ivshm_endpoint_kind {
	IVSHM_EP_SOCKET = 1,
	IVSHM_EP_PCI = 2,
	IVSHM_EP_SHM = 3,
};

/** Capability bits (ivshm_endpoint_caps()). */
#define IVSHM_EP_CAP_DOORBELL    (1u << 0) /**< notify() reaches peers */
#define IVSHM_EP_CAP_INTERRUPT   (1u << 1) /**< own vectors wake a waiter */
#define IVSHM_EP_CAP_PEER_EVENTS (1u << 2) /**< peer join/leave announced */
#define IVSHM_EP_CAP_PEER_ID     (1u << 3) /**< this endpoint has a peer id */

/** Open flags. */
#define IVSHM_EP_F_POLL   (1u << 0) /**< never use interrupts, even if present */
#define IVSHM_EP_F_NOFORMAT (1u << 1) /**< shm: fail if the region is unformatted */

/**
 * Peer event callback: @p joined is 1 when @p peer appears, 0 when it
 * leaves. Called from ivshm_endpoint_process() or ivshm_endpoint_wait().
 */
typedef void (*ivshm_peer_event_fn)(void *arg, uint16_t peer, int joined);

/** Optional parameters of ivshm_endpoint_open(); zero means default. */
struct ivshm_endpoint_params {
	unsigned int flags;          /**< IVSHM_EP_F_* */
	uint64_t size;               /**< shm: size when creating the file */
	int connect_timeout_ms;      /**< socket: keep retrying this long */
	ivshm_peer_event_fn peer_event;
	void *peer_event_arg;
};

/**
 * Open an endpoint from a description string (see the file comment).
 * Blocks at most for the connect timeout (socket) or until a concurrent
 * formatter finishes (shm).
 * @return 0 and *out; -EINVAL bad description; -ENOENT no such socket,
 *         device or file; -EPROTO the server or region misbehaves; other
 *         -errno from the system.
 */
int ivshm_endpoint_open(const char *desc,
			const struct ivshm_endpoint_params *params,
			struct ivshm_endpoint **out);

/** Unmap, close every descriptor, free. NULL is ignored. */
void ivshm_endpoint_close(struct ivshm_endpoint *ep);

enum ivshm_endpoint_kind ivshm_endpoint_kind(const struct ivshm_endpoint *ep);
uint32_t ivshm_endpoint_caps(const struct ivshm_endpoint *ep);

/** Base of the mapped region in this process (header included). */
void *ivshm_endpoint_base(const struct ivshm_endpoint *ep);
/** Size of the mapped region in bytes. */
uint64_t ivshm_endpoint_size(const struct ivshm_endpoint *ep);

/** Own peer id (0..65535), or -ENOTSUP (plain file). */
int ivshm_endpoint_id(const struct ivshm_endpoint *ep);

/** Number of own interrupt vectors (0 when there are none). */
unsigned int ivshm_endpoint_nvectors(const struct ivshm_endpoint *ep);

/**
 * Ring @p peer's doorbell for @p vector. Never blocks. May be called from
 * several threads at once and concurrently with ivshm_endpoint_process().
 * @return 0; -ENOTSUP no doorbells; -ENOENT unknown peer; -EINVAL vector
 *         out of range for that peer.
 */
int ivshm_endpoint_notify(struct ivshm_endpoint *ep, uint16_t peer,
			  unsigned int vector);

/**
 * A descriptor that becomes readable when own @p vector fires, for the
 * caller's poll/epoll; read 8 bytes (eventfd counter) to acknowledge.
 * @return fd, -ENOTSUP (no interrupts), -EINVAL vector out of range.
 */
int ivshm_endpoint_vector_fd(const struct ivshm_endpoint *ep,
			     unsigned int vector);

/**
 * Descriptor readable when control events (peer join/leave, server gone)
 * are pending; then call ivshm_endpoint_process(). -ENOTSUP if none.
 */
int ivshm_endpoint_control_fd(const struct ivshm_endpoint *ep);

/**
 * Handle pending control events without blocking (peer callbacks run here).
 * @return number of events handled (>= 0); -ECONNRESET once the server is
 *         gone (the region stays mapped).
 */
int ivshm_endpoint_process(struct ivshm_endpoint *ep);

/**
 * Wait up to @p timeout_ms (-1 forever, 0 poll) for any own vector or a
 * control event; processes control events and acknowledges vectors.
 * @p fired (may be NULL) receives a bit mask of the vectors that fired.
 * @return 1 something happened, 0 timeout, -ENOTSUP nothing to wait on
 *         (plain file: poll the region instead), other -errno.
 */
int ivshm_endpoint_wait(struct ivshm_endpoint *ep, int timeout_ms,
			uint64_t *fired);

/**
 * Peers currently known (excluding self), in increasing id order.
 * @return the number of peers (may exceed @p max; only @p max are stored),
 *         or -ENOTSUP when the backend cannot tell.
 */
int ivshm_endpoint_peers(const struct ivshm_endpoint *ep, uint16_t *ids,
			 unsigned int max);

/** 1 if @p peer is known to be present, 0 if not, -ENOTSUP if unknowable. */
int ivshm_endpoint_peer_present(const struct ivshm_endpoint *ep,
				uint16_t peer);

#ifdef __cplusplus
}
#endif

#endif /* IVSHM_IVSHMEM_H */
