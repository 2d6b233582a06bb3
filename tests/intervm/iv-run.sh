#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# iv-run.sh CMD [ARGS] [+ CMD [ARGS]]... - run commands one after another in
# a test guest (the kernel command line cannot quote, so "+" separates
# them). Prints "IV_RUN rc=N <command>" after each; exits 1 if any failed.
rc=0
cmd=""
run() {
	[ -n "$cmd" ] || return 0
	# shellcheck disable=SC2086
	$cmd
	r=$?
	echo "IV_RUN rc=$r $cmd"
	[ $r -eq 0 ] || rc=1
	cmd=""
}
for a in "$@"; do
	if [ "$a" = "+" ]; then
		run
	else
		cmd="$cmd $a"
	fi
done
run
exit $rc
