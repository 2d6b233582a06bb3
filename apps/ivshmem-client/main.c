/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ivshmem-client - a host peer of an ivshmem server, for people and scripts.
 *
 * Interactive (default), with the commands of QEMU's contrib client:
 *   dump               own id, vectors, region size and every known peer
 *   int PEER VECTOR    ring PEER's doorbell VECTOR
 *   int PEER all       ring every vector of PEER
 *   int all            ring every vector of every peer
 *   help, quit
 * Interrupts on own vectors and peer arrivals/departures are printed as
 * they happen. Non-interactive modes, for scripts (exit 0 on success, 1 on
 * timeout, 2 on error):
 *   --list                       print own id, size, vectors and peers
 *   --notify PEER:VECTOR|PEER:all|all   ring and exit
 *   --wait VECTOR|any [--timeout MS]    wait for an own vector, print it
 *   --wait-peers N [--timeout MS]       wait until N other peers are known
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ivshm/client.h"

#define DEFAULT_SOCKET "/tmp/ivshmem_socket"

static bool g_verbose;
static bool g_quiet_events;

static void peer_event(void *arg, uint16_t peer, int joined)
{
	(void)arg;
	if (!g_quiet_events)
		printf("peer %u %s\n", peer, joined ? "joined" : "left");
	fflush(stdout);
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: ivshmem-client [OPTION]...\n"
"Connect to an ivshmem server as a host peer.\n"
"\n"
"  -h, --help              show this help and exit\n"
"  -v, --verbose           more messages\n"
"  -S, --socket-path PATH  server socket (default " DEFAULT_SOCKET ")\n"
"      --connect-timeout MS  keep retrying the connection (default 0)\n"
"  -l, --list              print own id, size, vectors and peers, then exit\n"
"  -N, --notify TARGET     ring TARGET (PEER:VECTOR, PEER:all or all), exit\n"
"  -w, --wait VECTOR|any   wait for an interrupt on an own vector, exit\n"
"      --wait-peers N      wait until N other peers are known, exit\n"
"  -t, --timeout MS        limit for --wait and --wait-peers (default: none)\n"
"\n"
"Without -l, -N, -w or --wait-peers: interactive; type 'help'.\n");
}

static int parse_ul(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return (errno || *end || *out > max) ? -EINVAL : 0;
}

static int ring_peer_all(struct ivshm_client *c, uint16_t peer)
{
	unsigned int n = peer == ivshm_client_id(c) ? ivshm_client_nvectors(c)
						   : ivshm_client_peer_nvectors(c, peer);
	int ret = n ? 0 : -ENOENT;

	for (unsigned int v = 0; v < n && !ret; v++)
		ret = ivshm_client_notify(c, peer, v);
	return ret;
}

/* "PEER VECTOR", "PEER all", "all" (with ':' or ' ' between). */
static int do_notify(struct ivshm_client *c, const char *target)
{
	char buf[64], *sep, *vec;
	unsigned long peer, v;
	int ret = 0;

	snprintf(buf, sizeof(buf), "%s", target);
	if (strcmp(buf, "all") == 0) {
		uint16_t ids[1024];
		int n = ivshm_client_peers(c, ids, 1024);

		for (int i = 0; i < n && i < 1024; i++) {
			int r = ring_peer_all(c, ids[i]);

			if (r && !ret)
				ret = r;
		}
		return ret;
	}
	sep = strpbrk(buf, ": ");
	if (!sep)
		return -EINVAL;
	*sep = '\0';
	vec = sep + 1;
	while (*vec == ' ')
		vec++;
	if (parse_ul(buf, 65535, &peer))
		return -EINVAL;
	if (strcmp(vec, "all") == 0)
		return ring_peer_all(c, (uint16_t)peer);
	if (parse_ul(vec, 63, &v))
		return -EINVAL;
	return ivshm_client_notify(c, (uint16_t)peer, (unsigned int)v);
}

static void dump(struct ivshm_client *c)
{
	uint16_t ids[4096];
	int n = ivshm_client_peers(c, ids, 4096);

	printf("id %u\n", ivshm_client_id(c));
	printf("size %" PRIu64 "\n", ivshm_client_size(c));
	printf("vectors %u\n", ivshm_client_nvectors(c));
	printf("peers %d\n", n);
	for (int i = 0; i < n && i < 4096; i++)
		printf("peer %u vectors %u\n", ids[i],
		       ivshm_client_peer_nvectors(c, ids[i]));
	fflush(stdout);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_vector(struct ivshm_client *c, int vector, int timeout)
{
	int64_t end = timeout < 0 ? -1 : now_ms() + timeout;

	for (;;) {
		int left = end < 0 ? -1 : (int)(end - now_ms());
		uint64_t fired = 0;
		int ret;

		if (end >= 0 && left <= 0)
			return 1;
		ret = ivshm_client_wait(c, left, &fired);
		for (unsigned int v = 0; v < 64; v++)
			if (fired & (UINT64_C(1) << v))
				printf("vector %u\n", v);
		fflush(stdout);
		if (vector < 0 ? fired != 0 : (fired >> vector) & 1)
			return 0;
		if (ret < 0) {
			fprintf(stderr, "ivshmem-client: %s\n", strerror(-ret));
			return 2;
		}
	}
}

static int wait_peers(struct ivshm_client *c, unsigned long n, int timeout)
{
	int64_t end = timeout < 0 ? -1 : now_ms() + timeout;

	while ((unsigned long)ivshm_client_peers(c, NULL, 0) < n) {
		int left = end < 0 ? -1 : (int)(end - now_ms());
		int ret;

		if (end >= 0 && left <= 0)
			return 1;
		ret = ivshm_client_wait(c, left, NULL);
		if (ret < 0) {
			fprintf(stderr, "ivshmem-client: %s\n", strerror(-ret));
			return 2;
		}
	}
	return 0;
}

static void handle_line(struct ivshm_client *c, char *line, bool *quit)
{
	char *cmd = strtok(line, " \t\r\n");
	char *rest;
	int ret;

	if (!cmd)
		return;
	rest = strtok(NULL, "\r\n");
	if (strcmp(cmd, "help") == 0) {
		printf("dump | int PEER VECTOR | int PEER all | int all | quit\n");
	} else if (strcmp(cmd, "dump") == 0) {
		dump(c);
	} else if (strcmp(cmd, "int") == 0) {
		while (rest && *rest == ' ')
			rest++;
		ret = rest ? do_notify(c, rest) : -EINVAL;
		if (ret == -EINVAL && (!rest || !*rest))
			printf("usage: int PEER VECTOR | int PEER all | int all\n");
		else if (ret)
			printf("int %s: %s\n", rest, strerror(-ret));
		else if (g_verbose)
			printf("ok\n");
	} else if (strcmp(cmd, "quit") == 0 || strcmp(cmd, "exit") == 0) {
		*quit = true;
	} else {
		printf("unknown command '%s' (try 'help')\n", cmd);
	}
	fflush(stdout);
}

static int interactive(struct ivshm_client *c)
{
	char line[256];
	size_t have = 0;
	bool quit = false, eof = false;

	printf("connected: id %u, %u vector%s; type 'help'\n", ivshm_client_id(c),
	       ivshm_client_nvectors(c), ivshm_client_nvectors(c) == 1 ? "" : "s");
	fflush(stdout);
	while (!quit) {
		struct pollfd pfd[2 + 64];
		unsigned int nv = ivshm_client_nvectors(c), n = 0;
		bool conn = ivshm_client_connected(c);

		if (!eof) {
			pfd[n].fd = STDIN_FILENO;
			pfd[n++].events = POLLIN;
		}
		pfd[n].fd = conn ? ivshm_client_fd(c) : -1;
		pfd[n++].events = POLLIN;
		for (unsigned int v = 0; v < nv; v++) {
			pfd[n].fd = ivshm_client_vector_fd(c, v);
			pfd[n++].events = POLLIN;
		}
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("poll");
			return 2;
		}
		for (unsigned int i = eof ? 1 : 2; i < n; i++) {
			uint64_t cnt;

			if ((pfd[i].revents & POLLIN) &&
			    read(pfd[i].fd, &cnt, sizeof(cnt)) == (ssize_t)sizeof(cnt)) {
				printf("interrupt on vector %u (count %" PRIu64 ")\n",
				       i - (eof ? 1 : 2), cnt);
				fflush(stdout);
			}
		}
		if (pfd[eof ? 0 : 1].revents) {
			int ret = ivshm_client_process(c);

			if (ret < 0) {
				printf("server connection ended: %s\n", strerror(-ret));
				fflush(stdout);
				return 2;
			}
		}
		if (!eof && pfd[0].revents) {
			ssize_t r = read(STDIN_FILENO, line + have, sizeof(line) - 1 - have);
			char *nl;

			if (r <= 0) {
				eof = true;
				quit = true;
				continue;
			}
			have += (size_t)r;
			line[have] = '\0';
			while ((nl = strchr(line, '\n'))) {
				size_t len = (size_t)(nl - line) + 1;
				char cmd[256];

				memcpy(cmd, line, len);
				cmd[len] = '\0';
				handle_line(c, cmd, &quit);
				memmove(line, line + len, have - len + 1);
				have -= len;
			}
			if (have == sizeof(line) - 1)
				have = 0; /* overlong line: dropped */
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	enum { OPT_CONNECT_TIMEOUT = 256, OPT_WAIT_PEERS };
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "socket-path", required_argument, NULL, 'S' },
		{ "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
		{ "list", no_argument, NULL, 'l' },
		{ "notify", required_argument, NULL, 'N' },
		{ "wait", required_argument, NULL, 'w' },
		{ "wait-peers", required_argument, NULL, OPT_WAIT_PEERS },
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct ivshm_client_params cp;
	struct ivshm_client *c;
	const char *path = DEFAULT_SOCKET, *notify = NULL;
	int wait_vec = -2, timeout = -1, opt, ret;
	long wpeers = -1;
	bool list = false;
	unsigned long v;

	memset(&cp, 0, sizeof(cp));
	cp.peer_event = peer_event;
	cp.no_map = 0;
	while ((opt = getopt_long(argc, argv, "hvS:lN:w:t:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			usage(stdout);
			return 0;
		case 'v':
			g_verbose = true;
			break;
		case 'S':
			path = optarg;
			break;
		case OPT_CONNECT_TIMEOUT:
			if (parse_ul(optarg, 86400000, &v)) {
				fprintf(stderr, "ivshmem-client: bad timeout '%s'\n", optarg);
				return 2;
			}
			cp.connect_timeout_ms = (int)v;
			break;
		case 'l':
			list = true;
			break;
		case 'N':
			notify = optarg;
			break;
		case 'w':
			if (strcmp(optarg, "any") == 0) {
				wait_vec = -1;
			} else if (parse_ul(optarg, 63, &v) == 0) {
				wait_vec = (int)v;
			} else {
				fprintf(stderr, "ivshmem-client: bad vector '%s'\n", optarg);
				return 2;
			}
			break;
		case OPT_WAIT_PEERS:
			if (parse_ul(optarg, 65535, &v)) {
				fprintf(stderr, "ivshmem-client: bad count '%s'\n", optarg);
				return 2;
			}
			wpeers = (long)v;
			break;
		case 't':
			if (parse_ul(optarg, 86400000, &v)) {
				fprintf(stderr, "ivshmem-client: bad timeout '%s'\n", optarg);
				return 2;
			}
			timeout = (int)v;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ivshmem-client: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	/* Scripted modes print only what was asked for. */
	g_quiet_events = (list || notify || wait_vec != -2 || wpeers >= 0) && !g_verbose;
	ret = ivshm_client_connect(path, &cp, &c);
	if (ret) {
		fprintf(stderr, "ivshmem-client: cannot connect to %s: %s\n", path,
			strerror(-ret));
		/* Protocol 0 has no error message: a server that refuses a
		 * peer just closes the socket during the set-up. */
		if (ret == -ECONNRESET)
			fprintf(stderr, "ivshmem-client: the server refused this peer: "
				"its peer limit (--max-peers) is reached or all ids are "
				"in use; its log says which\n");
		return 2;
	}
	ret = 0;
	if (wpeers >= 0)
		ret = wait_peers(c, (unsigned long)wpeers, timeout);
	if (!ret && notify) {
		int r = do_notify(c, notify);

		if (r) {
			fprintf(stderr, "ivshmem-client: notify %s: %s\n", notify,
				strerror(-r));
			ret = 2;
		}
	}
	if (!ret && list)
		dump(c);
	if (!ret && wait_vec != -2)
		ret = wait_vector(c, wait_vec, timeout);
	if (!list && !notify && wait_vec == -2 && wpeers < 0)
		ret = interactive(c);
	ivshm_client_close(c);
	return ret;
}
