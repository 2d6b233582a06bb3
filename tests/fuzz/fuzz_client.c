/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_client.c - libFuzzer target: the host client's parsing of server
 * messages (a malicious server).
 *
 * The harness listens on a UNIX socket and plays the server: a writer
 * thread accepts the connection that ivshm_client_connect() makes and sends
 * the input's message stream - values of any size, raw byte fragments that
 * split messages, and descriptors of any kind attached anywhere (eventfd,
 * memfds of any size including 0, a pipe's full write end, a socket, two
 * descriptors on one message). The stream is cut in two: the first part
 * during connect, the second once connect returned (or at once, if the
 * client still waits for its set-up); then the "server" hangs up.
 * The client processes everything, rings every doorbell it has learnt and
 * closes. Checked: no crash or hang (a blocking write to a doorbell would
 * hang: libFuzzer's -timeout), connect fails cleanly or returns a usable
 * client, and no descriptor leaks.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "fuzz_util.h"
#include "ivshm/client.h"

static int lsock = -1;
/* Read ends of the full pipes sent as doorbells: kept open until the
 * client has closed, so a write to the write end would block, not fail. */
static int held[256];
static int nheld;
static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
static char sock_path[128];
static int base_fds;

struct script {
	const uint8_t *p[2]; /* the two parts of the stream */
	size_t n[2];
	int conn;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int go; /* 1: send part 2; 2: hang up */
};

static void cleanup(void)
{
	if (lsock >= 0)
		close(lsock);
}

static void init(void)
{
	struct sockaddr_un sa;

	signal(SIGPIPE, SIG_IGN);
	snprintf(sock_path, sizeof(sock_path), "%s/srv.sock", fz_dir());
	lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FZ_CHECK(lsock >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, sock_path, strlen(sock_path));
	FZ_CHECK(bind(lsock, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	FZ_CHECK(listen(lsock, 4) == 0);
	atexit(cleanup);
}

/* Make descriptor(s) of kind @p k; returns how many (0..2) in fds. */
static int make_fds(uint8_t k, int fds[2], int closeme[2])
{
	int p[2];

	fds[0] = fds[1] = closeme[0] = closeme[1] = -1;
	switch (k % 6) {
	case 0:
		fds[0] = eventfd(0, EFD_CLOEXEC);
		break;
	case 1: { /* memory of a size the script chooses (0 included) */
		fds[0] = memfd_create("fuzz-mem", MFD_CLOEXEC);
		if (fds[0] >= 0 && ftruncate(fds[0], (off_t)(k >> 3) * 1024) < 0) {
			/* keep it empty */
		}
		break;
	}
	case 2: /* the write end of a full pipe: a write would block */
		if (pipe2(p, O_CLOEXEC) == 0) {
			int fl = fcntl(p[1], F_GETFL);
			char junk[4096];

			memset(junk, 0, sizeof(junk));
			fcntl(p[1], F_SETFL, fl | O_NONBLOCK);
			while (write(p[1], junk, sizeof(junk)) > 0)
				;
			fcntl(p[1], F_SETFL, fl);
			fds[0] = p[1];
			pthread_mutex_lock(&held_mu);
			if (nheld < 256)
				held[nheld++] = p[0];
			else
				closeme[0] = p[0];
			pthread_mutex_unlock(&held_mu);
		}
		break;
	case 3:
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) == 0) {
			fds[0] = p[0];
			closeme[0] = p[1];
		}
		break;
	case 4: /* two descriptors on one message */
		fds[0] = eventfd(0, EFD_CLOEXEC);
		fds[1] = eventfd(0, EFD_CLOEXEC);
		break;
	case 5: /* a read-only descriptor */
		fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		break;
	}
	return (fds[0] >= 0) + (fds[1] >= 0);
}

static void send_part(int s, const uint8_t *p, size_t n)
{
	struct fz_in in = { p, n };

	while (in.n) {
		uint8_t op = fz_u8(&in), buf[16];
		union {
			struct cmsghdr align;
			char b[CMSG_SPACE(2 * sizeof(int))];
		} ctl;
		int fds[2] = { -1, -1 }, closeme[2] = { -1, -1 }, nfd = 0;
		struct iovec iov;
		struct msghdr m;
		size_t len;

		if ((op & 3) == 3) {
			/* a raw fragment: splits messages anywhere */
			len = fz_bytes(&in, buf, 1 + (op >> 2) % 15);
		} else {
			int64_t v;

			/* a whole message: small values are the interesting
			 * ones (version, ids, -1), so they cost one byte */
			if (op & 1)
				v = (int64_t)fz_u64(&in);
			else
				v = (int64_t)(int8_t)fz_u8(&in);
			for (int i = 0; i < 8; i++)
				buf[i] = (uint8_t)((uint64_t)v >> (8 * i));
			len = 8;
			if (op & 2)
				nfd = make_fds(op >> 2, fds, closeme);
		}
		memset(&m, 0, sizeof(m));
		iov.iov_base = buf;
		iov.iov_len = len;
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		if (nfd) {
			struct cmsghdr *c;

			memset(&ctl, 0, sizeof(ctl));
			m.msg_control = ctl.b;
			m.msg_controllen = CMSG_SPACE((size_t)nfd * sizeof(int));
			c = CMSG_FIRSTHDR(&m);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN((size_t)nfd * sizeof(int));
			memcpy(CMSG_DATA(c), fds, (size_t)nfd * sizeof(int));
		}
		if (sendmsg(s, &m, MSG_NOSIGNAL) < 0) {
			/* the client hung up: stop */
			in.n = 0;
		}
		for (int i = 0; i < 2; i++) {
			if (fds[i] >= 0 && nfd)
				close(fds[i]);
			if (closeme[i] >= 0)
				close(closeme[i]);
		}
	}
}

/* Wait up to @p ms for the main thread's go; returns it (0: none yet). */
static int wait_go(struct script *sc, long ms)
{
	struct timespec ts;
	int go;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += ms * 1000000L;
	while (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&sc->mu);
	while (sc->go == 0 && pthread_cond_timedwait(&sc->cv, &sc->mu, &ts) == 0)
		;
	go = sc->go;
	pthread_mutex_unlock(&sc->mu);
	return go;
}

static void *writer(void *arg)
{
	struct script *sc = arg;
	int s = accept4(lsock, NULL, NULL, SOCK_CLOEXEC), go;

	if (s >= 0)
		send_part(s, sc->p[0], sc->n[0]);
	/* Wait briefly for connect() to return. A client still in its
	 * set-up wants more: give it part 2, wait a little more, then hang up
	 * rather than let it sit out its timeout (50 ms an input). */
	go = wait_go(sc, 2);
	if (s >= 0 && go != 2) {
		send_part(s, sc->p[1], sc->n[1]);
		if (go == 0)
			wait_go(sc, 5);
	}
	if (s >= 0)
		close(s);
	return NULL;
}

static void set_go(struct script *sc, int v)
{
	pthread_mutex_lock(&sc->mu);
	sc->go = v;
	pthread_cond_broadcast(&sc->cv);
	pthread_mutex_unlock(&sc->mu);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ivshm_client_params cp;
	struct ivshm_client *c = NULL;
	struct script sc;
	pthread_t th;
	size_t cut;
	int ret;

	if (lsock < 0)
		init();
	/* Per input: libFuzzer itself opens files between inputs. */
	base_fds = fz_count_fds();
	if (size < 2)
		return 0;
	/* The first byte places the cut between the two parts. */
	cut = data[0] * (size - 1) / 255;
	memset(&sc, 0, sizeof(sc));
	sc.p[0] = data + 1;
	sc.n[0] = cut;
	sc.p[1] = data + 1 + cut;
	sc.n[1] = size - 1 - cut;
	pthread_mutex_init(&sc.mu, NULL);
	pthread_cond_init(&sc.cv, NULL);
	FZ_CHECK(pthread_create(&th, NULL, writer, &sc) == 0);

	memset(&cp, 0, sizeof(cp));
	/* Long enough for the writer thread to send part 1 on a busy
	 * machine; a set-up that never completes costs this much. */
	cp.connect_timeout_ms = 50;
	ret = ivshm_client_connect(sock_path, &cp, &c);
	if (getenv("IVSHM_FUZZ_VERBOSE"))
		fprintf(stderr, "connect: %d (%s)\n", ret, strerror(-ret));
	if (ret < 0) {
		FZ_CHECK(c == NULL || ret == 0);
		/* If connect failed before connecting, unblock accept(). */
		set_go(&sc, 2);
		{
			int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			struct sockaddr_un sa;

			memset(&sa, 0, sizeof(sa));
			sa.sun_family = AF_UNIX;
			memcpy(sa.sun_path, sock_path, strlen(sock_path));
			/* A connection the writer may accept (or that stays
			 * in the backlog and is drained below). */
			if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
				pthread_join(th, NULL);
				close(s);
			} else {
				pthread_join(th, NULL);
				if (s >= 0)
					close(s);
			}
		}
		/* Drain a connection left in the backlog. */
		{
			int fl = fcntl(lsock, F_GETFL), s;

			fcntl(lsock, F_SETFL, fl | O_NONBLOCK);
			while ((s = accept(lsock, NULL, NULL)) >= 0)
				close(s);
			fcntl(lsock, F_SETFL, fl);
		}
	} else {
		uint16_t ids[64];
		int64_t deadline = 0;

		FZ_CHECK(ivshm_client_nvectors(c) >= 1);
		FZ_CHECK(ivshm_client_size(c) > 0);
		set_go(&sc, 1);
		/* Process until the "server" hangs up or breaks the protocol. */
		for (;;) {
			struct pollfd pfd = { ivshm_client_fd(c), POLLIN, 0 };

			ret = ivshm_client_process(c);
			if (ret < 0)
				break;
			if (poll(&pfd, 1, 1000) == 0 || ++deadline > 100000)
				break; /* writer stuck?: give up, the check below fails */
		}
		FZ_CHECK(ret == -ECONNRESET || ret == -EPROTO || ret == -ENOMEM);
		FZ_CHECK(!ivshm_client_connected(c));
		pthread_join(th, NULL);
		/* Ring every doorbell we learnt: must never block. */
		ret = ivshm_client_peers(c, ids, 64);
		for (int i = 0; i < ret && i < 64; i++) {
			unsigned int nv = ivshm_client_peer_nvectors(c, ids[i]);

			for (unsigned int v = 0; v <= nv; v++)
				(void)ivshm_client_notify(c, ids[i], v);
		}
		for (unsigned int v = 0; v <= ivshm_client_nvectors(c); v++)
			(void)ivshm_client_notify(c, ivshm_client_id(c), v);
		(void)ivshm_client_wait(c, 0, NULL);
		ivshm_client_close(c);
	}
	for (int i = 0; i < nheld; i++)
		close(held[i]);
	nheld = 0;
	pthread_mutex_destroy(&sc.mu);
	pthread_cond_destroy(&sc.cv);
	FZ_CHECK_FDS(base_fds);
	return 0;
}
