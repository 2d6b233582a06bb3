#!/bin/sh
# The test command: set up, build (release, ASan+UBSan, TSan) and run every
# suite; the last line printed is "N passed, N failed[, N skipped]". The
# ASan+UBSan build runs suites unit, stress and sanitize (the PMD's
# in-process ethdev test); the TSan build runs suite concurrency.
#
#   scripts/test.sh                 everything
#   IVSHM_SUITES="unit qemu" scripts/test.sh   only these suites (release build)
#   IVSHM_SANITIZERS=0 scripts/test.sh          skip the sanitizer builds
#   IVSHM_FUZZ=0 scripts/test.sh                skip the fuzz stage
#   IVSHM_FUZZ_SECONDS=60 scripts/test.sh       run each fuzz target longer
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)

scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

SUITES=${IVSHM_SUITES:-"unit qemu vm dpdk stress"}
SANITIZERS=${IVSHM_SANITIZERS:-1}
JOBS=${IVSHM_JOBS:-2}
LOGS=""
BUILD_FAIL=0

# configure DIR [meson options...]
configure() {
	dir=$1; shift
	# Parts are found by looking at folders, which meson does not track:
	# reconfigure every time (quick) so a new part is never missed.
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" >"$dir.setup.log" 2>&1 ||
			rm -rf "$dir"
	fi
	if [ ! -f "$dir/build.ninja" ]; then
		rm -rf "$dir"
		meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 ||
			{ tail -30 "$dir.setup.log"; rm -rf "$dir"; return 1; }
	fi
	ninja -C "$dir" >"$dir.ninja.log" 2>&1 || { tail -60 "$dir.ninja.log"; return 1; }
}

# run DIR SUITES...
run() {
	dir=$1; shift
	args=""
	for s in "$@"; do
		if meson test -C "$dir" --list --suite "$s" >/dev/null 2>&1 &&
		   [ -n "$(meson test -C "$dir" --list --suite "$s" 2>/dev/null)" ]; then
			args="$args --suite $s"
		fi
	done
	[ -z "$args" ] && return 0
	rm -f "$dir/meson-logs/testlog.json" "$dir"/*.xml
	# shellcheck disable=SC2086
	meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes "$JOBS" $args
	LOGS="$LOGS $dir/meson-logs/testlog.json"
}

mkdir -p "$ROOT/build-out"
B=build-out/release
if configure $B -Dbuildtype=release; then
	# shellcheck disable=SC2086
	run $B $SUITES
else
	BUILD_FAIL=$((BUILD_FAIL + 1))
fi

if [ "$SANITIZERS" = 1 ]; then
	B=build-out/asan
	if configure $B -Dbuildtype=debug -Db_sanitize=address,undefined \
		-Db_lundef=false -Dc_args=-fno-sanitize-recover=all \
		-Dcpp_args=-fno-sanitize-recover=all; then
		run $B unit stress sanitize
	else
		BUILD_FAIL=$((BUILD_FAIL + 1))
	fi
	B=build-out/tsan
	if CC=clang CXX=clang++ configure $B -Dbuildtype=debug -Db_sanitize=thread \
		-Db_lundef=false -Ddpdk=disabled; then
		run $B concurrency
	else
		BUILD_FAIL=$((BUILD_FAIL + 1))
	fi
fi

# Fuzz stage: libFuzzer targets (tests/fuzz/) in their own clang build with
# ASan+UBSan; the libraries get -fsanitize=fuzzer-no-link (coverage only),
# the targets -fsanitize=fuzzer. Each runs IVSHM_FUZZ_SECONDS (default 20)
# as a test of suite fuzz. Runs with the sanitizer builds.
if [ "$SANITIZERS" = 1 ] && [ "${IVSHM_FUZZ:-1}" = 1 ]; then
	B=build-out/fuzz
	if CC=clang CXX=clang++ configure $B -Dbuildtype=debug \
		-Db_sanitize=address,undefined -Db_lundef=false -Ddpdk=disabled \
		-Dtests=disabled -Dfuzz=true \
		"-Dc_args=-fsanitize=fuzzer-no-link -fno-sanitize-recover=all" \
		"-Dcpp_args=-fsanitize=fuzzer-no-link -fno-sanitize-recover=all"; then
		JOBS=1 run $B fuzz
	else
		BUILD_FAIL=$((BUILD_FAIL + 1))
	fi
fi

# shellcheck disable=SC2086
python3 scripts/summarize.py --build-failures "$BUILD_FAIL" $LOGS
