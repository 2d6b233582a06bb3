/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ivshmem-server - serve shared memory and doorbell eventfds to QEMU's
 * ivshmem-doorbell device and to host clients.
 *
 * Accepts the flags of QEMU's contrib/ivshmem-server (-F -S -l -n -m -M -p
 * -v -h, same defaults except that memory comes from a memfd unless -m or
 * -M is given) plus long options for the extras. This file only parses
 * arguments, sets up logging, signals and daemon mode, and calls the
 * library (ivshmem/server.c). Exit status: 0 after a clean shutdown
 * (SIGTERM/SIGINT), 1 on any error, with the reason on stderr or syslog.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "ivshm/server.h"

#define DEFAULT_SOCKET  "/tmp/ivshmem_socket"
#define DEFAULT_PIDFILE "/var/run/ivshmem-server.pid"
#define DEFAULT_SIZE    (UINT64_C(4) << 20)

static struct ivshm_server *g_srv;
static bool g_syslog;
static int g_level = LOG_NOTICE;

static const char *level_name(int level)
{
	switch (level) {
	case LOG_EMERG: case LOG_ALERT: case LOG_CRIT: case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
		return "notice";
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

static void log_cb(void *arg, int level, const char *msg)
{
	(void)arg;
	if (level > g_level)
		return;
	if (g_syslog)
		syslog(level, "%s", msg);
	else
		fprintf(stderr, "ivshmem-server: %s: %s\n", level_name(level), msg);
}

static void say(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_cb(NULL, level, buf);
}

static void on_signal(int sig)
{
	(void)sig;
	if (g_srv)
		ivshm_server_stop(g_srv);
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: ivshmem-server [OPTION]...\n"
"Serve shared memory and doorbells to QEMU ivshmem-doorbell devices and\n"
"host clients over a UNIX socket (QEMU ivshmem protocol, version 0).\n"
"\n"
"  -h, --help             show this help and exit\n"
"  -v, --verbose          log every peer connection and departure\n"
"  -q, --quiet            log warnings and errors only\n"
"  -F, --foreground       do not daemonise (daemon mode logs to syslog)\n"
"  -p, --pidfile PATH     PID file (daemon mode; default " DEFAULT_PIDFILE ")\n"
"  -S, --socket-path PATH UNIX socket to listen on (default " DEFAULT_SOCKET ")\n"
"  -m, --shm-dir DIR      memory from a file in DIR (e.g. a hugetlbfs mount)\n"
"  -M, --shm-name NAME    memory from the POSIX shm object NAME\n"
"                         (default: an anonymous memfd)\n"
"  -l, --size SIZE        memory size, suffixes K M G T (default 4M); rounded\n"
"                         up to a power of two, as QEMU requires\n"
"  -n, --vectors N        doorbell vectors per peer, 1..64 (default 1)\n"
"      --numa-node N      bind the memory to NUMA node N\n"
"      --max-peers N      accept at most N peers at once (default 65536)\n"
"      --max-queue N      drop a peer with N messages unread (default 65536)\n"
"      --socket-mode MODE chmod the socket (octal, e.g. 0660)\n"
"      --socket-group GRP chgrp the socket (name or number)\n"
"\n"
"QEMU: -chardev socket,path=SOCKET,id=ivshm0 \\\n"
"      -device ivshmem-doorbell,chardev=ivshm0,vectors=N\n");
}

/* Like QEMU's qemu_strtosz: integer with optional K/M/G/T/P/E (x1024). */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case '\0': break;
	case 'b': case 'B': shift = 0; end++; break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	case 'p': case 'P': shift = 50; end++; break;
	case 'e': case 'E': shift = 60; end++; break;
	default: return -EINVAL;
	}
	if (*end)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_uint(const char *s, unsigned long max, int base,
		      unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, base);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Write our pid into the PID file opened (before daemonising) as @p fd. */
static int write_pidfile(int fd)
{
	char buf[32];
	int n, ret = 0;

	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
		ret = -EIO;
	close(fd);
	return ret;
}

/* Fork into the background once the server is listening, so that every
 * set-up error is still reported on stderr with a failing exit status. */
static int daemonise(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0)
		return -errno;
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	return 0;
}

int main(int argc, char **argv)
{
	enum { OPT_NUMA = 256, OPT_MAX_PEERS, OPT_MAX_QUEUE, OPT_SOCK_MODE,
	       OPT_SOCK_GROUP };
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "foreground", no_argument, NULL, 'F' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "socket-path", required_argument, NULL, 'S' },
		{ "shm-dir", required_argument, NULL, 'm' },
		{ "shm-name", required_argument, NULL, 'M' },
		{ "size", required_argument, NULL, 'l' },
		{ "vectors", required_argument, NULL, 'n' },
		{ "numa-node", required_argument, NULL, OPT_NUMA },
		{ "max-peers", required_argument, NULL, OPT_MAX_PEERS },
		{ "max-queue", required_argument, NULL, OPT_MAX_QUEUE },
		{ "socket-mode", required_argument, NULL, OPT_SOCK_MODE },
		{ "socket-group", required_argument, NULL, OPT_SOCK_GROUP },
		{ NULL, 0, NULL, 0 },
	};
	struct ivshm_server_params p;
	const char *pidfile = NULL;
	int pid_fd = -1;
	bool foreground = false;
	struct sigaction sa;
	struct rlimit rl;
	unsigned long v;
	int opt, ret;

	memset(&p, 0, sizeof(p));
	p.socket_path = DEFAULT_SOCKET;
	p.size = DEFAULT_SIZE;
	p.vectors = 1;
	p.log = log_cb;

	while ((opt = getopt_long(argc, argv, "hvqFp:S:m:M:l:n:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			usage(stdout);
			return 0;
		case 'v':
			g_level = LOG_DEBUG;
			break;
		case 'q':
			g_level = LOG_WARNING;
			break;
		case 'F':
			foreground = true;
			break;
		case 'p':
			pidfile = optarg;
			break;
		case 'S':
			p.socket_path = optarg;
			break;
		case 'm':
			p.mem = IVSHM_SERVER_MEM_DIR;
			p.mem_path = optarg;
			break;
		case 'M':
			p.mem = IVSHM_SERVER_MEM_SHM;
			p.mem_path = optarg;
			break;
		case 'l':
			if (parse_size(optarg, &p.size)) {
				say(LOG_ERR, "invalid size '%s'", optarg);
				return 1;
			}
			break;
		case 'n':
			if (parse_uint(optarg, 64, 10, &v) || v == 0) {
				say(LOG_ERR, "invalid number of vectors '%s' (1..64)", optarg);
				return 1;
			}
			p.vectors = (unsigned int)v;
			break;
		case OPT_NUMA:
			if (parse_uint(optarg, 4095, 10, &v)) {
				say(LOG_ERR, "invalid NUMA node '%s'", optarg);
				return 1;
			}
			p.flags |= IVSHM_SERVER_F_NUMA;
			p.numa_node = (int)v;
			break;
		case OPT_MAX_PEERS:
			if (parse_uint(optarg, 65536, 10, &v) || v == 0) {
				say(LOG_ERR, "invalid peer limit '%s' (1..65536)", optarg);
				return 1;
			}
			p.max_peers = (unsigned int)v;
			break;
		case OPT_MAX_QUEUE:
			if (parse_uint(optarg, 1u << 24, 10, &v) || v == 0) {
				say(LOG_ERR, "invalid queue limit '%s'", optarg);
				return 1;
			}
			p.max_queue = (unsigned int)v;
			break;
		case OPT_SOCK_MODE:
			if (parse_uint(optarg, 07777, 8, &v) || v == 0) {
				say(LOG_ERR, "invalid socket mode '%s' (octal)", optarg);
				return 1;
			}
			p.socket_mode = (unsigned int)v;
			break;
		case OPT_SOCK_GROUP: {
			struct group *g = getgrnam(optarg);

			if (g) {
				v = g->gr_gid;
			} else if (parse_uint(optarg, UINT32_MAX - 1, 10, &v)) {
				say(LOG_ERR, "unknown group '%s'", optarg);
				return 1;
			}
			p.flags |= IVSHM_SERVER_F_GROUP;
			p.socket_gid = (unsigned int)v;
			break;
		}
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind < argc) {
		say(LOG_ERR, "unexpected argument '%s'", argv[optind]);
		usage(stderr);
		return 1;
	}
	if (!foreground && !pidfile)
		pidfile = DEFAULT_PIDFILE;

	/* Each peer holds a socket and up to 64 eventfds, and descriptors in
	 * flight to slow readers count against this limit too. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	ret = ivshm_server_create(&p, &g_srv);
	if (ret) {
		say(LOG_ERR, "cannot start: %s", strerror(-ret));
		return 1;
	}
	/* Open the PID file while errors still reach the terminal. */
	if (pidfile) {
		pid_fd = open(pidfile, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (pid_fd < 0) {
			say(LOG_ERR, "cannot open PID file %s: %s", pidfile,
			    strerror(errno));
			ivshm_server_destroy(g_srv);
			return 1;
		}
	}
	if (!foreground) {
		ret = daemonise();
		if (ret) {
			say(LOG_ERR, "cannot daemonise: %s", strerror(-ret));
			ivshm_server_destroy(g_srv);
			if (pidfile)
				unlink(pidfile);
			return 1;
		}
		openlog("ivshmem-server", LOG_PID, LOG_DAEMON);
		g_syslog = true;
	}
	if (pidfile) {
		ret = write_pidfile(pid_fd);
		if (ret) {
			say(LOG_ERR, "cannot write PID file %s: %s", pidfile,
			    strerror(-ret));
			ivshm_server_destroy(g_srv);
			return 1;
		}
	}

	/* Handlers only once g_srv exists; stop() is async-signal-safe. */
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);

	say(LOG_NOTICE, "ready: socket %s, %" PRIu64 " bytes, %u vector%s",
	    p.socket_path, ivshm_server_size(g_srv), ivshm_server_vectors(g_srv),
	    ivshm_server_vectors(g_srv) == 1 ? "" : "s");
	ret = ivshm_server_run(g_srv);
	say(LOG_NOTICE, "shutting down");
	ivshm_server_destroy(g_srv);
	g_srv = NULL;
	if (pidfile)
		unlink(pidfile);
	return ret ? 1 : 0;
}
