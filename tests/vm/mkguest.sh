#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# mkguest.sh OUTDIR PROGRAM... - a bootable test guest for QEMU (TCG, PVH).
#
# Writes OUTDIR/vmlinux (a link to the cached uncompressed kernel) and
# OUTDIR/initrd.cpio: busybox-static, the given statically linked programs
# in /bin, the VFIO modules of the same kernel in /lib/modules, and an /init
# that runs the command line in the kernel argument ivshm_cmd (commas stand
# for spaces), prints "IVSHM_EXIT rc=N" and powers off.
#
# The kernel is Debian's linux-image-6.1.0-*-amd64: taken from the apt
# cache or fetched with `apt-get download`, unpacked with dpkg -x, and its
# vmlinux extracted (extract_vmlinux.py) once into
# ${IVSHM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ivshm}/vm/<version>/,
# never into the repository. Concurrent callers serialise on a lock.
set -eu

[ $# -ge 2 ] || { echo "usage: mkguest.sh OUTDIR PROGRAM..." >&2; exit 2; }
OUT=$1; shift
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${IVSHM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ivshm}/vm
MODS="kernel/virt/lib/irqbypass.ko kernel/drivers/vfio/vfio.ko
kernel/drivers/vfio/vfio_iommu_type1.ko kernel/drivers/vfio/vfio_virqfd.ko
kernel/drivers/vfio/pci/vfio-pci-core.ko kernel/drivers/vfio/pci/vfio-pci.ko"

mkdir -p "$CACHE" "$OUT"
# The initramfs has no libraries: busybox must be Debian's static build.
BUSYBOX=/bin/busybox
dpkg-query -W -f='${Status}\n' busybox-static 2>/dev/null | grep -q '^install ok installed' &&
	[ -x "$BUSYBOX" ] || { echo "mkguest: busybox-static is not installed" >&2; exit 1; }

# The kernel package linux-image-amd64 points at now.
kpkg() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-amd64\)$/\1/p' | head -n1
}

# ---- kernel: cached per version ------------------------------------------
kernel() {
	if [ -f "$CACHE/current/vmlinux" ] && [ -d "$CACHE/current/modules" ]; then
		return 0
	fi
	deb=""
	pkg=$(kpkg)
	if [ -z "$pkg" ] && [ "$(id -u)" -eq 0 ] &&
	   ! ls "$CACHE"/deb/linux-image-6.1.0-*-amd64_*.deb >/dev/null 2>&1; then
		# Package lists never fetched on this machine (fresh CI image).
		apt-get update -qq >/dev/null 2>&1 || true
		pkg=$(kpkg)
	fi
	if [ -n "$pkg" ]; then
		deb=$(ls "$CACHE"/deb/"$pkg"_*_amd64.deb /var/cache/apt/archives/"$pkg"_*_amd64.deb \
			2>/dev/null | head -n1 || true)
		if [ -z "$deb" ]; then
			mkdir -p "$CACHE/deb"
			(cd "$CACHE/deb" && apt-get download "$pkg" >"$CACHE/deb/download.log" 2>&1) ||
				echo "mkguest: apt-get download $pkg failed (see $CACHE/deb/download.log)" >&2
			deb=$(ls "$CACHE"/deb/"$pkg"_*_amd64.deb 2>/dev/null | head -n1 || true)
		fi
	fi
	# Offline: any 6.1 image already at hand.
	[ -n "$deb" ] || deb=$(ls "$CACHE"/deb/linux-image-6.1.0-*-amd64_*.deb \
		/var/cache/apt/archives/linux-image-6.1.0-*-amd64_*.deb 2>/dev/null | head -n1 || true)
	[ -n "$deb" ] || { echo "mkguest: no linux-image-6.1.0-*-amd64 package" >&2; return 1; }

	ver=$(basename "$deb" .deb)
	dir="$CACHE/$ver"
	rm -rf "$dir.tmp"
	mkdir -p "$dir.tmp/x" "$dir.tmp/modules"
	dpkg -x "$deb" "$dir.tmp/x"
	python3 "$HERE/extract_vmlinux.py" "$dir.tmp"/x/boot/vmlinuz-* "$dir.tmp/vmlinux"
	kdir=$(ls -d "$dir.tmp"/x/lib/modules/* | head -n1)
	for m in $MODS; do
		cp "$kdir/$m" "$dir.tmp/modules/" 2>/dev/null || true
	done
	rm -rf "$dir.tmp/x" "$dir"
	mv "$dir.tmp" "$dir"
	ln -sfn "$ver" "$CACHE/current"
}

(
	flock 9
	kernel
) 9>"$CACHE/.lock"

# ---- initramfs: per caller -------------------------------------------------
ROOT="$OUT/root"
rm -rf "$ROOT"
mkdir -p "$ROOT/bin" "$ROOT/lib/modules" "$ROOT/proc" "$ROOT/sys" "$ROOT/dev" \
	"$ROOT/tmp" "$ROOT/run"
cp "$BUSYBOX" "$ROOT/bin/busybox"
for p in "$@"; do
	cp "$p" "$ROOT/bin/"
done
cp "$CACHE"/current/modules/*.ko "$ROOT/lib/modules/" 2>/dev/null || true
cat >"$ROOT/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
# ivshm_vfio=1: bind every ivshmem device to vfio-pci (needs an IOMMU:
# QEMU's intel-iommu and intel_iommu=on).
if [ "${ivshm_vfio:-0}" = 1 ]; then
	for m in irqbypass vfio vfio_iommu_type1 vfio_virqfd vfio-pci-core vfio-pci; do
		insmod /lib/modules/$m.ko 2>/dev/null || echo "init: insmod $m failed"
	done
	for d in /sys/bus/pci/devices/*; do
		if [ "$(cat $d/vendor)" = 0x1af4 ] && [ "$(cat $d/device)" = 0x1110 ]; then
			echo vfio-pci >$d/driver_override
			echo "${d##*/}" >/sys/bus/pci/drivers_probe
		fi
	done
	ls /dev/vfio/ 2>&1 | tr '\n' ' '; echo
fi
cmd=$(echo "${ivshm_cmd:-true}" | tr ',' ' ')
echo "IVSHM_RUN $cmd"
$cmd
echo "IVSHM_EXIT rc=$?"
poweroff -f
EOF
chmod 755 "$ROOT/init"
(cd "$ROOT" && find . | cpio -o -H newc --quiet) >"$OUT/initrd.cpio.tmp"
mv "$OUT/initrd.cpio.tmp" "$OUT/initrd.cpio"
rm -rf "$ROOT"
ln -sfn "$CACHE/current/vmlinux" "$OUT/vmlinux"
