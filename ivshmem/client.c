/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * client.c - host client of an ivshmem server (QEMU protocol version 0).
 *
 * What it guarantees: the set-up sequence (version 0, own id, memory fd) is
 * validated before anything is returned; every message after it is checked
 * (value range, descriptor present or absent, at most 64 vectors per peer)
 * and a malformed one drops the connection with -EPROTO instead of being
 * half-applied; every descriptor received is either kept in a table or
 * closed. The peer table is protected by a writer-preferring rwlock: the
 * control thread takes it for writing only while it changes the table, and
 * notify() holds it for reading across the eventfd write, so a departing
 * peer's eventfd is never closed under a concurrent notify().
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ivshm/client.h"
#include "ivshm_atomic.h"
#include "proto.h"

/* Set-up limit when the caller asked for a single connection attempt. */
#define CLIENT_SETUP_TIMEOUT_MS 5000
/* After the first own vector, how long to wait for the next one before
 * deciding the server has sent them all (they are sent back to back). */
#define CLIENT_VECTOR_GRACE_MS 20
/* ... and while a known peer has fewer vectors than we do. */
#define CLIENT_PEER_GRACE_MS 1000
/* Messages handled per ivshm_client_process() call, for fairness. */
#define CLIENT_BATCH 1024

struct client_peer {
	uint16_t id;
	unsigned int nvec;
	int fds[IVSHM_PROTO_MAX_VECTORS];
};

struct client_event {
	uint16_t id;
	uint8_t joined;
};

struct ivshm_client {
	int sock;
	int mem_fd;
	void *base;
	uint64_t size;
	uint16_t id;

	/* Peer table and own vectors; see the file comment. */
	pthread_rwlock_t lock;
	struct client_peer *peers; /* sorted by id */
	unsigned int npeers, peers_cap;
	int own_fds[IVSHM_PROTO_MAX_VECTORS];
	unsigned int nvec; /* atomic: written under lock, read lock-free */

	/* Control thread only. */
	struct ivshm_proto_rx rx;
	int connected; /* atomic */
	int err;       /* why the connection ended */
	bool last_was_own;
	bool own_seen;
	struct client_event *ev;
	unsigned int nev, ev_cap;
	ivshm_client_peer_fn cb;
	void *cb_arg;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until @p deadline (-1: none), at least 0. */
static int left_ms(int64_t deadline)
{
	int64_t l;

	if (deadline < 0)
		return -1;
	l = deadline - now_ms();
	if (l < 0)
		return 0;
	return l > 1000000 ? 1000000 : (int)l;
}

/* Binary search; returns the index of @p id or where it would go. */
static unsigned int peer_pos(const struct ivshm_client *c, uint16_t id,
			     bool *found)
{
	unsigned int lo = 0, hi = c->npeers;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (c->peers[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < c->npeers && c->peers[lo].id == id;
	return lo;
}

static int queue_event(struct ivshm_client *c, uint16_t id, int joined)
{
	if (c->nev == c->ev_cap) {
		unsigned int cap = c->ev_cap ? c->ev_cap * 2 : 16;
		struct client_event *ev = realloc(c->ev, cap * sizeof(*ev));

		if (!ev)
			return -ENOMEM;
		c->ev = ev;
		c->ev_cap = cap;
	}
	c->ev[c->nev].id = id;
	c->ev[c->nev].joined = (uint8_t)joined;
	c->nev++;
	return 0;
}

static void fire_events(struct ivshm_client *c)
{
	/* Callbacks may call back into the client (notify, peers): no lock
	 * is held here, and the queue is reset before each call. */
	for (unsigned int i = 0; i < c->nev; i++) {
		if (c->cb)
			c->cb(c->cb_arg, c->ev[i].id, c->ev[i].joined);
	}
	c->nev = 0;
}

static int add_peer_vector(struct ivshm_client *c, uint16_t id, int fd)
{
	struct client_peer *p;
	unsigned int pos;
	bool found;
	int ret = 0, fl;

	/* notify() promises never to block, but the server chose this
	 * descriptor: a hostile one may send a pipe nobody reads, whose write
	 * would block notify() (and, through the read lock it holds, the
	 * control thread). Non-blocking, a full doorbell returns EAGAIN,
	 * which notify() treats as "wake-up pending". QEMU sets the same flag
	 * on the eventfds it receives, so honest peers see no change. */
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		close(fd);
		return -EPROTO;
	}
	pthread_rwlock_wrlock(&c->lock);
	pos = peer_pos(c, id, &found);
	if (!found) {
		if (c->npeers == c->peers_cap) {
			unsigned int cap = c->peers_cap ? c->peers_cap * 2 : 8;
			struct client_peer *np = realloc(c->peers, cap * sizeof(*np));

			if (!np) {
				ret = -ENOMEM;
				goto out;
			}
			c->peers = np;
			c->peers_cap = cap;
		}
		memmove(&c->peers[pos + 1], &c->peers[pos],
			(c->npeers - pos) * sizeof(*c->peers));
		c->npeers++;
		c->peers[pos].id = id;
		c->peers[pos].nvec = 0;
	}
	p = &c->peers[pos];
	if (p->nvec >= IVSHM_PROTO_MAX_VECTORS) {
		ret = -EPROTO;
		goto out;
	}
	p->fds[p->nvec++] = fd;
	fd = -1;
	if (!found)
		ret = queue_event(c, id, 1);
out:
	pthread_rwlock_unlock(&c->lock);
	if (fd >= 0)
		close(fd);
	return ret;
}

static void remove_peer(struct ivshm_client *c, uint16_t id)
{
	struct client_peer old;
	unsigned int pos;
	bool found;

	pthread_rwlock_wrlock(&c->lock);
	pos = peer_pos(c, id, &found);
	if (found) {
		old = c->peers[pos];
		memmove(&c->peers[pos], &c->peers[pos + 1],
			(c->npeers - pos - 1) * sizeof(*c->peers));
		c->npeers--;
	}
	pthread_rwlock_unlock(&c->lock);
	if (!found)
		return; /* a peer we never heard of (joined before us, no fds) */
	for (unsigned int i = 0; i < old.nvec; i++)
		close(old.fds[i]);
	queue_event(c, id, 0);
}

static int add_own_vector(struct ivshm_client *c, int fd)
{
	unsigned int n = ivshm_load_relaxed(&c->nvec);
	int fl;

	if (n >= IVSHM_PROTO_MAX_VECTORS) {
		close(fd);
		return -EPROTO;
	}
	/* Callers poll these; a read must never block the control thread.
	 * (QEMU sets O_NONBLOCK on the same descriptions anyway.) */
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	pthread_rwlock_wrlock(&c->lock);
	c->own_fds[n] = fd;
	/* Pairs with the acquire in ivshm_client_nvectors()/vector_fd(): the
	 * slot is written before the count that makes it visible. */
	ivshm_store_release(&c->nvec, n + 1);
	pthread_rwlock_unlock(&c->lock);
	return 0;
}

/* Apply one message received after the set-up sequence. Takes @p fd. */
static int handle_msg(struct ivshm_client *c, int64_t v, int fd)
{
	c->last_was_own = false;
	if (v < 0 || v > IVSHM_PROTO_MAX_ID) {
		/* -1 (a second memory fd) or out of range: not allowed here. */
		if (fd >= 0)
			close(fd);
		return -EPROTO;
	}
	if (fd >= 0) {
		if (v == c->id) {
			c->own_seen = true;
			c->last_was_own = true;
			return add_own_vector(c, fd);
		}
		return add_peer_vector(c, (uint16_t)v, fd);
	}
	if (v == c->id)
		return -EPROTO; /* we cannot have left */
	remove_peer(c, (uint16_t)v);
	return 0;
}

static void disconnect(struct ivshm_client *c, int err)
{
	if (!ivshm_load_relaxed(&c->connected))
		return;
	c->err = err;
	ivshm_proto_rx_reset(&c->rx);
	/* Keep the descriptor number until close() so a caller's poll set
	 * never refers to a reused number; stop all traffic on it. */
	shutdown(c->sock, SHUT_RDWR);
	ivshm_store_relaxed(&c->connected, 0);
}

static bool peers_incomplete(const struct ivshm_client *c)
{
	for (unsigned int i = 0; i < c->npeers; i++)
		if (c->peers[i].nvec < c->nvec)
			return true;
	return false;
}

/* Receive one set-up message, waiting until @p deadline. */
static int setup_recv(struct ivshm_client *c, int64_t deadline, int64_t *v,
		      int *fd)
{
	for (;;) {
		struct pollfd pfd = { .fd = c->sock, .events = POLLIN };
		int ret = ivshm_proto_recv(c->sock, &c->rx, v, fd);

		if (ret != -EAGAIN)
			return ret;
		ret = poll(&pfd, 1, left_ms(deadline));
		if (ret == 0)
			return -ETIMEDOUT;
		if (ret < 0 && errno != EINTR)
			return -errno;
	}
}

static int connect_once(const struct sockaddr_un *sa, int *out)
{
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int ret;

	if (s < 0)
		return -errno;
	if (connect(s, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
		ret = -errno;
		close(s);
		return ret;
	}
	if (fcntl(s, F_SETFL, O_NONBLOCK) < 0) {
		ret = -errno;
		close(s);
		return ret;
	}
	*out = s;
	return 0;
}

static int setup(struct ivshm_client *c, int64_t deadline, int no_map)
{
	struct stat st;
	int64_t v;
	int fd, ret;

	ret = setup_recv(c, deadline, &v, &fd);
	if (ret < 0)
		return ret;
	if (fd >= 0)
		close(fd);
	if (v != IVSHM_PROTO_VERSION)
		return -EPROTONOSUPPORT;
	if (fd >= 0)
		return -EPROTO;

	ret = setup_recv(c, deadline, &v, &fd);
	if (ret < 0)
		return ret;
	if (fd >= 0) {
		close(fd);
		return -EPROTO;
	}
	if (v < 0 || v > IVSHM_PROTO_MAX_ID)
		return -EPROTO;
	c->id = (uint16_t)v;

	ret = setup_recv(c, deadline, &v, &fd);
	if (ret < 0)
		return ret;
	if (v != IVSHM_PROTO_SHM_ID || fd < 0) {
		if (fd >= 0)
			close(fd);
		return -EPROTO;
	}
	c->mem_fd = fd;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size <= 0)
		return -EPROTO;
	c->size = (uint64_t)st.st_size;
	if (!no_map) {
		void *p = mmap(NULL, c->size, PROT_READ | PROT_WRITE, MAP_SHARED,
			       fd, 0);

		if (p == MAP_FAILED)
			return -errno;
		c->base = p;
	}

	/* Peers and own vectors follow in any order. Wait for the first own
	 * vector, then take what is there, allowing a short grace while own
	 * vectors are still coming (QEMU's example server sends them last). */
	for (;;) {
		ret = ivshm_proto_recv(c->sock, &c->rx, &v, &fd);
		if (ret == 1) {
			ret = handle_msg(c, v, fd);
			if (ret < 0)
				return ret;
			continue;
		}
		if (ret != -EAGAIN)
			return ret;
		{
			struct pollfd pfd = { .fd = c->sock, .events = POLLIN };
			int wait = left_ms(deadline), grace = -1;

			/* Every peer has as many vectors as we do: a peer
			 * with fewer is still being announced. */
			if (c->own_seen && peers_incomplete(c))
				grace = CLIENT_PEER_GRACE_MS;
			else if (c->own_seen && c->last_was_own)
				grace = CLIENT_VECTOR_GRACE_MS;
			else if (c->own_seen)
				return 0;
			if (grace >= 0 && (wait < 0 || wait > grace))
				wait = grace;
			ret = poll(&pfd, 1, wait);
			if (ret < 0 && errno != EINTR)
				return -errno;
			if (ret == 0)
				return c->own_seen ? 0 : -ETIMEDOUT;
		}
	}
}

int ivshm_client_connect(const char *path,
			 const struct ivshm_client_params *params,
			 struct ivshm_client **out)
{
	static const struct ivshm_client_params defaults;
	const struct ivshm_client_params *p = params ? params : &defaults;
	struct sockaddr_un sa;
	struct ivshm_client *c;
	int64_t deadline, setup_deadline;
	int backoff = 1, ret;

	if (!path || !out)
		return -EINVAL;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -EINVAL;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->sock = -1;
	c->mem_fd = -1;
	c->cb = p->peer_event;
	c->cb_arg = p->peer_event_arg;
	ivshm_proto_rx_init(&c->rx);
	{
		pthread_rwlockattr_t a;

		pthread_rwlockattr_init(&a);
		/* notify() may be hammered by many threads; do not let them
		 * starve the control thread's table updates. */
		pthread_rwlockattr_setkind_np(&a,
			PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		ret = pthread_rwlock_init(&c->lock, &a);
		pthread_rwlockattr_destroy(&a);
		if (ret) {
			free(c);
			return -ret;
		}
	}

	deadline = p->connect_timeout_ms < 0 ? -1 : now_ms() + p->connect_timeout_ms;
	for (;;) {
		ret = connect_once(&sa, &c->sock);
		if (ret == 0)
			break;
		if ((ret != -ENOENT && ret != -ECONNREFUSED && ret != -EAGAIN) ||
		    left_ms(deadline) == 0)
			goto err;
		{
			int ms = left_ms(deadline);

			if (ms < 0 || ms > backoff)
				ms = backoff;
			poll(NULL, 0, ms);
			if (backoff < 50)
				backoff *= 2;
		}
	}
	ivshm_store_relaxed(&c->connected, 1);
	setup_deadline = deadline;
	if (p->connect_timeout_ms == 0)
		setup_deadline = now_ms() + CLIENT_SETUP_TIMEOUT_MS;
	ret = setup(c, setup_deadline, p->no_map);
	if (ret < 0)
		goto err;
	fire_events(c);
	*out = c;
	return 0;
err:
	c->nev = 0;
	ivshm_client_close(c);
	return ret;
}

void ivshm_client_close(struct ivshm_client *c)
{
	if (!c)
		return;
	ivshm_proto_rx_reset(&c->rx);
	if (c->sock >= 0)
		close(c->sock);
	for (unsigned int i = 0; i < c->npeers; i++)
		for (unsigned int j = 0; j < c->peers[i].nvec; j++)
			close(c->peers[i].fds[j]);
	for (unsigned int i = 0; i < c->nvec; i++)
		close(c->own_fds[i]);
	if (c->base)
		munmap(c->base, c->size);
	if (c->mem_fd >= 0)
		close(c->mem_fd);
	pthread_rwlock_destroy(&c->lock);
	free(c->peers);
	free(c->ev);
	free(c);
}

uint16_t ivshm_client_id(const struct ivshm_client *c)
{
	return c->id;
}

int ivshm_client_fd(const struct ivshm_client *c)
{
	return c->sock;
}

int ivshm_client_mem_fd(const struct ivshm_client *c)
{
	return c->mem_fd;
}

void *ivshm_client_base(const struct ivshm_client *c)
{
	return c->base;
}

uint64_t ivshm_client_size(const struct ivshm_client *c)
{
	return c->size;
}

unsigned int ivshm_client_nvectors(const struct ivshm_client *c)
{
	/* Pairs with the release in add_own_vector(). */
	return ivshm_load_acquire(&c->nvec);
}

int ivshm_client_vector_fd(const struct ivshm_client *c, unsigned int vector)
{
	/* Pairs with the release in add_own_vector(). */
	if (vector >= ivshm_load_acquire(&c->nvec))
		return -EINVAL;
	return c->own_fds[vector];
}

int ivshm_client_connected(const struct ivshm_client *c)
{
	return ivshm_load_relaxed(&c->connected);
}

int ivshm_client_process(struct ivshm_client *c)
{
	int count = 0, ret = 0;

	if (!ivshm_load_relaxed(&c->connected))
		return c->err;
	while (count < CLIENT_BATCH) {
		int64_t v;
		int fd;

		ret = ivshm_proto_recv(c->sock, &c->rx, &v, &fd);
		if (ret == -EAGAIN) {
			ret = 0;
			break;
		}
		if (ret < 0)
			break;
		ret = handle_msg(c, v, fd);
		if (ret < 0)
			break;
		count++;
	}
	if (ret < 0)
		disconnect(c, ret);
	fire_events(c);
	return ret < 0 ? ret : count;
}

int ivshm_client_wait(struct ivshm_client *c, int timeout_ms, uint64_t *fired)
{
	struct pollfd pfd[1 + IVSHM_PROTO_MAX_VECTORS];
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	uint64_t mask = 0;

	if (fired)
		*fired = 0;
	for (;;) {
		unsigned int nvec = ivshm_load_relaxed(&c->nvec), n = 0;
		int conn = ivshm_load_relaxed(&c->connected);
		int ret, got = 0;

		if (conn) {
			pfd[n].fd = c->sock;
			pfd[n].events = POLLIN;
			n++;
		}
		for (unsigned int i = 0; i < nvec; i++) {
			pfd[n].fd = c->own_fds[i];
			pfd[n].events = POLLIN;
			n++;
		}
		if (n == 0)
			return c->err ? c->err : -ENOTCONN;
		ret = poll(pfd, n, left_ms(deadline));
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (ret == 0)
			return 0;
		for (unsigned int i = conn ? 1 : 0; i < n; i++) {
			uint64_t cnt;

			if (!(pfd[i].revents & POLLIN))
				continue;
			/* Non-blocking: another reader may have won the race. */
			if (read(pfd[i].fd, &cnt, sizeof(cnt)) == (ssize_t)sizeof(cnt)) {
				mask |= UINT64_C(1) << (i - (conn ? 1 : 0));
				got = 1;
			}
		}
		if (conn && pfd[0].revents) {
			ret = ivshm_client_process(c);
			if (ret < 0) {
				if (fired)
					*fired = mask;
				return ret;
			}
			if (ret > 0)
				got = 1;
		}
		if (got) {
			if (fired)
				*fired = mask;
			return 1;
		}
		if (left_ms(deadline) == 0)
			return 0;
	}
}

int ivshm_client_notify(struct ivshm_client *c, uint16_t peer,
			unsigned int vector)
{
	static const uint64_t one = 1;
	int fd = -1, ret = 0;

	pthread_rwlock_rdlock(&c->lock);
	if (peer == c->id) {
		if (vector < c->nvec)
			fd = c->own_fds[vector];
		else
			ret = -EINVAL;
	} else {
		bool found;
		unsigned int pos = peer_pos(c, peer, &found);

		if (!found)
			ret = -ENOENT;
		else if (vector >= c->peers[pos].nvec)
			ret = -EINVAL;
		else
			fd = c->peers[pos].fds[vector];
	}
	/* The write happens under the read lock: the control thread cannot
	 * close this descriptor (and the number be reused) meanwhile. */
	if (fd >= 0 && write(fd, &one, sizeof(one)) != (ssize_t)sizeof(one)) {
		/* A saturated counter (EAGAIN) still means "wake up". */
		if (errno != EAGAIN)
			ret = -errno;
	}
	pthread_rwlock_unlock(&c->lock);
	return ret;
}

int ivshm_client_peers(const struct ivshm_client *c, uint16_t *ids,
		       unsigned int max)
{
	struct ivshm_client *mc = (struct ivshm_client *)c;
	int n;

	pthread_rwlock_rdlock(&mc->lock);
	n = (int)c->npeers;
	for (unsigned int i = 0; i < c->npeers && i < max; i++)
		ids[i] = c->peers[i].id;
	pthread_rwlock_unlock(&mc->lock);
	return n;
}

unsigned int ivshm_client_peer_nvectors(const struct ivshm_client *c,
					uint16_t peer)
{
	struct ivshm_client *mc = (struct ivshm_client *)c;
	unsigned int n = 0;
	bool found;
	unsigned int pos;

	pthread_rwlock_rdlock(&mc->lock);
	pos = peer_pos(c, peer, &found);
	if (found)
		n = c->peers[pos].nvec;
	pthread_rwlock_unlock(&mc->lock);
	return n;
}
