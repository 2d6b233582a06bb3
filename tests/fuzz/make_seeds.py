#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Write the seed corpora of the libFuzzer targets (tests/fuzz/corpus/).

Each seed is a small, valid script in the target's input format (see the
comment at the top of each fuzz_*.c), so fuzzing starts from deep states:
a complete server conversation, a formatted region with a linked peer and
packets queued, and so on. Run from anywhere: python3 make_seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(bytes(data))


# ---- fuzz_client: a malicious server's stream --------------------------
# op & 3 == 3: raw fragment of 1 + (op >> 2) % 15 bytes;
# else a message: op & 1 -> 8-byte value, else 1 signed byte; op & 2 ->
# descriptor(s) of kind (op >> 2) % 6 (0 eventfd, 1 memfd of
# ((op >> 2) >> 3) KiB, 2 full pipe, 3 socket, 4 two eventfds, 5 /dev/null).
def msg(v, kind=None):
    if kind is None:
        op = 0
    else:
        op = 2 | (kind << 2)
    return [op, v & 0xff]


MEMFD_4K = 1 | (4 << 3)  # kind value: %6 == 1 needs care, computed below


def memfd_kind(kib):
    for k in range(64):
        if k % 6 == 1 and (k >> 3) == kib:
            return k
    raise ValueError(kib)


setup = msg(0) + msg(3) + msg(-1, memfd_kind(4))
own = msg(3, 0)
peers = msg(1, 0) + msg(1, 0) + msg(7, 0)
leave = msg(1) + msg(7)
put('fuzz_client', 'setup_only', [255] + setup + own + msg(5, 0))
put('fuzz_client', 'peers_join_leave', [128] + setup + own + own + peers + leave)
put('fuzz_client', 'fragments', [200] + setup + own + [3 | (3 << 2), 9, 0, 0, 0] + msg(9, 0))
put('fuzz_client', 'bad_version', [255] + msg(1) + msg(3))
put('fuzz_client', 'pipe_doorbell', [100] + setup + own + msg(4, 2) + msg(4, 2))

# ---- fuzz_server: scripts for up to 8 clients --------------------------
# op % 8: 0 connect, 1 send, 2 send with fds, 3 close, 4 shutdown,
# 5 read, 6/7 run the server; client = (op >> 4) % 8.
def c(op, cl):
    return (cl << 4) | op


srv = []
for i in range(3):
    srv += [c(0, i), c(6, 0)]
srv += [c(5, 0), 40, c(5, 1), 40, c(1, 2), 4, 1, 2, 3, 4, c(6, 0),
        c(2, 1), 5, 0x1b, 0xaa, 0xbb, c(6, 0), c(3, 0), c(6, 0), c(5, 1), 10]
put('fuzz_server', 'three_clients', srv)
flood = []
for i in range(6):
    flood += [c(0, i), c(6, 0)]
flood += [c(4, 2) | 8, c(6, 0), c(3, 1), c(6, 0), c(0, 1), c(6, 0)]
put('fuzz_server', 'peer_limit', flood)
put('fuzz_server', 'nonreader', [c(0, 0), c(6, 0)] +
    sum([[c(0, 1), c(6, 0), c(3, 1), c(6, 0)] for _ in range(6)], []))

# ---- fuzz_ring -----------------------------------------------------------
put('fuzz_ring', 'fifo', [3, 0, 5, 1, 3, 2, 4, 2, 3, 1, 1, 4, 0, 5, 0, 9])
put('fuzz_ring', 'hostile_idx', [4, 0, 6, 6, 0x10, 0, 0, 0, 1, 8, 3, 8, 2])
put('fuzz_ring', 'zero_copy', [0x45, 2, 7, 3, 3, 5, 5, 0, 4, 0])

# ---- fuzz_transport_rx ----------------------------------------------------
# op % 8: 0 peer tx burst (1 + (op>>3)%4 pkts), 1 peer zero-copy commit,
# 2/3 scribble, 4 victim rx_burst, 5 victim peek, 6 victim tx, 7 hk.
# queue = (op >> 5) & 1.
put('fuzz_transport_rx', 'honest', [0 | (3 << 3), 4 | (3 << 3), 1, 0, 5, 4, 4, 7 | 8, 0x20, 0x24, 1])
put('fuzz_transport_rx', 'jumbo_peek', [0 | (1 << 3), 0x20, 5, 16, 3, 0x25, 16, 2])
put('fuzz_transport_rx', 'hostile_desc', [0 | (3 << 3), 2, 0x80, 1, 1, 0xff, 0xff, 0, 0, 4, 1, 7 | 8, 7, 7 | 8, 0, 4, 1])
put('fuzz_transport_rx', 'bad_commit', [1, 4, 64, 1, 0, 0, 200, 0, 7, 0, 3, 4, 1])

# ---- fuzz_region: windows of a formatted, linked region -------------------
RSIZE = 65536
MEM_OFF = 40960
NQ, RS, BS, MAXPKT = 2, 16, 64, 256
RING = 512          # ivshm_ring_memsize(16, 8) rounded to 64
BUFS_OFF = 4096
MEM_SIZE = 8192


def region_hdr():
    return struct.pack('<QIIQIIQ', 0x4e4752484d485356, 1, 2, RSIZE, 4096, 1, 0x1234)


def tp_hdr():
    return struct.pack('<QIIQIIQQQIIQ', 0x54524f50534e5254, 1, 2, RSIZE, 64, 512,
                       8192, 40960, MEM_OFF + MEM_SIZE, 1, 0, 0xabcdef)


def side(occ, state, gen, ack, pid, boot):
    b = struct.pack('<QIIIIIIQII', occ, state, gen, ack, 0, pid, 0xffffffff,
                    boot, 0, 0)
    b += bytes(64 - len(b))
    b += struct.pack('<Q', 5) + bytes(56)
    return b


def chan_entry(peer):
    b = struct.pack('<IIIIIIQQ', 2, NQ, RS, BS, MAXPKT, 0, MEM_OFF, MEM_SIZE)
    b += bytes(64 - len(b))
    b += side(0, 0, 0, 0, 0, 0)
    b += side(0x77, 2, 1, 1, 999999, 0) if peer else side(0, 0, 0, 0, 0, 0)
    return b + bytes(512 - len(b))


def ring(prod, descs):
    b = bytearray(RING)
    struct.pack_into('<QIIII', b, 0, 0x474e495248535649, 1, RS, 8, 384)
    struct.pack_into('<I', b, 128, prod)
    struct.pack_into('<II', b, 256, 0, 0)
    for i, (ln, fl) in enumerate(descs):
        struct.pack_into('<II', b, 384 + 8 * i, ln, fl)
    return bytes(b)


def area():
    a = bytearray(MEM_SIZE)
    for q in range(NQ):   # dir 0 (ours, A -> B): formatted, empty
        a[q * RING:(q + 1) * RING] = ring(0, [])
    q0 = [(10, 0), (64, 1), (5, 0), (0, 2)]
    q1 = [(64, 1), (64, 1), (64, 1), (1, 0), (70, 0), (64, 5)]
    a[2 * RING:3 * RING] = ring(len(q0), q0)
    a[3 * RING:4 * RING] = ring(len(q1), q1)
    for i in range(BUFS_OFF, MEM_SIZE):
        a[i] = i & 0xff
    return bytes(a)


script = [1, 3, 10, 100, 20, 0x12, 8, 2, 0, 3, 50, 0, 0x11, 4, 200, 200, 200, 200, 0x22, 8, 1]
put('fuzz_region', 'linked', region_hdr() + tp_hdr() + chan_entry(True) + area() + bytes(script))
put('fuzz_region', 'no_peer', region_hdr() + tp_hdr() + chan_entry(False) + area()[:2048] )
put('fuzz_region', 'header_only', region_hdr())
