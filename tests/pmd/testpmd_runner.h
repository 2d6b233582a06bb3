/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * testpmd_runner.h - run Debian's dpdk-testpmd as a child process and drive
 * it through its interactive command line (header-only, C++).
 *
 * Used by the dpdk test suite (tests/pmd/) and by bench/pmd_vs_memif. A
 * Testpmd object owns one child: stdin is a pipe we write commands to,
 * stdout and stderr go to a pipe we read without blocking into a buffer.
 * Every wait has a deadline; the destructor kills the child (SIGKILL after
 * a grace period) and reaps it, so a failing test never leaves a process
 * behind. Also here: a private 0700 plugin folder (EAL refuses -d paths
 * under world-writable directories such as /tmp) and unique names.
 */
#ifndef IVSHM_TESTPMD_RUNNER_H
#define IVSHM_TESTPMD_RUNNER_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <map>
#include <random>
#include <string>
#include <vector>

namespace ivshm_test {

inline int64_t now_ms()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

inline double now_s()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/** pid plus random: unique names for sockets, files and EAL prefixes. */
inline std::string unique_tag()
{
	std::random_device rd;
	char buf[64];
	snprintf(buf, sizeof(buf), "%d_%08x", (int)getpid(), (unsigned)rd());
	return buf;
}

/** Remove a folder and the files in it (one level, as we create them). */
inline void remove_tree(const std::string &dir)
{
	if (dir.empty())
		return;
	std::string cmd = "rm -rf '" + dir + "'";
	if (system(cmd.c_str()) != 0)
		fprintf(stderr, "could not remove %s\n", dir.c_str());
}

/**
 * A private folder (mode 0700) under XDG_RUNTIME_DIR or HOME, never under a
 * world-writable directory: EAL's -d refuses those, parents included.
 * Removed by the destructor.
 */
class PrivateDir {
public:
	PrivateDir()
	{
		const char *base = getenv("XDG_RUNTIME_DIR");
		struct stat st;
		if (!base || stat(base, &st) != 0 || (st.st_mode & S_IWOTH))
			base = getenv("HOME");
		if (!base)
			base = "/root";
		std::string parent = std::string(base) + "/.cache";
		mkdir(parent.c_str(), 0700);
		parent += "/ivshm-test";
		mkdir(parent.c_str(), 0700);
		std::string tmpl = parent + "/run-XXXXXX";
		std::vector<char> b(tmpl.begin(), tmpl.end());
		b.push_back('\0');
		if (mkdtemp(b.data()))
			path_ = b.data();
	}
	~PrivateDir() { remove_tree(path_); }
	PrivateDir(const PrivateDir &) = delete;
	PrivateDir &operator=(const PrivateDir &) = delete;
	const std::string &path() const { return path_; }
	bool ok() const { return !path_.empty(); }

	/** Copy @p src into this folder as @p name; returns the new path or "". */
	std::string copy_in(const std::string &src, const std::string &name)
	{
		std::string dst = path_ + "/" + name;
		std::string cmd = "cp '" + src + "' '" + dst + "'";
		if (system(cmd.c_str()) != 0)
			return "";
		chmod(dst.c_str(), 0755);
		return dst;
	}

private:
	std::string path_;
};

class Testpmd {
public:
	Testpmd() = default;
	~Testpmd() { kill_now(); }
	Testpmd(const Testpmd &) = delete;
	Testpmd &operator=(const Testpmd &) = delete;

	/**
	 * Start dpdk-testpmd with @p eal arguments, "--", @p app arguments.
	 * Returns false (and the reason in err()) when it cannot be started.
	 */
	bool start(const std::vector<std::string> &eal,
		   const std::vector<std::string> &app)
	{
		const char *bin = getenv("IVSHM_TESTPMD");
		/*
		 * testpmd prints through stdio, which a pipe makes block
		 * buffered, while its prompt is written straight to the fd:
		 * stdbuf makes stdout line buffered so that each command's
		 * output arrives before the next prompt.
		 */
		std::vector<std::string> argv_s = {"stdbuf", "-oL", "-eL",
						   bin ? bin : "dpdk-testpmd"};
		argv_s.insert(argv_s.end(), eal.begin(), eal.end());
		argv_s.push_back("--");
		argv_s.insert(argv_s.end(), app.begin(), app.end());
		cmdline_.clear();
		for (auto &a : argv_s)
			cmdline_ += a + " ";

		int in[2], out[2];
		if (pipe2(in, O_CLOEXEC) != 0)
			return fail("pipe");
		if (pipe2(out, O_CLOEXEC) != 0) {
			close(in[0]);
			close(in[1]);
			return fail("pipe");
		}
		pid_ = fork();
		if (pid_ < 0) {
			close(in[0]); close(in[1]); close(out[0]); close(out[1]);
			return fail("fork");
		}
		if (pid_ == 0) {
			std::vector<char *> av;
			for (auto &a : argv_s)
				av.push_back(const_cast<char *>(a.c_str()));
			av.push_back(nullptr);
			dup2(in[0], 0);
			dup2(out[1], 1);
			dup2(out[1], 2);
			/* Own process group (a terminal's Ctrl-C reaches only
			 * the driver, which stops us in order), and die with
			 * the driver if it dies. */
			setpgid(0, 0);
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			execvp(av[0], av.data());
			_exit(127);
		}
		close(in[0]);
		close(out[1]);
		in_ = in[1];
		out_ = out[0];
		fcntl(out_, F_SETFL, O_NONBLOCK);
		signal(SIGPIPE, SIG_IGN);
		return true;
	}

	const std::string &output() const { return buf_; }
	const std::string &err() const { return err_; }
	const std::string &cmdline() const { return cmdline_; }
	pid_t pid() const { return pid_; }
	bool running() { reap(false); return pid_ > 0; }
	int exit_status() const { return status_; }

	/** Read what is available, waiting at most @p ms. False on EOF. */
	bool pump(int ms)
	{
		if (out_ < 0)
			return false;
		struct pollfd p = {out_, POLLIN, 0};
		int r = poll(&p, 1, ms);
		if (r <= 0)
			return true;
		char tmp[65536];
		for (;;) {
			ssize_t n = read(out_, tmp, sizeof(tmp));
			if (n > 0) {
				buf_.append(tmp, (size_t)n);
				continue;
			}
			if (n == 0) {
				close(out_);
				out_ = -1;
				return false;
			}
			return true;
		}
	}

	/**
	 * Wait until @p needle appears in the output at or after @p from.
	 * Returns its offset, or std::string::npos at the deadline or EOF.
	 */
	size_t wait_for(const std::string &needle, int timeout_ms, size_t from = 0)
	{
		int64_t end = now_ms() + timeout_ms;
		for (;;) {
			size_t at = buf_.find(needle, from);
			if (at != std::string::npos)
				return at;
			int64_t left = end - now_ms();
			if (left <= 0)
				return std::string::npos;
			if (!pump((int)(left < 50 ? left : 50)) && out_ < 0) {
				at = buf_.find(needle, from);
				return at;
			}
		}
	}

	/** Wait for the first prompt: testpmd is up (ports started or not). */
	bool wait_ready(int timeout_ms)
	{
		return wait_for(kPrompt, timeout_ms) != std::string::npos;
	}

	/**
	 * Send one command and wait for the next prompt; returns the output of
	 * that command (empty on timeout, with ok set false).
	 */
	std::string command(const std::string &cmd, int timeout_ms = 20000,
			    bool *ok = nullptr)
	{
		size_t from = buf_.size();
		std::string line = cmd + "\n";
		bool good = write_all(line);
		size_t at = good ? wait_for(kPrompt, timeout_ms, from)
				 : std::string::npos;
		if (ok)
			*ok = at != std::string::npos;
		if (at == std::string::npos)
			return "";
		std::string r = buf_.substr(from, at - from);
		/* Consume the prompt so the next command waits for a new one. */
		buf_.replace(at, strlen(kPrompt), "<prompt>\n");
		return r;
	}

	/**
	 * "quit", then wait for exit until the deadline, then SIGKILL.
	 * Returns the exit status (as from waitpid) or -1 when killed.
	 */
	int quit(int timeout_ms = 20000)
	{
		if (pid_ <= 0)
			return status_;
		write_all("quit\n");
		if (in_ >= 0) {
			close(in_);
			in_ = -1;
		}
		int64_t end = now_ms() + timeout_ms;
		while (now_ms() < end) {
			pump(20);
			if (reap(false))
				return status_;
		}
		kill_now();
		return -1;
	}

	/** SIGKILL the child (and its process group) and reap it. */
	void kill_now()
	{
		if (in_ >= 0) {
			close(in_);
			in_ = -1;
		}
		if (pid_ > 0) {
			kill(-pid_, SIGKILL);
			kill(pid_, SIGKILL);
			reap(true);
		}
		if (out_ >= 0) {
			close(out_);
			out_ = -1;
		}
	}

	/** Send a signal to the child (e.g. SIGTERM to test an abrupt exit). */
	void signal_child(int sig)
	{
		if (pid_ > 0)
			kill(pid_, sig);
	}

	/** Wait for the child to exit by itself within the deadline. */
	bool wait_exit(int timeout_ms)
	{
		int64_t end = now_ms() + timeout_ms;
		while (now_ms() < end) {
			pump(20);
			if (reap(false))
				return true;
		}
		return false;
	}

private:
	static constexpr const char *kPrompt = "testpmd> ";

	bool fail(const char *what)
	{
		err_ = std::string(what) + ": " + strerror(errno);
		pid_ = -1;
		return false;
	}

	bool write_all(const std::string &s)
	{
		if (in_ < 0)
			return false;
		size_t off = 0;
		while (off < s.size()) {
			ssize_t n = write(in_, s.data() + off, s.size() - off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return false;
			off += (size_t)n;
		}
		return true;
	}

	/* Returns true once the child has been reaped. */
	bool reap(bool block)
	{
		if (pid_ <= 0)
			return true;
		int st = 0;
		pid_t r = waitpid(pid_, &st, block ? 0 : WNOHANG);
		if (r == pid_) {
			status_ = st;
			pid_ = -1;
			while (pump(0) && out_ >= 0) {
			}
			return true;
		}
		return false;
	}

	pid_t pid_ = -1;
	int in_ = -1;
	int out_ = -1;
	int status_ = -1;
	std::string buf_;
	std::string err_;
	std::string cmdline_;
};

/**
 * Parse "KEY: number" pairs from testpmd's statistics output (the last
 * occurrence of each key wins). Keys like "RX-packets", "TX-packets",
 * "RX-missed", "RX-errors", "TX-errors", "RX-bytes", "TX-bytes".
 */
inline std::map<std::string, uint64_t> parse_stats(const std::string &out)
{
	std::map<std::string, uint64_t> m;
	size_t i = 0;
	while ((i = out.find(": ", i)) != std::string::npos) {
		size_t k = i;
		while (k > 0 && out[k - 1] != ' ' && out[k - 1] != '\n')
			k--;
		std::string key = out.substr(k, i - k);
		size_t v = i + 2;
		while (v < out.size() && out[v] == ' ')
			v++;
		size_t e = v;
		while (e < out.size() && out[e] >= '0' && out[e] <= '9')
			e++;
		if (e > v && !key.empty())
			m[key] = strtoull(out.substr(v, e - v).c_str(), nullptr, 10);
		i += 2;
	}
	return m;
}

/** Port statistics of port @p port: RX-packets, TX-packets, ... */
inline std::map<std::string, uint64_t> port_stats(Testpmd &t, int port,
						  bool *ok = nullptr)
{
	std::string out = t.command("show port stats " + std::to_string(port),
				    20000, ok);
	return parse_stats(out);
}

/** "up", "down" or "" from "show port info". */
inline std::string link_status(Testpmd &t, int port)
{
	std::string out = t.command("show port info " + std::to_string(port));
	size_t at = out.find("Link status: ");
	if (at == std::string::npos)
		return "";
	at += strlen("Link status: ");
	size_t e = out.find('\n', at);
	std::string s = out.substr(at, e == std::string::npos ? e : e - at);
	while (!s.empty() && (s.back() == '\r' || s.back() == ' '))
		s.pop_back();
	return s;
}

} /* namespace ivshm_test */

#endif /* IVSHM_TESTPMD_RUNNER_H */
