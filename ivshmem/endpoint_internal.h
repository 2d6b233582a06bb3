/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * endpoint_internal.h - what endpoint.c shares with its backends.
 *
 * endpoint.c parses the description ("scheme:rest?key=value&..."), picks a
 * backend by scheme and dispatches every public call through the backend's
 * ops table. A backend fills the common fields of struct ivshm_endpoint
 * (base, size, caps, id, nvectors) in its open() and keeps its own state
 * behind ep->priv. A NULL op means "this backend cannot": endpoint.c then
 * returns -ENOTSUP (or the documented neutral value).
 *
 * Private to ivshmem/: not installed.
 */
#ifndef IVSHM_ENDPOINT_INTERNAL_H
#define IVSHM_ENDPOINT_INTERNAL_H

#include <stdint.h>

#include "ivshm/ivshmem.h"

/** Options parsed from the description's "?key=value&..." part. */
struct ivshm__ep_opts {
	unsigned int flags;   /* IVSHM_EP_F_*, from params and "poll=1" */
	uint64_t size;        /* "size=" or params->size; 0 if unset */
	int connect_timeout_ms;
};

struct ivshm__ep_ops {
	const char *scheme;             /* text before the first ':' */
	enum ivshm_endpoint_kind kind;
	/* Fill ep (base, size, caps, id, nvectors, priv) from @p arg (the text
	 * after "scheme:" and before '?'). On failure release everything it
	 * took and return -errno; endpoint.c then frees ep. */
	int (*open)(struct ivshm_endpoint *ep, const char *arg,
		    const struct ivshm__ep_opts *opts);
	void (*close)(struct ivshm_endpoint *ep);
	int (*notify)(struct ivshm_endpoint *ep, uint16_t peer,
		      unsigned int vector);
	int (*vector_fd)(const struct ivshm_endpoint *ep, unsigned int vector);
	int (*control_fd)(const struct ivshm_endpoint *ep);
	int (*process)(struct ivshm_endpoint *ep);
	int (*wait)(struct ivshm_endpoint *ep, int timeout_ms, uint64_t *fired);
	int (*peers)(const struct ivshm_endpoint *ep, uint16_t *ids,
		     unsigned int max);
	int (*peer_present)(const struct ivshm_endpoint *ep, uint16_t peer);
};

struct ivshm_endpoint {
	const struct ivshm__ep_ops *ops;
	void *base;            /* region mapping (header included) */
	uint64_t size;         /* region bytes */
	uint32_t caps;         /* IVSHM_EP_CAP_* */
	int id;                /* own peer id, or -ENOTSUP */
	unsigned int nvectors; /* own interrupt vectors (0: none) */
	unsigned int flags;    /* IVSHM_EP_F_* as opened */
	ivshm_peer_event_fn peer_event;
	void *peer_event_arg;
	void *priv;            /* backend state */
};

extern const struct ivshm__ep_ops ivshm__ep_shm_ops;
extern const struct ivshm__ep_ops ivshm__ep_pci_ops;
extern const struct ivshm__ep_ops ivshm__ep_socket_ops;

/** Smallest region accepted: the header page plus room for the caller. */
#define IVSHM__REGION_MIN_SIZE (2u * IVSHM_REGION_HDR_SIZE)

/* How the region header is brought to READY (endpoint.c). */
enum ivshm__fmt_mode {
	IVSHM__FMT_CAS,      /* plain region: format by CAS if UNINIT */
	IVSHM__FMT_NONE,     /* never format: fail unless READY (NOFORMAT) */
};

/**
 * Bring the region header at @p base (mapping of @p size bytes) to READY
 * and validate it. With IVSHM__FMT_CAS, the first caller to move init_state
 * from UNINIT to FORMATTING formats; others wait (bounded) for READY and
 * take over from a formatter that died mid-way. @p pid_is_local says whether
 * formatter_pid may be checked with kill() (same pid namespace: host
 * processes on one file; not a guest facing a host).
 * @return 0; -EPROTO bad or foreign header; -ETIMEDOUT formatter stuck;
 *         -ENODATA unformatted and @p mode is IVSHM__FMT_NONE.
 */
int ivshm__region_ready(void *base, uint64_t size, enum ivshm__fmt_mode mode,
			int pid_is_local);

/** Validate a READY header against the mapped size: 0 or -EPROTO. */
int ivshm__region_check(const void *base, uint64_t size);

/**
 * Parse a size with an optional K/M/G/T suffix (binary multiples).
 * @return 0 and *out; -EINVAL on junk, zero or overflow.
 */
int ivshm__parse_size(const char *s, uint64_t *out);

#endif /* IVSHM_ENDPOINT_INTERNAL_H */
