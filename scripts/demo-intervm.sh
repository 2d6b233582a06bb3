#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# demo-intervm.sh [direct|fwd|testpmd] [SECONDS] - two Linux guests under
# QEMU exchanging packets through ivshmem, shown live, then everything
# stopped.
#
#   direct   (default) guest 1 streams to guest 2 for SECONDS (ivshm-traffic
#            gen -> sink on channel 0, rates every second), then measures
#            round trips (ping -> echo on channel 1)
#   fwd      the same stream, but guest 1 uses channel 0 and guest 2 channel
#            1, and ivshm-fwd on the host forwards between them
#   testpmd  Debian's dpdk-testpmd in both guests over net_ivshmem,pci=auto:
#            txonly in guest 1, rxonly in guest 2
#
# Builds the release tree (build-out/release, or $IVSHM_BUILD) if needed, the guests with
# tests/intervm/mkguest-intervm.sh (kernel and testpmd libraries cached in
# ${XDG_CACHE_HOME:-$HOME/.cache}/ivshm), starts the project's
# ivshmem-server on a private socket, boots both guests (TCG, -cpu max), and
# prints their consoles prefixed [guest1]/[guest2] (and [fwd]). Every
# process it starts is stopped on exit, Ctrl-C or after a deadline.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MODE=${1:-direct}
SECS=${2:-5}
case $MODE in direct|fwd|testpmd) ;; *) echo "usage: $0 [direct|fwd|testpmd] [SECONDS]" >&2; exit 2;; esac
case $SECS in ''|*[!0-9]*) echo "SECONDS must be a whole number" >&2; exit 2;; esac

B=${IVSHM_BUILD:-build-out/release}
if [ ! -f $B/build.ninja ]; then
	meson setup $B -Dbuildtype=release >/dev/null
fi
ninja -C $B >/dev/null
for f in apps/ivshmem-server/ivshmem-server apps/ivshm-traffic/ivshm-traffic-static; do
	[ -x "$B/$f" ] || { echo "demo: $B/$f was not built" >&2; exit 1; }
done
PMD=""
if [ "$MODE" != direct ]; then
	[ -x $B/apps/ivshm-fwd/ivshm-fwd ] && [ -f $B/pmd/librte_net_ivshmem.so ] ||
		{ echo "demo: mode $MODE needs DPDK (the PMD and ivshm-fwd were not built)" >&2; exit 1; }
	PMD=$ROOT/$B/pmd/librte_net_ivshmem.so
fi

RUN=$(mktemp -d "${TMPDIR:-/tmp}/ivshm-demo.XXXXXX")
SOCK=$RUN/ivshmem.sock
PIDS=""
cleanup() {
	for p in $PIDS; do
		kill -TERM "$p" 2>/dev/null || true
	done
	sleep 0.5
	for p in $PIDS; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$RUN" "/var/run/dpdk/ivshm-demo-$$" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== building the guests (kernel and libraries cached after the first run)"
sh tests/intervm/mkguest-intervm.sh "$B/demo-guest" "$B/apps/ivshm-traffic/ivshm-traffic-static" $PMD
KERNEL=$B/demo-guest/vmlinux
INITRD=$B/demo-guest/initrd.cpio
MEM=256
if [ "$MODE" = testpmd ]; then
	INITRD=$B/demo-guest/initrd-dpdk.cpio
	MEM=512
fi

echo "== server: ivshmem-server -F -S $SOCK -l 32M -n 1"
$B/apps/ivshmem-server/ivshmem-server -F -S "$SOCK" -l 32M -n 1 &
SERVER=$!
PIDS="$PIDS $SERVER"
n=0
while [ ! -S "$SOCK" ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done

# prefixed NAME: a fifo $RUN/NAME whose lines are printed as "[NAME] ...".
prefixed() {
	mkfifo "$RUN/$1"
	sed -u "s/^/[$1] /" <"$RUN/$1" &
	PIDS="$PIDS $!"
}

GUESTS=""
# guest NAME COMMAND,WITH,COMMAS: boot one guest, console prefixed.
guest() {
	name=$1
	cmd=$2
	echo "== $name: qemu-system-x86_64 -M q35 -accel tcg -cpu max -m $MEM -smp 1" \
		"-chardev socket,path=$SOCK,id=ivs -device ivshmem-doorbell,chardev=ivs,vectors=1" \
		"... ivshm_cmd=$cmd"
	prefixed "$name"
	timeout -s KILL $((SECS + 120)) qemu-system-x86_64 -M q35 -accel tcg -cpu max \
		-m $MEM -smp 1 -nodefaults -display none -serial stdio -no-reboot \
		-kernel "$KERNEL" -initrd "$INITRD" \
		-chardev socket,path="$SOCK",id=ivs \
		-device ivshmem-doorbell,chardev=ivs,vectors=1 \
		-append "console=ttyS0 quiet panic=-1 no_timer_check ivshm_cmd=$cmd" </dev/null >"$RUN/$name" 2>&1 &
	PIDS="$PIDS $!"
	GUESTS="$GUESTS $!"
}

T="ivshm-traffic"
case $MODE in
direct)
	guest guest2 "/bin/iv-run.sh,$T,sink,--ep,pci:auto,--channel,0,--interval,1,+,$T,echo,--ep,pci:auto,--channel,1"
	sleep 1
	guest guest1 "/bin/iv-run.sh,$T,gen,--ep,pci:auto,--channel,0,--duration,$SECS,--size,random,--interval,1,+,$T,ping,--ep,pci:auto,--channel,1,--count,2000"
	;;
fwd)
	echo "== host: ivshm-fwd --vdev net_ivshmem0,socket=$SOCK,id=0 --vdev net_ivshmem1,socket=$SOCK,id=1"
	prefixed fwd
	$B/apps/ivshm-fwd/ivshm-fwd --no-huge -m 256 --no-pci --file-prefix "ivshm-demo-$$" \
		--lcores 0@0 --log-level lib.eal:warning \
		--vdev "net_ivshmem0,socket=$SOCK,id=0" --vdev "net_ivshmem1,socket=$SOCK,id=1" \
		-- --interval 1 --idle-us 50 >"$RUN/fwd" 2>&1 &
	FWD=$!
	PIDS="$PIDS $FWD"
	sleep 2
	guest guest2 "/bin/iv-run.sh,$T,sink,--ep,pci:auto,--channel,1,--interval,1,+,$T,echo,--ep,pci:auto,--channel,1"
	sleep 1
	guest guest1 "/bin/iv-run.sh,$T,gen,--ep,pci:auto,--channel,0,--duration,$SECS,--size,random,--interval,1,+,$T,ping,--ep,pci:auto,--channel,0,--count,2000"
	;;
testpmd)
	guest guest2 "/bin/testpmd-guest.sh,rx"
	guest guest1 "/bin/testpmd-guest.sh,tx,$SECS,64"
	;;
esac

# Wait for both guests (they power off when done); the deadline is the
# timeout around each QEMU.
for p in $GUESTS; do
	wait "$p" 2>/dev/null || true
done
if [ -n "${FWD:-}" ]; then
	echo "== stopping ivshm-fwd (SIGINT: final counts)"
	kill -INT "$FWD" 2>/dev/null || true
	wait "$FWD" 2>/dev/null || true
fi
echo "== done: stopping the server"
