/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: the server's and client's public headers compile alone in C. */
#include "ivshm/client.h"
#include "ivshm/server.h"
#include "ivshm_proto.h"

int ivshm_test_headers_c(void);
int ivshm_test_headers_c(void)
{
	return (int)sizeof(struct ivshm_server_params) +
	       (int)sizeof(struct ivshm_client_params);
}
