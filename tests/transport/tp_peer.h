// SPDX-License-Identifier: BSD-3-Clause
// Description: one channel end as the tests run it: a transmit thread
// sending a numbered stream, a receive thread checking every byte of the
// peer's stream, and the caller's thread doing housekeeping and obeying
// commands from a shared control block (so the same code runs as a thread
// of the test or as a forked process that the test may SIGKILL).
//
// Receive rule: packet seq must be the next one, except that across a link
// change (link_ups grew) the stream may jump forward (packets in flight
// when the link went down are reclaimed by their sender). A packet that is
// corrupted, shorter or longer than its number says, or older than the
// last one received, is "bad". In lenient mode (while a hostile writer
// runs) bad packets are counted only; strict counters start from the
// first link-up after the lenient phase ends.
#ifndef IVSHM_TP_PEER_H
#define IVSHM_TP_PEER_H

#include <sys/mman.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "tp_test_util.h"

namespace tp {

enum PeerCmd : uint32_t {
	CMD_RUN = 0,
	CMD_RESET = 1, // call ivshm_transport_reset() once, then strict
	CMD_STOP = 2,
};

// Per peer, in memory shared with the test (MAP_SHARED before fork).
struct PeerShared {
	std::atomic<uint32_t> cmd;
	std::atomic<uint32_t> opened;      // 1 once the channel is open
	std::atomic<uint32_t> link;        // current link state
	std::atomic<uint32_t> reset_done;  // reset performed
	std::atomic<uint64_t> sent;        // packets accepted by tx
	std::atomic<uint64_t> rcvd;        // packets received (all)
	std::atomic<uint64_t> strict_rcvd; // received in strict mode
	std::atomic<uint64_t> bad;         // bad packets (all)
	std::atomic<uint64_t> strict_bad;  // bad packets in strict mode
	std::atomic<uint64_t> jumps;       // forward jumps across link changes
	std::atomic<uint64_t> first_seq;   // first seq received (+1), 0 none
	std::atomic<uint64_t> last_seq;    // last seq received (+1), 0 none
	std::atomic<uint64_t> link_ups, link_downs, resets, deaths;
	std::atomic<uint64_t> errors;      // sum of queue errors + proto errors
	std::atomic<uint64_t> doorbells, wakeups;
	std::atomic<int> open_ret;
};

struct PeerConfig {
	std::string desc;            // endpoint description
	uint64_t ep_size = 0;        // shm: size when creating
	uint32_t channel = 0;
	ivshm_transport_params params = {};
	uint64_t tx_count = 0;       // packets to send (0 = until STOP)
	uint64_t tx_seq0 = 0;        // first sequence number
	uint64_t salt = 1;           // length generator of our stream
	uint64_t peer_salt = 1;      // ... and of the peer's
	uint32_t max_len = 9000;
	uint64_t rx_expect = 0;      // stop receiving after this many (0 = STOP)
	bool lenient = false;        // start lenient (hostile phase)
	int deadline_ms = 60000;
	int reset_every_ms = 0;      // control thread resets the channel
	bool zero_copy = false;      // tx_reserve/commit and rx_peek/release
};

inline PeerShared *map_shared(size_t n)
{
	void *p = mmap(nullptr, n * sizeof(PeerShared), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return nullptr;
	memset(p, 0, n * sizeof(PeerShared));
	return static_cast<PeerShared *>(p);
}

inline void publish_stats(ivshm_channel *ch, PeerShared *sh)
{
	ivshm_transport_stats st;
	ivshm_transport_stats_get(ch, &st);
	uint64_t err = st.proto_errors;
	for (int q = 0; q < 16; q++)
		err += st.tx[q].errors + st.rx[q].errors;
	sh->link_ups = st.link_ups;
	sh->link_downs = st.link_downs;
	sh->resets = st.resets;
	sh->deaths = st.peer_deaths;
	sh->errors = err;
	sh->doorbells = st.tx[0].doorbells;
	sh->wakeups = st.rx[0].wakeups;
}

// Runs one channel end until STOP (or both counts reached and the peer is
// done too when @p peer_sh is given). Returns 0 on a clean run.
inline int run_peer(const PeerConfig &cfg, PeerShared *sh,
		    PeerShared *peer_sh = nullptr)
{
	uint64_t deadline = now_ms() + (uint64_t)cfg.deadline_ms;
	ivshm_endpoint *ep = nullptr;
	ivshm_channel *ch = nullptr;
	ivshm_endpoint_params ep_p = {};
	int ret;

	ep_p.size = cfg.ep_size;
	do {
		ret = ivshm_endpoint_open(cfg.desc.c_str(), &ep_p, &ep);
		if (ret)
			usleep(5000);
	} while (ret && now_ms() < deadline);
	if (ret) {
		sh->open_ret = ret;
		return 10;
	}
	do {
		ret = ivshm_transport_open(ep, cfg.channel, &cfg.params, &ch);
		if (ret == -EBUSY)
			usleep(5000);
	} while (ret == -EBUSY && now_ms() < deadline);
	sh->open_ret = ret;
	if (ret) {
		ivshm_endpoint_close(ep);
		return 11;
	}
	sh->opened = 1;

	std::atomic<bool> stop{false};
	std::atomic<bool> strict{!cfg.lenient};
	std::atomic<uint64_t> strict_from_ups{0};

	ivshm_transport_info info;
	ivshm_transport_info_get(ch, &info);
	const uint32_t bs = info.buf_size;

	// After a transmit pass that sent nothing: false once the deadline has
	// passed; else back off (sleep while the link is down, yield while up).
	auto tx_idle = [&] {
		if (now_ms() > deadline)
			return false;
		if (!ivshm_transport_link(ch))
			usleep(200);
		else
			sched_yield();
		return true;
	};

	// Zero-copy transmit: whole packets into reserved buffers, chained.
	auto tx_zc = [&] {
		std::vector<uint8_t> scratch(9728);
		ivshm_transport_buf b[32];
		uint64_t seq = cfg.tx_seq0;
		uint64_t end = cfg.tx_count ? cfg.tx_seq0 + cfg.tx_count : UINT64_MAX;
		while (!stop.load(std::memory_order_relaxed) && seq < end) {
			// Reserve only once the next packet fits whole.
			uint32_t first = (pkt_len(cfg.salt, seq, cfg.max_len) + bs - 1) / bs;
			uint32_t room = ivshm_transport_tx_room(ch, 0);
			uint16_t r = 0;
			if (room >= first)
				r = ivshm_transport_tx_reserve(ch, 0, b,
					(uint16_t)(room < 32 ? room : 32));
			uint16_t used = 0;
			uint64_t s0 = seq;
			while (r && seq < end) {
				uint32_t len = pkt_len(cfg.salt, seq, cfg.max_len);
				uint32_t segs = (len + bs - 1) / bs;
				if (used + segs > r)
					break;
				fill_pkt(scratch.data(), seq, len);
				for (uint32_t k = 0; k < segs; k++) {
					uint32_t off = k * bs;
					uint32_t c = len - off < bs ? len - off : bs;
					memcpy(b[used + k].data, &scratch[off], c);
					b[used + k].len = c;
					b[used + k].flags = k + 1 < segs
						? IVSHM_TRANSPORT_F_MORE : 0;
				}
				used = (uint16_t)(used + segs);
				seq++;
			}
			if (r) {
				uint16_t pub = ivshm_transport_tx_commit(ch, 0, b, used);
				if (pub != used)
					seq = s0; // cannot happen: all valid
			}
			sh->sent.store(seq - cfg.tx_seq0, std::memory_order_relaxed);
			if (seq == s0 && !tx_idle())
				break;
		}
	};

	std::thread tx([&] {
		if (cfg.zero_copy) {
			tx_zc();
			return;
		}
		std::vector<uint8_t> buf(32 * 9728);
		ivshm_transport_pkt pk[32];
		uint64_t seq = cfg.tx_seq0;
		uint64_t end = cfg.tx_count ? cfg.tx_seq0 + cfg.tx_count : UINT64_MAX;
		uint16_t pending = 0; // filled but not yet accepted
		while (!stop.load(std::memory_order_relaxed) && seq < end) {
			while (pending < 32 && seq + pending < end) {
				uint8_t *p = &buf[(size_t)((seq + pending) % 32) * 9728];
				uint32_t len = pkt_len(cfg.salt, seq + pending,
						       cfg.max_len);
				fill_pkt(p, seq + pending, len);
				pending++;
			}
			uint16_t k = 0;
			for (; k < pending; k++) {
				pk[k].data = &buf[(size_t)((seq + k) % 32) * 9728];
				pk[k].len = pkt_len(cfg.salt, seq + k, cfg.max_len);
			}
			uint16_t n = ivshm_transport_tx_burst(ch, 0, pk, k);
			seq += n;
			pending = (uint16_t)(pending - n);
			sh->sent.store(seq - cfg.tx_seq0, std::memory_order_relaxed);
			if (n == 0 && !tx_idle())
				break;
		}
	});

	std::thread rx([&] {
		std::vector<uint8_t> buf(32 * 9728);
		ivshm_transport_pkt pk[32];
		uint64_t next = 0, epoch = 0;
		bool any = false;
		while (!stop.load(std::memory_order_relaxed)) {
			for (int i = 0; i < 32; i++) {
				pk[i].data = &buf[(size_t)i * 9728];
				pk[i].len = 9728;
			}
			uint16_t n, nb = 0;
			if (cfg.zero_copy) {
				// Peek whole packets and gather each into its slot.
				ivshm_transport_buf b[32];
				nb = ivshm_transport_rx_peek(ch, 0, b, 32);
				n = 0;
				for (uint16_t k = 0; k < nb; n++) {
					uint32_t off = 0;
					uint8_t *dst = &buf[(size_t)n * 9728];
					for (;;) {
						if (off + b[k].len > 9728)
							break; // cannot happen
						memcpy(dst + off, b[k].data, b[k].len);
						off += b[k].len;
						if (!(b[k++].flags & IVSHM_TRANSPORT_F_MORE) ||
						    k >= nb)
							break;
					}
					pk[n].data = dst;
					pk[n].len = off;
				}
				if (nb)
					ivshm_transport_rx_release(ch, 0, nb);
			} else {
				n = ivshm_transport_rx_burst(ch, 0, pk, 32);
			}
			if (n == 0) {
				if (now_ms() > deadline)
					break;
				ivshm_transport_rx_wait(ch, 0, 20000);
				continue;
			}
			ivshm_transport_stats st;
			ivshm_transport_stats_get(ch, &st);
			bool is_strict = strict.load() &&
					 st.link_ups > strict_from_ups.load();
			for (uint16_t i = 0; i < n; i++) {
				const uint8_t *p = (const uint8_t *)pk[i].data;
				uint32_t len = pk[i].len;
				uint64_t seq = len >= 8 ? pkt_seq(p) : next;
				bool ok;
				if (len < 8) {
					// Too short to carry its number: it must
					// be the expected one.
					ok = len == pkt_len(cfg.peer_salt, next,
							    cfg.max_len) &&
					     check_pkt(p, len, next);
				} else {
					ok = len == pkt_len(cfg.peer_salt, seq,
							    cfg.max_len) &&
					     check_pkt(p, len, seq);
				}
				if (ok && any && seq != next) {
					if (seq > next && st.link_ups != epoch)
						sh->jumps++;
					else
						ok = false;
				}
				if (!ok && len < 8 && st.link_ups != epoch)
					continue; // unnumbered, after a jump
				if (!ok) {
					sh->bad++;
					if (is_strict)
						sh->strict_bad++;
					continue;
				}
				if (!any)
					sh->first_seq = seq + 1;
				any = true;
				next = seq + 1;
				sh->last_seq = next;
				sh->rcvd++;
				if (is_strict)
					sh->strict_rcvd++;
			}
			epoch = st.link_ups;
			if (cfg.rx_expect && sh->rcvd >= cfg.rx_expect)
				break;
		}
	});

	// Control: housekeeping and commands.
	bool reset_seen = false;
	uint64_t next_reset = now_ms() + (uint64_t)cfg.reset_every_ms;
	while (now_ms() < deadline) {
		if (cfg.reset_every_ms && now_ms() >= next_reset) {
			ivshm_transport_reset(ch);
			next_reset = now_ms() + (uint64_t)cfg.reset_every_ms;
		}
		uint32_t c = sh->cmd.load();
		if (c == CMD_STOP)
			break;
		if (c == CMD_RESET && !reset_seen) {
			reset_seen = true;
			ivshm_transport_stats st;
			ivshm_transport_stats_get(ch, &st);
			strict_from_ups = st.link_ups;
			ivshm_transport_reset(ch);
			strict = true;
			sh->reset_done = 1;
		}
		sh->link = (uint32_t)ivshm_transport_housekeeping(ch) == 1u;
		publish_stats(ch, sh);
		bool me_done = (cfg.tx_count == 0 ||
				sh->sent.load() >= cfg.tx_count) &&
			       (cfg.rx_expect == 0 || sh->rcvd >= cfg.rx_expect);
		if (peer_sh && me_done && cfg.tx_count && cfg.rx_expect) {
			// Stay until the peer has everything we sent.
			if (peer_sh->rcvd >= cfg.tx_count)
				break;
		}
		usleep(2000);
	}
	stop = true;
	tx.join();
	rx.join();
	publish_stats(ch, sh);
	ivshm_transport_close(ch);
	ivshm_endpoint_close(ep);
	return 0;
}

} // namespace tp

#endif
