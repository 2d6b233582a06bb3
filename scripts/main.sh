#!/bin/sh
# The main job: set up, build, and move real packets (for now: the ring
# benchmark, until the transport carries packets).
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
B=build-out/release
if [ -f $B/build.ninja ]; then meson setup --reconfigure $B >/dev/null; else meson setup $B -Dbuildtype=release >/dev/null; fi
ninja -C $B >/dev/null
exec $B/bench/ring_bench/ring_bench
