// SPDX-License-Identifier: BSD-3-Clause
// Description: Linux test guests under QEMU, shared by tests/vm and
// tests/intervm (header-only, C++, no gtest): building the kernel and
// initramfs with a mkguest script, and the QEMU and kernel command lines
// that every guest boots with (TCG, -cpu max, one vCPU, no default devices,
// console on stdio, the guest command handed to /init in ivshm_cmd).
#ifndef IVSHM_TESTS_GUEST_UTIL_H
#define IVSHM_TESTS_GUEST_UTIL_H

#include <stdlib.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "proc_util.h"

namespace iv {

// A built guest: DIR/vmlinux and DIR/initrd.cpio (a script may write more
// initramfs images beside them), or what went wrong.
struct GuestImages {
	std::string err; // "" when built
	std::string dir, kernel, initrd;
	bool ok() const { return err.empty(); }
};

// Run the mkguest script @p script (sh) as `script DIR ARGS...`, its
// output in DIR/mkguest.log (quoted in err when it fails).
inline GuestImages make_guest(const std::string &script, const std::string &dir,
			      const std::vector<std::string> &args)
{
	GuestImages g;
	g.dir = dir;
	mkdir(dir.c_str(), 0700);
	std::string log = dir + "/mkguest.log";
	std::string cmd = "sh '" + script + "' '" + dir + "'";
	for (const auto &a : args)
		cmd += " '" + a + "'";
	cmd += " > '" + log + "' 2>&1";
	if (system(cmd.c_str()) != 0) {
		std::string name = script.substr(script.rfind('/') + 1);
		g.err = name + " failed: " + slurp(log);
		return g;
	}
	g.kernel = dir + "/vmlinux";
	g.initrd = dir + "/initrd.cpio";
	return g;
}

// QEMU booting @p kernel (an uncompressed vmlinux: PVH entry, seconds
// under TCG) with @p initrd and @p mem_mb of memory; the caller adds its
// devices and then guest_append().
inline std::vector<std::string> qemu_tcg(const std::string &kernel, const std::string &initrd,
					 const std::string &mem_mb)
{
	return { "qemu-system-x86_64", "-M", "q35", "-accel", "tcg", "-cpu", "max",
		 "-m", mem_mb, "-smp", "1", "-nodefaults", "-display", "none",
		 "-serial", "stdio", "-no-reboot", "-kernel", kernel,
		 "-initrd", initrd };
}

// The kernel command line that hands @p cmd to the guest's /init, words
// joined with commas (/init splits them again), plus @p extra.
inline std::vector<std::string> guest_append(const std::vector<std::string> &cmd,
					     const std::string &extra = "")
{
	std::string c;
	for (size_t i = 0; i < cmd.size(); i++)
		c += (i ? "," : "") + cmd[i];
	// no_timer_check: under TCG on a loaded host the kernel's IO-APIC
	// timer check can fail and panic the boot.
	return { "-append", "console=ttyS0 quiet panic=-1 no_timer_check ivshm_cmd=" + c + extra };
}

} // namespace iv

#endif
