/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_util.h - small helpers shared by the libFuzzer targets: an input
 * reader that yields zeros once the input is exhausted, an always-on check
 * (abort, so libFuzzer keeps the input as a crash), descriptor counting
 * (a target that leaks a descriptor per input is a bug), and a private
 * temporary folder removed at exit.
 */
#ifndef IVSHM_FUZZ_UTIL_H
#define IVSHM_FUZZ_UTIL_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fz_in {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t fz_u8(struct fz_in *in)
{
	uint8_t v = 0;

	if (in->n) {
		v = *in->p++;
		in->n--;
	}
	return v;
}

static inline uint16_t fz_u16(struct fz_in *in)
{
	uint16_t v = fz_u8(in);

	return (uint16_t)(v | (uint16_t)fz_u8(in) << 8);
}

static inline uint32_t fz_u32(struct fz_in *in)
{
	uint32_t v = fz_u16(in);

	return v | (uint32_t)fz_u16(in) << 16;
}

static inline uint64_t fz_u64(struct fz_in *in)
{
	uint64_t v = fz_u32(in);

	return v | (uint64_t)fz_u32(in) << 32;
}

/* Copy up to @p max bytes (fewer if the input ends); returns the count. */
static inline size_t fz_bytes(struct fz_in *in, void *dst, size_t max)
{
	size_t k = max < in->n ? max : in->n;

	memcpy(dst, in->p, k);
	in->p += k;
	in->n -= k;
	return k;
}

#define FZ_CHECK(c)                                                       \
	do {                                                              \
		if (!(c)) {                                               \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #c);                            \
			abort();                                          \
		}                                                         \
	} while (0)

/* Open descriptors of this process. */
static inline int fz_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

/* Print this process's descriptors (to explain a failed count check). */
static inline void fz_dump_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char lnk[300], tgt[256];

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(lnk, sizeof(lnk), "/proc/self/fd/%s", e->d_name);
		n = readlink(lnk, tgt, sizeof(tgt) - 1);
		tgt[n > 0 ? n : 0] = 0;
		fprintf(stderr, "  fd %s -> %s\n", e->d_name, tgt);
	}
	closedir(d);
}

/* Check that the process holds @p base descriptors (dump them if not). */
#define FZ_CHECK_FDS(base)                                                \
	do {                                                              \
		if (fz_count_fds() != (base)) {                           \
			fprintf(stderr, "descriptors: %d, expected %d\n",  \
				fz_count_fds(), (base));                  \
			fz_dump_fds();                                    \
			FZ_CHECK(fz_count_fds() == (base));               \
		}                                                         \
	} while (0)

/* A private folder /tmp/ivshm-fuzz-PID-XXXXXX, removed at exit. */
static char fz_dir_path[64];

static inline void fz_dir_cleanup(void)
{
	char cmd[96];

	if (fz_dir_path[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fz_dir_path);
		if (system(cmd) != 0) {
			/* best effort */
		}
	}
}

static inline const char *fz_dir(void)
{
	if (!fz_dir_path[0]) {
		snprintf(fz_dir_path, sizeof(fz_dir_path), "/tmp/ivshm-fuzz-%d-XXXXXX",
			 (int)getpid());
		FZ_CHECK(mkdtemp(fz_dir_path) != NULL);
		atexit(fz_dir_cleanup);
	}
	return fz_dir_path;
}

#endif /* IVSHM_FUZZ_UTIL_H */
