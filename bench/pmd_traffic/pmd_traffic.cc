// SPDX-License-Identifier: BSD-3-Clause
//
// pmd_traffic - the README's main job: the project's ivshmem-server and two
// Debian dpdk-testpmd peers over net_ivshmem (socket=), one sending
// (txonly) and one receiving (rxonly), for a number of seconds. Prints the
// receive and transmit rates each second, then a summary in which every
// packet sent is accounted for on the receiving side. Stops everything it
// started, also on SIGINT/SIGTERM.
//
//   pmd_traffic --pmd PMD.so --server IVSHMEM-SERVER [--seconds 10]
//               [--size 64] [--queues 1]
// Exit status 0 when packets moved and the receiver got every one sent.
#include <signal.h>
#include <sys/prctl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "testpmd_runner.h"

using namespace ivshm_test;

static volatile sig_atomic_t g_stop;

static void on_signal(int) { g_stop = 1; }

static bool wait_up(Testpmd &t, int ms)
{
	int64_t end = now_ms() + ms;
	while (now_ms() < end && !g_stop) {
		if (link_status(t, 0) == "up")
			return true;
		usleep(100000);
	}
	return false;
}

int main(int argc, char **argv)
{
	std::string pmd, server;
	int seconds = 10, size = 64;
	for (int i = 1; i + 1 < argc; i += 2) {
		std::string k = argv[i], v = argv[i + 1];
		if (k == "--pmd")
			pmd = v;
		else if (k == "--server")
			server = v;
		else if (k == "--seconds")
			seconds = atoi(v.c_str());
		else if (k == "--size")
			size = atoi(v.c_str());
		else {
			fprintf(stderr, "unknown option %s\n", k.c_str());
			return 2;
		}
	}
	if (pmd.empty() || server.empty() || seconds < 1 || size < 60 || size > 9000) {
		fprintf(stderr, "usage: %s --pmd PMD.so --server IVSHMEM-SERVER "
			"[--seconds N] [--size 60..9000]\n", argv[0]);
		return 2;
	}
	struct sigaction sa = {};
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, nullptr);
	sigaction(SIGTERM, &sa, nullptr);
	sigaction(SIGHUP, &sa, nullptr);

	PrivateDir dir;
	if (!dir.ok()) {
		fprintf(stderr, "pmd_traffic: cannot create a private folder\n");
		return 1;
	}
	std::string plugin = dir.copy_in(pmd, "librte_net_ivshmem.so");
	std::string sock = dir.path() + "/ivshmem.sock";
	std::string tag = unique_tag();
	if (plugin.empty()) {
		fprintf(stderr, "pmd_traffic: cannot copy %s\n", pmd.c_str());
		return 1;
	}

	printf("starting ivshmem-server on %s (64 MiB, 4 vectors)\n", sock.c_str());
	fflush(stdout);
	pid_t srv = fork();
	if (srv == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(server.c_str(), server.c_str(), "-F", "-q", "-S", sock.c_str(),
		      "-l", "64M", "-n", "4", (char *)nullptr);
		_exit(127);
	}
	int rc = 1;
	{
		Testpmd rx, tx;
		std::string vdev = "net_ivshmem0,socket=" + sock;
		auto eal = [&](const std::string &who, const char *cores) {
			return std::vector<std::string>{"--no-huge", "-m", "1024",
				"--no-pci", "--file-prefix", who + tag, "--lcores", cores,
				"-d", plugin, "--vdev", vdev, "--log-level", "*:notice"};
		};
		std::vector<std::string> ra = {"-i", "--total-num-mbufs=16384",
			"--no-mlockall", "--forward-mode=rxonly"};
		std::vector<std::string> ta = {"-i", "--total-num-mbufs=16384",
			"--no-mlockall", "--forward-mode=txonly",
			"--txpkts=" + std::to_string(size)};
		for (int i = 0; i < 500 && access(sock.c_str(), F_OK) != 0; i++)
			usleep(10000);
		if (access(sock.c_str(), F_OK) != 0) {
			fprintf(stderr, "pmd_traffic: the server did not start\n");
			goto out;
		}
		printf("starting testpmd rxonly (lcores on CPU 1) and txonly (CPU 0), %d-byte packets\n",
		       size);
		fflush(stdout);
		if (!rx.start(eal("rx", "0@0,1@1"), ra) || !rx.wait_ready(60000) ||
		    !tx.start(eal("tx", "0@1,1@0"), ta) || !tx.wait_ready(60000)) {
			fprintf(stderr, "pmd_traffic: testpmd did not start:\n%s\n%s\n",
				rx.output().c_str(), tx.output().c_str());
			goto out;
		}
		if (!wait_up(tx, 20000) || !wait_up(rx, 20000)) {
			fprintf(stderr, "pmd_traffic: the link did not come up\n");
			goto out;
		}
		rx.command("start");
		tx.command("start");
		printf("\n%4s %12s %12s %12s %10s\n", "sec", "rx_Mpps", "rx_Gbit/s",
		       "tx_Mpps", "rx_total");
		std::vector<double> rates;
		auto r0 = port_stats(rx, 0);
		auto t0s = port_stats(tx, 0);
		double t0 = now_s(), start = t0;
		for (int s = 1; s <= seconds && !g_stop; s++) {
			double next = start + s;
			while (now_s() < next && !g_stop)
				usleep(10000);
			auto r1 = port_stats(rx, 0);
			auto t1s = port_stats(tx, 0);
			double t1 = now_s();
			// Rates from testpmd's own "since last show" figures, which
			// divide by the time between its samples inside the process
			// (a loaded host may answer our commands late).
			double dt = t1 - t0;
			double mpps = r1.count("Rx-pps") ? (double)r1["Rx-pps"] / 1e6
				: (double)(r1["RX-packets"] - r0["RX-packets"]) / dt / 1e6;
			double gbps = r1.count("Rx-bps") ? (double)r1["Rx-bps"] / 1e9
				: (double)(r1["RX-bytes"] - r0["RX-bytes"]) * 8 / dt / 1e9;
			double tmpps = t1s.count("Tx-pps") ? (double)t1s["Tx-pps"] / 1e6
				: (double)(t1s["TX-packets"] - t0s["TX-packets"]) / dt / 1e6;
			printf("%4d %12.3f %12.3f %12.3f %10llu\n", s, mpps, gbps, tmpps,
			       (unsigned long long)r1["RX-packets"]);
			fflush(stdout);
			rates.push_back(mpps);
			r0 = r1;
			t0s = t1s;
			t0 = t1;
		}
		tx.command("stop");
		auto ts = port_stats(tx, 0);
		// Let the receiver drain the ring, then stop it.
		uint64_t last = UINT64_MAX, got = 0;
		for (int i = 0; i < 50; i++) {
			got = port_stats(rx, 0)["RX-packets"];
			if (got == last)
				break;
			last = got;
			usleep(100000);
		}
		rx.command("stop");
		auto rs = port_stats(rx, 0);
		std::vector<double> sorted = rates;
		std::sort(sorted.begin(), sorted.end());
		double med = sorted.empty() ? 0 : sorted[sorted.size() / 2];
		printf("\nsummary: %zu s, %d-byte packets over net_ivshmem (socket=, project server)\n",
		       rates.size(), size);
		printf("  sent     %llu packets\n", (unsigned long long)ts["TX-packets"]);
		printf("  received %llu packets (%llu bytes), missed %llu, errors %llu\n",
		       (unsigned long long)rs["RX-packets"], (unsigned long long)rs["RX-bytes"],
		       (unsigned long long)rs["RX-missed"], (unsigned long long)rs["RX-errors"]);
		printf("  rate     median %.3f Mpps, min %.3f, max %.3f\n", med,
		       sorted.empty() ? 0 : sorted.front(), sorted.empty() ? 0 : sorted.back());
		bool ok = ts["TX-packets"] > 0 && rs["RX-packets"] == ts["TX-packets"] &&
			  rs["RX-bytes"] == rs["RX-packets"] * (uint64_t)size;
		printf("  %s\n", ok ? "every packet sent was received"
				    : "MISMATCH between sent and received");
		printf("RESULT pmd_traffic rx_mpps_median=%.3f sent=%llu received=%llu\n", med,
		       (unsigned long long)ts["TX-packets"], (unsigned long long)rs["RX-packets"]);
		rc = ok && !g_stop ? 0 : 1;
		tx.quit(10000);
		rx.quit(10000);
	}
out:
	if (srv > 0) {
		kill(srv, SIGTERM);
		int64_t end = now_ms() + 5000;
		while (waitpid(srv, nullptr, WNOHANG) == 0) {
			if (now_ms() > end) {
				kill(srv, SIGKILL);
				waitpid(srv, nullptr, 0);
				break;
			}
			usleep(10000);
		}
	}
	return rc;
}
