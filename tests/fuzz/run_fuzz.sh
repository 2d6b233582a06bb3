#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# run_fuzz.sh TARGET SEED_DIR WORK_DIR SECONDS - run one libFuzzer target for
# a bounded time over its committed seeds (read only) plus a work corpus in
# the build folder (new inputs go there, never into the source tree).
# Exit status: libFuzzer's (non-zero on a crash, leak, timeout or failed
# check; the reproducer is saved in WORK_DIR/artifacts/). Prints one line
# "FUZZ name execs=N seconds=S corpus=C new_units=U" for the summary.
set -u
exe=$1 seeds=$2 work=$3 secs=$4
name=$(basename "$exe")
mkdir -p "$work/corpus" "$work/artifacts"
log="$work/last.log"
# -timeout: one input taking this long is a hang; -rss_limit_mb: a leak.
"$exe" "$work/corpus" "$seeds" -max_total_time="$secs" -timeout=10 \
	-rss_limit_mb=2048 -max_len=12000 -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
	-artifact_prefix="$work/artifacts/" >"$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
newu=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
corp=$(ls "$work/corpus" | wc -l)
tail -25 "$log"
echo "FUZZ $name execs=${execs:-0} seconds=$secs corpus=$corp new_units=${newu:-0} rc=$rc"
exit $rc
