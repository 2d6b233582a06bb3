// SPDX-License-Identifier: BSD-3-Clause
// Description: child-process helpers shared by the tests that run real
// programs (tests/vm, tests/intervm; header-only, C++, no gtest): child
// processes with a log file each, killed and reaped on every path (death
// signal, deadline, destructor); unique names; parsing of the programs'
// "KEY key=value ..." result lines. A test folder uses it through
// include_directories('../common') in its meson.build.
#ifndef IVSHM_TESTS_PROC_UTIL_H
#define IVSHM_TESTS_PROC_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace iv {

inline int64_t now_ms()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

inline std::string unique(const char *tag)
{
	std::random_device rd;
	return std::string("ivshm-t-") + tag + "-" + std::to_string(getpid()) +
	       "-" + std::to_string(rd() % 1000000);
}

inline std::string slurp(const std::string &path)
{
	std::ifstream f(path);
	std::stringstream ss;
	ss << f.rdbuf();
	return ss.str();
}

// Wait until @p path exists (a daemon's socket, say) or @p deadline (ms,
// now_ms() clock) passes; true if it exists.
inline bool wait_path(const std::string &path, int64_t deadline)
{
	struct stat st;
	for (;;) {
		if (stat(path.c_str(), &st) == 0)
			return true;
		if (now_ms() > deadline)
			return false;
		usleep(10 * 1000);
	}
}

// Children of one test: each gets PR_SET_PDEATHSIG, its own process group
// and a log; whatever still runs is killed (SIGKILL to the group) and
// reaped by kill_all(), the deadline in wait_all() or the destructor.
class Procs {
public:
	struct Proc {
		std::string name, log;
		pid_t pid = -1;
		int status = -1;
		bool killed = false; // still running at wait_all()'s deadline
	};
	explicit Procs(std::string logdir = "/tmp") : logdir_(std::move(logdir)) {}
	~Procs()
	{
		kill_all();
		if (!keep_logs_)
			remove_logs();
	}
	void keep_logs(bool k) { keep_logs_ = k; }

	size_t spawn(const std::string &name, const std::vector<std::string> &argv,
		     const std::map<std::string, std::string> &env = {})
	{
		Proc p;
		p.name = name;
		p.log = logdir_ + "/" + unique(name.c_str()) + ".log";
		pid_t parent = getpid();
		pid_t pid = fork();
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(127);
			setpgid(0, 0);
			int fd = open(p.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
			int nul = open("/dev/null", O_RDONLY);
			if (fd < 0 || nul < 0)
				_exit(127);
			dup2(nul, 0);
			dup2(fd, 1);
			dup2(fd, 2);
			for (const auto &e : env)
				setenv(e.first.c_str(), e.second.c_str(), 1);
			std::vector<char *> args;
			for (const auto &a : argv)
				args.push_back(const_cast<char *>(a.c_str()));
			args.push_back(nullptr);
			execvp(args[0], args.data());
			_exit(127);
		}
		p.pid = pid;
		procs_.push_back(p);
		return procs_.size() - 1;
	}

	// Reap @p i if it has exited; true when it is gone.
	bool done(size_t i)
	{
		Proc &p = procs_[i];
		if (p.pid < 0)
			return true;
		int st;
		if (waitpid(p.pid, &st, WNOHANG) == p.pid) {
			p.status = st;
			p.pid = -1;
			return true;
		}
		return false;
	}

	// Wait for child @p i until @p deadline (ms, now_ms() clock).
	bool wait(size_t i, int64_t deadline)
	{
		while (!done(i)) {
			if (now_ms() > deadline)
				return false;
			usleep(10 * 1000);
		}
		return true;
	}

	// Wait for every child until the deadline; then kill the rest and
	// mark them (Proc::killed). Returns false if any had to be killed.
	bool wait_all(int64_t deadline)
	{
		for (;;) {
			bool running = false;
			for (size_t i = 0; i < procs_.size(); i++)
				if (!done(i))
					running = true;
			if (!running)
				return true;
			if (now_ms() > deadline) {
				for (auto &p : procs_)
					if (p.pid >= 0)
						p.killed = true;
				kill_all();
				return false;
			}
			usleep(20 * 1000);
		}
	}

	// A signal to one child (e.g. SIGINT for a clean stop).
	void signal(size_t i, int sig)
	{
		if (procs_[i].pid > 0)
			kill(procs_[i].pid, sig);
	}

	void kill_all()
	{
		for (auto &p : procs_) {
			if (p.pid < 0)
				continue;
			kill(-p.pid, SIGKILL);
			kill(p.pid, SIGKILL);
			waitpid(p.pid, &p.status, 0);
			p.pid = -1;
		}
	}

	size_t size() const { return procs_.size(); }
	const Proc &operator[](size_t i) const { return procs_[i]; }
	std::string output(size_t i) const { return slurp(procs_[i].log); }
	int exit_code(size_t i) const
	{
		int st = procs_[i].status;
		return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	}
	void remove_logs()
	{
		for (auto &p : procs_)
			unlink(p.log.c_str());
	}

private:
	std::string logdir_;
	std::vector<Proc> procs_;
	bool keep_logs_ = false;
};

// The last line of @p out starting with @p key ("IVSHM_TRAFFIC ..."),
// optionally also containing @p also; "" if none.
inline std::string result_line(const std::string &out, const std::string &key,
			       const std::string &also = "")
{
	std::string found;
	size_t pos = 0;
	while ((pos = out.find(key + " ", pos)) != std::string::npos) {
		size_t e = out.find('\n', pos);
		std::string l = out.substr(pos, e == std::string::npos ? std::string::npos : e - pos);
		while (!l.empty() && (l.back() == '\r' || l.back() == '\n'))
			l.pop_back();
		if (also.empty() || l.find(also) != std::string::npos)
			found = l;
		pos = e == std::string::npos ? out.size() : e;
	}
	return found;
}

// Value of key=... in a result line (string), "" if absent.
inline std::string sfield(const std::string &line, const std::string &key)
{
	size_t p = line.find(" " + key + "=");
	if (p == std::string::npos)
		return "";
	p += key.size() + 2;
	size_t e = line.find_first_of(" \r\n", p);
	return line.substr(p, e == std::string::npos ? std::string::npos : e - p);
}

// Numeric value of key=...; @p absent (default -1) if there is none.
inline long long field(const std::string &line, const std::string &key,
		       long long absent = -1)
{
	std::string s = sfield(line, key);
	if (s.empty())
		return absent;
	return strtoll(s.c_str(), nullptr, 0);
}

} // namespace iv

#endif
