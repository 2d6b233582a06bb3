/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ep_socket.c - a client of an ivshmem server: "socket:PATH".
 * Not written yet: open reports -ENOTSUP so nothing pretends to work.
 */
#include <errno.h>

#include "endpoint_internal.h"

static int socket_open_ep(struct ivshm_endpoint *ep, const char *arg,
		       const struct ivshm__ep_opts *opts)
{
	(void)ep;
	(void)arg;
	(void)opts;
	return -ENOTSUP;
}

static void socket_close_ep(struct ivshm_endpoint *ep)
{
	(void)ep;
}

const struct ivshm__ep_ops ivshm__ep_socket_ops = {
	.scheme = "socket",
	.kind = IVSHM_EP_SOCKET,
	.open = socket_open_ep,
	.close = socket_close_ep,
};
