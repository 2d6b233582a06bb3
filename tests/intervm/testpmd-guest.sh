#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# testpmd-guest.sh tx|rx [SECONDS] [SIZE] [DEVARGS] - Debian's dpdk-testpmd
# on net_ivshmem (pci=auto) inside a test guest, driven through its
# interactive prompt from a fifo, every wait bounded.
#
#  tx: txonly; waits for the link, forwards SECONDS, stops, waits 3 s so
#      the receiver drains the ring (closing the port would drop what is in
#      flight), then reports and quits.
#  rx: rxonly; waits for the link, forwards until the sender has left (link
#      down), then reports and quits.
# Report: one line "IVSHM_TESTPMD role=.. rx_packets=.. rx_bytes=..
# rx_missed=.. rx_errors=.. tx_packets=.. tx_bytes=.. tx_errors=..".
# EAL: no hugepages, no PCI scan, one vCPU, only the two plugins in
# /opt/dpdk/pmds, runtime files in a tmpfs at /run.
role=${1:?tx or rx}
secs=${2:-3}
size=${3:-64}
devargs=${4:-net_ivshmem0,pci=auto}
[ "$role" = tx ] && mode=txonly || mode=rxonly

mkdir -p /run /var
grep -q ' /run ' /proc/mounts || mount -t tmpfs run /run
[ -e /var/run ] || ln -s /run /var/run

IN=/run/tp.in
OUT=/run/tp.out
mkfifo $IN
# testpmd prints with stdio, fully buffered into a file: coreutils'
# libstdbuf (what stdbuf -oL preloads) makes it line buffered.
[ -f /opt/dpdk/libstdbuf.so ] && export LD_PRELOAD=/opt/dpdk/libstdbuf.so _STDBUF_O=L _STDBUF_E=L
dpdk-testpmd --no-huge -m 64 --no-pci --lcores 0@0,1@0 -d /opt/dpdk/pmds \
	--vdev "$devargs" --file-prefix tp -- -i --no-mlockall \
	--total-num-mbufs=2048 --forward-mode=$mode --txpkts=$size <$IN >$OUT 2>&1 &
TP=$!
exec 3>$IN

fail() {
	echo "IVSHM_TESTPMD role=$role status=fail reason=$1"
	cat $OUT
	kill -9 $TP 2>/dev/null
	exit 1
}

# wait_for TEXT SECONDS [FROM_BYTE]: TEXT in the output after FROM_BYTE
wait_for() {
	n=0
	while [ $n -lt $(($2 * 10)) ]; do
		tail -c +$((${3:-0} + 1)) $OUT | grep -q "$1" && return 0
		kill -0 $TP 2>/dev/null || return 1
		sleep 0.1
		n=$((n + 1))
	done
	return 1
}

# link_is up|down SECONDS: ask until the port's link is as wanted
link_is() {
	n=0
	while [ $n -lt $2 ]; do
		mark=$(wc -c <$OUT)
		echo "show port info 0" >&3
		wait_for "Link status" 5 $mark &&
			tail -c +$((mark + 1)) $OUT | grep -q "Link status: $1" && return 0
		sleep 1
		n=$((n + 1))
	done
	return 1
}

wait_for "testpmd> " 60 || fail startup
link_is up 60 || fail no-link
grep -m1 "Driver name:" $OUT
grep -m1 "Devargs:" $OUT
echo start >&3
if [ "$role" = tx ]; then
	sleep "$secs"
	echo stop >&3
	sleep 3
else
	link_is down 120 || fail sender-never-left
	echo stop >&3
fi
mark=$(wc -c <$OUT)
echo "show port stats 0" >&3
wait_for "TX-packets" 10 $mark || fail no-stats
tail -c +$((mark + 1)) $OUT | awk -v role=$role '
	/RX-packets:/ { rxp = $2; rxm = $4; rxb = $6 }
	/RX-errors:/ { rxe = $2 }
	/TX-packets:/ { txp = $2; txe = $4; txb = $6 }
	END { printf "IVSHM_TESTPMD role=%s status=ok rx_packets=%s rx_bytes=%s rx_missed=%s rx_errors=%s tx_packets=%s tx_bytes=%s tx_errors=%s\n", role, rxp, rxb, rxm, rxe, txp, txb, txe }'
echo quit >&3
n=0
while kill -0 $TP 2>/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
kill -9 $TP 2>/dev/null
wait $TP
rc=$?
exec 3>&-
echo "testpmd exited rc=$rc"
tail -n 30 $OUT
exit 0
