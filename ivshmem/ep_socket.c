/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ep_socket.c - a host client of an ivshmem server: "socket:PATH".
 *
 * A thin wrapper over ivshm/client.h: the region is the server's memory
 * descriptor, own vectors are the eventfds the server sent us, doorbells are
 * the peers' eventfds, peer join/leave comes from the server's messages.
 * The server formats the region header; a server that does not (QEMU's
 * example server) leaves it zero, and then the first peer formats it by
 * compare-and-swap as for a plain file.
 * With IVSHM_EP_F_POLL the own eventfds are not offered (no CAP_INTERRUPT,
 * vector_fd() is -ENOTSUP) and wait() waits for control events only;
 * notify() still rings peers.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "endpoint_internal.h"
#include "ivshm/client.h"
#include "ivshm_common.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 5000

static struct ivshm_client *cli(const struct ivshm_endpoint *ep)
{
	return ep->priv;
}

static int socket_open_ep(struct ivshm_endpoint *ep, const char *arg,
			  const struct ivshm__ep_opts *opts)
{
	struct ivshm_client_params cp = { 0 };
	struct ivshm_client *c = NULL;
	uint64_t size;
	int ret;

	cp.connect_timeout_ms = opts->connect_timeout_ms > 0 ?
				opts->connect_timeout_ms :
				DEFAULT_CONNECT_TIMEOUT_MS;
	cp.peer_event = ep->peer_event;
	cp.peer_event_arg = ep->peer_event_arg;
	ret = ivshm_client_connect(arg, &cp, &c);
	if (ret < 0)
		return ret;
	size = ivshm_client_size(c);
	if (ivshm_client_base(c) == NULL || !ivshm_is_pow2_u64(size) ||
	    size < IVSHM__REGION_MIN_SIZE) {
		ret = -EPROTO;
		goto err_close;
	}
	ret = ivshm__region_ready(ivshm_client_base(c), size,
				  (opts->flags & IVSHM_EP_F_NOFORMAT) ?
				  IVSHM__FMT_NONE : IVSHM__FMT_CAS, 1);
	if (ret < 0)
		goto err_close;
	ep->priv = c;
	ep->base = ivshm_client_base(c);
	ep->size = size;
	ep->id = ivshm_client_id(c);
	ep->caps = IVSHM_EP_CAP_DOORBELL | IVSHM_EP_CAP_PEER_EVENTS |
		   IVSHM_EP_CAP_PEER_ID;
	if (!(opts->flags & IVSHM_EP_F_POLL)) {
		ep->nvectors = ivshm_client_nvectors(c);
		if (ep->nvectors > IVSHM_MAX_VECTORS)
			ep->nvectors = IVSHM_MAX_VECTORS;
		if (ep->nvectors > 0)
			ep->caps |= IVSHM_EP_CAP_INTERRUPT;
	}
	return 0;

err_close:
	ivshm_client_close(c);
	return ret;
}

static void socket_close_ep(struct ivshm_endpoint *ep)
{
	ivshm_client_close(cli(ep));
	ep->priv = NULL;
}

static int socket_notify(struct ivshm_endpoint *ep, uint16_t peer,
			 unsigned int vector)
{
	/* The client writes the peer's eventfd; the write is the release of
	 * our region stores (the kernel orders it), the peer's read the
	 * acquire. */
	return ivshm_client_notify(cli(ep), peer, vector);
}

static int socket_vector_fd(const struct ivshm_endpoint *ep,
			    unsigned int vector)
{
	if (ep->nvectors == 0)
		return -ENOTSUP;
	if (vector >= ep->nvectors)
		return -EINVAL;
	return ivshm_client_vector_fd(cli(ep), vector);
}

static int socket_control_fd(const struct ivshm_endpoint *ep)
{
	return ivshm_client_fd(cli(ep));
}

static int socket_process(struct ivshm_endpoint *ep)
{
	return ivshm_client_process(cli(ep));
}

static int socket_wait(struct ivshm_endpoint *ep, int timeout_ms,
		       uint64_t *fired)
{
	struct pollfd pfd;
	int ret;

	if (ep->nvectors > 0) {
		ret = ivshm_client_wait(cli(ep), timeout_ms, fired);
		if (fired != NULL && ep->nvectors < 64)
			*fired &= (UINT64_C(1) << ep->nvectors) - 1;
		return ret;
	}
	/* Polling endpoint: only control events wake us. */
	pfd.fd = ivshm_client_fd(cli(ep));
	pfd.events = POLLIN;
	pfd.revents = 0;
	ret = poll(&pfd, 1, timeout_ms);
	if (ret < 0)
		return errno == EINTR ? 0 : -errno;
	if (ret == 0)
		return 0;
	ret = ivshm_client_process(cli(ep));
	return ret < 0 ? ret : 1;
}

static int socket_peers(const struct ivshm_endpoint *ep, uint16_t *ids,
			unsigned int max)
{
	return ivshm_client_peers(cli(ep), ids, max);
}

static int socket_peer_present(const struct ivshm_endpoint *ep, uint16_t peer)
{
	return ivshm_client_peer_nvectors(cli(ep), peer) > 0;
}

const struct ivshm__ep_ops ivshm__ep_socket_ops = {
	.scheme = "socket",
	.kind = IVSHM_EP_SOCKET,
	.open = socket_open_ep,
	.close = socket_close_ep,
	.notify = socket_notify,
	.vector_fd = socket_vector_fd,
	.control_fd = socket_control_fd,
	.process = socket_process,
	.wait = socket_wait,
	.peers = socket_peers,
	.peer_present = socket_peer_present,
};
