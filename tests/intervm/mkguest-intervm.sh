#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# mkguest-intervm.sh OUTDIR TRAFFIC_STATIC [PMD_SO] - guests for the inter-VM
# tests and demo, built on tests/vm/mkguest.sh (kernel, busybox, /init).
#
# Writes OUTDIR/vmlinux, OUTDIR/initrd.cpio (busybox, /bin/ivshm-traffic,
# /bin/iv-run.sh) and, when PMD_SO is given, OUTDIR/initrd-dpdk.cpio: the
# same plus Debian's dpdk-testpmd with its whole ldd closure, the loader,
# libgcc_s.so.1, coreutils' libstdbuf.so, a plugin folder /opt/dpdk/pmds holding only
# librte_mempool_ring.so and librte_net_ivshmem.so, and
# /bin/testpmd-guest.sh. The kernel unpacks concatenated cpio archives, so
# each initramfs is the base archive followed by extra ones. The testpmd
# part (about 23 MB) is cached per DPDK version in
# ${IVSHM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ivshm}/intervm/, never in
# the repository.
set -eu

[ $# -ge 2 ] || { echo "usage: mkguest-intervm.sh OUTDIR TRAFFIC_STATIC [PMD_SO]" >&2; exit 2; }
OUT=$1
TRAFFIC=$2
PMD=${3:-}
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${IVSHM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ivshm}/intervm
mkdir -p "$OUT" "$CACHE"
OUT=$(cd "$OUT" && pwd)
WORK="$OUT/work.$$"
trap 'rm -rf "$WORK"' EXIT INT TERM
rm -rf "$WORK"
mkdir -p "$WORK/bin"

# Base: the endpoint engineer's guest, with the traffic tool as /bin/ivshm-traffic.
cp "$TRAFFIC" "$WORK/bin/ivshm-traffic"
sh "$HERE/../vm/mkguest.sh" "$OUT/base" "$WORK/bin/ivshm-traffic"

# Scripts archive.
S="$WORK/scripts"
mkdir -p "$S/bin"
cp "$HERE/iv-run.sh" "$HERE/testpmd-guest.sh" "$S/bin/"
chmod 755 "$S/bin/iv-run.sh" "$S/bin/testpmd-guest.sh"
(cd "$S" && find . | cpio -o -H newc --quiet) >"$WORK/scripts.cpio"
cat "$OUT/base/initrd.cpio" "$WORK/scripts.cpio" >"$OUT/initrd.cpio.tmp"
mv "$OUT/initrd.cpio.tmp" "$OUT/initrd.cpio"
ln -sfn "$(readlink "$OUT/base/vmlinux")" "$OUT/vmlinux"

[ -n "$PMD" ] || exit 0

# ---- testpmd and its libraries: cached per DPDK version --------------------
TESTPMD=$(command -v dpdk-testpmd) || { echo "mkguest-intervm: dpdk-testpmd not installed" >&2; exit 1; }
VER=$(dpkg-query -W -f='${Version}' dpdk 2>/dev/null || echo unknown)
DPDK_CPIO="$CACHE/testpmd-$VER-1.cpio"
PLUGDIR=$(dirname "$(ls /usr/lib/*/dpdk/pmds-*/librte_mempool_ring.so | head -n1)")
(
	flock 9
	if [ ! -s "$DPDK_CPIO" ]; then
		R="$WORK/dpdk"
		rm -rf "$R"
		mkdir -p "$R/usr/bin" "$R/opt/dpdk/pmds"
		cp "$TESTPMD" "$R/usr/bin/dpdk-testpmd"
		# The closure of testpmd and of both plugins (the PMD needs the
		# vdev bus library, which testpmd may not link).
		libs=$( (ldd "$TESTPMD"; ldd "$PLUGDIR/librte_mempool_ring.so"; ldd "$PMD") |
			awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }' | sort -u)
		for l in $libs /lib/x86_64-linux-gnu/libgcc_s.so.1; do
			mkdir -p "$R$(dirname "$l")"
			cp -L "$l" "$R$l"
		done
		cp -L "$PLUGDIR/librte_mempool_ring.so" "$R/opt/dpdk/pmds/"
		# stdbuf's preload library: line-buffered testpmd output.
		cp -L /usr/libexec/coreutils/libstdbuf.so "$R/opt/dpdk/libstdbuf.so"
		chmod -R go-w "$R"
		(cd "$R" && find . | cpio -o -H newc --quiet) >"$DPDK_CPIO.tmp"
		mv "$DPDK_CPIO.tmp" "$DPDK_CPIO"
		rm -rf "$R"
	fi
) 9>"$CACHE/.lock"

# The PMD changes with every build: its own small archive.
P="$WORK/pmd"
mkdir -p "$P/opt/dpdk/pmds"
cp -L "$PMD" "$P/opt/dpdk/pmds/librte_net_ivshmem.so"
chmod -R go-w "$P"
(cd "$P" && find . | cpio -o -H newc --quiet) >"$WORK/pmd.cpio"
cat "$OUT/initrd.cpio" "$DPDK_CPIO" "$WORK/pmd.cpio" >"$OUT/initrd-dpdk.cpio.tmp"
mv "$OUT/initrd-dpdk.cpio.tmp" "$OUT/initrd-dpdk.cpio"
