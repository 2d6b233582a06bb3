#!/bin/sh
# The main job: set up, build, and move real packets (for now: the ring
# benchmark, until the transport carries packets).
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
B=build-out/release
[ -f $B/build.ninja ] || meson setup $B -Dbuildtype=release >/dev/null
ninja -C $B >/dev/null
exec $B/bench/ring_bench/ring_bench
