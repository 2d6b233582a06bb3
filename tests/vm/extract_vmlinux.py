#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""extract_vmlinux.py BZIMAGE OUT - write the uncompressed ELF vmlinux.

A bzImage carries the kernel as one compressed stream after its setup code.
QEMU boots the ELF directly through its PVH entry point, which is several
times faster under TCG than decompressing in the guest. We look for each
xz (or gzip/zstd, when Python can decode it) stream start in the image,
decompress it, and keep the first result that is an ELF file.
"""
import gzip
import lzma
import sys
import zlib


def candidates(data):
    # (magic, decoder) pairs; decoders stop at the end of their stream and
    # ignore the trailer that follows it in the bzImage.
    def xz(buf):
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(buf)

    def gz(buf):
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(buf)

    for magic, dec in ((b"\xfd7zXZ\x00", xz), (b"\x1f\x8b\x08", gz)):
        pos = data.find(magic)
        while pos >= 0:
            yield pos, dec
            pos = data.find(magic, pos + 1)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: extract_vmlinux.py BZIMAGE OUT")
    data = open(sys.argv[1], "rb").read()
    for pos, dec in candidates(data):
        try:
            out = dec(data[pos:])
        except (lzma.LZMAError, zlib.error, EOFError, gzip.BadGzipFile):
            continue
        if out[:4] == b"\x7fELF":
            with open(sys.argv[2] + ".tmp", "wb") as f:
                f.write(out)
            import os
            os.replace(sys.argv[2] + ".tmp", sys.argv[2])
            return
    sys.exit("extract_vmlinux: no compressed ELF kernel found in " + sys.argv[1])


if __name__ == "__main__":
    main()
