/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Description: ids wrap only at 65536 and skip ids still in use. 65536
 * connections come and go while two clients hold ids 0 and 5; the next
 * ones must get 1, 2, 3, 4, 6. Suite stress (a few seconds).
 */
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>

#include "test_util.h"

using namespace ivshm_test;

TEST(StressServer, IdsWrapOnlyAt65536AndSkipLiveOnes)
{
	TempDir dir;
	std::string sock = dir.file("s");
	ServerThread server;
	ASSERT_EQ(server.start(default_params(sock, 1 << 16, 1)), 0);
	ivshm_client_params cp;
	memset(&cp, 0, sizeof(cp));
	cp.connect_timeout_ms = 5000;
	cp.no_map = 1;
	std::vector<ivshm_client *> keep;
	for (int i = 0; i < 6; i++) {
		ivshm_client *c = nullptr;
		ASSERT_EQ(ivshm_client_connect(sock.c_str(), &cp, &c), 0);
		ASSERT_EQ(ivshm_client_id(c), i);
		keep.push_back(c);
	}
	/* Keep 0 and 5; 1..4 leave. */
	for (int i = 1; i <= 4; i++)
		ivshm_client_close(keep[i]);
	ivshm_client *c0 = keep[0], *c5 = keep[5];
	/* Both holders must keep reading, or their queues would overflow. */
	std::atomic<bool> done{ false };
	std::thread pump([&] {
		while (!done) {
			ivshm_client_wait(c0, 5, nullptr);
			ivshm_client_wait(c5, 0, nullptr);
		}
	});
	/* Ids 6..65535: 65530 connections that hang up at once. */
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strncpy(sa.sun_path, sock.c_str(), sizeof(sa.sun_path) - 1);
	for (int i = 6; i < 65536; i++) {
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ASSERT_GE(s, 0);
		ASSERT_EQ(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0) << i;
		close(s);
	}
	/* Wrapped: 0 is taken, so 1..4, then 5 is taken, so 6. */
	for (int want : { 1, 2, 3, 4, 6 }) {
		ivshm_client *c = nullptr;
		ASSERT_EQ(ivshm_client_connect(sock.c_str(), &cp, &c), 0);
		EXPECT_EQ(ivshm_client_id(c), want);
		ivshm_client_close(c);
	}
	done = true;
	pump.join();
	EXPECT_EQ(ivshm_client_connected(c0), 1);
	EXPECT_EQ(ivshm_client_connected(c5), 1);
	ivshm_client_close(c0);
	ivshm_client_close(c5);
}
