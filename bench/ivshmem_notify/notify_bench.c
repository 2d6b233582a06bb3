/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * notify_bench.c - what the host client library adds to a doorbell.
 *
 * Two threads ping-pong a doorbell: thread A notifies B's vector 0 and
 * waits for its own vector 0; B waits and answers. Measured through the
 * client library (ivshm_client_notify + ivshm_client_wait, with a server
 * on a third thread) and, as the baseline, with two raw eventfds and
 * poll+read/write doing the same. Runs alternate, several repetitions,
 * medians, and the ratio library/raw. Also: connect+close per second
 * against the server. Prints a table, then one RESULT line.
 *
 * Usage: ivshmem_notify_bench [round_trips_per_rep] [reps]
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "ivshm/client.h"
#include "ivshm/server.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- library ping-pong ---- */

struct lib_arg {
	struct ivshm_client *me;
	uint16_t peer;
	long n;
};

static void *lib_echo(void *p)
{
	struct lib_arg *a = p;

	for (long i = 0; i < a->n; i++) {
		uint64_t fired = 0;

		while (!(fired & 1))
			if (ivshm_client_wait(a->me, 1000, &fired) < 0)
				return NULL;
		ivshm_client_notify(a->me, a->peer, 0);
	}
	return NULL;
}

static double lib_rtt_us(struct ivshm_client *a, struct ivshm_client *b, long n)
{
	struct lib_arg ea = { b, ivshm_client_id(a), n };
	pthread_t t;
	double t0, t1;

	pthread_create(&t, NULL, lib_echo, &ea);
	t0 = now_s();
	for (long i = 0; i < n; i++) {
		uint64_t fired = 0;

		ivshm_client_notify(a, ivshm_client_id(b), 0);
		while (!(fired & 1))
			if (ivshm_client_wait(a, 1000, &fired) < 0)
				break;
	}
	t1 = now_s();
	pthread_join(t, NULL);
	return (t1 - t0) / (double)n * 1e6;
}

/* ---- raw eventfd ping-pong (baseline) ---- */

struct raw_arg {
	int in, out;
	long n;
};

static void raw_wait(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };
	uint64_t c;

	for (;;) {
		poll(&p, 1, 1000);
		if (read(fd, &c, 8) == 8)
			return;
	}
}

static void *raw_echo(void *p)
{
	struct raw_arg *a = p;
	uint64_t one = 1;

	for (long i = 0; i < a->n; i++) {
		raw_wait(a->in);
		if (write(a->out, &one, 8) != 8)
			return NULL;
	}
	return NULL;
}

static double raw_rtt_us(long n)
{
	int ab = eventfd(0, EFD_NONBLOCK), ba = eventfd(0, EFD_NONBLOCK);
	struct raw_arg ea = { ab, ba, n };
	uint64_t one = 1;
	pthread_t t;
	double t0, t1;

	pthread_create(&t, NULL, raw_echo, &ea);
	t0 = now_s();
	for (long i = 0; i < n; i++) {
		if (write(ab, &one, 8) != 8)
			break;
		raw_wait(ba);
	}
	t1 = now_s();
	pthread_join(t, NULL);
	close(ab);
	close(ba);
	return (t1 - t0) / (double)n * 1e6;
}

static void *server_main(void *p)
{
	ivshm_server_run(p);
	return NULL;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 20000;
	int reps = argc > 2 ? atoi(argv[2]) : 5;
	struct ivshm_server_params sp;
	struct ivshm_server *srv;
	struct ivshm_client_params cp;
	struct ivshm_client *a, *b;
	char path[128];
	double lib[64], raw[64], conn[64];
	pthread_t st;
	int ret;

	if (n <= 0 || reps <= 0 || reps > 64) {
		fprintf(stderr, "usage: %s [round_trips_per_rep] [reps<=64]\n", argv[0]);
		return 2;
	}
	snprintf(path, sizeof(path), "/tmp/ivshm-bench-%d-%u.sock", (int)getpid(),
		 (unsigned int)rand());
	memset(&sp, 0, sizeof(sp));
	sp.socket_path = path;
	sp.size = 1 << 20;
	sp.vectors = 1;
	ret = ivshm_server_create(&sp, &srv);
	if (ret) {
		fprintf(stderr, "server: %s\n", strerror(-ret));
		return 1;
	}
	pthread_create(&st, NULL, server_main, srv);
	memset(&cp, 0, sizeof(cp));
	cp.connect_timeout_ms = 5000;
	if (ivshm_client_connect(path, &cp, &a) || ivshm_client_connect(path, &cp, &b)) {
		fprintf(stderr, "connect failed\n");
		return 1;
	}
	/* a must know b's vectors before notifying. */
	while (ivshm_client_peer_nvectors(a, ivshm_client_id(b)) == 0)
		ivshm_client_wait(a, 100, NULL);

	for (int r = 0; r < reps; r++) {
		/* Alternate, so both see the same vCPU placements. */
		lib[r] = lib_rtt_us(a, b, n);
		raw[r] = raw_rtt_us(n);
		{
			const int m = 500;
			double t0 = now_s();

			for (int i = 0; i < m; i++) {
				struct ivshm_client *c;

				cp.no_map = 1;
				if (ivshm_client_connect(path, &cp, &c) == 0)
					ivshm_client_close(c);
			}
			conn[r] = m / (now_s() - t0);
		}
		/* Drain the departures. */
		ivshm_client_process(a);
		ivshm_client_process(b);
	}
	printf("%-34s %12s\n", "doorbell round trip (2 threads)", "median");
	printf("%-34s %9.2f us\n", "ivshm_client notify+wait", median(lib, reps));
	printf("%-34s %9.2f us\n", "raw eventfd write+poll+read", median(raw, reps));
	printf("%-34s %9.0f /s\n", "server connect+set-up+close", median(conn, reps));
	printf("RESULT ivshmem_notify lib_rtt_us=%.2f raw_rtt_us=%.2f ratio=%.3f "
	       "connects_per_s=%.0f reps=%d round_trips=%ld\n",
	       median(lib, reps), median(raw, reps), median(lib, reps) / median(raw, reps),
	       median(conn, reps), reps, n);
	ivshm_client_close(a);
	ivshm_client_close(b);
	ivshm_server_stop(srv);
	pthread_join(st, NULL);
	ivshm_server_destroy(srv);
	return 0;
}
