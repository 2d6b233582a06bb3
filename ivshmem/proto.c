/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * proto.c - ivshmem server messages on the wire: little-endian int64 values
 * with at most one SCM_RIGHTS descriptor each (see ivshm_proto.h).
 *
 * Guarantees: no call blocks or raises SIGPIPE; a short read or write is
 * resumed, never mistaken for a message; every descriptor that arrives
 * where the protocol allows none (a second one on a message, any on data we
 * discard, or one whose control data was truncated) is closed here.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "proto.h"

/* Room for a few descriptors, so that a peer sending too many is caught
 * (and every one closed) rather than silently truncated by the kernel. */
#define PROTO_CMSG_FDS 16

void ivshm_proto_encode(int64_t v, uint8_t out[IVSHM_PROTO_MSG_SIZE])
{
	uint64_t u = (uint64_t)v;

	for (unsigned int i = 0; i < IVSHM_PROTO_MSG_SIZE; i++)
		out[i] = (uint8_t)(u >> (8 * i));
}

int64_t ivshm_proto_decode(const uint8_t in[IVSHM_PROTO_MSG_SIZE])
{
	uint64_t u = 0;

	for (unsigned int i = 0; i < IVSHM_PROTO_MSG_SIZE; i++)
		u |= (uint64_t)in[i] << (8 * i);
	return (int64_t)u;
}

ssize_t ivshm_proto_send_part(int sock, int64_t v, int fd, size_t off)
{
	uint8_t buf[IVSHM_PROTO_MSG_SIZE];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov;
	struct msghdr msg;
	ssize_t n;

	if (off >= IVSHM_PROTO_MSG_SIZE)
		return -EINVAL;
	ivshm_proto_encode(v, buf);
	iov.iov_base = buf + off;
	iov.iov_len = IVSHM_PROTO_MSG_SIZE - off;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (off == 0 && fd >= 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do {
		n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (n == 0)
		return -EAGAIN;
	return n;
}

void ivshm_proto_rx_init(struct ivshm_proto_rx *rx)
{
	memset(rx->buf, 0, sizeof(rx->buf));
	rx->have = 0;
	rx->fd = -1;
}

void ivshm_proto_rx_reset(struct ivshm_proto_rx *rx)
{
	if (rx->fd >= 0)
		close(rx->fd);
	ivshm_proto_rx_init(rx);
}

/*
 * Take the descriptors out of @p msg. At most one may be kept (into *keep,
 * when keep is non-NULL and *keep is -1); all others are closed.
 * Returns true when everything was acceptable.
 */
static bool take_fds(struct msghdr *msg, int *keep)
{
	bool ok = !(msg->msg_flags & MSG_CTRUNC);

	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
			ok = false;
			continue;
		}
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			/* CMSG_DATA may be unaligned for int: copy out. */
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (keep && *keep < 0) {
				*keep = fd;
			} else {
				close(fd);
				ok = false;
			}
		}
	}
	return ok;
}

/* One non-blocking recvmsg() into iov with room for descriptors in ctl,
 * retried on EINTR; *msg describes what arrived (for take_fds()). */
static ssize_t recv_nb(int sock, struct msghdr *msg, struct iovec *iov,
		       void *ctl, size_t ctl_len)
{
	ssize_t n;

	memset(msg, 0, sizeof(*msg));
	msg->msg_iov = iov;
	msg->msg_iovlen = 1;
	msg->msg_control = ctl;
	msg->msg_controllen = ctl_len;
	do {
		n = recvmsg(sock, msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	return n;
}

int ivshm_proto_recv(int sock, struct ivshm_proto_rx *rx, int64_t *v, int *fd)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(PROTO_CMSG_FDS * sizeof(int))];
	} ctl;
	struct iovec iov;
	struct msghdr msg;
	ssize_t n;

	while (rx->have < IVSHM_PROTO_MSG_SIZE) {
		iov.iov_base = rx->buf + rx->have;
		iov.iov_len = IVSHM_PROTO_MSG_SIZE - rx->have;
		n = recv_nb(sock, &msg, &iov, ctl.buf, sizeof(ctl.buf));
		if (n < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		if (!take_fds(&msg, &rx->fd)) {
			ivshm_proto_rx_reset(rx);
			return -EPROTO;
		}
		if (n == 0) {
			if (rx->have == 0 && rx->fd < 0)
				return -ECONNRESET;
			ivshm_proto_rx_reset(rx);
			return -EPROTO;
		}
		rx->have += (unsigned int)n;
	}
	*v = ivshm_proto_decode(rx->buf);
	*fd = rx->fd;
	rx->fd = -1;
	rx->have = 0;
	return 1;
}

ssize_t ivshm_proto_discard(int sock, size_t max)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(PROTO_CMSG_FDS * sizeof(int))];
	} ctl;
	char junk[512];
	size_t total = 0;

	while (total < max) {
		struct iovec iov = { junk, sizeof(junk) };
		struct msghdr msg;
		ssize_t n;

		n = recv_nb(sock, &msg, &iov, ctl.buf, sizeof(ctl.buf));
		if (n < 0) {
			if (errno == EWOULDBLOCK)
				return total ? (ssize_t)total : -EAGAIN;
			return -errno;
		}
		take_fds(&msg, NULL);
		if (n == 0)
			return total ? (ssize_t)total : 0;
		total += (size_t)n;
	}
	return (ssize_t)total;
}
