/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qtest_harness.cc - QEMU under qtest: process control with deadlines, the
 * line protocol (one command, one "OK"/"FAIL" answer; asynchronous "IRQ"
 * lines skipped), PCI configuration mechanism #1 and the ivshmem device.
 */
#include "qtest_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace ivshm_qtest {

namespace {

int64_t now_ms()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

std::string hex(uint64_t v)
{
	char b[32];
	snprintf(b, sizeof(b), "0x%llx", (unsigned long long)v);
	return b;
}

} // namespace

std::string Qemu::binary()
{
	const char *e = getenv("IVSHM_QEMU");
	return e && *e ? e : "qemu-system-x86_64";
}

Qemu::~Qemu()
{
	kill();
}

std::string Qemu::stderr_text() const
{
	if (dir_.empty())
		return "";
	std::ifstream f(dir_ + "/stderr");
	std::stringstream ss;
	ss << f.rdbuf();
	return ss.str();
}

int Qemu::start(const std::vector<std::string> &args, int timeout_ms)
{
	if (pid_ > 0) {
		err_ = "already running";
		return -EBUSY;
	}
	char tmpl[128];
	snprintf(tmpl, sizeof(tmpl), "/tmp/ivshm-qtest-%d-XXXXXX", (int)getpid());
	if (!mkdtemp(tmpl)) {
		err_ = "mkdtemp failed";
		return -errno;
	}
	dir_ = tmpl;
	std::string sock_path = dir_ + "/qtest.sock";
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path.c_str());
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 1) < 0) {
		int e = errno;
		err_ = std::string("qtest socket: ") + strerror(e);
		if (ls >= 0)
			close(ls);
		return -e;
	}

	std::vector<std::string> argv_s = { binary(), "-M", "q35", "-accel", "tcg", "-S",
					    "-qtest", "unix:" + sock_path, "-qtest-log",
					    "/dev/null", "-nodefaults", "-display", "none" };
	argv_s.insert(argv_s.end(), args.begin(), args.end());
	std::vector<char *> argv;
	for (auto &s : argv_s)
		argv.push_back(const_cast<char *>(s.c_str()));
	argv.push_back(nullptr);
	std::string err_path = dir_ + "/stderr";
	pid_t parent = getpid();

	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(ls);
		err_ = "fork failed";
		return -e;
	}
	if (pid == 0) {
		/* Dies with the test process, whatever happens to it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int fd = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
		}
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0)
			dup2(nul, 0);
		execvp(argv[0], argv.data());
		_exit(127);
	}
	pid_ = pid;

	/* QEMU connects to us; it may also die first (bad options). */
	int64_t end = now_ms() + timeout_ms;
	for (;;) {
		struct pollfd p = { ls, POLLIN, 0 };
		int r = poll(&p, 1, 50);
		if (r > 0) {
			sock_ = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
			break;
		}
		int st;
		if (waitpid(pid_, &st, WNOHANG) == pid_) {
			pid_ = -1;
			close(ls);
			err_ = "QEMU exited during start-up: " + stderr_text();
			return -ECHILD;
		}
		if (now_ms() > end) {
			close(ls);
			err_ = "QEMU did not connect to the qtest socket in time: " +
			       stderr_text();
			kill();
			return -ETIMEDOUT;
		}
	}
	close(ls);
	unlink(sock_path.c_str());
	if (sock_ < 0) {
		err_ = "accept failed";
		kill();
		return -EIO;
	}
	return 0;
}

void Qemu::kill(int timeout_ms)
{
	if (sock_ >= 0) {
		close(sock_);
		sock_ = -1;
	}
	if (pid_ > 0) {
		::kill(pid_, SIGKILL);
		int64_t end = now_ms() + timeout_ms;
		int st;
		while (waitpid(pid_, &st, WNOHANG) == 0 && now_ms() < end)
			std::this_thread::sleep_for(std::chrono::milliseconds(2));
		pid_ = -1;
	}
	if (!dir_.empty()) {
		unlink((dir_ + "/stderr").c_str());
		unlink((dir_ + "/qtest.sock").c_str());
		rmdir(dir_.c_str());
		dir_.clear();
	}
}

std::string Qemu::cmd(const std::string &line, int timeout_ms)
{
	if (sock_ < 0)
		throw std::runtime_error("qtest: QEMU not running");
	std::string out = line + "\n";
	size_t off = 0;
	while (off < out.size()) {
		ssize_t n = send(sock_, out.data() + off, out.size() - off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			throw std::runtime_error("qtest send: " + std::string(strerror(errno)));
		}
		off += (size_t)n;
	}
	int64_t end = now_ms() + timeout_ms;
	for (;;) {
		size_t nl;
		while ((nl = rxbuf_.find('\n')) != std::string::npos) {
			std::string ans = rxbuf_.substr(0, nl);
			rxbuf_.erase(0, nl + 1);
			if (ans.compare(0, 3, "IRQ") == 0)
				continue; /* asynchronous notice */
			if (ans.compare(0, 2, "OK") == 0)
				return ans;
			throw std::runtime_error("qtest '" + line + "': " + ans);
		}
		int left = (int)(end - now_ms());
		if (left <= 0)
			throw std::runtime_error("qtest '" + line + "': no answer in time");
		struct pollfd p = { sock_, POLLIN, 0 };
		int r = poll(&p, 1, left);
		if (r < 0 && errno != EINTR)
			throw std::runtime_error("qtest poll failed");
		if (r <= 0)
			continue;
		char buf[4096];
		ssize_t n = recv(sock_, buf, sizeof(buf), 0);
		if (n <= 0)
			throw std::runtime_error("qtest '" + line + "': QEMU closed the connection: " +
						 stderr_text());
		rxbuf_.append(buf, (size_t)n);
	}
}

uint64_t Qemu::value_cmd(const std::string &line)
{
	std::string a = cmd(line);
	/* "OK 0x...." */
	size_t sp = a.find(' ');
	if (sp == std::string::npos)
		throw std::runtime_error("qtest '" + line + "': no value in '" + a + "'");
	return strtoull(a.c_str() + sp + 1, nullptr, 0);
}

void Qemu::outb(uint16_t port, uint8_t v) { cmd("outb " + hex(port) + " " + hex(v)); }
void Qemu::outw(uint16_t port, uint16_t v) { cmd("outw " + hex(port) + " " + hex(v)); }
void Qemu::outl(uint16_t port, uint32_t v) { cmd("outl " + hex(port) + " " + hex(v)); }
uint8_t Qemu::inb(uint16_t port) { return (uint8_t)value_cmd("inb " + hex(port)); }
uint16_t Qemu::inw(uint16_t port) { return (uint16_t)value_cmd("inw " + hex(port)); }
uint32_t Qemu::inl(uint16_t port) { return (uint32_t)value_cmd("inl " + hex(port)); }
uint8_t Qemu::readb(uint64_t a) { return (uint8_t)value_cmd("readb " + hex(a)); }
uint32_t Qemu::readl(uint64_t a) { return (uint32_t)value_cmd("readl " + hex(a)); }
uint64_t Qemu::readq(uint64_t a) { return value_cmd("readq " + hex(a)); }
void Qemu::writeb(uint64_t a, uint8_t v) { cmd("writeb " + hex(a) + " " + hex(v)); }
void Qemu::writel(uint64_t a, uint32_t v) { cmd("writel " + hex(a) + " " + hex(v)); }
void Qemu::writeq(uint64_t a, uint64_t v) { cmd("writeq " + hex(a) + " " + hex(v)); }

std::vector<uint8_t> Qemu::read(uint64_t addr, size_t len)
{
	std::string a = cmd("read " + hex(addr) + " " + hex(len));
	/* "OK 0xHEXBYTES" */
	size_t p = a.find("0x");
	if (p == std::string::npos || a.size() - p - 2 != 2 * len)
		throw std::runtime_error("qtest read: bad answer length");
	std::vector<uint8_t> out(len);
	for (size_t i = 0; i < len; i++)
		out[i] = (uint8_t)strtoul(a.substr(p + 2 + 2 * i, 2).c_str(), nullptr, 16);
	return out;
}

void Qemu::write(uint64_t addr, const void *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *b = static_cast<const uint8_t *>(data);
	std::string s = "write " + hex(addr) + " " + hex(len) + " 0x";
	s.reserve(s.size() + 2 * len);
	for (size_t i = 0; i < len; i++) {
		s += digits[b[i] >> 4];
		s += digits[b[i] & 15];
	}
	cmd(s);
}

/* ---- PCI ---------------------------------------------------------------- */

static uint32_t cf8(const PciDev &d, uint8_t off)
{
	return 0x80000000u | ((uint32_t)d.bus << 16) | ((uint32_t)d.devfn << 8) |
	       (off & 0xfcu);
}

uint32_t PciDev::cfg_read32(uint8_t off)
{
	q->outl(0xcf8, cf8(*this, off));
	return q->inl(0xcfc);
}

uint16_t PciDev::cfg_read16(uint8_t off)
{
	q->outl(0xcf8, cf8(*this, off));
	return q->inw((uint16_t)(0xcfc + (off & 2)));
}

uint8_t PciDev::cfg_read8(uint8_t off)
{
	q->outl(0xcf8, cf8(*this, off));
	return q->inb((uint16_t)(0xcfc + (off & 3)));
}

void PciDev::cfg_write32(uint8_t off, uint32_t v)
{
	q->outl(0xcf8, cf8(*this, off));
	q->outl(0xcfc, v);
}

void PciDev::cfg_write16(uint8_t off, uint16_t v)
{
	q->outl(0xcf8, cf8(*this, off));
	q->outw((uint16_t)(0xcfc + (off & 2)), v);
}

uint64_t PciDev::bar_size(int bar)
{
	uint8_t off = (uint8_t)(0x10 + 4 * bar);
	uint32_t orig = cfg_read32(off);
	bool is64 = !(orig & 1) && ((orig >> 1) & 3) == 2;
	cfg_write32(off, 0xffffffffu);
	uint64_t mask = cfg_read32(off) & ~0xfu;
	cfg_write32(off, orig);
	if (is64) {
		uint32_t orig_hi = cfg_read32((uint8_t)(off + 4));
		cfg_write32((uint8_t)(off + 4), 0xffffffffu);
		mask |= (uint64_t)cfg_read32((uint8_t)(off + 4)) << 32;
		cfg_write32((uint8_t)(off + 4), orig_hi);
	} else {
		if (!mask)
			return 0;
		mask |= UINT64_C(0xffffffff00000000);
	}
	return mask ? (~mask + 1) : 0;
}

uint8_t PciDev::find_cap(uint8_t id)
{
	if (!(cfg_read16(0x06) & 0x10))
		return 0;
	uint8_t p = cfg_read8(0x34) & 0xfc;
	for (int guard = 0; p && guard < 48; guard++) {
		if (cfg_read8(p) == id)
			return p;
		p = cfg_read8((uint8_t)(p + 1)) & 0xfc;
	}
	return 0;
}

bool pci_find(Qemu &q, uint16_t vendor, uint16_t device, PciDev *out, int index)
{
	for (int devfn = 0; devfn < 256; devfn++) {
		PciDev d;
		d.q = &q;
		d.devfn = (uint8_t)devfn;
		uint32_t id = d.cfg_read32(0);
		if (id == 0xffffffffu)
			continue;
		if ((id & 0xffff) == vendor && (id >> 16) == device && index-- == 0) {
			*out = d;
			return true;
		}
	}
	return false;
}

/* ---- ivshmem ------------------------------------------------------------- */

void Ivshmem::setup(Qemu &q, uint64_t b0, uint64_t b1, uint64_t b2)
{
	q_ = &q;
	if (!pci_find(q, 0x1af4, 0x1110, &dev))
		throw std::runtime_error("no ivshmem device (1af4:1110) on bus 0");
	bar2_size = dev.bar_size(2);
	if (bar2_size == 0 || (b2 & (bar2_size - 1)))
		throw std::runtime_error("BAR2 size/alignment");
	dev.cfg_write32(0x10, (uint32_t)b0);
	has_msix = dev.bar_size(1) != 0;
	if (has_msix)
		dev.cfg_write32(0x14, (uint32_t)b1);
	dev.cfg_write32(0x18, (uint32_t)b2);
	dev.cfg_write32(0x1c, (uint32_t)(b2 >> 32));
	/* Memory space + bus master (MSI-X writes are DMA). */
	dev.cfg_write16(0x04, (uint16_t)(dev.cfg_read16(0x04) | 0x6));
	bar0 = b0;
	bar1 = has_msix ? b1 : 0;
	bar2 = b2;
}

uint32_t Ivshmem::iv_position()
{
	return q_->readl(bar0 + REG_IVPOSITION);
}

void Ivshmem::doorbell(uint16_t peer, uint32_t vector)
{
	q_->writel(bar0 + REG_DOORBELL, ((uint32_t)peer << 16) | vector);
}

void Ivshmem::enable_msix_vector(unsigned int vector, uint64_t addr, uint32_t data)
{
	uint8_t cap = dev.find_cap(0x11);
	if (!cap)
		throw std::runtime_error("no MSI-X capability");
	uint16_t ctrl = dev.cfg_read16((uint8_t)(cap + 2));
	unsigned int nvec = (ctrl & 0x7ffu) + 1;
	if (vector >= nvec)
		throw std::runtime_error("MSI-X vector out of range");
	uint32_t tbl = dev.cfg_read32((uint8_t)(cap + 4));
	if ((tbl & 7) != 1)
		throw std::runtime_error("MSI-X table not in BAR1");
	uint64_t entry = bar1 + (tbl & ~7u) + 16u * vector;
	q_->writel(entry + 0, (uint32_t)addr);
	q_->writel(entry + 4, (uint32_t)(addr >> 32));
	q_->writel(entry + 8, data);
	q_->writel(entry + 12, 0); /* unmask */
	/* Enable, function mask off. */
	dev.cfg_write16((uint8_t)(cap + 2), (uint16_t)((ctrl | 0x8000u) & ~0x4000u));
}

} // namespace ivshm_qtest
