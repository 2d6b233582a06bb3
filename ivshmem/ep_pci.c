/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ep_pci.c - the ivshmem PCI device inside a guest: "pci:BDF", "pci:auto".
 * Not written yet: open reports -ENOTSUP so nothing pretends to work.
 */
#include <errno.h>

#include "endpoint_internal.h"

static int pci_open_ep(struct ivshm_endpoint *ep, const char *arg,
		       const struct ivshm__ep_opts *opts)
{
	(void)ep;
	(void)arg;
	(void)opts;
	return -ENOTSUP;
}

static void pci_close_ep(struct ivshm_endpoint *ep)
{
	(void)ep;
}

const struct ivshm__ep_ops ivshm__ep_pci_ops = {
	.scheme = "pci",
	.kind = IVSHM_EP_PCI,
	.open = pci_open_ep,
	.close = pci_close_ep,
};
