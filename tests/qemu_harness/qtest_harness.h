/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qtest_harness.h - run QEMU under its qtest protocol and poke its devices
 * (port I/O, guest memory, PCI config space, the ivshmem device) from a
 * googletest test. See README.md in this folder.
 *
 * Every QEMU started here is killed by pid with a deadline when its Qemu
 * object is destroyed or kill() is called, and with the test process
 * (PR_SET_PDEATHSIG). Failed commands throw std::runtime_error.
 */
#ifndef IVSHM_QTEST_HARNESS_H
#define IVSHM_QTEST_HARNESS_H

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ivshm_qtest {

class Qemu {
public:
	Qemu() = default;
	Qemu(const Qemu &) = delete;
	Qemu &operator=(const Qemu &) = delete;
	~Qemu();

	/** Binary to run: $IVSHM_QEMU or qemu-system-x86_64. */
	static std::string binary();

	/**
	 * Start QEMU with the qtest options plus @p args and wait (at most
	 * @p timeout_ms) until it has connected to the qtest socket.
	 * @return 0, or -errno; why in error().
	 */
	int start(const std::vector<std::string> &args, int timeout_ms = 30000);
	/** SIGKILL and reap, waiting at most @p timeout_ms. Idempotent. */
	void kill(int timeout_ms = 10000);
	pid_t pid() const { return pid_; }
	bool running() const { return pid_ > 0; }
	const std::string &error() const { return err_; }
	/** What QEMU wrote to stderr so far. */
	std::string stderr_text() const;

	/** Send one qtest command line, return QEMU's "OK ..." answer. */
	std::string cmd(const std::string &line, int timeout_ms = 10000);

	void outb(uint16_t port, uint8_t v);
	void outw(uint16_t port, uint16_t v);
	void outl(uint16_t port, uint32_t v);
	uint8_t inb(uint16_t port);
	uint16_t inw(uint16_t port);
	uint32_t inl(uint16_t port);
	uint8_t readb(uint64_t addr);
	uint32_t readl(uint64_t addr);
	uint64_t readq(uint64_t addr);
	void writeb(uint64_t addr, uint8_t v);
	void writel(uint64_t addr, uint32_t v);
	void writeq(uint64_t addr, uint64_t v);
	std::vector<uint8_t> read(uint64_t addr, size_t len);
	void write(uint64_t addr, const void *data, size_t len);

private:
	uint64_t value_cmd(const std::string &line);
	pid_t pid_ = -1;
	int sock_ = -1;
	std::string dir_;
	std::string rxbuf_;
	std::string err_;
};

/** A PCI function seen through configuration mechanism #1 (0xcf8/0xcfc). */
struct PciDev {
	Qemu *q = nullptr;
	uint8_t bus = 0, devfn = 0;

	uint32_t cfg_read32(uint8_t off);
	uint16_t cfg_read16(uint8_t off);
	uint8_t cfg_read8(uint8_t off);
	void cfg_write32(uint8_t off, uint32_t v);
	void cfg_write16(uint8_t off, uint16_t v);
	/** Size of BAR @p bar (64-bit BARs: the pair). */
	uint64_t bar_size(int bar);
	/** Offset of capability @p id in config space, or 0. */
	uint8_t find_cap(uint8_t id);
};

/** Find the @p index-th function with @p vendor:@p device on bus 0. */
bool pci_find(Qemu &q, uint16_t vendor, uint16_t device, PciDev *out,
	      int index = 0);

/** QEMU's ivshmem device (1af4:1110), set up as a guest driver would. */
class Ivshmem {
public:
	static constexpr uint32_t REG_INTR_MASK = 0;
	static constexpr uint32_t REG_INTR_STATUS = 4;
	static constexpr uint32_t REG_IVPOSITION = 8;
	static constexpr uint32_t REG_DOORBELL = 12;

	/**
	 * Find the device and program BAR0 at @p bar0, BAR1 (MSI-X, if the
	 * device has it) at @p bar1, BAR2 at @p bar2 (64-bit), then enable
	 * memory space and bus mastering. Throws on failure.
	 */
	void setup(Qemu &q, uint64_t bar0 = 0xe0000000u, uint64_t bar1 = 0xe0001000u,
		   uint64_t bar2 = UINT64_C(0x1000000000));
	uint32_t iv_position();
	/** Write (peer << 16) | vector to the Doorbell register. */
	void doorbell(uint16_t peer, uint32_t vector);
	/**
	 * Enable MSI-X and point @p vector at guest-physical @p addr with
	 * @p data (an ordinary RAM address: the MSI write lands there).
	 */
	void enable_msix_vector(unsigned int vector, uint64_t addr, uint32_t data);

	PciDev dev;
	uint64_t bar0 = 0, bar1 = 0, bar2 = 0, bar2_size = 0;
	bool has_msix = false;

private:
	Qemu *q_ = nullptr;
};

} // namespace ivshm_qtest

#endif
