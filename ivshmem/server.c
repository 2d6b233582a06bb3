/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * server.c - the ivshmem server: memory, region header, UNIX socket, epoll.
 *
 * What it guarantees (see include/ivshm/server.h): ids increase and wrap
 * only at 65536; nothing a client does (never reading, sending garbage or
 * descriptors, vanishing between any two sends) blocks the loop or disturbs
 * another peer; every send is checked; a failed peer is dropped and its
 * departure announced to all others exactly once.
 *
 * Descriptors in outgoing queues are reference counted (struct evfd): a
 * message queued to a slow peer keeps the eventfd it carries open even if
 * that eventfd's owner leaves meanwhile, so a descriptor number is never
 * sent after it was closed and reused. Peers are freed only at the end of a
 * loop iteration, so an epoll event for a peer dropped earlier in the same
 * batch never touches freed memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_NUMA
#include <numa.h>
#include <numaif.h>
#endif

#include "ivshm/server.h"
#include "ivshm_atomic.h"
#include "ivshm_common.h"
#include "proto.h"
#include "region_layout.h"

/* No process can map more than this (x86-64 user space is 128 TiB). */
#define SERVER_MAX_SIZE (UINT64_C(1) << 46)
#define SERVER_DEFAULT_MAX_QUEUE 65536u
/* Retry period for transient send failures and a paused listener. */
#define SERVER_RETRY_MS 20
#define SERVER_EVENTS 64
/* Bytes of unexpected client data discarded per event (fairness). */
#define SERVER_DISCARD_MAX 65536
/* Give freed heap back to the system after this much was freed. */
#define SERVER_TRIM_BYTES (1u << 20)
/* A client that sends more than this in all is flooding: drop it. */
#define SERVER_JUNK_LIMIT (UINT64_C(1) << 20)

struct evfd {
	int fd;
	unsigned int refs;
};

struct qmsg {
	int64_t v;
	struct evfd *e; /* NULL: no descriptor */
};

struct speer {
	struct speer *prev, *next; /* live list, in connection order */
	struct speer *dead_next;
	int sock;
	uint16_t id;
	bool dead;
	bool want_out;   /* EPOLLOUT armed */
	bool warned_data;
	uint64_t junk;   /* bytes received (clients send nothing) */
	struct evfd *vec[IVSHM_PROTO_MAX_VECTORS];
	struct qmsg *q;  /* ring buffer */
	unsigned int qhead, qlen, qcap;
	size_t qoff;     /* bytes of q[qhead] already sent */
	/* Set-up messages queued at connection: the queue limit counts only
	 * what comes on top of them, so a newcomer among many peers with
	 * many vectors is never mistaken for a non-reader. */
	unsigned int allowance;
};

struct ivshm_server {
	ivshm_server_log_fn log;
	void *log_arg;
	char *socket_path;
	char *shm_name;
	bool shm_created;
	dev_t sock_dev;
	ino_t sock_ino;
	bool sock_bound;

	int epfd, lsock, stopfd;
	struct evfd *mem;
	uint64_t size;
	unsigned int vectors, max_peers, max_queue;

	struct speer *head, *tail;
	struct speer *dead;
	unsigned int npeers; /* atomic: read by other threads */
	uint32_t next_id;
	uint8_t id_used[IVSHM_PROTO_NUM_IDS / 8];

	size_t freed;   /* bytes freed since the last malloc_trim() */
	bool retry;
	bool listen_paused;
	int64_t listen_resume_ms;
	int stopped;
};

/* epoll tags for the two non-peer descriptors. */
static char tag_listen, tag_stop;

static void slog(const struct ivshm_server *srv, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void slog(const struct ivshm_server *srv, int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (!srv->log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	srv->log(srv->log_arg, level, buf);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct evfd *evfd_new(int fd)
{
	struct evfd *e = malloc(sizeof(*e));

	if (e) {
		e->fd = fd;
		e->refs = 1;
	}
	return e;
}

static void evfd_put(struct evfd *e)
{
	if (e && --e->refs == 0) {
		close(e->fd);
		free(e);
	}
}

static bool id_used(const struct ivshm_server *srv, uint32_t id)
{
	return srv->id_used[id / 8] & (1u << (id % 8));
}

static void id_set(struct ivshm_server *srv, uint32_t id, bool used)
{
	if (used)
		srv->id_used[id / 8] |= (uint8_t)(1u << (id % 8));
	else
		srv->id_used[id / 8] &= (uint8_t)~(1u << (id % 8));
}

/* ---- per-peer outgoing queue ------------------------------------------ */

static void peer_fail(struct ivshm_server *srv, struct speer *p)
{
	if (p->dead)
		return;
	p->dead = true;
	p->dead_next = srv->dead;
	srv->dead = p;
}

static void queue_push(struct ivshm_server *srv, struct speer *p, int64_t v,
		       struct evfd *e)
{
	if (p->dead)
		return;
	if (p->qlen >= srv->max_queue + p->allowance) {
		slog(srv, LOG_WARNING,
		     "peer %u: %u messages queued and not read: dropping it",
		     p->id, p->qlen);
		peer_fail(srv, p);
		return;
	}
	if (p->qlen == p->qcap) {
		unsigned int cap = p->qcap ? p->qcap * 2 : 64;
		struct qmsg *nq = malloc(cap * sizeof(*nq));

		if (!nq) {
			slog(srv, LOG_ERR, "peer %u: out of memory: dropping it",
			     p->id);
			peer_fail(srv, p);
			return;
		}
		for (unsigned int i = 0; i < p->qlen; i++)
			nq[i] = p->q[(p->qhead + i) % p->qcap];
		free(p->q);
		p->q = nq;
		p->qcap = cap;
		p->qhead = 0;
	}
	if (e)
		e->refs++;
	p->q[(p->qhead + p->qlen) % p->qcap] = (struct qmsg){ v, e };
	p->qlen++;
}

static void queue_pop(struct speer *p)
{
	evfd_put(p->q[p->qhead].e);
	p->qhead = (p->qhead + 1) % p->qcap;
	p->qlen--;
	p->qoff = 0;
}

static void set_out(struct ivshm_server *srv, struct speer *p, bool on)
{
	struct epoll_event ev = { .data.ptr = p };

	if (p->want_out == on)
		return;
	ev.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0);
	if (epoll_ctl(srv->epfd, EPOLL_CTL_MOD, p->sock, &ev) < 0) {
		slog(srv, LOG_ERR, "peer %u: epoll_ctl: %s: dropping it", p->id,
		     strerror(errno));
		peer_fail(srv, p);
		return;
	}
	p->want_out = on;
}

/* Send what the socket takes; never blocks. */
static void peer_flush(struct ivshm_server *srv, struct speer *p)
{
	while (!p->dead && p->qlen) {
		struct qmsg *m = &p->q[p->qhead];
		ssize_t n = ivshm_proto_send_part(p->sock, m->v,
						  m->e ? m->e->fd : -1, p->qoff);

		if (n > 0) {
			p->qoff += (size_t)n;
			if (p->qoff == IVSHM_PROTO_MSG_SIZE)
				queue_pop(p);
			continue;
		}
		if (n == -EAGAIN) {
			set_out(srv, p, true);
			return;
		}
		if (n == -ETOOMANYREFS || n == -ENOBUFS || n == -ENOMEM) {
			/* Too many descriptors in flight or memory pressure:
			 * the socket itself is fine, try again shortly. */
			srv->retry = true;
			return;
		}
		slog(srv, LOG_NOTICE, "peer %u: send failed: %s: dropping it",
		     p->id, strerror((int)-n));
		peer_fail(srv, p);
		return;
	}
	if (!p->dead && p->qlen == 0)
		set_out(srv, p, false);
}

/* ---- peers ------------------------------------------------------------ */

static void peer_free(struct ivshm_server *srv, struct speer *p)
{
	epoll_ctl(srv->epfd, EPOLL_CTL_DEL, p->sock, NULL);
	close(p->sock);
	while (p->qlen)
		queue_pop(p);
	srv->freed += sizeof(*p) + (size_t)p->qcap * sizeof(*p->q);
	free(p->q);
	for (unsigned int i = 0; i < srv->vectors; i++)
		evfd_put(p->vec[i]);
	free(p);
}

/* Unlink dropped peers, announce each departure, free them. Announcing
 * can fail other peers; they join the list and are handled in turn. */
static void reap(struct ivshm_server *srv)
{
	while (srv->dead) {
		struct speer *p = srv->dead;

		srv->dead = p->dead_next;
		if (p->prev)
			p->prev->next = p->next;
		else
			srv->head = p->next;
		if (p->next)
			p->next->prev = p->prev;
		else
			srv->tail = p->prev;
		id_set(srv, p->id, false);
		ivshm_store_relaxed(&srv->npeers, srv->npeers - 1);
		slog(srv, LOG_INFO, "peer %u left (%u peers)", p->id,
		     srv->npeers);
		for (struct speer *o = srv->head; o; o = o->next) {
			queue_push(srv, o, p->id, NULL);
			peer_flush(srv, o);
		}
		peer_free(srv, p);
	}
	/* A crowd of peers that came and went leaves its queues scattered
	 * over the heap, which malloc keeps: the server would stay at its
	 * peak size for ever. Hand whole free pages back now and then, and
	 * whenever the last peer has gone (what is left is then all free). */
	if (srv->freed >= SERVER_TRIM_BYTES ||
	    (srv->freed > 0 && srv->npeers == 0)) {
		malloc_trim(0);
		srv->freed = 0;
	}
}

/* Undo a half-built peer that is in no list and no epoll set. */
static void peer_discard(struct speer *p, unsigned int nvec)
{
	close(p->sock);
	for (unsigned int i = 0; i < nvec; i++)
		evfd_put(p->vec[i]);
	free(p);
}

static void new_peer(struct ivshm_server *srv, int sock)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
	struct speer *p;
	uint32_t id = 0;
	bool found = false;

	if (srv->npeers >= srv->max_peers) {
		slog(srv, LOG_WARNING,
		     "peer limit (%u) reached: connection refused", srv->max_peers);
		close(sock);
		return;
	}
	for (uint32_t i = 0; i < IVSHM_PROTO_NUM_IDS; i++) {
		id = srv->next_id;
		srv->next_id = (srv->next_id + 1) % IVSHM_PROTO_NUM_IDS;
		if (!id_used(srv, id)) {
			found = true;
			break;
		}
	}
	if (!found) {
		slog(srv, LOG_WARNING, "all %u ids in use: connection refused",
		     IVSHM_PROTO_NUM_IDS);
		close(sock);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		slog(srv, LOG_ERR, "out of memory: connection refused");
		close(sock);
		return;
	}
	p->sock = sock;
	p->id = (uint16_t)id;
	for (unsigned int i = 0; i < srv->vectors; i++) {
		int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		int err = errno;

		if (fd >= 0 && !(p->vec[i] = evfd_new(fd))) {
			close(fd);
			err = ENOMEM;
		}
		if (!p->vec[i]) {
			slog(srv, LOG_ERR, "cannot create eventfd: %s: connection refused",
			     strerror(err));
			peer_discard(p, i);
			return;
		}
	}
	ev.data.ptr = p;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, sock, &ev) < 0) {
		slog(srv, LOG_ERR, "epoll_ctl: %s: connection refused",
		     strerror(errno));
		peer_discard(p, srv->vectors);
		return;
	}
	id_set(srv, id, true);
	p->prev = srv->tail;
	if (srv->tail)
		srv->tail->next = p;
	else
		srv->head = p;
	srv->tail = p;
	ivshm_store_relaxed(&srv->npeers, srv->npeers + 1);

	/* Set-up sequence first (QEMU reads these three synchronously), then
	 * the newcomer's own vectors, so a client has its interrupts as soon
	 * as possible, then every existing peer's vectors. */
	p->allowance = 3 + srv->vectors * srv->npeers;
	queue_push(srv, p, IVSHM_PROTO_VERSION, NULL);
	queue_push(srv, p, p->id, NULL);
	queue_push(srv, p, IVSHM_PROTO_SHM_ID, srv->mem);
	for (unsigned int i = 0; i < srv->vectors; i++)
		queue_push(srv, p, p->id, p->vec[i]);
	for (struct speer *o = srv->head; o; o = o->next) {
		if (o == p || o->dead)
			continue;
		for (unsigned int i = 0; i < srv->vectors; i++)
			queue_push(srv, p, o->id, o->vec[i]);
		for (unsigned int i = 0; i < srv->vectors; i++)
			queue_push(srv, o, p->id, p->vec[i]);
		peer_flush(srv, o);
	}
	peer_flush(srv, p);
	slog(srv, LOG_INFO, "peer %u connected (%u peers)", p->id, srv->npeers);
}

static void pause_listen(struct ivshm_server *srv)
{
	if (srv->listen_paused)
		return;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_DEL, srv->lsock, NULL) == 0) {
		srv->listen_paused = true;
		srv->listen_resume_ms = now_ms() + SERVER_RETRY_MS * 5;
	}
}

static void resume_listen(struct ivshm_server *srv)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &tag_listen };

	if (!srv->listen_paused || now_ms() < srv->listen_resume_ms)
		return;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->lsock, &ev) == 0)
		srv->listen_paused = false;
}

static void handle_accept(struct ivshm_server *srv)
{
	/* Bounded, so a flood of connections cannot starve existing peers. */
	for (int i = 0; i < 64; i++) {
		int s = accept4(srv->lsock, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (s >= 0) {
			new_peer(srv, s);
			continue;
		}
		switch (errno) {
		case EAGAIN:
			return;
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
			continue;
		case EMFILE:
		case ENFILE:
		case ENOBUFS:
		case ENOMEM:
			/* Level-triggered: stop listening for a moment rather
			 * than spin while descriptors are exhausted. */
			slog(srv, LOG_WARNING, "accept: %s: pausing new connections",
			     strerror(errno));
			pause_listen(srv);
			return;
		default:
			slog(srv, LOG_ERR, "accept: %s", strerror(errno));
			return;
		}
	}
}

static void handle_peer(struct ivshm_server *srv, struct speer *p,
			uint32_t events)
{
	if (p->dead)
		return;
	if (events & EPOLLIN) {
		ssize_t n = ivshm_proto_discard(p->sock, SERVER_DISCARD_MAX);

		if (n == 0) {
			peer_fail(srv, p);
			return;
		}
		if (n > 0 && !p->warned_data) {
			/* Clients send nothing in protocol version 0. */
			slog(srv, LOG_WARNING,
			     "peer %u sent unexpected data: ignored", p->id);
			p->warned_data = true;
		}
		if (n > 0 && (p->junk += (uint64_t)n) > SERVER_JUNK_LIMIT) {
			slog(srv, LOG_WARNING,
			     "peer %u sent more than %" PRIu64 " bytes of unexpected "
			     "data: dropping it", p->id, SERVER_JUNK_LIMIT);
			peer_fail(srv, p);
			return;
		}
		if (n < 0 && n != -EAGAIN) {
			slog(srv, LOG_NOTICE, "peer %u: recv: %s: dropping it",
			     p->id, strerror((int)-n));
			peer_fail(srv, p);
			return;
		}
	}
	if (events & (EPOLLERR | EPOLLHUP)) {
		peer_fail(srv, p);
		return;
	}
	if (events & EPOLLOUT)
		peer_flush(srv, p);
}

int ivshm_server_process(struct ivshm_server *srv, int timeout_ms)
{
	struct epoll_event ev[SERVER_EVENTS];
	int n;

	if (srv->stopped)
		return 1;
	if (srv->retry && (timeout_ms < 0 || timeout_ms > SERVER_RETRY_MS))
		timeout_ms = SERVER_RETRY_MS;
	if (srv->listen_paused) {
		int64_t l = srv->listen_resume_ms - now_ms();

		if (l < 0)
			l = 0;
		if (timeout_ms < 0 || timeout_ms > l)
			timeout_ms = (int)l;
	}
	n = epoll_wait(srv->epfd, ev, SERVER_EVENTS, timeout_ms);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return -errno;
	}
	for (int i = 0; i < n; i++) {
		void *tag = ev[i].data.ptr;

		if (tag == &tag_stop) {
			uint64_t cnt;

			if (read(srv->stopfd, &cnt, sizeof(cnt)) < 0) {
				/* Nothing to do: the flag below is what counts. */
			}
			srv->stopped = 1;
		} else if (tag == &tag_listen) {
			handle_accept(srv);
		} else {
			handle_peer(srv, tag, ev[i].events);
		}
	}
	/* Only now: later events of this batch may name a dropped peer. */
	reap(srv);
	if (srv->retry) {
		srv->retry = false;
		for (struct speer *p = srv->head; p; p = p->next)
			if (p->qlen)
				peer_flush(srv, p);
		reap(srv);
	}
	resume_listen(srv);
	return srv->stopped ? 1 : 0;
}

int ivshm_server_run(struct ivshm_server *srv)
{
	for (;;) {
		int ret = ivshm_server_process(srv, -1);

		if (ret < 0) {
			slog(srv, LOG_ERR, "epoll_wait: %s", strerror(-ret));
			return ret;
		}
		if (ret == 1)
			return 0;
	}
}

int ivshm_server_stop(struct ivshm_server *srv)
{
	uint64_t one = 1;

	/* write(2) on an eventfd: async-signal-safe. */
	if (write(srv->stopfd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		return errno == EAGAIN ? 0 : -errno;
	return 0;
}

int ivshm_server_fd(const struct ivshm_server *srv)
{
	return srv->epfd;
}

uint64_t ivshm_server_size(const struct ivshm_server *srv)
{
	return srv->size;
}

unsigned int ivshm_server_vectors(const struct ivshm_server *srv)
{
	return srv->vectors;
}

unsigned int ivshm_server_npeers(const struct ivshm_server *srv)
{
	return ivshm_load_relaxed(&srv->npeers);
}

int ivshm_server_mem_fd(const struct ivshm_server *srv)
{
	return srv->mem ? srv->mem->fd : -1;
}

/* ---- creation --------------------------------------------------------- */

static int check_size(struct ivshm_server *srv, uint64_t size)
{
	if (size == 0) {
		slog(srv, LOG_ERR, "shared memory size must not be 0");
		return -EINVAL;
	}
	if (size > SERVER_MAX_SIZE) {
		slog(srv, LOG_ERR,
		     "shared memory size %" PRIu64 " is too large (at most %" PRIu64
		     " bytes: no process could map it)", size, SERVER_MAX_SIZE);
		return -EINVAL;
	}
	if (!ivshm_is_pow2_u64(size)) {
		uint64_t r = UINT64_C(1) << (64 - __builtin_clzll(size - 1));

		slog(srv, LOG_WARNING,
		     "shared memory size %" PRIu64 " is not a power of two "
		     "(QEMU requires one): rounded up to %" PRIu64, size, r);
		size = r;
	}
	if (size < IVSHM_REGION_HDR_SIZE) {
		slog(srv, LOG_ERR,
		     "shared memory size %" PRIu64 " is smaller than the %u-byte "
		     "region header", size, IVSHM_REGION_HDR_SIZE);
		return -EINVAL;
	}
	srv->size = size;
	return 0;
}

static int open_memory(struct ivshm_server *srv,
		       const struct ivshm_server_params *p, int *out)
{
	struct stat st;
	char *path;
	int fd, ret;

	switch (p->mem) {
	case IVSHM_SERVER_MEM_MEMFD:
		fd = memfd_create("ivshmem", MFD_CLOEXEC);
		if (fd < 0) {
			ret = -errno;
			slog(srv, LOG_ERR, "memfd_create: %s", strerror(-ret));
			return ret;
		}
		break;
	case IVSHM_SERVER_MEM_DIR:
		if (!p->mem_path || !*p->mem_path) {
			slog(srv, LOG_ERR, "no memory directory given");
			return -EINVAL;
		}
		if (stat(p->mem_path, &st) < 0)
			ret = -errno;
		else
			ret = S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
		if (ret) {
			slog(srv, LOG_ERR, "memory directory %s: %s", p->mem_path,
			     strerror(-ret));
			return ret;
		}
		if (asprintf(&path, "%s/ivshmem.XXXXXX", p->mem_path) < 0)
			return -ENOMEM;
		fd = mkostemp(path, O_CLOEXEC);
		ret = -errno;
		if (fd >= 0)
			unlink(path); /* anonymous once created: nothing left behind */
		else
			slog(srv, LOG_ERR, "cannot create a file in %s: %s",
			     p->mem_path, strerror(-ret));
		free(path);
		if (fd < 0)
			return ret;
		break;
	case IVSHM_SERVER_MEM_SHM:
		if (!p->mem_path || !*p->mem_path || strchr(p->mem_path + 1, '/')) {
			slog(srv, LOG_ERR, "bad POSIX shm name '%s'",
			     p->mem_path ? p->mem_path : "");
			return -EINVAL;
		}
		fd = shm_open(p->mem_path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
		if (fd >= 0) {
			srv->shm_created = true;
		} else if (errno == EEXIST) {
			/* As QEMU's example server: reuse an existing object. */
			fd = shm_open(p->mem_path, O_RDWR | O_CLOEXEC, 0600);
		}
		if (fd < 0) {
			ret = -errno;
			slog(srv, LOG_ERR, "shm_open %s: %s", p->mem_path,
			     strerror(-ret));
			return ret;
		}
		srv->shm_name = strdup(p->mem_path);
		if (!srv->shm_name) {
			close(fd);
			return -ENOMEM;
		}
		break;
	default:
		slog(srv, LOG_ERR, "unknown memory kind %d", (int)p->mem);
		return -EINVAL;
	}
	if (ftruncate(fd, (off_t)srv->size) < 0) {
		ret = -errno;
		slog(srv, LOG_ERR, "cannot size shared memory to %" PRIu64 ": %s",
		     srv->size, strerror(-ret));
		close(fd);
		return ret;
	}
	*out = fd;
	return 0;
}

static int place_numa(struct ivshm_server *srv,
		      const struct ivshm_server_params *p, int fd)
{
#ifdef HAVE_NUMA
	unsigned long mask[16] = { 0 };
	void *addr;
	int ret = 0;

	if (numa_available() < 0) {
		slog(srv, LOG_ERR, "--numa-node: NUMA is not available here");
		return -ENOTSUP;
	}
	if (p->numa_node < 0 || p->numa_node > numa_max_node() ||
	    (unsigned int)p->numa_node >= sizeof(mask) * 8) {
		slog(srv, LOG_ERR, "NUMA node %d does not exist (nodes 0..%d)",
		     p->numa_node, numa_max_node());
		return -EINVAL;
	}
	/* The policy of a shared mapping is stored with the shmem/hugetlbfs
	 * object itself, so it holds for every later mapping and page fault,
	 * QEMU's included. Nothing has touched the pages yet. */
	addr = mmap(NULL, srv->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (addr == MAP_FAILED) {
		ret = -errno;
		slog(srv, LOG_ERR, "mmap for NUMA placement: %s", strerror(-ret));
		return ret;
	}
	mask[p->numa_node / (8 * sizeof(long))] |= 1ul << (p->numa_node % (8 * sizeof(long)));
	if (mbind(addr, srv->size, MPOL_BIND, mask, sizeof(mask) * 8, 0) < 0) {
		ret = -errno;
		slog(srv, LOG_ERR, "mbind to NUMA node %d: %s", p->numa_node,
		     strerror(-ret));
	} else {
		slog(srv, LOG_INFO, "shared memory bound to NUMA node %d",
		     p->numa_node);
	}
	munmap(addr, srv->size);
	return ret;
#else
	(void)p;
	(void)fd;
	slog(srv, LOG_ERR, "--numa-node: built without libnuma");
	return -ENOTSUP;
#endif
}

static int format_region(struct ivshm_server *srv, int fd)
{
	struct ivshm_region_hdr *h;
	uint64_t format_id = 0;
	int ret;

	h = mmap(NULL, IVSHM_REGION_HDR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		 fd, 0);
	if (h == MAP_FAILED) {
		ret = -errno;
		slog(srv, LOG_ERR, "mmap of the region header: %s", strerror(-ret));
		return ret;
	}
	if (getrandom(&format_id, sizeof(format_id), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(format_id))
		format_id = (uint64_t)now_ms() ^ ((uint64_t)getpid() << 32);
	/* Nobody can see the region yet (the fd has not been sent), but a
	 * reused POSIX shm object may be mapped by a stale process: say
	 * "not ready" first, fill in, then publish. */
	ivshm_store_relaxed(&h->init_state, (uint32_t)IVSHM_REGION_FORMATTING);
	memset(h->reserved, 0, sizeof(h->reserved));
	h->magic = IVSHM_REGION_MAGIC;
	h->version = IVSHM_REGION_VERSION;
	h->size = srv->size;
	h->hdr_size = IVSHM_REGION_HDR_SIZE;
	h->formatter_pid = (uint32_t)getpid();
	h->format_id = format_id;
	/* Pairs with the readers' acquire load of init_state: the header
	 * fields above are visible before READY is. */
	ivshm_store_release(&h->init_state, (uint32_t)IVSHM_REGION_READY);
	munmap(h, IVSHM_REGION_HDR_SIZE);
	return 0;
}

static int check_socket_path(struct ivshm_server *srv, const char *path)
{
	struct sockaddr_un sa;
	struct stat st;
	char *copy, *dir;
	int ret = 0, s;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		slog(srv, LOG_ERR, "socket path %s is too long (at most %zu bytes)",
		     path, sizeof(sa.sun_path) - 1);
		return -EINVAL;
	}
	copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	dir = dirname(copy);
	if (stat(dir, &st) < 0) {
		ret = -errno;
		slog(srv, LOG_ERR, "socket directory %s: %s", dir, strerror(-ret));
	} else if (!S_ISDIR(st.st_mode)) {
		ret = -ENOTDIR;
		slog(srv, LOG_ERR, "socket directory %s is not a directory", dir);
	}
	free(copy);
	if (ret)
		return ret;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		slog(srv, LOG_ERR, "%s exists and is not a socket: not replacing it",
		     path);
		return -EEXIST;
	}
	/* A socket file: is a server behind it? */
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN) {
		/* EAGAIN: its backlog is full, so it is alive. */
		slog(srv, LOG_ERR, "a server is already listening on %s", path);
		ret = -EADDRINUSE;
	} else if (errno == ECONNREFUSED) {
		slog(srv, LOG_NOTICE, "removing stale socket %s", path);
		if (unlink(path) < 0 && errno != ENOENT) {
			ret = -errno;
			slog(srv, LOG_ERR, "cannot remove %s: %s", path,
			     strerror(-ret));
		}
	} else {
		ret = -errno;
		slog(srv, LOG_ERR, "cannot probe %s: %s", path, strerror(-ret));
	}
	close(s);
	return ret;
}

/*
 * Bind, set mode and group, listen, and only then make the socket appear
 * under its name (rename is atomic): nobody ever sees it with the wrong
 * permissions, and QEMU, which does not retry, never finds a socket that
 * is not listening yet. When the temporary name would not fit in
 * sun_path, bind the final name directly (listen first, then chmod).
 */
static int open_socket(struct ivshm_server *srv,
		       const struct ivshm_server_params *p)
{
	const char *path = p->socket_path;
	char tmp[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *bound;
	struct sockaddr_un sa;
	struct stat st;
	uint32_t rnd = 0;
	char *copy;
	int ret, n;

	ret = check_socket_path(srv, path);
	if (ret)
		return ret;
	srv->lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->lsock < 0) {
		ret = -errno;
		slog(srv, LOG_ERR, "socket: %s", strerror(-ret));
		return ret;
	}
	copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
		rnd = (uint32_t)now_ms();
	n = snprintf(tmp, sizeof(tmp), "%s/.ivshm-%d-%08x", dirname(copy),
		     (int)getpid(), rnd);
	free(copy);
	bound = (n > 0 && (size_t)n < sizeof(tmp)) ? tmp : path;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, bound, strlen(bound));
	if (bind(srv->lsock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		slog(srv, LOG_ERR, "bind %s: %s", bound, strerror(-ret));
		return ret;
	}
	if (bound == path && listen(srv->lsock, SOMAXCONN) < 0)
		goto err_errno;
	if (p->socket_mode && chmod(bound, p->socket_mode & 07777) < 0) {
		ret = -errno;
		slog(srv, LOG_ERR, "chmod %s %o: %s", path, p->socket_mode,
		     strerror(-ret));
		goto err_unlink;
	}
	if ((p->flags & IVSHM_SERVER_F_GROUP) &&
	    chown(bound, (uid_t)-1, (gid_t)p->socket_gid) < 0) {
		ret = -errno;
		slog(srv, LOG_ERR, "chown %s to group %u: %s", path, p->socket_gid,
		     strerror(-ret));
		goto err_unlink;
	}
	if (bound != path) {
		if (listen(srv->lsock, SOMAXCONN) < 0)
			goto err_errno;
		if (rename(bound, path) < 0) {
			ret = -errno;
			slog(srv, LOG_ERR, "rename %s to %s: %s", bound, path,
			     strerror(-ret));
			goto err_unlink;
		}
	}
	if (lstat(path, &st) == 0) {
		srv->sock_dev = st.st_dev;
		srv->sock_ino = st.st_ino;
		srv->sock_bound = true;
	}
	return 0;

err_errno:
	ret = -errno;
	slog(srv, LOG_ERR, "listen %s: %s", path, strerror(-ret));
err_unlink:
	unlink(bound);
	return ret;
}

int ivshm_server_create(const struct ivshm_server_params *p,
			struct ivshm_server **out)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct ivshm_server *srv;
	int ret, fd = -1;

	if (!p || !out)
		return -EINVAL;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->log = p->log;
	srv->log_arg = p->log_arg;
	srv->epfd = srv->lsock = srv->stopfd = -1;
	srv->vectors = p->vectors ? p->vectors : 1;
	srv->max_peers = p->max_peers ? p->max_peers : IVSHM_PROTO_NUM_IDS;
	srv->max_queue = p->max_queue ? p->max_queue : SERVER_DEFAULT_MAX_QUEUE;

	ret = -EINVAL;
	if (!p->socket_path || !*p->socket_path) {
		slog(srv, LOG_ERR, "no socket path given");
		goto err;
	}
	if (srv->vectors > IVSHM_PROTO_MAX_VECTORS) {
		slog(srv, LOG_ERR, "%u vectors: at most %u", srv->vectors,
		     IVSHM_PROTO_MAX_VECTORS);
		goto err;
	}
	if (srv->max_peers > IVSHM_PROTO_NUM_IDS) {
		slog(srv, LOG_ERR, "at most %u peers (one per id)",
		     IVSHM_PROTO_NUM_IDS);
		goto err;
	}
	/* The queue must hold at least one complete set-up for a newcomer. */
	if (srv->max_queue < 3 + srv->vectors)
		srv->max_queue = 3 + srv->vectors;
	ret = check_size(srv, p->size);
	if (ret)
		goto err;
	srv->socket_path = strdup(p->socket_path);
	if (!srv->socket_path) {
		ret = -ENOMEM;
		goto err;
	}

	ret = open_memory(srv, p, &fd);
	if (ret)
		goto err;
	srv->mem = evfd_new(fd);
	if (!srv->mem) {
		close(fd);
		ret = -ENOMEM;
		goto err;
	}
	if (p->flags & IVSHM_SERVER_F_NUMA) {
		ret = place_numa(srv, p, fd);
		if (ret)
			goto err;
	}
	ret = format_region(srv, fd);
	if (ret)
		goto err;

	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	srv->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (srv->epfd < 0 || srv->stopfd < 0) {
		ret = -errno;
		slog(srv, LOG_ERR, "epoll/eventfd: %s", strerror(-ret));
		goto err;
	}
	ret = open_socket(srv, p);
	if (ret)
		goto err;
	ev.data.ptr = &tag_stop;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->stopfd, &ev) < 0)
		goto err_errno;
	ev.data.ptr = &tag_listen;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->lsock, &ev) < 0)
		goto err_errno;
	slog(srv, LOG_INFO,
	     "listening on %s: %" PRIu64 " bytes of shared memory, %u vector%s, "
	     "at most %u peers", srv->socket_path, srv->size, srv->vectors,
	     srv->vectors == 1 ? "" : "s", srv->max_peers);
	*out = srv;
	return 0;

err_errno:
	ret = -errno;
	slog(srv, LOG_ERR, "epoll_ctl: %s", strerror(-ret));
err:
	ivshm_server_destroy(srv);
	return ret;
}

void ivshm_server_destroy(struct ivshm_server *srv)
{
	struct stat st;

	if (!srv)
		return;
	while (srv->head) {
		struct speer *p = srv->head;

		srv->head = p->next;
		peer_free(srv, p);
	}
	srv->tail = NULL;
	srv->dead = NULL;
	if (srv->lsock >= 0)
		close(srv->lsock);
	/* Remove the socket file only if it is still the one we bound: a
	 * later server may have replaced it. */
	if (srv->sock_bound && lstat(srv->socket_path, &st) == 0 &&
	    st.st_dev == srv->sock_dev && st.st_ino == srv->sock_ino)
		unlink(srv->socket_path);
	if (srv->shm_created)
		shm_unlink(srv->shm_name);
	evfd_put(srv->mem);
	if (srv->stopfd >= 0)
		close(srv->stopfd);
	if (srv->epfd >= 0)
		close(srv->epfd);
	free(srv->socket_path);
	free(srv->shm_name);
	free(srv);
}
