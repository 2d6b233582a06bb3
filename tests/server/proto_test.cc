/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Description: the wire protocol helpers (ivshmem/proto.c): little-endian
 * encoding, whole-message reassembly from partial reads, descriptors passed
 * with SCM_RIGHTS, and every unexpected descriptor closed.
 */
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto.h"
#include "test_util.h"

using namespace ivshm_test;

namespace {

struct Pair {
	int s[2] = { -1, -1 };
	Pair() { EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0); }
	~Pair()
	{
		for (int fd : s)
			if (fd >= 0)
				close(fd);
	}
};

/* The receiving end: reassembly state, and the value and descriptor of the
 * last message (starting as values no receive leaves behind). */
struct Rx {
	struct ivshm_proto_rx rx;
	int64_t v = INT64_MIN;
	int fd = -2;
	Rx() { ivshm_proto_rx_init(&rx); }
	int recv(int sock) { return ivshm_proto_recv(sock, &rx, &v, &fd); }
};

/* Send raw bytes with @p nfds copies of descriptor @p fd attached. */
void send_raw(int sock, const void *buf, size_t len, int fd, int nfds)
{
	struct iovec iov = { const_cast<void *>(buf), len };
	struct msghdr msg;
	char ctl[CMSG_SPACE(sizeof(int) * 8)];
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (nfds > 0) {
		memset(ctl, 0, sizeof(ctl));
		msg.msg_control = ctl;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		for (int i = 0; i < nfds; i++)
			memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof(int));
	}
	ASSERT_EQ(sendmsg(sock, &msg, 0), (ssize_t)len);
}

} // namespace

TEST(Proto, EncodesLittleEndian)
{
	uint8_t b[8];
	ivshm_proto_encode(INT64_C(0x0102030405060708), b);
	const uint8_t want[8] = { 8, 7, 6, 5, 4, 3, 2, 1 };
	EXPECT_EQ(memcmp(b, want, 8), 0);
	ivshm_proto_encode(-1, b);
	for (int i = 0; i < 8; i++)
		EXPECT_EQ(b[i], 0xff);
	ivshm_proto_encode(65535, b);
	EXPECT_EQ(b[0], 0xff);
	EXPECT_EQ(b[1], 0xff);
	EXPECT_EQ(b[2], 0);
	for (int64_t v : { INT64_C(0), INT64_C(-1), INT64_C(1), INT64_C(65535),
			   INT64_MIN, INT64_MAX, INT64_C(-2) }) {
		ivshm_proto_encode(v, b);
		EXPECT_EQ(ivshm_proto_decode(b), v);
	}
}

TEST(Proto, SendAndReceiveWithDescriptor)
{
	Pair p;
	int efd = eventfd(0, EFD_CLOEXEC);
	ASSERT_GE(efd, 0);
	ASSERT_EQ(ivshm_proto_send_part(p.s[0], 42, efd, 0), 8);
	ASSERT_EQ(ivshm_proto_send_part(p.s[0], -1, -1, 0), 8);
	Rx r;
	ASSERT_EQ(r.recv(p.s[1]), 1);
	EXPECT_EQ(r.v, 42);
	ASSERT_GE(r.fd, 0);
	/* The received descriptor is the same eventfd. */
	uint64_t one = 1, got = 0;
	ASSERT_EQ(write(r.fd, &one, 8), 8);
	ASSERT_EQ(read(efd, &got, 8), 8);
	EXPECT_EQ(got, 1u);
	close(r.fd);
	ASSERT_EQ(r.recv(p.s[1]), 1);
	EXPECT_EQ(r.v, -1);
	EXPECT_EQ(r.fd, -1);
	EXPECT_EQ(r.recv(p.s[1]), -EAGAIN);
	close(efd);
}

TEST(Proto, ReassemblesPartialMessage)
{
	Pair p;
	int efd = eventfd(0, EFD_CLOEXEC);
	uint8_t b[8];
	ivshm_proto_encode(0x1234, b);
	/* Descriptor on the first 3 bytes, the rest later. */
	send_raw(p.s[0], b, 3, efd, 1);
	Rx r;
	EXPECT_EQ(r.recv(p.s[1]), -EAGAIN);
	send_raw(p.s[0], b + 3, 5, -1, 0);
	ASSERT_EQ(r.recv(p.s[1]), 1);
	EXPECT_EQ(r.v, 0x1234);
	EXPECT_GE(r.fd, 0);
	close(r.fd);
	close(efd);
	/* Partial send API: resume at an offset, no descriptor then. */
	ASSERT_EQ(ivshm_proto_send_part(p.s[0], 77, -1, 5), 3);
	EXPECT_EQ(ivshm_proto_send_part(p.s[0], 77, -1, 8), -EINVAL);
}

TEST(Proto, TwoDescriptorsOnOneMessageAreClosedAndRejected)
{
	Pair p;
	int efd = eventfd(0, EFD_CLOEXEC);
	int before = count_fds();
	uint8_t b[8];
	ivshm_proto_encode(3, b);
	send_raw(p.s[0], b, 8, efd, 2);
	Rx r;
	EXPECT_EQ(r.recv(p.s[1]), -EPROTO);
	EXPECT_EQ(count_fds(), before);
	/* Second descriptor arriving on the second half of a message. */
	send_raw(p.s[0], b, 4, efd, 1);
	EXPECT_EQ(r.recv(p.s[1]), -EAGAIN);
	send_raw(p.s[0], b + 4, 4, efd, 1);
	EXPECT_EQ(r.recv(p.s[1]), -EPROTO);
	EXPECT_EQ(count_fds(), before);
	close(efd);
}

TEST(Proto, EndOfStream)
{
	{
		Pair p;
		close(p.s[0]);
		p.s[0] = -1;
		Rx r;
		EXPECT_EQ(r.recv(p.s[1]), -ECONNRESET);
	}
	{
		Pair p;
		int efd = eventfd(0, EFD_CLOEXEC);
		int before = count_fds();
		uint8_t b[8] = { 1, 2, 3 };
		send_raw(p.s[0], b, 3, efd, 1);
		close(p.s[0]);
		p.s[0] = -1;
		Rx r;
		/* Truncated message: rejected, its descriptor closed. */
		EXPECT_EQ(r.recv(p.s[1]), -EPROTO);
		EXPECT_EQ(count_fds(), before - 1); /* p.s[0] closed */
		close(efd);
	}
}

TEST(Proto, DiscardClosesDescriptors)
{
	Pair p;
	int efd = eventfd(0, EFD_CLOEXEC);
	int before = count_fds();
	char junk[100];
	memset(junk, 0xab, sizeof(junk));
	for (int i = 0; i < 10; i++)
		send_raw(p.s[0], junk, sizeof(junk), efd, 3);
	EXPECT_EQ(ivshm_proto_discard(p.s[1], 1 << 20), 1000);
	EXPECT_EQ(count_fds(), before);
	EXPECT_EQ(ivshm_proto_discard(p.s[1], 1 << 20), -EAGAIN);
	close(p.s[0]);
	p.s[0] = -1;
	EXPECT_EQ(ivshm_proto_discard(p.s[1], 1 << 20), 0);
	close(efd);
}
