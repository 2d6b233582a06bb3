/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: the server's and client's public headers compile alone in C++. */
#include "ivshm/client.h"
#include "ivshm/server.h"
#include "ivshm_proto.h"

#include <gtest/gtest.h>

extern "C" int ivshm_test_headers_c(void);

TEST(Headers, CompileAsCAndCpp)
{
	EXPECT_EQ(ivshm_test_headers_c(),
		  (int)(sizeof(ivshm_server_params) + sizeof(ivshm_client_params)));
}
