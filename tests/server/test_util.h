/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_util.h - helpers for the server/client tests: unique temporary
 * folders, the server library on a thread (QEMU's ivshmem-test style),
 * waiting with deadlines, and descriptor counting.
 */
#ifndef IVSHM_TEST_SERVER_UTIL_H
#define IVSHM_TEST_SERVER_UTIL_H

#include <dirent.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ivshm/client.h"
#include "ivshm/server.h"

namespace ivshm_test {

/* A private folder, removed with its content at the end. */
class TempDir {
public:
	TempDir()
	{
		char tmpl[128];
		snprintf(tmpl, sizeof(tmpl), "/tmp/ivshm-srv-%d-XXXXXX", (int)getpid());
		char *p = mkdtemp(tmpl);
		if (p)
			path_ = p;
	}
	~TempDir()
	{
		if (!path_.empty()) {
			std::string cmd = "rm -rf '" + path_ + "'";
			if (system(cmd.c_str()) != 0) {
				/* best effort */
			}
		}
	}
	const std::string &path() const { return path_; }
	std::string file(const std::string &name) const { return path_ + "/" + name; }

private:
	std::string path_;
};

/* Collects the server's log lines (thread-safe). */
struct LogSink {
	std::mutex mu;
	std::vector<std::pair<int, std::string>> lines;

	static void cb(void *arg, int level, const char *msg)
	{
		LogSink *s = static_cast<LogSink *>(arg);
		std::lock_guard<std::mutex> g(s->mu);
		s->lines.emplace_back(level, msg);
		if (getenv("IVSHM_TEST_VERBOSE"))
			fprintf(stderr, "server[%d]: %s\n", level, msg);
	}
	bool contains(const std::string &needle)
	{
		std::lock_guard<std::mutex> g(mu);
		for (auto &l : lines)
			if (l.second.find(needle) != std::string::npos)
				return true;
		return false;
	}
	std::string all()
	{
		std::lock_guard<std::mutex> g(mu);
		std::string s;
		for (auto &l : lines)
			s += l.second + "\n";
		return s;
	}
};

/* The server library running its loop on a thread. */
class ServerThread {
public:
	ServerThread() = default;
	ServerThread(const ServerThread &) = delete;
	ServerThread &operator=(const ServerThread &) = delete;
	~ServerThread() { stop(); }

	int start(ivshm_server_params p)
	{
		p.log = LogSink::cb;
		p.log_arg = &log;
		int ret = ivshm_server_create(&p, &srv);
		if (ret)
			return ret;
		th = std::thread([this] { run_ret = ivshm_server_run(srv); });
		return 0;
	}
	void stop()
	{
		if (!srv)
			return;
		ivshm_server_stop(srv);
		th.join();
		ivshm_server_destroy(srv);
		srv = nullptr;
	}
	ivshm_server *srv = nullptr;
	LogSink log;
	int run_ret = 0;

private:
	std::thread th;
};

static inline bool wait_until(const std::function<bool()> &cond, int ms = 5000)
{
	auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
	while (std::chrono::steady_clock::now() < end) {
		if (cond())
			return true;
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	}
	return cond();
}

static inline int count_fds()
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	while (struct dirent *e = readdir(d))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the DIR's own descriptor */
}

/* Records peer events of a client. */
struct PeerLog {
	std::mutex mu;
	std::vector<std::pair<uint16_t, int>> ev;

	static void cb(void *arg, uint16_t peer, int joined)
	{
		PeerLog *l = static_cast<PeerLog *>(arg);
		std::lock_guard<std::mutex> g(l->mu);
		l->ev.emplace_back(peer, joined);
	}
	bool has(uint16_t peer, int joined)
	{
		std::lock_guard<std::mutex> g(mu);
		for (auto &e : ev)
			if (e.first == peer && e.second == joined)
				return true;
		return false;
	}
	size_t count(int joined)
	{
		std::lock_guard<std::mutex> g(mu);
		size_t n = 0;
		for (auto &e : ev)
			n += e.second == joined;
		return n;
	}
};

/* Pump @p c until @p cond holds or the deadline passes. */
static inline bool pump_until(ivshm_client *c, const std::function<bool()> &cond,
			      int ms = 5000)
{
	auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
	for (;;) {
		if (cond())
			return true;
		if (std::chrono::steady_clock::now() >= end)
			return false;
		int ret = ivshm_client_wait(c, 10, nullptr);
		if (ret < 0 && ret != -ECONNRESET)
			return false;
	}
}

static inline ivshm_server_params default_params(const std::string &sock,
						 uint64_t size = 1 << 20,
						 unsigned int vectors = 4)
{
	ivshm_server_params p;
	memset(&p, 0, sizeof(p));
	p.socket_path = sock.c_str();
	p.size = size;
	p.vectors = vectors;
	return p;
}

} // namespace ivshm_test

#endif
