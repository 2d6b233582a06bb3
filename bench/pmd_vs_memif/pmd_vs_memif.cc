// SPDX-License-Identifier: BSD-3-Clause
//
// pmd_vs_memif - Debian's dpdk-testpmd pair, txonly into rxonly, one queue,
// each process on its own core, over net_ivshmem and over DPDK's net_memif,
// alternating in one run; 64-byte and 1500-byte packets, several
// repetitions, medians of the receive rate measured on the rxonly side.
// net_ivshmem runs twice: as configured by default (the receiver copies
// each packet into an mbuf of its own, as memif does) and with zero_copy=1
// (packets from 256 bytes on are lent to the application in the region's
// buffer; rxonly never reads the payload, so these bytes never cross to
// the receiving core).
//
//   pmd_vs_memif PMD.so [--reps N] [--seconds S] [--mode shm|socket]
//                [--server PATH] [--sizes 64,1500] [--variants copy,memif,zc]
//                [--ivshmem-args K=V,...]   (extra net_ivshmem devargs)
//
// The receive rate is testpmd's "Rx-pps" of the rxonly port between two
// "show port stats" S seconds apart, after a one-second warm-up (testpmd
// divides the RX-packets difference by the time between its own samples).
// Prints a table, then the last line
//   RESULT pmd_vs_memif ivshmem_64_mpps=X memif_64_mpps=Y ratio_64=X/Y ratio_1500=R
//          zc_64_mpps=Z zc_ratio_64=Z/Y zc_ratio_1500=R' paired_64=.. paired_1500=..
//          zc_paired_64=.. zc_paired_1500=..
// (ratio_*: default copy mode; zc_ratio_*: zero_copy=1; ratios of the
// medians, and paired_*: the median of each repetition's own ratio).
// Placement: the two vCPUs of a VM move between "near" (sharing a cache)
// and "far" placements, and every figure here changes 3-10 fold with them.
// Right before and after each run a cache-line ping-pong between cores 0
// and 1 (median of 5 x 2000 round trips, one-way ns) classifies the run:
// near below 80 ns both times (25-31 here), far above both times (166-180
// here), else mixed. The summary then also gives ratios within each class
// (ratio_1500_near=..., ratio_1500_far=..., from runs of the same class
// only; 0 without any).
// The table's "tx copy/switches" column says how the net_ivshmem sender
// copied at the end of the run (tx_copy=auto chooses between cached and
// streaming stores while it runs) and how many times it switched.
// A memif testpmd that crashes while shutting down (a known Debian 22.11
// fault) does not fail the run; a run that moves no packets does.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <pthread.h>
#include <sched.h>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "testpmd_runner.h"

using namespace ivshm_test;

struct Config {
	std::string pmd;
	std::string mode = "shm";
	std::string server;
	int reps = 5;
	double seconds = 3.0;
	std::vector<int> sizes = {64, 1500};
	std::vector<int> variants = {0, 1, 2};
	std::string ivshmem_args; // appended to both net_ivshmem vdevs
};

enum { V_COPY, V_MEMIF, V_ZC, V_N };
static const char *const vname[V_N] = {"ivshmem", "memif", "ivshm_zc"};
enum { P_NEAR, P_FAR, P_MIXED, P_N };
static const char *const pname[P_N] = {"near", "far", "mixed"};
static const double kFarNs = 80.0; // one-way ping-pong here: near 25-31, far 166-180

static void pin_self(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

// One-way latency of a cache line bounced between cores 0 and 1 (ns).
static double pingpong_ns()
{
	alignas(64) static std::atomic<uint32_t> flag;
	const uint32_t rounds = 2000;
	std::vector<double> v;
	cpu_set_t old;
	pthread_getaffinity_np(pthread_self(), sizeof(old), &old);
	pin_self(0);
	for (int k = 0; k < 5; k++) {
		flag.store(0);
		// The peer starts on core 0 (it inherits our affinity) and moves
		// itself to core 1; we yield until it has, then bounce. Round 0
		// is the hand-shake, untimed.
		std::thread peer([&] {
			pin_self(1);
			flag.store(1, std::memory_order_release);
			for (uint32_t i = 1; i <= rounds; i++) {
				while (flag.load(std::memory_order_acquire) != 2 * i)
					;
				flag.store(2 * i + 1, std::memory_order_release);
			}
		});
		while (flag.load(std::memory_order_acquire) != 1)
			sched_yield();
		double t0 = now_s();
		for (uint32_t i = 1; i <= rounds; i++) {
			flag.store(2 * i, std::memory_order_release);
			while (flag.load(std::memory_order_acquire) != 2 * i + 1)
				;
		}
		v.push_back((now_s() - t0) / (2.0 * rounds) * 1e9);
		peer.join();
	}
	pthread_setaffinity_np(pthread_self(), sizeof(old), &old);
	std::sort(v.begin(), v.end());
	return v[v.size() / 2];
}

static int classify(double before, double after)
{
	if (before < kFarNs && after < kFarNs)
		return P_NEAR;
	if (before >= kFarNs && after >= kFarNs)
		return P_FAR;
	return P_MIXED;
}
// One measured run; returns Mpps (< 0 on failure).
static double run_once(const Config &c, PrivateDir &dir, const std::string &plugin,
		       int variant, int size, double *bytes_per_pkt, std::string *txcopy)
{
	const bool ivshmem = variant != V_MEMIF;
	std::string tag = unique_tag();
	std::string sock = dir.path() + "/b" + tag + ".sock";
	std::string shm = "/dev/shm/ivshm-bench-" + tag;
	Testpmd srv_proc; // only for --mode socket: the project's server
	std::vector<std::string> rx_eal = {"--no-huge", "-m", "1024", "--no-pci",
		"--file-prefix", "rx" + tag, "--lcores", "0@1,1@1", "--log-level", "*:notice"};
	std::vector<std::string> tx_eal = {"--no-huge", "-m", "1024", "--no-pci",
		"--file-prefix", "tx" + tag, "--lcores", "0@0,1@0", "--log-level", "*:notice"};
	std::string rx_vdev, tx_vdev;
	pid_t server_pid = -1;
	if (ivshmem) {
		rx_eal.insert(rx_eal.end(), {"-d", plugin});
		tx_eal.insert(tx_eal.end(), {"-d", plugin});
		if (c.mode == "socket") {
			server_pid = fork();
			if (server_pid == 0) {
				prctl(PR_SET_PDEATHSIG, SIGKILL);
				execl(c.server.c_str(), c.server.c_str(), "-F", "-q",
				      "-S", sock.c_str(), "-l", "64M", (char *)nullptr);
				_exit(127);
			}
			for (int i = 0; i < 200 && access(sock.c_str(), F_OK) != 0; i++)
				usleep(10000);
			rx_vdev = tx_vdev = "net_ivshmem0,socket=" + sock;
		} else {
			rx_vdev = tx_vdev = "net_ivshmem0,shm=" + shm + ",size=64M";
		}
		if (!c.ivshmem_args.empty()) {
			rx_vdev += "," + c.ivshmem_args;
			tx_vdev += "," + c.ivshmem_args;
		}
		if (variant == V_ZC)
			rx_vdev += ",zero_copy=1";
	} else {
		rx_vdev = "net_memif0,role=server,socket=" + sock;
		tx_vdev = "net_memif0,role=client,socket=" + sock;
	}
	rx_eal.insert(rx_eal.end(), {"--vdev", rx_vdev});
	tx_eal.insert(tx_eal.end(), {"--vdev", tx_vdev});
	std::vector<std::string> common = {"-i", "--total-num-mbufs=16384",
		"--nb-cores=1", "--rxq=1", "--txq=1", "--no-mlockall"};
	std::vector<std::string> rx_app = common, tx_app = common;
	rx_app.push_back("--forward-mode=rxonly");
	tx_app.push_back("--forward-mode=txonly");
	tx_app.push_back("--txpkts=" + std::to_string(size));

	double mpps = -1;
	Testpmd rx, tx;
	auto cleanup = [&]() {
		tx.quit(10000);
		rx.quit(10000);
		if (server_pid > 0) {
			kill(server_pid, SIGTERM);
			waitpid(server_pid, nullptr, 0);
		}
		unlink(shm.c_str());
		unlink(sock.c_str());
	};
	if (!rx.start(rx_eal, rx_app) || !rx.wait_ready(60000)) {
		fprintf(stderr, "rx testpmd did not start:\n%s\n", rx.output().c_str());
		cleanup();
		return -1;
	}
	if (!tx.start(tx_eal, tx_app) || !tx.wait_ready(60000)) {
		fprintf(stderr, "tx testpmd did not start:\n%s\n", tx.output().c_str());
		cleanup();
		return -1;
	}
	rx.command("start");
	// memif's client connects when its port starts; give the link a moment.
	for (int i = 0; i < 400 && link_status(tx, 0) != "up"; i++)
		usleep(50000);
	tx.command("start");
	usleep(1000000);
	bool ok1 = false, ok2 = false;
	auto s0 = port_stats(rx, 0, &ok1);
	double t0 = now_s();
	usleep((useconds_t)(c.seconds * 1e6));
	auto s1 = port_stats(rx, 0, &ok2);
	double t1 = now_s();
	if (ok1 && ok2 && s1["RX-packets"] > s0["RX-packets"])
	{
		uint64_t dp = s1["RX-packets"] - s0["RX-packets"];
		// testpmd's own "Rx-pps (since last show)" divides by the time
		// between its two samples, taken inside the process: exact even
		// when a loaded host answers the command late (our t1 - t0 is
		// only a cross-check).
		mpps = s1.count("Rx-pps") ? (double)s1["Rx-pps"] / 1e6
					  : (double)dp / (t1 - t0) / 1e6;
		// Check the packets are the size asked for (RX-bytes excludes CRC).
		*bytes_per_pkt = (double)(s1["RX-bytes"] - s0["RX-bytes"]) / (double)dp;
	}
	else
		fprintf(stderr, "%s %d B: no packets received\n--- rx:\n%s\n--- tx:\n%s\n",
			vname[variant], size, rx.output().c_str(),
			tx.output().c_str());
	if (ivshmem) {
		// How the sender copied at the end (tx_copy=auto decides while
		// running; ivshm/copy.h), and how often it changed its mind.
		auto x = parse_stats(tx.command("show port xstats 0"));
		if (x.count("tx_q0_copy_stream"))
			*txcopy = std::string(x["tx_q0_copy_stream"] ? "stream" : "cached") +
				  "/" + std::to_string(x["tx_q0_copy_switches"]);
	}
	tx.command("stop");
	rx.command("stop");
	cleanup();
	return mpps;
}

static double median(std::vector<double> v)
{
	if (v.empty())
		return 0;
	std::sort(v.begin(), v.end());
	size_t n = v.size();
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double ratio_of_medians(const std::vector<double> &a, const std::vector<double> &b)
{
	double mb = median(b);
	return a.empty() || mb <= 0 ? 0.0 : median(a) / mb;
}

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s PMD.so [--reps N] [--seconds S] "
		"[--mode shm|socket] [--server PATH] [--sizes 64,1500] "
		"[--variants copy,memif,zc] [--ivshmem-args K=V,...]\n", prog);
}

/* A whole decimal number in [lo, hi], or -1. */
static long parse_num(const std::string &s, long lo, long hi)
{
	char *end = nullptr;
	errno = 0;
	long v = strtol(s.c_str(), &end, 10);
	return s.empty() || errno || *end || v < lo || v > hi ? -1 : v;
}

/* Fills c from argv; prints what is wrong and returns false otherwise. */
static bool parse_args(int argc, char **argv, Config &c)
{
	if (argc < 2 || argv[1][0] == '-') {
		usage(argv[0]);
		return false;
	}
	c.pmd = argv[1];
	if (access(c.pmd.c_str(), R_OK) != 0) {
		fprintf(stderr, "%s: cannot read %s: %s\n", argv[0], c.pmd.c_str(),
			strerror(errno));
		return false;
	}
	for (int i = 2; i < argc; i += 2) {
		std::string k = argv[i];
		if (i + 1 >= argc) {
			fprintf(stderr, "%s: %s needs a value\n", argv[0], k.c_str());
			return false;
		}
		std::string v = argv[i + 1];
		bool ok = true;
		if (k == "--reps") {
			c.reps = (int)parse_num(v, 1, 1000);
			ok = c.reps > 0;
		} else if (k == "--seconds") {
			char *end = nullptr;
			c.seconds = strtod(v.c_str(), &end);
			ok = !v.empty() && *end == '\0' && c.seconds > 0 && c.seconds <= 600;
		} else if (k == "--mode") {
			c.mode = v;
			ok = v == "shm" || v == "socket";
		} else if (k == "--server") {
			c.server = v;
			ok = access(v.c_str(), X_OK) == 0;
		} else if (k == "--ivshmem-args") {
			c.ivshmem_args = v;
		} else if (k == "--variants" || k == "--sizes") {
			(k == "--sizes" ? c.sizes : c.variants).clear();
			size_t p = 0;
			while (ok && p <= v.size()) {
				size_t q = v.find(',', p);
				std::string item = v.substr(p, q == std::string::npos ? q : q - p);
				if (k == "--sizes") {
					long n = parse_num(item, 60, 9000);
					ok = n > 0;
					c.sizes.push_back((int)n);
				} else {
					int vi = item == "copy" ? V_COPY : item == "memif" ? V_MEMIF :
						 item == "zc" ? V_ZC : -1;
					ok = vi >= 0;
					c.variants.push_back(vi);
				}
				if (q == std::string::npos)
					break;
				p = q + 1;
			}
		} else {
			fprintf(stderr, "%s: unknown option %s\n", argv[0], k.c_str());
			usage(argv[0]);
			return false;
		}
		if (!ok) {
			fprintf(stderr, "%s: bad value for %s: '%s'\n", argv[0], k.c_str(),
				v.c_str());
			return false;
		}
	}
	if (const char *r = getenv("IVSHM_BENCH_REPS")) {
		c.reps = (int)parse_num(r, 1, 1000);
		if (c.reps < 1) {
			fprintf(stderr, "%s: bad IVSHM_BENCH_REPS '%s'\n", argv[0], r);
			return false;
		}
	}
	if (c.mode == "socket" && c.server.empty()) {
		fprintf(stderr, "%s: --mode socket needs --server PATH\n", argv[0]);
		return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	Config c;
	if (!parse_args(argc, argv, c))
		return 2;
	PrivateDir dir;
	if (!dir.ok()) {
		fprintf(stderr, "cannot create a private folder\n");
		return 1;
	}
	std::string plugin = dir.copy_in(c.pmd, "librte_net_ivshmem.so");
	if (plugin.empty()) {
		fprintf(stderr, "cannot copy %s\n", c.pmd.c_str());
		return 1;
	}

	// res[variant][size]; at[variant][{rep, size}] for paired ratios
	std::map<int, std::vector<double>> res[V_N];
	std::map<std::pair<int, int>, double> at_rep[V_N];
	int failures = 0;
	const size_t nv = c.variants.size();
	printf("%-4s %-8s %6s %10s %8s  %-16s %s\n", "rep", "pmd", "size", "Mpps",
	       "B/pkt", "tx copy/switches", "placement (ns before/after)");
	// by_place[placement][variant][size]: Mpps of runs in that class
	std::map<int, std::vector<double>> by_place[P_N][V_N];
	for (int rep = 0; rep < c.reps; rep++) {
		for (int size : c.sizes) {
			// Rotate which one goes first so drift favours none.
			for (size_t j = 0; j < nv; j++) {
				int k = c.variants[(j + (size_t)rep) % nv];
				double bpp = 0, m = -1, pb = 0, pa = 0;
				std::string txc = "-";
				// A run that could not start (a link that never came
				// up on a loaded host) is repeated, not measured as 0.
				for (int attempt = 0; attempt < 3 && m < 0; attempt++) {
					pb = pingpong_ns();
					m = run_once(c, dir, plugin, k, size, &bpp, &txc);
					pa = pingpong_ns();
				}
				int pl = classify(pb, pa);
				printf("%-4d %-8s %6d %10.3f %8.1f  %-16s %s (%.0f/%.0f)\n",
				       rep, vname[k], size, m, bpp, txc.c_str(), pname[pl],
				       pb, pa);
				if (m >= 0)
					by_place[pl][k][size].push_back(m);
				fflush(stdout);
				if (m < 0)
					failures++;
				else {
					res[k][size].push_back(m);
					at_rep[k][{rep, size}] = m;
				}
			}
		}
	}
	// Ratio of medians (0 when either side has no run), and the median of
	// each repetition's own ratio
	// (the runs of one repetition are seconds apart, so a change of vCPU
	// placement between repetitions weighs less).
	auto paired = [&](int k, int size) {
		std::vector<double> r;
		for (int rep = 0; rep < c.reps; rep++) {
			auto a = at_rep[k].find({rep, size});
			auto b = at_rep[V_MEMIF].find({rep, size});
			if (a != at_rep[k].end() && b != at_rep[V_MEMIF].end() &&
			    b->second > 0)
				r.push_back(a->second / b->second);
		}
		return median(r);
	};
	printf("\n%-6s %12s %12s %12s %7s %7s %8s %8s\n", "size", "ivshmem_Mpps",
	       "ivshm_zc_Mpps", "memif_Mpps", "ratio", "zc_ratio", "paired", "zc_paired");
	std::map<int, double> mv[V_N], ratio, zratio, pr, zpr;
	for (int size : c.sizes) {
		for (int k = 0; k < V_N; k++)
			mv[k][size] = median(res[k][size]);
		double mm = mv[V_MEMIF][size];
		ratio[size] = ratio_of_medians(res[V_COPY][size], res[V_MEMIF][size]);
		zratio[size] = ratio_of_medians(res[V_ZC][size], res[V_MEMIF][size]);
		pr[size] = paired(V_COPY, size);
		zpr[size] = paired(V_ZC, size);
		printf("%-6d %12.3f %12.3f %12.3f %7.2f %7.2f %8.2f %8.2f\n", size,
		       mv[V_COPY][size], mv[V_ZC][size], mm, ratio[size], zratio[size],
		       pr[size], zpr[size]);
	}
	// Within one placement class: ratio of the class's medians.
	auto class_ratio = [&](int pl, int k, int size) {
		return ratio_of_medians(by_place[pl][k][size], by_place[pl][V_MEMIF][size]);
	};
	printf("\n%-6s %-6s %6s %12s %12s %12s %7s %8s\n", "size", "place", "runs",
	       "ivshmem_Mpps", "ivshm_zc_Mpps", "memif_Mpps", "ratio", "zc_ratio");
	for (int size : c.sizes)
		for (int pl = P_NEAR; pl <= P_FAR; pl++)
			printf("%-6d %-6s %2zu/%-3zu %12.3f %12.3f %12.3f %7.2f %8.2f\n", size,
			       pname[pl], by_place[pl][V_COPY][size].size(),
			       by_place[pl][V_MEMIF][size].size(),
			       median(by_place[pl][V_COPY][size]),
			       median(by_place[pl][V_ZC][size]),
			       median(by_place[pl][V_MEMIF][size]),
			       class_ratio(pl, V_COPY, size), class_ratio(pl, V_ZC, size));
	auto at = [](std::map<int, double> &m, int k) { return m.count(k) ? m[k] : 0.0; };
	printf("RESULT pmd_vs_memif ivshmem_64_mpps=%.3f memif_64_mpps=%.3f "
	       "ratio_64=%.2f ratio_1500=%.2f zc_64_mpps=%.3f zc_ratio_64=%.2f "
	       "zc_ratio_1500=%.2f paired_64=%.2f paired_1500=%.2f "
	       "zc_paired_64=%.2f zc_paired_1500=%.2f ratio_64_near=%.2f "
	       "ratio_1500_near=%.2f zc_ratio_1500_near=%.2f ratio_64_far=%.2f "
	       "ratio_1500_far=%.2f zc_ratio_1500_far=%.2f\n",
	       at(mv[V_COPY], 64), at(mv[V_MEMIF], 64), at(ratio, 64),
	       at(ratio, 1500), at(mv[V_ZC], 64), at(zratio, 64), at(zratio, 1500),
	       at(pr, 64), at(pr, 1500), at(zpr, 64), at(zpr, 1500),
	       class_ratio(P_NEAR, V_COPY, 64), class_ratio(P_NEAR, V_COPY, 1500),
	       class_ratio(P_NEAR, V_ZC, 1500), class_ratio(P_FAR, V_COPY, 64),
	       class_ratio(P_FAR, V_COPY, 1500), class_ratio(P_FAR, V_ZC, 1500));
	return failures ? 1 : 0;
}
