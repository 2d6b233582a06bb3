/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ivshm-traffic - packet generator, sink, reflector and latency meter over
 * an ivshm channel, without DPDK (hosts and guests; see traffic.c).
 *
 * This file only parses arguments (strict: every number is range-checked,
 * an unknown option or value is an error with exit status 2) and calls
 * tr_run().
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traffic.h"

static void usage(FILE *f)
{
	fprintf(f,
"usage: ivshm-traffic gen|sink|echo|ping --ep EP [options]\n"
"  gen    send packets (never dropping: a full ring waits), then END;\n"
"         checks the sink's ACK (exact count, no loss or corruption)\n"
"  sink   receive and check every packet; answer END with an ACK\n"
"  echo   check every packet and send it back (for ping)\n"
"  ping   packets to an echo with --window in flight; round-trip times\n"
"options:\n"
"  --ep EP            socket:PATH | shm:PATH?size=N | pci:BDF | pci:auto\n"
"  --channel N        channel id (0..63, default 0)\n"
"  --size N|A-B|random  frame bytes (46..max packet; random = 64-1518; default 64)\n"
"  --count N          packets to send (gen, ping); sink/echo: expected count\n"
"  --duration S       send for S seconds (gen, ping) instead of a count\n"
"  --mode poll|intr|adaptive  how the receive side waits (default adaptive)\n"
"  --tx-copy auto|cached|stream  how packets are copied into the region:\n"
"                        ordinary or streaming stores, or measure (default auto)\n"
"  --burst N          packets per burst (1..256, default 32)\n"
"  --window N         ping: packets in flight (1..4096, default 1)\n"
"  --timeout S        link wait and longest stall (default 30)\n"
"  --interval S       progress line to stderr every S seconds (0: none)\n"
"  --queues N --ring-size N --buf-size N --max-pkt N  channel parameters\n"
"                     (both ends must agree; defaults as net_ivshmem's)\n"
"  --no-verify        check header and checksum only, not every payload byte\n"
"  --no-ack           gen: send END but wait for no ACK (one-way paths, e.g. to a\n"
"                     tap device through ivshm-fwd): status ok once all is sent\n"
"  --rate PPS         gen: at most PPS packets per second\n"
"  --corrupt-every N  gen, to test receivers: flip a byte of every Nth packet\n"
"                     after its checksum is computed\n"
"  --one-way          sink: one-way latency from the generator's time stamps\n"
"                     (meaningful only when both share a clock: same host)\n"
"  --seed N           random sizes seed\n"
"  --peer-timeout MS  heartbeat silence that means the peer (or a side's\n"
"                     holder, when opening) is dead (default 3000)\n"
"  -v, -q             more / less on stderr\n"
"Last line on stdout: IVSHM_TRAFFIC role=.. status=ok|fail key=value...\n"
"Exit status: 0 ok, 1 failed check or peer problem, 2 bad arguments.\n");
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -1;
	if (*end == 'K' || *end == 'k') { v <<= 10; end++; }
	else if (*end == 'M') { v <<= 20; end++; }
	else if (*end == 'G') { v <<= 30; end++; }
	if (*end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_double(const char *s, double min, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= min && v <= max))
		return -1;
	*out = v;
	return 0;
}

static int parse_size(const char *s, struct tr_opts *o)
{
	uint64_t a, b;
	const char *dash;

	if (strcmp(s, "random") == 0) {
		o->size_min = 64;
		o->size_max = 1518;
		return 0;
	}
	dash = strchr(s, '-');
	if (dash) {
		char lo[32];
		size_t n = (size_t)(dash - s);

		if (n == 0 || n >= sizeof(lo))
			return -1;
		memcpy(lo, s, n);
		lo[n] = 0;
		if (parse_u64(lo, TR_MIN_LEN, 65535, &a) ||
		    parse_u64(dash + 1, TR_MIN_LEN, 65535, &b) || a > b)
			return -1;
	} else {
		if (parse_u64(s, TR_MIN_LEN, 65535, &a))
			return -1;
		b = a;
	}
	o->size_min = (uint32_t)a;
	o->size_max = (uint32_t)b;
	return 0;
}

/* Index of @p v in the NULL-terminated @p names, or -1. */
static int name_index(const char *v, const char *const *names)
{
	for (int i = 0; names[i] != NULL; i++)
		if (strcmp(v, names[i]) == 0)
			return i;
	return -1;
}

enum {
	OPT_EP = 256, OPT_CHANNEL, OPT_SIZE, OPT_COUNT, OPT_DURATION, OPT_MODE,
	OPT_BURST, OPT_WINDOW, OPT_TIMEOUT, OPT_INTERVAL, OPT_QUEUES, OPT_RING,
	OPT_BUF, OPT_MAXPKT, OPT_NOVERIFY, OPT_SEED, OPT_NOACK, OPT_RATE, OPT_PEERTMO, OPT_ONEWAY, OPT_CORRUPT,
	OPT_TXCOPY,
};

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "ep", required_argument, NULL, OPT_EP },
		{ "channel", required_argument, NULL, OPT_CHANNEL },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "duration", required_argument, NULL, OPT_DURATION },
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "tx-copy", required_argument, NULL, OPT_TXCOPY },
		{ "burst", required_argument, NULL, OPT_BURST },
		{ "window", required_argument, NULL, OPT_WINDOW },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "interval", required_argument, NULL, OPT_INTERVAL },
		{ "queues", required_argument, NULL, OPT_QUEUES },
		{ "ring-size", required_argument, NULL, OPT_RING },
		{ "buf-size", required_argument, NULL, OPT_BUF },
		{ "max-pkt", required_argument, NULL, OPT_MAXPKT },
		{ "no-verify", no_argument, NULL, OPT_NOVERIFY },
		{ "no-ack", no_argument, NULL, OPT_NOACK },
		{ "rate", required_argument, NULL, OPT_RATE },
		{ "one-way", no_argument, NULL, OPT_ONEWAY },
		{ "corrupt-every", required_argument, NULL, OPT_CORRUPT },
		{ "peer-timeout", required_argument, NULL, OPT_PEERTMO },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct tr_opts o;
	uint64_t v;
	int c;

	memset(&o, 0, sizeof(o));
	o.size_min = o.size_max = 64;
	o.timeout = 30;
	o.burst = 32;
	o.window = 1;
	o.verify_payload = 1;
	o.tp.rx_mode = IVSHM_TRANSPORT_RX_ADAPTIVE;
	/*
	 * The transport's 1 s default is short for guests under TCG on a busy
	 * host: a holder that misses its heartbeats that long while we open
	 * the channel is judged dead and loses its side. 3 s, as net_ivshmem.
	 */
	o.tp.peer_timeout_ms = 3000;
	o.tp.open_timeout_ms = 3000;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "gen") == 0)
		o.role = TR_GEN;
	else if (strcmp(argv[1], "sink") == 0)
		o.role = TR_SINK;
	else if (strcmp(argv[1], "echo") == 0)
		o.role = TR_ECHO;
	else if (strcmp(argv[1], "ping") == 0)
		o.role = TR_PING;
	else {
		fprintf(stderr, "ivshm-traffic: unknown role '%s' (gen, sink, echo, ping)\n", argv[1]);
		return 2;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "vqh", lo, NULL)) != -1) {
		const char *what = NULL;

		switch (c) {
		case OPT_EP:
			o.ep = optarg;
			break;
		case OPT_CHANNEL:
			if (parse_u64(optarg, 0, IVSHM_TRANSPORT_MAX_CHANNELS - 1, &v))
				what = "--channel";
			o.channel = (uint32_t)v;
			break;
		case OPT_SIZE:
			if (parse_size(optarg, &o))
				what = "--size";
			break;
		case OPT_COUNT:
			if (parse_u64(optarg, 1, UINT64_MAX / 2, &o.count))
				what = "--count";
			break;
		case OPT_DURATION:
			if (parse_double(optarg, 0.001, 1e7, &o.duration))
				what = "--duration";
			break;
		case OPT_MODE: {
			/* In the order of enum ivshm_transport_rx_mode. */
			static const char *const m[] = { "poll", "intr", "adaptive", NULL };
			int i = name_index(optarg, m);

			if (i < 0)
				what = "--mode";
			else
				o.tp.rx_mode = (enum ivshm_transport_rx_mode)i;
			break;
		}
		case OPT_TXCOPY: {
			/* In the order of enum ivshm_copy_policy. */
			static const char *const m[] = { "auto", "cached", "stream", NULL };
			int i = name_index(optarg, m);

			if (i < 0)
				what = "--tx-copy";
			else
				o.tp.tx_copy = (enum ivshm_copy_policy)i;
			break;
		}
		case OPT_BURST:
			if (parse_u64(optarg, 1, 256, &v))
				what = "--burst";
			o.burst = (uint32_t)v;
			break;
		case OPT_WINDOW:
			if (parse_u64(optarg, 1, 4096, &v))
				what = "--window";
			o.window = (uint32_t)v;
			break;
		case OPT_TIMEOUT:
			if (parse_double(optarg, 0.1, 86400, &o.timeout))
				what = "--timeout";
			break;
		case OPT_INTERVAL:
			if (parse_double(optarg, 0, 3600, &o.interval))
				what = "--interval";
			break;
		case OPT_QUEUES:
			if (parse_u64(optarg, 1, IVSHM_TRANSPORT_MAX_QUEUES, &v))
				what = "--queues";
			o.tp.nb_queues = (uint32_t)v;
			break;
		case OPT_RING:
			if (parse_u64(optarg, IVSHM_TRANSPORT_MIN_RING, IVSHM_TRANSPORT_MAX_RING, &v) ||
			    (v & (v - 1)))
				what = "--ring-size (a power of two)";
			o.tp.ring_size = (uint32_t)v;
			break;
		case OPT_BUF:
			if (parse_u64(optarg, IVSHM_TRANSPORT_MIN_BUF, IVSHM_TRANSPORT_MAX_BUF, &v) ||
			    v % 64)
				what = "--buf-size (a multiple of 64)";
			o.tp.buf_size = (uint32_t)v;
			break;
		case OPT_MAXPKT:
			if (parse_u64(optarg, TR_MIN_LEN, IVSHM_TRANSPORT_MAX_PKT, &v))
				what = "--max-pkt";
			o.tp.max_pkt_len = (uint32_t)v;
			break;
		case OPT_NOVERIFY:
			o.verify_payload = 0;
			break;
		case OPT_CORRUPT:
			if (parse_u64(optarg, 1, UINT64_MAX, &o.corrupt_every))
				what = "--corrupt-every";
			break;
		case OPT_ONEWAY:
			o.one_way = 1;
			break;
		case OPT_NOACK:
			o.no_ack = 1;
			break;
		case OPT_PEERTMO:
			if (parse_u64(optarg, 10, 3600000, &v))
				what = "--peer-timeout";
			o.tp.peer_timeout_ms = (uint32_t)v;
			o.tp.open_timeout_ms = (uint32_t)v;
			break;
		case OPT_RATE:
			if (parse_double(optarg, 1, 1e9, &o.rate))
				what = "--rate";
			break;
		case OPT_SEED:
			if (parse_u64(optarg, 0, UINT64_MAX, &o.seed))
				what = "--seed";
			break;
		case 'v':
			o.verbose = 1;
			break;
		case 'q':
			o.quiet = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (what) {
			fprintf(stderr, "ivshm-traffic: bad value for %s: '%s'\n", what, optarg);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ivshm-traffic: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!o.ep) {
		fprintf(stderr, "ivshm-traffic: --ep is required\n");
		return 2;
	}
	if ((o.role == TR_GEN || o.role == TR_PING) && !o.count && o.duration <= 0) {
		fprintf(stderr, "ivshm-traffic: %s needs --count or --duration\n", argv[1]);
		return 2;
	}
	return tr_run(&o);
}
