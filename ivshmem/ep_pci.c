/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ep_pci.c - the ivshmem PCI device (1af4:1110) inside a guest:
 * "pci:BDF" (e.g. pci:0000:00:04.0) or "pci:auto" (the first such device
 * under the PCI sysfs tree, in directory order sorted by address).
 *
 * The region is BAR2, the registers BAR0 (IVPosition at 8, Doorbell at 12 =
 * peer << 16 | vector; 4-byte accesses only). Two ways to reach them:
 *  - sysfs: mmap /sys/bus/pci/devices/BDF/resource2 and resource0. Works with
 *    no driver bound; no interrupts (polling only).
 *  - VFIO: when the device is bound to vfio-pci (through a virtual IOMMU, or
 *    a kernel with VFIO no-IOMMU mode), the BARs come from the VFIO device
 *    fd and each MSI-X vector is routed to an eventfd with
 *    VFIO_DEVICE_SET_IRQS: vector_fd() and wait() work. IVSHM_EP_F_POLL
 *    keeps VFIO's mapping but asks for no interrupts.
 * UIO is not used: uio_pci_generic knows only INTx, and QEMU's
 * ivshmem-doorbell raises MSI-X only.
 *
 * A device without resource1 (no MSI-X BAR) is ivshmem-plain: no server,
 * no doorbell, no id; it behaves as a plain file (format by CAS). The
 * doorbell device's region is formatted by the server (or by CAS if the
 * server does not format, as QEMU's example server).
 *
 * The PCI sysfs root can be overridden with IVSHM_PCI_SYSFS (unit tests use
 * a fake tree of regular files).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "endpoint_internal.h"
#include "ivshm_atomic.h"
#include "ivshm_common.h"

#define IVSHM_PCI_VENDOR 0x1af4
#define IVSHM_PCI_DEVICE 0x1110
#define REG_IVPOSITION 8
#define REG_DOORBELL 12
#define BAR0_MIN 16

struct pci_priv {
	char bdf[32];
	int doorbell;           /* device has doorbells (not ivshmem-plain) */
	/* registers: mapped (regs != NULL) or through VFIO pread/pwrite */
	volatile uint32_t *regs;
	size_t regs_map_len;
	void *regs_map;
	uint64_t bar0_off;      /* VFIO region offset of BAR0 (no mmap) */
	int vfio_container, vfio_group, vfio_dev;
	unsigned int nfds;
	int efd[IVSHM_MAX_VECTORS];
};

static const char *sysfs_root(void)
{
	const char *r = getenv("IVSHM_PCI_SYSFS");

	return (r != NULL && *r != '\0') ? r : "/sys/bus/pci/devices";
}

/* Read a small sysfs attribute as an unsigned number (hex with 0x ok). */
static int read_ulong(const char *path, unsigned long *out)
{
	char buf[64], *end;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		n = -errno;
		close(fd);
		return (int)n;
	}
	close(fd);
	buf[n] = '\0';
	errno = 0;
	*out = strtoul(buf, &end, 0);
	if (errno != 0 || end == buf || (*end != '\0' && *end != '\n'))
		return -EINVAL;
	return 0;
}

static int is_ivshmem(const char *root, const char *bdf)
{
	char path[PATH_MAX];
	unsigned long vendor, device;

	snprintf(path, sizeof(path), "%s/%s/vendor", root, bdf);
	if (read_ulong(path, &vendor) < 0)
		return 0;
	snprintf(path, sizeof(path), "%s/%s/device", root, bdf);
	if (read_ulong(path, &device) < 0)
		return 0;
	return vendor == IVSHM_PCI_VENDOR && device == IVSHM_PCI_DEVICE;
}

/* "pci:auto": the lowest address that is an ivshmem device. Names in
 * /sys/bus/pci/devices are fixed-width "dddd:bb:dd.f", so string order is
 * address order. */
static int find_auto(const char *root, char *bdf, size_t len)
{
	DIR *d = opendir(root);
	struct dirent *e;
	int ret = -ENOENT;

	if (d == NULL)
		return -errno;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || strlen(e->d_name) >= len)
			continue;
		if (ret == 0 && strcmp(e->d_name, bdf) >= 0)
			continue;
		if (is_ivshmem(root, e->d_name)) {
			strcpy(bdf, e->d_name);
			ret = 0;
		}
	}
	closedir(d);
	return ret;
}

/* "0000:00:04.0" or the short "00:04.0" (domain 0). */
static int parse_bdf(const char *arg, char *bdf, size_t len)
{
	unsigned int dom = 0, bus, dev, fn;
	char tail;

	if (sscanf(arg, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &tail) == 4) {
		/* full form */
	} else if (dom = 0,
		   sscanf(arg, "%x:%x.%x%c", &bus, &dev, &fn, &tail) == 3) {
		/* short form */
	} else {
		return -EINVAL;
	}
	if (dom > 0xffff || bus > 0xff || dev > 0x1f || fn > 7)
		return -EINVAL;
	for (const char *p = arg; *p; p++)
		if (!(*p == ':' || *p == '.' || (*p >= '0' && *p <= '9') ||
		      (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F')))
			return -EINVAL;
	snprintf(bdf, len, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	return 0;
}

static uint32_t reg_read(const struct pci_priv *p, unsigned int off)
{
	uint32_t v = UINT32_MAX;

	if (p->regs != NULL)
		return p->regs[off / 4]; /* MMIO: volatile is the device access,
					    not synchronisation */
	if (pread(p->vfio_dev, &v, 4, (off_t)(p->bar0_off + off)) != 4)
		return UINT32_MAX;
	return v;
}

static int reg_write(const struct pci_priv *p, unsigned int off, uint32_t v)
{
	if (p->regs != NULL) {
		p->regs[off / 4] = v;
		return 0;
	}
	if (pwrite(p->vfio_dev, &v, 4, (off_t)(p->bar0_off + off)) != 4)
		return -EIO;
	return 0;
}

static int map_sysfs(const char *root, struct pci_priv *p, void **base,
		     uint64_t *size)
{
	char path[PATH_MAX];
	struct stat st;
	long pg = sysconf(_SC_PAGESIZE);
	int fd, ret;
	void *m;

	snprintf(path, sizeof(path), "%s/%s/resource2", root, p->bdf);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENODEV : -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	*size = (uint64_t)st.st_size;
	if (!ivshm_is_pow2_u64(*size) || *size < IVSHM__REGION_MIN_SIZE ||
	    *size > SIZE_MAX) {
		close(fd);
		return -EPROTO;
	}
	m = mmap(NULL, (size_t)*size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ret = -errno;
	close(fd);
	if (m == MAP_FAILED)
		return ret;
	*base = m;

	snprintf(path, sizeof(path), "%s/%s/resource0", root, p->bdf);
	fd = open(path, O_RDWR | O_CLOEXEC | O_SYNC);
	if (fd < 0) {
		ret = -errno;
		goto err_unmap;
	}
	if (fstat(fd, &st) < 0 || st.st_size < BAR0_MIN) {
		ret = -EPROTO;
		close(fd);
		goto err_unmap;
	}
	/* BAR0 is 256 bytes; sysfs maps it by whole pages. */
	p->regs_map_len = (size_t)pg;
	p->regs_map = mmap(NULL, p->regs_map_len, PROT_READ | PROT_WRITE,
			   MAP_SHARED, fd, 0);
	ret = -errno;
	close(fd);
	if (p->regs_map == MAP_FAILED) {
		p->regs_map = NULL;
		goto err_unmap;
	}
	p->regs = p->regs_map;
	return 0;

err_unmap:
	munmap(*base, (size_t)*size);
	*base = NULL;
	return ret;
}

static void vfio_release(struct pci_priv *p)
{
	for (unsigned int i = 0; i < p->nfds; i++)
		close(p->efd[i]);
	p->nfds = 0;
	if (p->vfio_dev >= 0)
		close(p->vfio_dev);
	if (p->vfio_group >= 0)
		close(p->vfio_group);
	if (p->vfio_container >= 0)
		close(p->vfio_container);
	p->vfio_dev = p->vfio_group = p->vfio_container = -1;
}

static int vfio_region(int dev, unsigned int index,
		       struct vfio_region_info *ri)
{
	memset(ri, 0, sizeof(*ri));
	ri->argsz = sizeof(*ri);
	ri->index = index;
	if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, ri) < 0)
		return -errno;
	return 0;
}

/* Route MSI-X vectors 0..n-1 to fresh eventfds. */
static int vfio_irqs(struct pci_priv *p, unsigned int *nvec)
{
	struct vfio_irq_info ii = { .argsz = sizeof(ii),
				    .index = VFIO_PCI_MSIX_IRQ_INDEX };
	char buf[sizeof(struct vfio_irq_set) + sizeof(int32_t) * IVSHM_MAX_VECTORS];
	struct vfio_irq_set *set = (struct vfio_irq_set *)buf;
	unsigned int n;
	uint16_t cmd;
	int ret;

	if (ioctl(p->vfio_dev, VFIO_DEVICE_GET_IRQ_INFO, &ii) < 0)
		return -errno;
	n = ii.count < IVSHM_MAX_VECTORS ? ii.count : IVSHM_MAX_VECTORS;
	if (n == 0 || !(ii.flags & VFIO_IRQ_INFO_EVENTFD))
		return -ENOTSUP;
	for (p->nfds = 0; p->nfds < n; p->nfds++) {
		p->efd[p->nfds] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (p->efd[p->nfds] < 0)
			return -errno;
	}
	memset(buf, 0, sizeof(buf));
	set->argsz = (uint32_t)(sizeof(*set) + sizeof(int32_t) * n);
	set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	set->index = VFIO_PCI_MSIX_IRQ_INDEX;
	set->start = 0;
	set->count = n;
	memcpy(set->data, p->efd, sizeof(int32_t) * n);
	if (ioctl(p->vfio_dev, VFIO_DEVICE_SET_IRQS, set) < 0)
		return -errno;
	/* MSI-X messages are memory writes by the device: without bus
	 * mastering QEMU drops them. */
	{
		struct vfio_region_info cfg;

		ret = vfio_region(p->vfio_dev, VFIO_PCI_CONFIG_REGION_INDEX, &cfg);
		if (ret < 0)
			return ret;
		if (pread(p->vfio_dev, &cmd, 2, (off_t)(cfg.offset + PCI_COMMAND)) != 2)
			return -EIO;
		cmd |= PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY;
		if (pwrite(p->vfio_dev, &cmd, 2, (off_t)(cfg.offset + PCI_COMMAND)) != 2)
			return -EIO;
	}
	*nvec = n;
	return 0;
}

static int map_vfio(const char *root, struct pci_priv *p, int want_irq,
		    void **base, uint64_t *size, unsigned int *nvec)
{
	char path[PATH_MAX], link[PATH_MAX];
	struct vfio_group_status gs = { .argsz = sizeof(gs) };
	struct vfio_region_info r0, r2;
	const char *grp;
	ssize_t n;
	int ret, type;
	void *m;

	snprintf(path, sizeof(path), "%s/%s/iommu_group", root, p->bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -errno;
	link[n] = '\0';
	grp = strrchr(link, '/');
	grp = grp != NULL ? grp + 1 : link;

	p->vfio_container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (p->vfio_container < 0)
		return -errno;
	if (ioctl(p->vfio_container, VFIO_GET_API_VERSION) != VFIO_API_VERSION) {
		ret = -ENOTSUP;
		goto err;
	}
	snprintf(path, sizeof(path), "/dev/vfio/%.64s", grp);
	p->vfio_group = open(path, O_RDWR | O_CLOEXEC);
	if (p->vfio_group < 0) {
		snprintf(path, sizeof(path), "/dev/vfio/noiommu-%.64s", grp);
		p->vfio_group = open(path, O_RDWR | O_CLOEXEC);
	}
	if (p->vfio_group < 0) {
		ret = -errno;
		goto err;
	}
	if (ioctl(p->vfio_group, VFIO_GROUP_GET_STATUS, &gs) < 0) {
		ret = -errno;
		goto err;
	}
	if (!(gs.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		ret = -EBUSY;
		goto err;
	}
	if (ioctl(p->vfio_group, VFIO_GROUP_SET_CONTAINER, &p->vfio_container) < 0) {
		ret = -errno;
		goto err;
	}
	if (ioctl(p->vfio_container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) > 0)
		type = VFIO_TYPE1v2_IOMMU;
	else if (ioctl(p->vfio_container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU) > 0)
		type = VFIO_TYPE1_IOMMU;
	else
		type = VFIO_NOIOMMU_IOMMU;
	if (ioctl(p->vfio_container, VFIO_SET_IOMMU, type) < 0) {
		ret = -errno;
		goto err;
	}
	p->vfio_dev = ioctl(p->vfio_group, VFIO_GROUP_GET_DEVICE_FD, p->bdf);
	if (p->vfio_dev < 0) {
		ret = -errno;
		goto err;
	}
	ret = vfio_region(p->vfio_dev, VFIO_PCI_BAR2_REGION_INDEX, &r2);
	if (ret < 0)
		goto err;
	if (!ivshm_is_pow2_u64(r2.size) || r2.size < IVSHM__REGION_MIN_SIZE ||
	    !(r2.flags & VFIO_REGION_INFO_FLAG_MMAP)) {
		ret = -EPROTO;
		goto err;
	}
	ret = vfio_region(p->vfio_dev, VFIO_PCI_BAR0_REGION_INDEX, &r0);
	if (ret < 0)
		goto err;
	if (r0.size < BAR0_MIN) {
		ret = -EPROTO;
		goto err;
	}
	p->bar0_off = r0.offset;
	if (r0.flags & VFIO_REGION_INFO_FLAG_MMAP) {
		p->regs_map_len = (size_t)r0.size;
		p->regs_map = mmap(NULL, p->regs_map_len, PROT_READ | PROT_WRITE,
				   MAP_SHARED, p->vfio_dev, (off_t)r0.offset);
		if (p->regs_map == MAP_FAILED)
			p->regs_map = NULL; /* fall back to pread/pwrite */
		else
			p->regs = p->regs_map;
	}
	if (want_irq && vfio_irqs(p, nvec) < 0) {
		/* No MSI-X routing: the caller sees no CAP_INTERRUPT and polls. */
		for (unsigned int i = 0; i < p->nfds; i++)
			close(p->efd[i]);
		p->nfds = 0;
		*nvec = 0;
	}
	m = mmap(NULL, (size_t)r2.size, PROT_READ | PROT_WRITE, MAP_SHARED,
		 p->vfio_dev, (off_t)r2.offset);
	if (m == MAP_FAILED) {
		ret = -errno;
		goto err_unmap_regs;
	}
	*base = m;
	*size = r2.size;
	return 0;

err_unmap_regs:
	if (p->regs_map != NULL)
		munmap(p->regs_map, p->regs_map_len);
	p->regs_map = NULL;
	p->regs = NULL;
err:
	vfio_release(p);
	*nvec = 0;
	return ret;
}

static int driver_is(const char *root, const char *bdf, const char *name)
{
	char path[PATH_MAX], link[PATH_MAX];
	const char *b;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s/driver", root, bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return 0;
	link[n] = '\0';
	b = strrchr(link, '/');
	return strcmp(b != NULL ? b + 1 : link, name) == 0;
}

static void pci_close_ep(struct ivshm_endpoint *ep)
{
	struct pci_priv *p = ep->priv;

	if (p == NULL)
		return;
	if (ep->base != NULL)
		munmap(ep->base, (size_t)ep->size);
	if (p->regs_map != NULL)
		munmap(p->regs_map, p->regs_map_len);
	vfio_release(p);
	free(p);
	ep->priv = NULL;
}

static int pci_open_ep(struct ivshm_endpoint *ep, const char *arg,
		       const struct ivshm__ep_opts *opts)
{
	const char *root = sysfs_root();
	char path[PATH_MAX];
	struct pci_priv *p;
	unsigned int nvec = 0;
	uint64_t size = 0;
	void *base = NULL;
	int ret;

	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->vfio_container = p->vfio_group = p->vfio_dev = -1;
	ep->priv = p;

	if (strcmp(arg, "auto") == 0)
		ret = find_auto(root, p->bdf, sizeof(p->bdf));
	else
		ret = parse_bdf(arg, p->bdf, sizeof(p->bdf));
	if (ret < 0)
		goto err;
	snprintf(path, sizeof(path), "%s/%s", root, p->bdf);
	if (access(path, F_OK) < 0) {
		ret = -ENOENT;
		goto err;
	}
	if (!is_ivshmem(root, p->bdf)) {
		ret = -ENODEV;
		goto err;
	}
	/* Only the doorbell device has BAR1 (MSI-X). */
	snprintf(path, sizeof(path), "%s/%s/resource1", root, p->bdf);
	p->doorbell = access(path, F_OK) == 0;

	if (driver_is(root, p->bdf, "vfio-pci"))
		ret = map_vfio(root, p,
			       p->doorbell && !(opts->flags & IVSHM_EP_F_POLL),
			       &base, &size, &nvec);
	else
		ret = map_sysfs(root, p, &base, &size);
	if (ret < 0)
		goto err;
	ep->base = base;
	ep->size = size;

	if (p->doorbell) {
		/* IVPosition is the id the server gave QEMU (a 16-bit peer id);
		 * -1 would mean none. */
		uint32_t id = reg_read(p, REG_IVPOSITION);

		if (id > 0xffff) {
			ret = -EPROTO;
			goto err;
		}
		ep->id = (int)id;
		ep->caps = IVSHM_EP_CAP_DOORBELL | IVSHM_EP_CAP_PEER_ID;
		if (nvec > 0)
			ep->caps |= IVSHM_EP_CAP_INTERRUPT;
		ep->nvectors = nvec;
	}
	/* Guest and host do not share pid namespaces: no pid checks. */
	ret = ivshm__region_ready(base, size,
				  (opts->flags & IVSHM_EP_F_NOFORMAT) ?
				  IVSHM__FMT_NONE : IVSHM__FMT_CAS, 0);
	if (ret < 0)
		goto err;
	return 0;

err:
	pci_close_ep(ep);
	return ret;
}

static int pci_notify(struct ivshm_endpoint *ep, uint16_t peer,
		      unsigned int vector)
{
	struct pci_priv *p = ep->priv;

	if (!p->doorbell)
		return -ENOTSUP;
	if (vector >= IVSHM_MAX_VECTORS)
		return -EINVAL;
	/* R2: region writes before the doorbell: pairs with the peer's wake-up
	 * (its eventfd read or interrupt) followed by its acquire loads. */
	ivshm_fence_release();
	return reg_write(p, REG_DOORBELL, ((uint32_t)peer << 16) | vector);
}

static int pci_vector_fd(const struct ivshm_endpoint *ep, unsigned int vector)
{
	const struct pci_priv *p = ep->priv;

	if (p->nfds == 0)
		return -ENOTSUP;
	if (vector >= p->nfds)
		return -EINVAL;
	return p->efd[vector];
}

static int pci_wait(struct ivshm_endpoint *ep, int timeout_ms, uint64_t *fired)
{
	struct pci_priv *p = ep->priv;
	struct pollfd pfd[IVSHM_MAX_VECTORS];
	uint64_t mask = 0, cnt;
	int n;

	if (p->nfds == 0)
		return -ENOTSUP;
	for (unsigned int i = 0; i < p->nfds; i++) {
		pfd[i].fd = p->efd[i];
		pfd[i].events = POLLIN;
		pfd[i].revents = 0;
	}
	n = poll(pfd, p->nfds, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	if (n == 0)
		return 0;
	for (unsigned int i = 0; i < p->nfds; i++)
		if ((pfd[i].revents & POLLIN) &&
		    read(p->efd[i], &cnt, sizeof(cnt)) == (ssize_t)sizeof(cnt))
			mask |= UINT64_C(1) << i;
	if (fired != NULL)
		*fired = mask;
	return mask != 0;
}

const struct ivshm__ep_ops ivshm__ep_pci_ops = {
	.scheme = "pci",
	.kind = IVSHM_EP_PCI,
	.open = pci_open_ep,
	.close = pci_close_ep,
	.notify = pci_notify,
	.vector_fd = pci_vector_fd,
	.wait = pci_wait,
};
