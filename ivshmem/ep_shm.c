/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ep_shm.c - the plain-file endpoint: "shm:PATH[?size=N]".
 *
 * A regular file (in /dev/shm, hugetlbfs or anywhere mmap-able) shared by
 * processes with no server and no doorbell. With a size, the file is
 * created if missing and sized if empty (under flock, so two openers never
 * truncate it to different sizes); an existing file of another size is an
 * error, never resized. Without a size, the file must exist and its size is
 * used. A PATH without '/' names a file in /dev/shm. The first opener formats
 * the region header by compare-and-swap; others wait for READY.
 * There are no ids, no peers, no doorbells and nothing to wait on: notify,
 * vector_fd, control_fd, wait, peers and peer_present return -ENOTSUP.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "endpoint_internal.h"
#include "ivshm_common.h"

static int shm_open_ep(struct ivshm_endpoint *ep, const char *arg,
		       const struct ivshm__ep_opts *opts)
{
	char path[PATH_MAX];
	uint64_t size = opts->size;
	struct stat st;
	void *base;
	int fd, ret;

	if (strchr(arg, '/') != NULL)
		ret = snprintf(path, sizeof(path), "%s", arg);
	else
		ret = snprintf(path, sizeof(path), "/dev/shm/%s", arg);
	if (ret < 0 || (size_t)ret >= sizeof(path))
		return -ENAMETOOLONG;
	if (size != 0 &&
	    (!ivshm_is_pow2_u64(size) || size < IVSHM__REGION_MIN_SIZE ||
	     size > (uint64_t)SIZE_MAX || size > (uint64_t)INT64_MAX))
		return -EINVAL;

	fd = open(path, O_RDWR | O_CLOEXEC | (size != 0 ? O_CREAT : 0), 0600);
	if (fd < 0)
		return -errno;
	/* Size check and truncate under one lock: two creators asking for
	 * different sizes must not shrink the file under each other. */
	if (flock(fd, LOCK_EX) < 0) {
		ret = -errno;
		goto err_close;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto err_close;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		goto err_close;
	}
	if (st.st_size == 0) {
		if (size == 0) {
			ret = -EINVAL; /* empty file and no size to give it */
			goto err_close;
		}
		if (ftruncate(fd, (off_t)size) < 0) {
			ret = -errno;
			goto err_close;
		}
	} else if (size != 0 && (uint64_t)st.st_size != size) {
		ret = -EINVAL; /* exists with another size: never resize */
		goto err_close;
	} else if (size == 0) {
		size = (uint64_t)st.st_size;
		if (!ivshm_is_pow2_u64(size) || size < IVSHM__REGION_MIN_SIZE ||
		    size > (uint64_t)SIZE_MAX) {
			ret = -EPROTO;
			goto err_close;
		}
	}
	flock(fd, LOCK_UN);

	base = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		ret = -errno;
		goto err_close;
	}
	/* The mapping keeps the file alive; the descriptor is not needed. */
	close(fd);

	ret = ivshm__region_ready(base, size,
				  (opts->flags & IVSHM_EP_F_NOFORMAT) ?
				  IVSHM__FMT_NONE : IVSHM__FMT_CAS, 1);
	if (ret < 0) {
		munmap(base, (size_t)size);
		return ret;
	}
	ep->base = base;
	ep->size = size;
	ep->caps = 0;
	ep->id = -ENOTSUP;
	ep->nvectors = 0;
	return 0;

err_close:
	close(fd); /* drops the flock too */
	return ret;
}

static void shm_close_ep(struct ivshm_endpoint *ep)
{
	if (ep->base != NULL)
		munmap(ep->base, (size_t)ep->size);
}

const struct ivshm__ep_ops ivshm__ep_shm_ops = {
	.scheme = "shm",
	.kind = IVSHM_EP_SHM,
	.open = shm_open_ep,
	.close = shm_close_ep,
};
