/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_server.c - libFuzzer target: the server library's handling of its
 * client sockets.
 *
 * One real server (ivshmem/server.c: 2 vectors, at most 4 peers, at most 8
 * queued messages per peer, so every limit is reachable) listens on a UNIX
 * socket for the whole run. Each input is a script for up to 8 hostile
 * clients: connect, send arbitrary bytes, send bytes with 1-3 descriptors
 * of several kinds (eventfd, pipe, memfd, socket), shut down either
 * direction, read (or never read) what the server sends, close - with the
 * server's loop run (ivshm_server_process(srv, 0)) wherever the script
 * says. After the script every client closes; the server must then hold no
 * peer and exactly the descriptors it held before the input (no leak), and
 * never crash or block (libFuzzer's -timeout catches a hang).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "fuzz_util.h"
#include "ivshm/server.h"

#define NCLIENTS 8

static struct ivshm_server *srv;
static struct sockaddr_un srv_addr;
static int base_fds;

static void quiet_log(void *arg, int level, const char *msg)
{
	(void)arg;
	(void)level;
	if (getenv("IVSHM_FUZZ_VERBOSE"))
		fprintf(stderr, "server: %s\n", msg);
}

static void destroy_server(void)
{
	ivshm_server_destroy(srv);
	srv = NULL;
}

static void init_server(void)
{
	struct ivshm_server_params p;
	static char path[128];

	signal(SIGPIPE, SIG_IGN);
	snprintf(path, sizeof(path), "%s/srv.sock", fz_dir());
	memset(&p, 0, sizeof(p));
	p.socket_path = path;
	p.size = 4096;
	p.vectors = 2;
	p.max_peers = 4;
	p.max_queue = 8;
	p.log = quiet_log;
	FZ_CHECK(ivshm_server_create(&p, &srv) == 0);
	atexit(destroy_server);
	memset(&srv_addr, 0, sizeof(srv_addr));
	srv_addr.sun_family = AF_UNIX;
	memcpy(srv_addr.sun_path, path, strlen(path));
}

/* A descriptor of kind @p k for the script to send (caller closes it). */
static int make_fd(unsigned int k, int *extra)
{
	int p[2], fd = -1;

	*extra = -1;
	switch (k % 4) {
	case 0:
		fd = eventfd(0, EFD_CLOEXEC);
		break;
	case 1:
		if (pipe2(p, O_CLOEXEC) == 0) {
			fd = p[1];
			*extra = p[0];
		}
		break;
	case 2:
		fd = memfd_create("fuzz", MFD_CLOEXEC);
		break;
	case 3:
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) == 0) {
			fd = p[0];
			*extra = p[1];
		}
		break;
	}
	return fd;
}

static void send_with_fds(int s, const uint8_t *buf, size_t len, unsigned int nfd,
			  unsigned int kinds)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(3 * sizeof(int))];
	} ctl;
	int fds[3], extra[3];
	struct iovec iov = { (void *)buf, len };
	struct msghdr m;
	struct cmsghdr *c;
	unsigned int ok = 0;

	for (unsigned int i = 0; i < nfd; i++) {
		fds[ok] = make_fd(kinds >> (2 * i), &extra[ok]);
		if (fds[ok] >= 0)
			ok++;
	}
	memset(&m, 0, sizeof(m));
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	if (ok) {
		memset(&ctl, 0, sizeof(ctl));
		m.msg_control = ctl.b;
		m.msg_controllen = CMSG_SPACE(ok * sizeof(int));
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(ok * sizeof(int));
		memcpy(CMSG_DATA(c), fds, ok * sizeof(int));
	}
	if (sendmsg(s, &m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* full or closed: the script goes on */
	}
	for (unsigned int i = 0; i < ok; i++) {
		close(fds[i]);
		if (extra[i] >= 0)
			close(extra[i]);
	}
}

/* Read what the server sent (up to @p max bytes), closing descriptors. */
static void client_read(int s, size_t max)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(16 * sizeof(int))];
	} ctl;
	char buf[256];
	size_t got = 0;

	while (got < max) {
		struct iovec iov = { buf, sizeof(buf) < max - got ? sizeof(buf) : max - got };
		struct msghdr m;
		ssize_t n;

		memset(&m, 0, sizeof(m));
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		m.msg_control = ctl.b;
		m.msg_controllen = sizeof(ctl.b);
		n = recvmsg(s, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n <= 0)
			break;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

				for (size_t i = 0; i < k; i++) {
					int fd;

					memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
					close(fd);
				}
			}
		}
		got += (size_t)n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	int cl[NCLIENTS];
	int quiet_rounds = 0;

	if (!srv)
		init_server();
	/* Per input: libFuzzer itself opens files between inputs. */
	base_fds = fz_count_fds();
	for (int i = 0; i < NCLIENTS; i++)
		cl[i] = -1;

	while (in.n) {
		uint8_t op = fz_u8(&in);
		int *s = &cl[(op >> 4) % NCLIENTS];
		uint8_t buf[64];
		size_t len;

		switch (op % 8) {
		case 0: /* connect */
			if (*s >= 0)
				close(*s);
			*s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (*s >= 0 && connect(*s, (struct sockaddr *)&srv_addr,
					       sizeof(srv_addr)) < 0 &&
			    errno != EAGAIN) {
				close(*s);
				*s = -1;
			}
			break;
		case 1: /* send bytes (clients send nothing in protocol 0) */
			len = fz_bytes(&in, buf, fz_u8(&in) % sizeof(buf));
			if (*s >= 0 && len &&
			    send(*s, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
				/* full or closed */
			}
			break;
		case 2: { /* send bytes with descriptors */
			uint8_t k = fz_u8(&in);

			len = fz_bytes(&in, buf, 1 + k % 16);
			if (*s >= 0 && len)
				send_with_fds(*s, buf, len, 1 + k % 3, fz_u8(&in));
			break;
		}
		case 3: /* hang up */
			if (*s >= 0) {
				close(*s);
				*s = -1;
			}
			break;
		case 4: /* half close */
			if (*s >= 0)
				shutdown(*s, (op >> 3) & 1 ? SHUT_WR : SHUT_RD);
			break;
		case 5: /* read some of what the server sent */
			if (*s >= 0)
				client_read(*s, 8u * (1 + fz_u8(&in)));
			break;
		case 6: /* run the server's loop */
		case 7:
			FZ_CHECK(ivshm_server_process(srv, 0) >= 0);
			break;
		}
	}

	/* Everyone leaves: the server must come back to where it started. */
	for (int i = 0; i < NCLIENTS; i++)
		if (cl[i] >= 0)
			close(cl[i]);
	for (int i = 0; i < 200 && quiet_rounds < 3; i++) {
		FZ_CHECK(ivshm_server_process(srv, 0) >= 0);
		quiet_rounds = ivshm_server_npeers(srv) == 0 ? quiet_rounds + 1 : 0;
	}
	FZ_CHECK(ivshm_server_npeers(srv) == 0);
	FZ_CHECK_FDS(base_fds);
	return 0;
}
