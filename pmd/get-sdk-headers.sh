#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# get-sdk-headers.sh OUTDIR VERSION - put DPDK's driver-SDK headers into OUTDIR.
#
# Debian's libdpdk-dev ships no driver-SDK headers (ethdev_driver.h,
# ethdev_vdev.h, bus_vdev_driver.h, bus_driver.h, dev_driver.h), which an
# out-of-tree PMD needs. They are in Debian's dpdk source package of the
# installed VERSION: this script downloads that package with apt-get source
# (through a private apt configuration derived from the system's own
# sources, so the system's apt state is never touched), keeps the download in
# a cache outside the repository (${XDG_CACHE_HOME:-$HOME/.cache}/ivshm/dpdk),
# and extracts only the headers named below. apt checks the download against
# the signed Sources index. Second and later runs only copy from the cache.
# Exit status 0 on success; on failure one line on stderr says what to do.
set -eu

HEADERS="lib/ethdev/ethdev_driver.h lib/ethdev/ethdev_vdev.h
drivers/bus/vdev/bus_vdev_driver.h
lib/eal/include/bus_driver.h lib/eal/include/dev_driver.h"

die() {
	echo "get-sdk-headers: $*" >&2
	exit 1
}

[ $# -eq 2 ] || die "usage: $0 OUTDIR DPDK_VERSION"
OUT=$1
WANT=$2

have_all() {
	for h in $HEADERS; do
		[ -s "$1/$(basename "$h")" ] || return 1
	done
}

# Already in the build folder for this version: nothing to do.
if [ -f "$OUT/.version" ] && [ "$(cat "$OUT/.version")" = "$WANT" ] && have_all "$OUT"; then
	exit 0
fi

# The Debian package version (e.g. 22.11.11-0+deb12u1) names the source.
DEBVER=$(dpkg-query -W -f='${Version}' libdpdk-dev 2>/dev/null) ||
	die "libdpdk-dev is not installed (run scripts/setup.sh)"
case "$DEBVER" in
"$WANT"-*|"$WANT") ;;
*) die "libdpdk-dev $DEBVER does not match pkg-config's libdpdk $WANT" ;;
esac
SRCPKG=$(dpkg-query -W -f='${source:Package}' libdpdk-dev 2>/dev/null) || SRCPKG=dpdk
[ -n "$SRCPKG" ] || SRCPKG=dpdk

CACHE_BASE=${XDG_CACHE_HOME:-${HOME:-}/.cache}
if [ -z "${HOME:-}" ] && [ -z "${XDG_CACHE_HOME:-}" ]; then
	CACHE_BASE=$OUT/.cache
fi
CACHE=$CACHE_BASE/ivshm/dpdk/$DEBVER
mkdir -p "$CACHE" || die "cannot create cache folder $CACHE"

# Several builds may run at once (release and sanitizer trees, engineers):
# one downloads, the others wait for it.
exec 9>"$CACHE/.lock"
flock -w 600 9 || die "timed out waiting for $CACHE/.lock"

if ! have_all "$CACHE/include"; then
	tarball=$(ls "$CACHE"/"${SRCPKG}"_*.orig.tar.* 2>/dev/null | head -n1 || true)
	if [ -z "$tarball" ]; then
		command -v apt-get >/dev/null || die "apt-get not found: this needs Debian or a derivative"
		APT=$CACHE/apt
		rm -rf "$APT"
		mkdir -p "$APT/sources.list.d" "$APT/lists/partial" "$APT/cache/archives/partial"
		# deb-src entries for the same archives as the system's deb entries.
		for f in /etc/apt/sources.list.d/*.sources; do
			[ -f "$f" ] || continue
			sed -e 's/^Types:.*/Types: deb-src/' "$f" >"$APT/sources.list.d/$(basename "$f")"
		done
		for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
			[ -f "$f" ] || continue
			sed -n -e 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" >"$APT/sources.list.d/$(basename "$f").list"
		done
		ls "$APT/sources.list.d/" | grep -q . ||
			die "no apt sources found in /etc/apt to derive deb-src entries from"
		set -- -o Dir::Etc::SourceList=/dev/null \
			-o Dir::Etc::SourceParts="$APT/sources.list.d" \
			-o Dir::State::Lists="$APT/lists" \
			-o Dir::Cache="$APT/cache" \
			-o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= \
			-o APT::Sandbox::User=root -q
		echo "get-sdk-headers: downloading Debian source package $SRCPKG=$DEBVER into $CACHE" >&2
		apt-get "$@" update >"$CACHE/apt-update.log" 2>&1 ||
			die "apt-get update of deb-src indexes failed (network?): see $CACHE/apt-update.log"
		(cd "$CACHE" && apt-get "$@" source --download-only "$SRCPKG=$DEBVER") \
			>"$CACHE/apt-source.log" 2>&1 ||
			die "apt-get source $SRCPKG=$DEBVER failed: see $CACHE/apt-source.log"
		rm -rf "$APT"
		tarball=$(ls "$CACHE"/"${SRCPKG}"_*.orig.tar.* 2>/dev/null | head -n1 || true)
		[ -n "$tarball" ] || die "no orig tarball of $SRCPKG=$DEBVER in $CACHE after download"
	fi
	tmp=$CACHE/extract.$$
	rm -rf "$tmp"
	mkdir -p "$tmp"
	pats=""
	for h in $HEADERS; do
		pats="$pats */$h"
	done
	# shellcheck disable=SC2086
	tar -x -f "$tarball" -C "$tmp" --wildcards --no-anchored $pats ||
		{ rm -rf "$tmp"; die "could not extract the SDK headers from $tarball"; }
	mkdir -p "$CACHE/include"
	for h in $HEADERS; do
		src=$(find "$tmp" -path "*/$h" -type f | head -n1)
		[ -n "$src" ] || { rm -rf "$tmp"; die "$h missing from $tarball"; }
		cp "$src" "$CACHE/include/"
	done
	rm -rf "$tmp"
fi

mkdir -p "$OUT"
for h in $HEADERS; do
	cp "$CACHE/include/$(basename "$h")" "$OUT/"
done
echo "$WANT" >"$OUT/.version"
