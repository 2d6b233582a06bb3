#!/bin/sh
# The main job: set up, build, then start the project's ivshmem-server and
# two Debian dpdk-testpmd peers over net_ivshmem (socket=), one sending and
# one receiving, for about ten seconds (bench/pmd_traffic). Prints the rate
# each second and a summary that accounts for every packet. Everything it
# starts is stopped on exit, also on Ctrl-C or SIGTERM.
#   IVSHM_SECONDS=N  run N seconds (default 10)
#   IVSHM_SIZE=B     packet size in bytes (default 64)
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
B=build-out/release
if [ -f $B/build.ninja ]; then meson setup --reconfigure $B >/dev/null; else meson setup $B -Dbuildtype=release >/dev/null; fi
ninja -C $B >/dev/null

T=$B/bench/pmd_traffic/pmd_traffic
if [ ! -x $T ]; then
	echo "main: the PMD was not built (no DPDK?): running the ring benchmark instead" >&2
	exec $B/bench/ring_bench/ring_bench
fi

pid=""
cleanup() {
	# pmd_traffic stops its server and testpmd peers on SIGTERM; they
	# also die with it (PR_SET_PDEATHSIG) if it is killed outright.
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

$T --pmd $B/pmd/librte_net_ivshmem.so \
	--server $B/apps/ivshmem-server/ivshmem-server \
	--seconds "${IVSHM_SECONDS:-10}" --size "${IVSHM_SIZE:-64}" &
pid=$!
rc=0
wait "$pid" || rc=$?
pid=""
exit $rc
