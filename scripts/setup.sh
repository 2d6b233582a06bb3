#!/bin/sh
# Install what the build, tests and benchmarks need on Debian 12.
# Idempotent: quick when everything is present. Safe to run often.
set -eu

PKGS="build-essential clang llvm lld meson ninja-build pkg-config python3
libnuma-dev googletest libgtest-dev
dpdk dpdk-dev libdpdk-dev
qemu-system-x86 busybox-static cpio zstd xz-utils dpkg-dev
libclang-rt-14-dev procps iproute2 util-linux"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
