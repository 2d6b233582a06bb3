/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * endpoint.c - the public endpoint API: description parsing, dispatch to a
 * backend's ops table, and the region header (format by compare-and-swap,
 * wait for READY, validate).
 *
 * A description is "scheme:arg[?key=value[&key=value...]]". Schemes: shm,
 * pci, socket. Keys: size (K/M/G/T suffixes, power of two), poll (0/1),
 * noformat (0/1), timeout (connect timeout in ms). Unknown keys, repeated
 * keys and values that do not parse are -EINVAL; nothing is opened then.
 * Every public function is thread-safe as far as its backend says so:
 * notify() may run concurrently with anything; open/close are not
 * concurrent with other calls on the same endpoint.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "endpoint_internal.h"
#include "ivshm_atomic.h"
#include "ivshm_common.h"
#include "region_layout.h"

#define DESC_MAX 4096

/* A formatter needs microseconds; one that holds FORMATTING longer than the
 * grace period and whose pid is gone has died. Across pid namespaces (a guest
 * facing a host) pids say nothing, so only the stale limit lets us take over. */
#define FMT_GRACE_MS 100
#define FMT_STALE_MS 2000
#define FMT_GIVEUP_MS 10000

static const struct ivshm__ep_ops *const backends[] = {
	&ivshm__ep_shm_ops,
	&ivshm__ep_pci_ops,
	&ivshm__ep_socket_ops,
};

int ivshm__parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	if (s == NULL || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s)
		return -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default:
		return -EINVAL;
	}
	if (*end != '\0' || v == 0)
		return -EINVAL;
	if (shift != 0 && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_bool(const char *v, int *out)
{
	if (strcmp(v, "1") == 0 || strcmp(v, "yes") == 0 ||
	    strcmp(v, "true") == 0) {
		*out = 1;
		return 0;
	}
	if (strcmp(v, "0") == 0 || strcmp(v, "no") == 0 ||
	    strcmp(v, "false") == 0) {
		*out = 0;
		return 0;
	}
	return -EINVAL;
}

/* Parse "key=value&key=value" (modified in place) into @p o. */
static int parse_opts(char *s, struct ivshm__ep_opts *o, uint64_t param_size)
{
	unsigned int seen = 0;

	/* "?", "&&" and a trailing '&' are empty pairs: refused. */
	while (s != NULL) {
		char *next = strchr(s, '&');
		char *eq;
		unsigned int bit;
		int b, ret;

		if (next != NULL)
			*next++ = '\0';
		eq = strchr(s, '=');
		if (eq == NULL || eq == s || eq[1] == '\0')
			return -EINVAL;
		*eq++ = '\0';
		if (strcmp(s, "size") == 0) {
			bit = 1;
			ret = ivshm__parse_size(eq, &o->size);
			if (ret < 0)
				return ret;
			if (param_size != 0 && param_size != o->size)
				return -EINVAL;
		} else if (strcmp(s, "poll") == 0) {
			bit = 2;
			if (parse_bool(eq, &b) < 0)
				return -EINVAL;
			if (b)
				o->flags |= IVSHM_EP_F_POLL;
			else
				o->flags &= ~IVSHM_EP_F_POLL;
		} else if (strcmp(s, "noformat") == 0) {
			bit = 4;
			if (parse_bool(eq, &b) < 0)
				return -EINVAL;
			if (b)
				o->flags |= IVSHM_EP_F_NOFORMAT;
			else
				o->flags &= ~IVSHM_EP_F_NOFORMAT;
		} else if (strcmp(s, "timeout") == 0) {
			char *end;
			long ms;

			bit = 8;
			errno = 0;
			ms = strtol(eq, &end, 10);
			if (errno != 0 || *end != '\0' || ms < 0 || ms > INT_MAX)
				return -EINVAL;
			o->connect_timeout_ms = (int)ms;
		} else {
			return -EINVAL;
		}
		if (seen & bit)
			return -EINVAL;
		seen |= bit;
		s = next;
	}
	return 0;
}

int ivshm_endpoint_open(const char *desc,
			const struct ivshm_endpoint_params *params,
			struct ivshm_endpoint **out)
{
	const struct ivshm__ep_ops *ops = NULL;
	struct ivshm__ep_opts opts = { 0 };
	struct ivshm_endpoint *ep;
	char *copy, *colon, *q;
	size_t len, i;
	int ret;

	if (out == NULL)
		return -EINVAL;
	*out = NULL;
	if (desc == NULL)
		return -EINVAL;
	len = strnlen(desc, DESC_MAX);
	if (len == 0 || len >= DESC_MAX)
		return -EINVAL;
	if (params != NULL) {
		if (params->flags & ~(IVSHM_EP_F_POLL | IVSHM_EP_F_NOFORMAT))
			return -EINVAL;
		if (params->connect_timeout_ms < 0)
			return -EINVAL;
		opts.flags = params->flags;
		opts.size = params->size;
		opts.connect_timeout_ms = params->connect_timeout_ms;
	}

	copy = strdup(desc);
	if (copy == NULL)
		return -ENOMEM;
	colon = strchr(copy, ':');
	if (colon == NULL) {
		ret = -EINVAL;
		goto err_free_copy;
	}
	*colon = '\0';
	for (i = 0; i < IVSHM_ARRAY_SIZE(backends); i++) {
		if (strcmp(copy, backends[i]->scheme) == 0) {
			ops = backends[i];
			break;
		}
	}
	if (ops == NULL) {
		ret = -EINVAL;
		goto err_free_copy;
	}
	q = strchr(colon + 1, '?');
	if (q != NULL) {
		*q++ = '\0';
		ret = parse_opts(q, &opts, opts.size);
		if (ret < 0)
			goto err_free_copy;
	}
	if (colon[1] == '\0') {
		ret = -EINVAL;
		goto err_free_copy;
	}

	ep = calloc(1, sizeof(*ep));
	if (ep == NULL) {
		ret = -ENOMEM;
		goto err_free_copy;
	}
	ep->ops = ops;
	ep->id = -ENOTSUP;
	ep->flags = opts.flags;
	if (params != NULL) {
		ep->peer_event = params->peer_event;
		ep->peer_event_arg = params->peer_event_arg;
	}
	ret = ops->open(ep, colon + 1, &opts);
	if (ret < 0)
		goto err_free_ep;
	free(copy);
	*out = ep;
	return 0;

err_free_ep:
	free(ep);
err_free_copy:
	free(copy);
	return ret;
}

void ivshm_endpoint_close(struct ivshm_endpoint *ep)
{
	if (ep == NULL)
		return;
	ep->ops->close(ep);
	free(ep);
}

enum ivshm_endpoint_kind ivshm_endpoint_kind(const struct ivshm_endpoint *ep)
{
	return ep->ops->kind;
}

uint32_t ivshm_endpoint_caps(const struct ivshm_endpoint *ep)
{
	return ep->caps;
}

void *ivshm_endpoint_base(const struct ivshm_endpoint *ep)
{
	return ep->base;
}

uint64_t ivshm_endpoint_size(const struct ivshm_endpoint *ep)
{
	return ep->size;
}

int ivshm_endpoint_id(const struct ivshm_endpoint *ep)
{
	return ep->id;
}

unsigned int ivshm_endpoint_nvectors(const struct ivshm_endpoint *ep)
{
	return ep->nvectors;
}

int ivshm_endpoint_notify(struct ivshm_endpoint *ep, uint16_t peer,
			  unsigned int vector)
{
	if (ep->ops->notify == NULL)
		return -ENOTSUP;
	return ep->ops->notify(ep, peer, vector);
}

int ivshm_endpoint_vector_fd(const struct ivshm_endpoint *ep,
			     unsigned int vector)
{
	if (ep->ops->vector_fd == NULL)
		return -ENOTSUP;
	return ep->ops->vector_fd(ep, vector);
}

int ivshm_endpoint_control_fd(const struct ivshm_endpoint *ep)
{
	if (ep->ops->control_fd == NULL)
		return -ENOTSUP;
	return ep->ops->control_fd(ep);
}

int ivshm_endpoint_process(struct ivshm_endpoint *ep)
{
	/* No control channel: nothing is ever pending, zero events handled. */
	if (ep->ops->process == NULL)
		return 0;
	return ep->ops->process(ep);
}

int ivshm_endpoint_wait(struct ivshm_endpoint *ep, int timeout_ms,
			uint64_t *fired)
{
	if (fired != NULL)
		*fired = 0;
	if (ep->ops->wait == NULL)
		return -ENOTSUP;
	return ep->ops->wait(ep, timeout_ms, fired);
}

int ivshm_endpoint_peers(const struct ivshm_endpoint *ep, uint16_t *ids,
			 unsigned int max)
{
	if (ep->ops->peers == NULL)
		return -ENOTSUP;
	if (ids == NULL && max != 0)
		return -EINVAL;
	return ep->ops->peers(ep, ids, max);
}

int ivshm_endpoint_peer_present(const struct ivshm_endpoint *ep,
				uint16_t peer)
{
	if (ep->ops->peer_present == NULL)
		return -ENOTSUP;
	return ep->ops->peer_present(ep, peer);
}

/* ---- region header ---------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)ms * 1000000L };

	nanosleep(&ts, NULL);
}

static uint64_t random_u64(void)
{
	uint64_t v = 0;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		v = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
		    ((uint64_t)getpid() << 16);
	}
	return v | 1; /* never 0: 0 reads as "never formatted" */
}

/* We own init_state == FORMATTING: write the header, then publish READY. */
static void region_format(struct ivshm_region_hdr *h, uint64_t size)
{
	/* Another formatter may run at once after a take-over: every field is
	 * written with the same value by both (except pid and format_id), so
	 * the stores are relaxed atomics, not plain writes. */
	ivshm_store_relaxed(&h->formatter_pid, (uint32_t)getpid());
	ivshm_store_relaxed(&h->magic, IVSHM_REGION_MAGIC);
	ivshm_store_relaxed(&h->version, IVSHM_REGION_VERSION);
	ivshm_store_relaxed(&h->size, size);
	ivshm_store_relaxed(&h->hdr_size, IVSHM_REGION_HDR_SIZE);
	ivshm_store_relaxed(&h->format_id, random_u64());
	for (size_t i = 0; i < sizeof(h->reserved); i++)
		ivshm_store_relaxed(&h->reserved[i], (uint8_t)0);
	/* R1: pairs with A1 in ivshm__region_ready: fields before READY. */
	ivshm_store_release(&h->init_state, (uint32_t)IVSHM_REGION_READY);
}

int ivshm__region_check(const void *base, uint64_t size)
{
	const struct ivshm_region_hdr *h = base;
	/* Any peer can rewrite these bytes: read each once, then judge. */
	uint64_t magic = ivshm_load_relaxed(&h->magic);
	uint32_t version = ivshm_load_relaxed(&h->version);
	uint64_t rsize = ivshm_load_relaxed(&h->size);
	uint32_t hdr_size = ivshm_load_relaxed(&h->hdr_size);

	if (magic != IVSHM_REGION_MAGIC || version != IVSHM_REGION_VERSION ||
	    hdr_size != IVSHM_REGION_HDR_SIZE || rsize != size)
		return -EPROTO;
	return 0;
}

static int pid_gone(uint32_t pid)
{
	if (pid == 0 || pid > INT_MAX)
		return 0; /* not a pid we can ask about */
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

int ivshm__region_ready(void *base, uint64_t size, enum ivshm__fmt_mode mode,
			int pid_is_local)
{
	struct ivshm_region_hdr *h = base;
	int64_t start = now_ms(), fmt_seen = -1;
	uint32_t fmt_pid = 0;

	if (size < IVSHM__REGION_MIN_SIZE || !ivshm_is_pow2_u64(size))
		return -EPROTO;
	for (;;) {
		/* A1: pairs with R1 in region_format (ours or another peer's). */
		uint32_t st = ivshm_load_acquire(&h->init_state);
		int64_t now;

		if (st == IVSHM_REGION_READY)
			return ivshm__region_check(base, size);
		if (st == IVSHM_REGION_UNINIT) {
			uint32_t expected = IVSHM_REGION_UNINIT;

			if (mode == IVSHM__FMT_NONE)
				return -ENODATA;
			/* C1: acq_rel; the winner alone formats. */
			if (ivshm_cas_acq_rel(&h->init_state, &expected,
					      (uint32_t)IVSHM_REGION_FORMATTING)) {
				region_format(h, size);
				return ivshm__region_check(base, size);
			}
			continue;
		}
		if (st != IVSHM_REGION_FORMATTING)
			return -EPROTO;

		now = now_ms();
		if (fmt_seen < 0 ||
		    ivshm_load_relaxed(&h->formatter_pid) != fmt_pid) {
			/* A new formatter (or the first look): restart its clock. */
			fmt_seen = now;
			fmt_pid = ivshm_load_relaxed(&h->formatter_pid);
		} else if ((now - fmt_seen >= FMT_GRACE_MS && pid_is_local &&
			    pid_gone(fmt_pid)) ||
			   now - fmt_seen >= FMT_STALE_MS) {
			uint32_t expected = fmt_pid;

			/* C2: only one waiter takes over from a dead formatter:
			 * the one that swaps its pid in. */
			if (ivshm_cas_acq_rel(&h->formatter_pid, &expected,
					      (uint32_t)getpid())) {
				region_format(h, size);
				return ivshm__region_check(base, size);
			}
			fmt_seen = -1;
			continue;
		}
		if (now - start >= FMT_GIVEUP_MS)
			return -ETIMEDOUT;
		sleep_ms(1);
	}
}
