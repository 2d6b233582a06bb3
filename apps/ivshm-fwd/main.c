/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ivshm-fwd - a DPDK forwarder between pairs of ethdev ports of any PMD
 * (net_ivshmem to net_ivshmem, or to net_tap, net_af_packet, ...).
 *
 * Each pair "A:B" forwards A->B and B->A (or A->B only with --oneway) on
 * queue 0 of each port, all on the main lcore. By default nothing is dropped:
 * a burst the destination cannot take yet is kept and retried, and its
 * source is not read meanwhile (back-pressure, so that a lossless transport
 * stays lossless end to end); --drop frees what does not fit instead.
 * --eth-dst P=MAC rewrites the destination MAC of frames sent on port P
 * (and the source MAC to P's own). Per-port rates are printed every
 * --interval seconds; --idle-us lets an idle forwarder sleep (for shared
 * machines; busy polling by default). SIGINT/SIGTERM stop forwarding, the ports are
 * stopped and closed, and one "IVSHM_FWD ..." line per port plus a total
 * line give the final counts. net_ivshmem is linked in; other PMDs come
 * from EAL's plugin folder or -d.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#define MAX_PORTS 32
#define MAX_DIRS (2 * MAX_PORTS)
#define MAX_BURST 256

static volatile sig_atomic_t g_quit;

static void on_signal(int sig)
{
	(void)sig;
	g_quit = 1;
}

struct dir {
	uint16_t src, dst;
	uint16_t npend, off;          /* burst waiting for dst: pend[off..npend) */
	struct rte_mbuf *pend[MAX_BURST];
	uint64_t fwd, dropped;
};

struct port_state {
	bool used;
	bool rewrite;
	struct rte_ether_addr own, dst_mac;
	uint64_t last_rx, last_tx;   /* for rates */
	uint64_t fwd_out, dropped_out;
	char name[RTE_ETH_NAME_MAX_LEN];
};

static struct dir g_dirs[MAX_DIRS];
static unsigned int g_ndirs;
static struct port_state g_ports[MAX_PORTS];

static struct {
	unsigned int burst;
	double interval;
	bool drop;
	bool oneway;
	bool quiet;
	unsigned int nb_mbufs;
	uint16_t mtu;
	const char *pairs;
	unsigned long idle_us;
} g_opt = { 32, 1.0, false, false, false, 8191, 0, NULL, 0 };

static void usage(const char *prog)
{
	printf("usage: %s [EAL options] -- [options]\n"
	       "  --pairs A:B[,C:D...]  ports to join (default 0:1,2:3,...)\n"
	       "  --oneway              forward A->B only (default both ways)\n"
	       "  --eth-dst P=MAC       rewrite dst MAC (and src to P's MAC) of frames sent on P\n"
	       "  --drop                drop what the destination cannot take (default: wait)\n"
	       "  --burst N             packets per burst (1..%d, default 32)\n"
	       "  --interval S          print per-port rates every S seconds (0: never; default 1)\n"
	       "  --mbufs N             mbufs in the pool (default 8191)\n"
	       "  --mtu N               set this MTU on every port\n"
	       "  --idle-us N           sleep N us after 1024 empty polls (default 0: busy poll)\n"
	       "  -q, --quiet           no periodic rates\n"
	       "Stops on SIGINT/SIGTERM; last lines: IVSHM_FWD port=N ... and IVSHM_FWD total ...\n",
	       prog, MAX_BURST);
}

static int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int add_dir(uint16_t src, uint16_t dst)
{
	unsigned int i;

	if (g_ndirs >= MAX_DIRS)
		return -1;
	for (i = 0; i < g_ndirs; i++)
		if (g_dirs[i].src == src) {
			fprintf(stderr, "ivshm-fwd: port %u is the source of two directions\n", src);
			return -1;
		}
	g_dirs[g_ndirs].src = src;
	g_dirs[g_ndirs].dst = dst;
	g_ndirs++;
	return 0;
}

static int add_pair(uint16_t a, uint16_t b, uint16_t nports)
{
	if (a >= nports || b >= nports || a == b) {
		fprintf(stderr, "ivshm-fwd: bad pair %u:%u (%u ports probed)\n", a, b, nports);
		return -1;
	}
	if (add_dir(a, b) || (!g_opt.oneway && add_dir(b, a)))
		return -1;
	g_ports[a].used = g_ports[b].used = true;
	return 0;
}

static int parse_pairs(const char *s, uint16_t nports)
{
	char buf[512], *save = NULL, *tok;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		unsigned long a, b;

		if (!colon)
			return -1;
		*colon = 0;
		if (parse_uint(tok, 0, MAX_PORTS - 1, &a) ||
		    parse_uint(colon + 1, 0, MAX_PORTS - 1, &b))
			return -1;
		if (add_pair((uint16_t)a, (uint16_t)b, nports))
			return -1;
	}
	return g_ndirs ? 0 : -1;
}

/* Application options (after EAL's); pairs are resolved once ports exist. */
static int parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "pairs", required_argument, NULL, 'p' },
		{ "oneway", no_argument, NULL, 'o' },
		{ "eth-dst", required_argument, NULL, 'e' },
		{ "drop", no_argument, NULL, 'd' },
		{ "burst", required_argument, NULL, 'b' },
		{ "interval", required_argument, NULL, 'i' },
		{ "mbufs", required_argument, NULL, 'm' },
		{ "mtu", required_argument, NULL, 'M' },
		{ "idle-us", required_argument, NULL, 'I' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long v;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "qh", lo, NULL)) != -1) {
		switch (c) {
		case 'p':
			g_opt.pairs = optarg;
			break;
		case 'o':
			g_opt.oneway = true;
			break;
		case 'e': {
			char *eq = strchr(optarg, '=');
			unsigned long p;

			if (!eq)
				goto bad;
			*eq = 0;
			if (parse_uint(optarg, 0, MAX_PORTS - 1, &p) ||
			    rte_ether_unformat_addr(eq + 1, &g_ports[p].dst_mac) != 0) {
				*eq = '=';
				goto bad;
			}
			g_ports[p].rewrite = true;
			break;
		}
		case 'd':
			g_opt.drop = true;
			break;
		case 'b':
			if (parse_uint(optarg, 1, MAX_BURST, &v))
				goto bad;
			g_opt.burst = (unsigned int)v;
			break;
		case 'i': {
			char *end;

			errno = 0;
			g_opt.interval = strtod(optarg, &end);
			if (errno || *end || !(g_opt.interval >= 0 && g_opt.interval <= 3600))
				goto bad;
			break;
		}
		case 'm':
			if (parse_uint(optarg, 512, 1u << 22, &v))
				goto bad;
			g_opt.nb_mbufs = (unsigned int)v;
			break;
		case 'M':
			if (parse_uint(optarg, 68, 65535, &v))
				goto bad;
			g_opt.mtu = (uint16_t)v;
			break;
		case 'I':
			if (parse_uint(optarg, 0, 999999, &g_opt.idle_us))
				goto bad;
			break;
		case 'q':
			g_opt.quiet = true;
			break;
		case 'h':
			usage(argv[0]);
			exit(0);
		default:
			usage(argv[0]);
			return -1;
		}
		continue;
bad:
		fprintf(stderr, "ivshm-fwd: bad value '%s' for --%s\n", optarg,
			c == 'e' ? "eth-dst" : c == 'b' ? "burst" : c == 'i' ? "interval" :
			c == 'm' ? "mbufs" : c == 'I' ? "idle-us" : "mtu");
		return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "ivshm-fwd: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

static int port_setup(uint16_t port, struct rte_mempool *pool)
{
	struct rte_eth_conf conf;
	struct rte_eth_dev_info info;
	uint16_t nrx = 1024, ntx = 1024;
	int ret;

	memset(&conf, 0, sizeof(conf));
	ret = rte_eth_dev_info_get(port, &info);
	if (ret)
		return ret;
	if (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER)
		conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
	if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS)
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	ret = rte_eth_dev_configure(port, 1, 1, &conf);
	if (ret)
		return ret;
	ret = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nrx, &ntx);
	if (ret)
		return ret;
	ret = rte_eth_rx_queue_setup(port, 0, nrx, rte_eth_dev_socket_id(port), NULL, pool);
	if (ret)
		return ret;
	ret = rte_eth_tx_queue_setup(port, 0, ntx, rte_eth_dev_socket_id(port), NULL);
	if (ret)
		return ret;
	if (g_opt.mtu) {
		ret = rte_eth_dev_set_mtu(port, g_opt.mtu);
		if (ret)
			return ret;
	}
	ret = rte_eth_dev_start(port);
	if (ret)
		return ret;
	/* Not every PMD has a filter to open (ENOTSUP is fine). */
	rte_eth_promiscuous_enable(port);
	rte_eth_macaddr_get(port, &g_ports[port].own);
	rte_eth_dev_get_name_by_port(port, g_ports[port].name);
	return 0;
}

static void rewrite(struct rte_mbuf **m, uint16_t n, const struct port_state *ps)
{
	uint16_t i;

	for (i = 0; i < n; i++) {
		struct rte_ether_hdr *eh;

		if (rte_pktmbuf_data_len(m[i]) < sizeof(*eh))
			continue;
		eh = rte_pktmbuf_mtod(m[i], struct rte_ether_hdr *);
		rte_ether_addr_copy(&ps->dst_mac, &eh->dst_addr);
		rte_ether_addr_copy(&ps->own, &eh->src_addr);
	}
}

/* One pass over a direction: returns packets moved. */
static unsigned int forward(struct dir *d)
{
	uint16_t n;

	if (d->npend == d->off) {
		d->off = 0;
		d->npend = rte_eth_rx_burst(d->src, 0, d->pend, (uint16_t)g_opt.burst);
		if (d->npend == 0)
			return 0;
		if (g_ports[d->dst].rewrite)
			rewrite(d->pend, d->npend, &g_ports[d->dst]);
	}
	n = rte_eth_tx_burst(d->dst, 0, d->pend + d->off, (uint16_t)(d->npend - d->off));
	d->off = (uint16_t)(d->off + n);
	d->fwd += n;
	if (g_opt.drop && d->off < d->npend) {
		uint16_t left = (uint16_t)(d->npend - d->off);

		rte_pktmbuf_free_bulk(d->pend + d->off, left);
		d->dropped += left;
		d->off = d->npend;
	}
	return n;
}

static void print_rates(double secs)
{
	uint16_t p;

	for (p = 0; p < MAX_PORTS; p++) {
		struct rte_eth_stats st;
		struct rte_eth_link link;

		if (!g_ports[p].used || rte_eth_stats_get(p, &st) != 0)
			continue;
		rte_eth_link_get_nowait(p, &link);
		printf("ivshm-fwd: port %u %-20s rx %9.4f Mpps  tx %9.4f Mpps  (rx %" PRIu64
		       " tx %" PRIu64 " missed %" PRIu64 ") link %s\n",
		       p, g_ports[p].name,
		       secs > 0 ? (double)(st.ipackets - g_ports[p].last_rx) / secs / 1e6 : 0.0,
		       secs > 0 ? (double)(st.opackets - g_ports[p].last_tx) / secs / 1e6 : 0.0,
		       st.ipackets, st.opackets, st.imissed,
		       link.link_status ? "up" : "down");
		g_ports[p].last_rx = st.ipackets;
		g_ports[p].last_tx = st.opackets;
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct rte_mempool *pool;
	uint16_t nports, p;
	unsigned int i;
	uint64_t hz, next_print, last_print, fwd = 0, dropped = 0, idle = 0;
	int ret, rc = 0;

	ret = rte_eal_init(argc, argv);
	if (ret < 0) {
		fprintf(stderr, "ivshm-fwd: EAL initialisation failed: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	argc -= ret;
	argv += ret;
	argv[0] = (char *)"ivshm-fwd";
	if (parse_args(argc, argv) != 0) {
		rte_eal_cleanup();
		return 2;
	}
	nports = rte_eth_dev_count_avail();
	if (nports < 2 || nports > MAX_PORTS) {
		fprintf(stderr, "ivshm-fwd: %u ports probed; need 2..%d (give --vdev ...)\n",
			nports, MAX_PORTS);
		rte_eal_cleanup();
		return 2;
	}
	if (g_opt.pairs) {
		if (parse_pairs(g_opt.pairs, nports) != 0) {
			fprintf(stderr, "ivshm-fwd: bad --pairs '%s'\n", g_opt.pairs);
			rte_eal_cleanup();
			return 2;
		}
	} else {
		for (p = 0; p + 1 < nports; p += 2)
			if (add_pair(p, (uint16_t)(p + 1), nports))
				return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	pool = rte_pktmbuf_pool_create("ivshm_fwd_pool", g_opt.nb_mbufs, 256, 0,
				       RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
	if (!pool) {
		fprintf(stderr, "ivshm-fwd: cannot create a pool of %u mbufs: %s\n",
			g_opt.nb_mbufs, rte_strerror(rte_errno));
		rte_eal_cleanup();
		return 1;
	}
	for (p = 0; p < MAX_PORTS; p++) {
		if (!g_ports[p].used)
			continue;
		ret = port_setup(p, pool);
		if (ret) {
			fprintf(stderr, "ivshm-fwd: port %u: set-up failed: %s\n", p, strerror(-ret));
			rc = 1;
			goto out;
		}
		printf("ivshm-fwd: port %u %s mac " RTE_ETHER_ADDR_PRT_FMT "\n", p,
		       g_ports[p].name, RTE_ETHER_ADDR_BYTES(&g_ports[p].own));
	}
	for (i = 0; i < g_ndirs; i++)
		printf("ivshm-fwd: forwarding %u -> %u%s\n", g_dirs[i].src, g_dirs[i].dst,
		       g_ports[g_dirs[i].dst].rewrite ? " (dst MAC rewritten)" : "");
	fflush(stdout);

	hz = rte_get_tsc_hz();
	last_print = rte_get_tsc_cycles();
	next_print = g_opt.interval > 0 && !g_opt.quiet ?
		     last_print + (uint64_t)(g_opt.interval * (double)hz) : UINT64_MAX;
	while (!g_quit) {
		unsigned int moved = 0;
		uint64_t now;

		for (i = 0; i < g_ndirs; i++)
			moved += forward(&g_dirs[i]);
		now = rte_get_tsc_cycles();
		if (now >= next_print) {
			print_rates((double)(now - last_print) / (double)hz);
			last_print = now;
			next_print = now + (uint64_t)(g_opt.interval * (double)hz);
		}
		if (moved) {
			idle = 0;
		} else if (g_opt.idle_us && ++idle >= 1024) {
			/* Shared machines: give the CPU away while nothing moves. */
			struct timespec ts = { 0, (long)g_opt.idle_us * 1000 };

			nanosleep(&ts, NULL);
		} else {
			rte_pause();
		}
	}
	printf("ivshm-fwd: stopping\n");
	/* Last rates line: the time since the previous one. */
	if (g_opt.interval > 0 && !g_opt.quiet)
		print_rates((double)(rte_get_tsc_cycles() - last_print) / (double)hz);

out:
	/* Bursts still waiting for a destination are lost: count them. */
	for (i = 0; i < g_ndirs; i++) {
		struct dir *d = &g_dirs[i];

		if (d->npend > d->off) {
			rte_pktmbuf_free_bulk(d->pend + d->off, (uint16_t)(d->npend - d->off));
			d->dropped += (uint64_t)(d->npend - d->off);
			d->off = d->npend;
		}
		g_ports[d->dst].fwd_out += d->fwd;
		g_ports[d->dst].dropped_out += d->dropped;
		fwd += d->fwd;
		dropped += d->dropped;
	}
	for (p = 0; p < MAX_PORTS; p++) {
		struct rte_eth_stats st;

		if (!g_ports[p].used)
			continue;
		memset(&st, 0, sizeof(st));
		rte_eth_stats_get(p, &st);
		printf("IVSHM_FWD port=%u name=%s rx=%" PRIu64 " tx=%" PRIu64 " rx_bytes=%" PRIu64
		       " tx_bytes=%" PRIu64 " missed=%" PRIu64 " fwd_out=%" PRIu64
		       " dropped_out=%" PRIu64 "\n",
		       p, g_ports[p].name[0] ? g_ports[p].name : "?", st.ipackets, st.opackets,
		       st.ibytes, st.obytes, st.imissed, g_ports[p].fwd_out,
		       g_ports[p].dropped_out);
		rte_eth_dev_stop(p);
		rte_eth_dev_close(p);
	}
	printf("IVSHM_FWD total fwd=%" PRIu64 " dropped=%" PRIu64 " status=%s\n", fwd, dropped,
	       rc ? "fail" : "ok");
	fflush(stdout);
	rte_mempool_free(pool);
	rte_eal_cleanup();
	return rc;
}
