/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Description: the ivshmem-server and ivshmem-client programs as real
 * processes: scripted notify/wait/list, the interactive commands, bad
 * arguments with clear errors, SIGTERM shutdown removing socket and PID
 * file, and daemon mode. Binaries come from $IVSHM_SERVER_BIN and
 * $IVSHM_CLIENT_BIN (set by meson). Every process started is killed by
 * pid with a deadline.
 */
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "test_util.h"

using namespace ivshm_test;

namespace {

std::string slurp(const std::string &path)
{
	std::ifstream f(path);
	std::stringstream ss;
	ss << f.rdbuf();
	return ss.str();
}

struct Proc {
	pid_t pid = -1;
	std::string out, err;

	~Proc() { kill_now(); }
	void kill_now()
	{
		if (pid > 0) {
			kill(pid, SIGKILL);
			wait_exit(5000);
		}
	}
	/* Exit status, or -1 if still running at the deadline. */
	int wait_exit(int ms)
	{
		auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
		int st;
		while (pid > 0) {
			pid_t r = waitpid(pid, &st, WNOHANG);
			if (r == pid) {
				pid = -1;
				return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			}
			if (std::chrono::steady_clock::now() > end)
				return -1;
			std::this_thread::sleep_for(std::chrono::milliseconds(2));
		}
		return -1;
	}
};

class AppsTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		const char *s = getenv("IVSHM_SERVER_BIN");
		const char *c = getenv("IVSHM_CLIENT_BIN");
		ASSERT_TRUE(s && c) << "IVSHM_SERVER_BIN / IVSHM_CLIENT_BIN not set";
		server_bin = s;
		client_bin = c;
		sock = dir.file("s.sock");
		pidfile = dir.file("server.pid");
	}
	/* Start @p argv with stdin from @p input; output kept in files. */
	void spawn(Proc &p, const std::vector<std::string> &argv,
		   const std::string &input = "")
	{
		static int seq;
		int n = seq++;
		p.out = dir.file("out" + std::to_string(n));
		p.err = dir.file("err" + std::to_string(n));
		std::string in = dir.file("in" + std::to_string(n));
		{
			std::ofstream f(in);
			f << input;
		}
		std::vector<char *> args;
		for (auto &a : argv)
			args.push_back(const_cast<char *>(a.c_str()));
		args.push_back(nullptr);
		p.pid = fork();
		ASSERT_GE(p.pid, 0);
		if (p.pid == 0) {
			int i = open(in.c_str(), O_RDONLY);
			int o = open(p.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
			int e = open(p.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
			dup2(i, 0);
			dup2(o, 1);
			dup2(e, 2);
			execv(args[0], args.data());
			_exit(127);
		}
	}
	int run(const std::vector<std::string> &argv, std::string *out = nullptr,
		std::string *err = nullptr, const std::string &input = "",
		int ms = 20000)
	{
		Proc p;
		spawn(p, argv, input);
		int rc = p.wait_exit(ms);
		if (out)
			*out = slurp(p.out);
		if (err)
			*err = slurp(p.err);
		return rc;
	}
	bool wait_socket()
	{
		return wait_until([&] {
			struct stat st;
			return lstat(sock.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
		});
	}
	TempDir dir;
	std::string server_bin, client_bin, sock, pidfile;
};

} // namespace

TEST_F(AppsTest, ScriptedNotifyWaitAndList)
{
	Proc srv;
	spawn(srv, { server_bin, "-F", "-v", "-S", sock, "-l", "3M", "-n", "2", "-p", pidfile });
	ASSERT_TRUE(wait_socket()) << slurp(srv.err);
	/* The PID file is written once the server listens. */
	ASSERT_TRUE(wait_until([&] { return !slurp(pidfile).empty(); }));
	EXPECT_EQ(std::stoi(slurp(pidfile)), srv.pid);

	Proc waiter;
	spawn(waiter, { client_bin, "-S", sock, "--connect-timeout", "5000", "-w", "1",
			"-t", "20000" });
	/* The waiter must be peer 0 before the notifier connects. */
	ASSERT_TRUE(wait_until([&] {
		return slurp(srv.err).find("peer 0 connected") != std::string::npos;
	}, 10000)) << slurp(srv.err);
	/* Wait for the waiter (id 0) to be known, then ring its vector 1. */
	std::string out, err;
	EXPECT_EQ(run({ client_bin, "-S", sock, "--wait-peers", "1", "-t", "10000",
			"-N", "0:1" }, &out, &err), 0) << err;
	EXPECT_EQ(waiter.wait_exit(10000), 0);
	EXPECT_EQ(slurp(waiter.out), "vector 1\n");

	EXPECT_EQ(run({ client_bin, "-S", sock, "--list" }, &out, &err), 0) << err;
	EXPECT_NE(out.find("id 2\n"), std::string::npos) << out;
	EXPECT_NE(out.find("size 4194304\n"), std::string::npos) << out;
	EXPECT_NE(out.find("vectors 2\n"), std::string::npos) << out;

	/* Wait timeout: status 1. Unknown peer: status 2 with a reason. */
	EXPECT_EQ(run({ client_bin, "-S", sock, "-w", "0", "-t", "100" }), 1);
	EXPECT_EQ(run({ client_bin, "-S", sock, "-N", "999:0" }, &out, &err), 2);
	EXPECT_NE(err.find("No such file"), std::string::npos) << err;

	/* SIGTERM: clean exit, socket and PID file gone. */
	ASSERT_EQ(kill(srv.pid, SIGTERM), 0);
	EXPECT_EQ(srv.wait_exit(10000), 0);
	struct stat st;
	EXPECT_NE(lstat(sock.c_str(), &st), 0);
	EXPECT_NE(lstat(pidfile.c_str(), &st), 0);
	std::string log = slurp(srv.err);
	EXPECT_NE(log.find("rounded up to 4194304"), std::string::npos) << log;
	EXPECT_NE(log.find("peer 0 connected"), std::string::npos) << log;
	EXPECT_NE(log.find("shutting down"), std::string::npos) << log;
}

TEST_F(AppsTest, InteractiveCommands)
{
	Proc srv;
	spawn(srv, { server_bin, "-F", "-S", sock, "-n", "3" });
	ASSERT_TRUE(wait_socket()) << slurp(srv.err);
	ivshm_client *h = nullptr;
	ivshm_client_params cp;
	memset(&cp, 0, sizeof(cp));
	cp.connect_timeout_ms = 5000;
	ASSERT_EQ(ivshm_client_connect(sock.c_str(), &cp, &h), 0);
	uint16_t hid = ivshm_client_id(h);
	std::string script = "dump\nint " + std::to_string(hid) + " all\nint all\n"
			     "int " + std::to_string(hid) + " 1\nint 77 0\nbogus\nquit\n";
	std::string out, err;
	EXPECT_EQ(run({ client_bin, "-S", sock }, &out, &err, script), 0) << err;
	EXPECT_NE(out.find("peer " + std::to_string(hid) + " vectors 3"), std::string::npos) << out;
	EXPECT_NE(out.find("int 77 0: No such file"), std::string::npos) << out;
	EXPECT_NE(out.find("unknown command 'bogus'"), std::string::npos) << out;
	/* "int H all" and "int all" ring 0,1,2 twice; "int H 1" once more. */
	uint64_t total[3] = { 0, 0, 0 };
	ASSERT_TRUE(wait_until([&] {
		for (unsigned int v = 0; v < 3; v++) {
			uint64_t c;
			if (read(ivshm_client_vector_fd(h, v), &c, 8) == 8)
				total[v] += c;
		}
		return total[0] == 2 && total[1] == 3 && total[2] == 2;
	}));
	EXPECT_EQ(total[0], 2u);
	EXPECT_EQ(total[1], 3u);
	EXPECT_EQ(total[2], 2u);
	ivshm_client_close(h);
	kill(srv.pid, SIGINT);
	EXPECT_EQ(srv.wait_exit(10000), 0);
}

TEST_F(AppsTest, BadArgumentsGiveClearErrors)
{
	std::string err;
	EXPECT_EQ(run({ server_bin, "-F", "-S", sock, "-l", "0" }, nullptr, &err), 1);
	EXPECT_NE(err.find("must not be 0"), std::string::npos) << err;
	EXPECT_EQ(run({ server_bin, "-F", "-S", sock, "-l", "12Q" }, nullptr, &err), 1);
	EXPECT_NE(err.find("invalid size"), std::string::npos) << err;
	EXPECT_EQ(run({ server_bin, "-F", "-S", sock, "-l", "20000P" }, nullptr, &err), 1);
	EXPECT_EQ(run({ server_bin, "-F", "-S", sock, "-n", "65" }, nullptr, &err), 1);
	EXPECT_NE(err.find("1..64"), std::string::npos) << err;
	EXPECT_EQ(run({ server_bin, "-F", "-S", dir.file("nodir/s") }, nullptr, &err), 1);
	EXPECT_NE(err.find("socket directory"), std::string::npos) << err;
	EXPECT_EQ(run({ server_bin, "-F", "-S", sock, "-m", dir.file("nodir") }, nullptr, &err), 1);
	EXPECT_NE(err.find("memory directory"), std::string::npos) << err;
	EXPECT_EQ(run({ server_bin, "-F", "-S", sock, "--socket-mode", "999" }, nullptr, &err), 1);
	EXPECT_EQ(run({ server_bin, "-F", "-S", sock, "--max-peers", "0" }, nullptr, &err), 1);
	EXPECT_EQ(run({ server_bin, "-F", "--bogus" }, nullptr, &err), 1);
	/* Daemon mode with an unwritable PID file: reported before forking. */
	EXPECT_EQ(run({ server_bin, "-S", sock, "-p", dir.file("nodir/pid") }, nullptr, &err), 1);
	EXPECT_NE(err.find("cannot open PID file"), std::string::npos) << err;
	std::string out;
	EXPECT_EQ(run({ server_bin, "-h" }, &out), 0);
	EXPECT_NE(out.find("ivshmem-doorbell"), std::string::npos);
	EXPECT_EQ(run({ client_bin, "-S", dir.file("none") }, nullptr, &err), 2);
	EXPECT_NE(err.find("cannot connect"), std::string::npos) << err;
	struct stat st;
	EXPECT_NE(lstat(sock.c_str(), &st), 0) << "nothing left behind";
}

TEST_F(AppsTest, LimitsAndSocketModeFromTheCommandLine)
{
	Proc srv;
	spawn(srv, { server_bin, "-F", "-S", sock, "--max-peers", "1", "--socket-mode",
		     "0600", "--socket-group", std::to_string(getgid()) });
	ASSERT_TRUE(wait_socket()) << slurp(srv.err);
	struct stat st;
	ASSERT_EQ(lstat(sock.c_str(), &st), 0);
	EXPECT_EQ(st.st_mode & 07777, 0600u);
	ivshm_client *a = nullptr, *b = nullptr;
	ivshm_client_params cp;
	memset(&cp, 0, sizeof(cp));
	cp.connect_timeout_ms = 5000;
	ASSERT_EQ(ivshm_client_connect(sock.c_str(), &cp, &a), 0);
	cp.connect_timeout_ms = 0;
	EXPECT_EQ(ivshm_client_connect(sock.c_str(), &cp, &b), -ECONNRESET);
	ivshm_client_close(a);
	kill(srv.pid, SIGTERM);
	EXPECT_EQ(srv.wait_exit(10000), 0);
	EXPECT_NE(slurp(srv.err).find("peer limit (1) reached"), std::string::npos);
}

TEST_F(AppsTest, DaemonMode)
{
	std::string err;
	/* The foreground part exits once the daemon listens. */
	ASSERT_EQ(run({ server_bin, "-S", sock, "-p", pidfile }, nullptr, &err), 0) << err;
	ASSERT_TRUE(wait_until([&] { return !slurp(pidfile).empty(); }));
	pid_t pid = (pid_t)std::stoi(slurp(pidfile));
	ASSERT_GT(pid, 1);
	EXPECT_EQ(kill(pid, 0), 0);
	ASSERT_TRUE(wait_socket());
	ivshm_client *a = nullptr;
	ivshm_client_params cp;
	memset(&cp, 0, sizeof(cp));
	cp.connect_timeout_ms = 5000;
	EXPECT_EQ(ivshm_client_connect(sock.c_str(), &cp, &a), 0);
	ivshm_client_close(a);
	/* Not our child (double fork): poll for its end, with a deadline. */
	kill(pid, SIGTERM);
	bool gone = wait_until([&] { return kill(pid, 0) < 0 && errno == ESRCH; }, 10000);
	if (!gone)
		kill(pid, SIGKILL);
	EXPECT_TRUE(gone);
	struct stat st;
	EXPECT_TRUE(wait_until([&] { return lstat(pidfile.c_str(), &st) != 0; }));
	EXPECT_NE(lstat(sock.c_str(), &st), 0);
}
