// SPDX-License-Identifier: BSD-3-Clause
// Description: unit tests of the endpoint API over plain files ("shm:"):
// description parsing, sizes, header formatting by CAS (across processes
// and threads), take-over from a dead formatter, scribbled headers, and the
// -ENOTSUP answers of a backend without doorbells.
#include <gtest/gtest.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ivshm/ivshmem.h"
#include "region_layout.h"

namespace {

std::string unique_name(const char *tag)
{
	std::random_device rd;
	return std::string("/dev/shm/ivshm-ep-") + tag + "-" +
	       std::to_string(getpid()) + "-" + std::to_string(rd());
}

class Shm : public ::testing::Test {
protected:
	void SetUp() override { path_ = unique_name("t"); }
	void TearDown() override { unlink(path_.c_str()); }
	std::string desc(const char *opts = "") const
	{
		return "shm:" + path_ + opts;
	}
	// Map the file directly, as a foreign writer would.
	ivshm_region_hdr *raw_map(size_t size)
	{
		int fd = open(path_.c_str(), O_RDWR);
		EXPECT_GE(fd, 0);
		void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED,
			       fd, 0);
		close(fd);
		EXPECT_NE(p, MAP_FAILED);
		return static_cast<ivshm_region_hdr *>(p);
	}
	off_t file_size() const
	{
		struct stat st;
		if (stat(path_.c_str(), &st) < 0)
			return -1;
		return st.st_size;
	}
	std::string path_;
};

TEST_F(Shm, CreatesFormatsAndReportsNoDoorbells)
{
	ivshm_endpoint *ep = nullptr;
	ASSERT_EQ(ivshm_endpoint_open(desc("?size=64K").c_str(), nullptr, &ep), 0);
	ASSERT_NE(ep, nullptr);
	EXPECT_EQ(file_size(), 65536);
	EXPECT_EQ(ivshm_endpoint_kind(ep), IVSHM_EP_SHM);
	EXPECT_EQ(ivshm_endpoint_size(ep), 65536u);
	EXPECT_EQ(ivshm_endpoint_caps(ep), 0u);
	EXPECT_EQ(ivshm_endpoint_id(ep), -ENOTSUP);
	EXPECT_EQ(ivshm_endpoint_nvectors(ep), 0u);
	EXPECT_EQ(ivshm_endpoint_notify(ep, 0, 0), -ENOTSUP);
	EXPECT_EQ(ivshm_endpoint_vector_fd(ep, 0), -ENOTSUP);
	EXPECT_EQ(ivshm_endpoint_control_fd(ep), -ENOTSUP);
	EXPECT_EQ(ivshm_endpoint_process(ep), 0);
	uint64_t fired = 123;
	EXPECT_EQ(ivshm_endpoint_wait(ep, 0, &fired), -ENOTSUP);
	EXPECT_EQ(fired, 0u);
	uint16_t ids[4];
	EXPECT_EQ(ivshm_endpoint_peers(ep, ids, 4), -ENOTSUP);
	EXPECT_EQ(ivshm_endpoint_peer_present(ep, 1), -ENOTSUP);

	auto *h = static_cast<const ivshm_region_hdr *>(ivshm_endpoint_base(ep));
	EXPECT_EQ(h->magic, IVSHM_REGION_MAGIC);
	EXPECT_EQ(h->version, IVSHM_REGION_VERSION);
	EXPECT_EQ(h->init_state, (uint32_t)IVSHM_REGION_READY);
	EXPECT_EQ(h->size, 65536u);
	EXPECT_EQ(h->hdr_size, IVSHM_REGION_HDR_SIZE);
	EXPECT_EQ(h->formatter_pid, (uint32_t)getpid());
	EXPECT_NE(h->format_id, 0u);
	ivshm_endpoint_close(ep);
	ivshm_endpoint_close(nullptr);
}

TEST_F(Shm, SecondOpenSharesMemoryAndKeepsFormat)
{
	ivshm_endpoint *a = nullptr, *b = nullptr;
	ASSERT_EQ(ivshm_endpoint_open(desc("?size=1M").c_str(), nullptr, &a), 0);
	// Without a size the file's own size is used.
	ASSERT_EQ(ivshm_endpoint_open(desc().c_str(), nullptr, &b), 0);
	EXPECT_EQ(ivshm_endpoint_size(b), 1u << 20);
	auto *ha = static_cast<ivshm_region_hdr *>(ivshm_endpoint_base(a));
	auto *hb = static_cast<ivshm_region_hdr *>(ivshm_endpoint_base(b));
	EXPECT_EQ(ha->format_id, hb->format_id);
	auto *pa = static_cast<uint8_t *>(ivshm_endpoint_base(a));
	auto *pb = static_cast<uint8_t *>(ivshm_endpoint_base(b));
	for (size_t i = IVSHM_REGION_HDR_SIZE; i < (1u << 20); i++)
		pa[i] = (uint8_t)(i * 7 + 3);
	for (size_t i = IVSHM_REGION_HDR_SIZE; i < (1u << 20); i++)
		ASSERT_EQ(pb[i], (uint8_t)(i * 7 + 3)) << i;
	ivshm_endpoint_close(a);
	ivshm_endpoint_close(b);
	// Reopening with the same size keeps the data and the format.
	ASSERT_EQ(ivshm_endpoint_open(desc("?size=1M").c_str(), nullptr, &a), 0);
	pa = static_cast<uint8_t *>(ivshm_endpoint_base(a));
	EXPECT_EQ(pa[IVSHM_REGION_HDR_SIZE + 5], (uint8_t)((IVSHM_REGION_HDR_SIZE + 5) * 7 + 3));
	ivshm_endpoint_close(a);
}

TEST_F(Shm, SizeFromParamsAndNameInDevShm)
{
	std::string name = unique_name("n").substr(strlen("/dev/shm/"));
	ivshm_endpoint_params p{};
	p.size = 128 * 1024;
	ivshm_endpoint *ep = nullptr;
	ASSERT_EQ(ivshm_endpoint_open(("shm:" + name).c_str(), &p, &ep), 0);
	EXPECT_EQ(ivshm_endpoint_size(ep), 128u * 1024);
	struct stat st;
	EXPECT_EQ(stat(("/dev/shm/" + name).c_str(), &st), 0);
	EXPECT_EQ(st.st_size, 128 * 1024);
	ivshm_endpoint_close(ep);
	unlink(("/dev/shm/" + name).c_str());
	// Same size in params and description is fine; a different one is not.
	ASSERT_EQ(ivshm_endpoint_open(desc("?size=128K").c_str(), &p, &ep), 0);
	ivshm_endpoint_close(ep);
	p.size = 256 * 1024;
	EXPECT_EQ(ivshm_endpoint_open(desc("?size=128K").c_str(), &p, &ep), -EINVAL);
	EXPECT_EQ(ep, nullptr);
}

TEST_F(Shm, BadDescriptionsAreRejectedAndCreateNothing)
{
	const char *bad[] = {
		"", "shm", "shm:", "nope:/x", ":/x", "SHM:/x",
		"shm:?size=64K",
	};
	ivshm_endpoint *ep = reinterpret_cast<ivshm_endpoint *>(0x1);
	for (const char *d : bad) {
		EXPECT_EQ(ivshm_endpoint_open(d, nullptr, &ep), -EINVAL) << d;
		EXPECT_EQ(ep, nullptr) << d;
	}
	EXPECT_EQ(ivshm_endpoint_open(nullptr, nullptr, &ep), -EINVAL);
	EXPECT_EQ(ivshm_endpoint_open(desc().c_str(), nullptr, nullptr), -EINVAL);
	std::string long_desc = "shm:/" + std::string(5000, 'a');
	EXPECT_EQ(ivshm_endpoint_open(long_desc.c_str(), nullptr, &ep), -EINVAL);

	const char *bad_opts[] = {
		"?size=3M",      // not a power of two
		"?size=4K",      // too small (header page only)
		"?size=1",       // too small
		"?size=0",       // zero
		"?size=64Q",     // bad suffix
		"?size=64MB",    // trailing junk
		"?size=",        // empty
		"?size=-64M",    // negative
		"?size=99999999999999999999999",   // overflow
		"?size=16777216T", // overflow after the shift
		"?size",         // no '='
		"?=1",           // no key
		"?bogus=1",      // unknown key
		"?size=64K&size=64K", // repeated
		"?size=64K&",    // empty pair
		"?",             // empty option list
		"?&size=64K",
		"?poll=maybe",
		"?noformat=2",
		"?timeout=-1",
		"?timeout=1x",
	};
	for (const char *o : bad_opts) {
		EXPECT_EQ(ivshm_endpoint_open(desc(o).c_str(), nullptr, &ep), -EINVAL) << o;
		EXPECT_EQ(ep, nullptr) << o;
		EXPECT_EQ(access(path_.c_str(), F_OK), -1) << o << ": file created";
	}
	ivshm_endpoint_params p{};
	p.flags = 1u << 7;
	EXPECT_EQ(ivshm_endpoint_open(desc("?size=64K").c_str(), &p, &ep), -EINVAL);
	p.flags = 0;
	p.connect_timeout_ms = -5;
	EXPECT_EQ(ivshm_endpoint_open(desc("?size=64K").c_str(), &p, &ep), -EINVAL);
	EXPECT_EQ(access(path_.c_str(), F_OK), -1);

	// Suffixes: K, M, G and lower case parse; a good size opens.
	ASSERT_EQ(ivshm_endpoint_open(desc("?size=64k&poll=1&noformat=0").c_str(),
				      nullptr, &ep), 0);
	EXPECT_EQ(ivshm_endpoint_size(ep), 65536u);
	ivshm_endpoint_close(ep);
}

TEST_F(Shm, MissingOrEmptyFileWithoutSize)
{
	ivshm_endpoint *ep = nullptr;
	EXPECT_EQ(ivshm_endpoint_open(desc().c_str(), nullptr, &ep), -ENOENT);
	EXPECT_EQ(access(path_.c_str(), F_OK), -1);
	int fd = open(path_.c_str(), O_CREAT | O_RDWR, 0600);
	ASSERT_GE(fd, 0);
	close(fd);
	EXPECT_EQ(ivshm_endpoint_open(desc().c_str(), nullptr, &ep), -EINVAL);
	EXPECT_EQ(file_size(), 0);
	// An empty file with a size is sized and formatted.
	ASSERT_EQ(ivshm_endpoint_open(desc("?size=64K").c_str(), nullptr, &ep), 0);
	ivshm_endpoint_close(ep);
	EXPECT_EQ(file_size(), 65536);
	EXPECT_EQ(ivshm_endpoint_open("shm:/nonexistent-dir-ivshm/x?size=64K",
				      nullptr, &ep), -ENOENT);
	EXPECT_EQ(ivshm_endpoint_open("shm:/dev/shm", nullptr, &ep), -EISDIR);
}

TEST_F(Shm, WrongSizesLoseNothing)
{
	ivshm_endpoint *ep = nullptr;
	ASSERT_EQ(ivshm_endpoint_open(desc("?size=64K").c_str(), nullptr, &ep), 0);
	auto *p = static_cast<uint8_t *>(ivshm_endpoint_base(ep));
	memset(p + IVSHM_REGION_HDR_SIZE, 0xa5, 65536 - IVSHM_REGION_HDR_SIZE);
	ivshm_endpoint_close(ep);

	ivshm_endpoint *other = nullptr;
	EXPECT_EQ(ivshm_endpoint_open(desc("?size=128K").c_str(), nullptr, &other), -EINVAL);
	EXPECT_EQ(ivshm_endpoint_open(desc("?size=32K").c_str(), nullptr, &other), -EINVAL);
	EXPECT_EQ(other, nullptr);
	EXPECT_EQ(file_size(), 65536);
	ASSERT_EQ(ivshm_endpoint_open(desc().c_str(), nullptr, &ep), 0);
	p = static_cast<uint8_t *>(ivshm_endpoint_base(ep));
	for (size_t i = IVSHM_REGION_HDR_SIZE; i < 65536; i++)
		ASSERT_EQ(p[i], 0xa5) << i;
	ivshm_endpoint_close(ep);

	// A file someone else sized badly: not a power of two, or too small.
	ASSERT_EQ(truncate(path_.c_str(), 100000), 0);
	EXPECT_EQ(ivshm_endpoint_open(desc().c_str(), nullptr, &ep), -EPROTO);
	ASSERT_EQ(truncate(path_.c_str(), 4096), 0);
	EXPECT_EQ(ivshm_endpoint_open(desc().c_str(), nullptr, &ep), -EPROTO);
	EXPECT_EQ(file_size(), 4096);
}

TEST_F(Shm, ScribbledHeaderIsRefused)
{
	ivshm_endpoint *ep = nullptr;
	ASSERT_EQ(ivshm_endpoint_open(desc("?size=64K").c_str(), nullptr, &ep), 0);
	ivshm_endpoint_close(ep);
	ivshm_region_hdr *h = raw_map(65536);
	const ivshm_region_hdr good = *h;

	struct Case {
		const char *what;
		void (*scribble)(ivshm_region_hdr *);
	} cases[] = {
		{ "magic", [](ivshm_region_hdr *x) { x->magic ^= 1; } },
		{ "version", [](ivshm_region_hdr *x) { x->version = 99; } },
		{ "size", [](ivshm_region_hdr *x) { x->size = 1u << 20; } },
		{ "hdr_size", [](ivshm_region_hdr *x) { x->hdr_size = 64; } },
		{ "init_state", [](ivshm_region_hdr *x) { x->init_state = 7; } },
		{ "all ones", [](ivshm_region_hdr *x) { memset(x, 0xff, 64); } },
	};
	for (const Case &c : cases) {
		*h = good;
		c.scribble(h);
		EXPECT_EQ(ivshm_endpoint_open(desc().c_str(), nullptr, &ep), -EPROTO) << c.what;
		EXPECT_EQ(ep, nullptr);
		EXPECT_EQ(file_size(), 65536);
	}
	// Fields the formatter owns alone may change without harm.
	*h = good;
	h->formatter_pid = 1;
	ASSERT_EQ(ivshm_endpoint_open(desc().c_str(), nullptr, &ep), 0);
	ivshm_endpoint_close(ep);
	munmap(h, 65536);
}

TEST_F(Shm, NoFormatRefusesUnformattedRegion)
{
	ivshm_endpoint_params p{};
	p.flags = IVSHM_EP_F_NOFORMAT;
	p.size = 65536;
	ivshm_endpoint *ep = nullptr;
	EXPECT_EQ(ivshm_endpoint_open(desc().c_str(), &p, &ep), -ENODATA);
	EXPECT_EQ(ivshm_endpoint_open(desc("?noformat=1").c_str(), nullptr, &ep), -ENODATA);
	ivshm_region_hdr *h = raw_map(65536);
	EXPECT_EQ(h->init_state, (uint32_t)IVSHM_REGION_UNINIT);
	ASSERT_EQ(ivshm_endpoint_open(desc().c_str(), nullptr, &ep), 0);
	ivshm_endpoint_close(ep);
	ASSERT_EQ(ivshm_endpoint_open(desc().c_str(), &p, &ep), 0);
	ivshm_endpoint_close(ep);
	munmap(h, 65536);
}

TEST_F(Shm, TakesOverFromDeadFormatter)
{
	ivshm_endpoint *ep = nullptr;
	int fd = open(path_.c_str(), O_CREAT | O_RDWR, 0600);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(ftruncate(fd, 65536), 0);
	close(fd);
	// A formatter that took the CAS and died: its pid is reaped and gone.
	pid_t child = fork();
	ASSERT_GE(child, 0);
	if (child == 0)
		_exit(0);
	ASSERT_EQ(waitpid(child, nullptr, 0), child);
	ivshm_region_hdr *h = raw_map(65536);
	h->init_state = IVSHM_REGION_FORMATTING;
	h->formatter_pid = (uint32_t)child;
	h->magic = 0x1234;
	ASSERT_EQ(ivshm_endpoint_open(desc().c_str(), nullptr, &ep), 0);
	EXPECT_EQ(h->init_state, (uint32_t)IVSHM_REGION_READY);
	EXPECT_EQ(h->magic, IVSHM_REGION_MAGIC);
	EXPECT_EQ(h->formatter_pid, (uint32_t)getpid());
	ivshm_endpoint_close(ep);

	// A formatter stuck for good (its pid alive: ours) is taken over after
	// the stale limit rather than waited on forever.
	h->init_state = IVSHM_REGION_FORMATTING;
	h->formatter_pid = (uint32_t)getpid();
	h->magic = 0;
	ASSERT_EQ(ivshm_endpoint_open(desc().c_str(), nullptr, &ep), 0);
	EXPECT_EQ(h->magic, IVSHM_REGION_MAGIC);
	ivshm_endpoint_close(ep);
	munmap(h, 65536);
}

TEST_F(Shm, WaitersSeeTheFormatterFinish)
{
	int fd = open(path_.c_str(), O_CREAT | O_RDWR, 0600);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(ftruncate(fd, 65536), 0);
	close(fd);
	ivshm_region_hdr *h = raw_map(65536);
	// A live formatter (this process) holds FORMATTING; a thread opens and
	// must wait until we publish READY, then accept our header.
	h->init_state = IVSHM_REGION_FORMATTING;
	h->formatter_pid = (uint32_t)getpid();
	int result = 1;
	std::thread t([&] {
		ivshm_endpoint *ep = nullptr;
		result = ivshm_endpoint_open(desc().c_str(), nullptr, &ep);
		if (result == 0) {
			auto *hh = static_cast<ivshm_region_hdr *>(ivshm_endpoint_base(ep));
			if (hh->format_id != 0xabcdef)
				result = -1000;
			ivshm_endpoint_close(ep);
		}
	});
	usleep(50 * 1000);
	h->magic = IVSHM_REGION_MAGIC;
	h->version = IVSHM_REGION_VERSION;
	h->size = 65536;
	h->hdr_size = IVSHM_REGION_HDR_SIZE;
	h->format_id = 0xabcdef;
	__atomic_store_n(&h->init_state, (uint32_t)IVSHM_REGION_READY, __ATOMIC_RELEASE);
	t.join();
	EXPECT_EQ(result, 0);
	munmap(h, 65536);
}

// Many processes open one new file at once: exactly one formats, all agree
// on the header, all see each other's writes.
TEST_F(Shm, ConcurrentOpenAcrossProcesses)
{
	const int kProcs = 6, kRounds = 10;
	for (int round = 0; round < kRounds; round++) {
		std::string path = unique_name("c");
		std::string d = "shm:" + path + "?size=64K";
		int go[2], res[2];
		ASSERT_EQ(pipe(go), 0);
		ASSERT_EQ(pipe(res), 0);
		std::vector<pid_t> kids;
		for (int i = 0; i < kProcs; i++) {
			pid_t pid = fork();
			ASSERT_GE(pid, 0);
			if (pid == 0) {
				close(go[1]);
				char c;
				if (read(go[0], &c, 1) != 0)
					_exit(2);
				ivshm_endpoint *ep = nullptr;
				struct { int32_t ret; uint32_t pid; uint64_t fid; } r{};
				r.ret = ivshm_endpoint_open(d.c_str(), nullptr, &ep);
				if (r.ret == 0) {
					auto *h = static_cast<ivshm_region_hdr *>(ivshm_endpoint_base(ep));
					r.pid = h->formatter_pid;
					r.fid = h->format_id;
					static_cast<uint8_t *>(ivshm_endpoint_base(ep))
						[IVSHM_REGION_HDR_SIZE + i] = (uint8_t)(i + 1);
					ivshm_endpoint_close(ep);
				}
				if (write(res[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
					_exit(3);
				_exit(0);
			}
			kids.push_back(pid);
		}
		close(go[0]);
		close(go[1]); // release every child at once
		close(res[1]);
		uint64_t fid = 0;
		uint32_t fpid = 0;
		for (int i = 0; i < kProcs; i++) {
			struct { int32_t ret; uint32_t pid; uint64_t fid; } r{};
			ASSERT_EQ(read(res[0], &r, sizeof(r)), (ssize_t)sizeof(r));
			EXPECT_EQ(r.ret, 0);
			if (i == 0) {
				fid = r.fid;
				fpid = r.pid;
			}
			EXPECT_EQ(r.fid, fid);
			EXPECT_EQ(r.pid, fpid);
		}
		close(res[0]);
		bool formatter_is_child = false;
		for (pid_t k : kids) {
			int st = 0;
			ASSERT_EQ(waitpid(k, &st, 0), k);
			EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
			formatter_is_child |= ((uint32_t)k == fpid);
		}
		EXPECT_TRUE(formatter_is_child);
		ivshm_endpoint *ep = nullptr;
		ASSERT_EQ(ivshm_endpoint_open(("shm:" + path).c_str(), nullptr, &ep), 0);
		auto *p = static_cast<uint8_t *>(ivshm_endpoint_base(ep));
		for (int i = 0; i < kProcs; i++)
			EXPECT_EQ(p[IVSHM_REGION_HDR_SIZE + i], (uint8_t)(i + 1));
		EXPECT_EQ(static_cast<ivshm_region_hdr *>(ivshm_endpoint_base(ep))->format_id, fid);
		ivshm_endpoint_close(ep);
		unlink(path.c_str());
	}
}

TEST_F(Shm, ConcurrentOpenAcrossThreads)
{
	const int kThreads = 4;
	std::vector<std::thread> ts;
	std::vector<int> rets(kThreads, 1);
	std::vector<uint64_t> fids(kThreads, 0);
	std::string d = desc("?size=64K");
	for (int i = 0; i < kThreads; i++)
		ts.emplace_back([&, i] {
			ivshm_endpoint *ep = nullptr;
			rets[i] = ivshm_endpoint_open(d.c_str(), nullptr, &ep);
			if (rets[i] == 0) {
				fids[i] = __atomic_load_n(&static_cast<ivshm_region_hdr *>(
					ivshm_endpoint_base(ep))->format_id, __ATOMIC_RELAXED);
				ivshm_endpoint_close(ep);
			}
		});
	for (auto &t : ts)
		t.join();
	for (int i = 0; i < kThreads; i++) {
		EXPECT_EQ(rets[i], 0);
		EXPECT_EQ(fids[i], fids[0]);
	}
}

} // namespace

// ---- "pci:" over a fake sysfs tree (IVSHM_PCI_SYSFS) ----------------------
// Regular files stand in for resource0/resource2, so this checks parsing,
// discovery, register offsets and formatting; the real device is tested in
// guests (suite vm).
namespace {

class FakePci : public ::testing::Test {
protected:
	void SetUp() override
	{
		char tmpl[] = "/tmp/ivshm-fakepci-XXXXXX";
		ASSERT_NE(mkdtemp(tmpl), nullptr);
		root_ = tmpl;
		setenv("IVSHM_PCI_SYSFS", root_.c_str(), 1);
	}
	void TearDown() override
	{
		unsetenv("IVSHM_PCI_SYSFS");
		std::string cmd = "rm -rf '" + root_ + "'";
		ASSERT_EQ(system(cmd.c_str()), 0);
	}
	static void put(const std::string &path, const std::string &text)
	{
		FILE *f = fopen(path.c_str(), "w");
		ASSERT_NE(f, nullptr) << path;
		fputs(text.c_str(), f);
		fclose(f);
	}
	void add_dev(const char *bdf, const char *vendor, const char *device,
		     bool doorbell, off_t bar2, uint32_t ivpos)
	{
		std::string d = root_ + "/" + bdf;
		ASSERT_EQ(mkdir(d.c_str(), 0700), 0);
		put(d + "/vendor", std::string(vendor) + "\n");
		put(d + "/device", std::string(device) + "\n");
		int fd = open((d + "/resource0").c_str(), O_CREAT | O_RDWR, 0600);
		ASSERT_GE(fd, 0);
		ASSERT_EQ(ftruncate(fd, 4096), 0);
		ASSERT_EQ(pwrite(fd, &ivpos, 4, 8), 4);
		close(fd);
		if (doorbell)
			put(d + "/resource1", "");
		fd = open((d + "/resource2").c_str(), O_CREAT | O_RDWR, 0600);
		ASSERT_GE(fd, 0);
		ASSERT_EQ(ftruncate(fd, bar2), 0);
		close(fd);
	}
	uint32_t reg(const char *bdf, off_t off)
	{
		uint32_t v = 0;
		int fd = open((root_ + "/" + bdf + "/resource0").c_str(), O_RDONLY);
		EXPECT_EQ(pread(fd, &v, 4, off), 4);
		close(fd);
		return v;
	}
	std::string root_;
};

TEST_F(FakePci, AutoFindsDoorbellDeviceAndRingsBar0)
{
	add_dev("0000:00:02.0", "0x8086", "0x1110", true, 65536, 0);
	add_dev("0000:00:05.0", "0x1af4", "0x1110", true, 1 << 20, 7);
	add_dev("0000:00:03.0", "0x1af4", "0x1000", true, 65536, 0);
	add_dev("0000:00:09.0", "0x1af4", "0x1110", true, 65536, 9);
	add_dev("0001:00:01.0", "0x1af4", "0x1110", true, 65536, 10);
	ivshm_endpoint *ep = nullptr;
	// The lowest address among the ivshmem devices.
	ASSERT_EQ(ivshm_endpoint_open("pci:auto", nullptr, &ep), 0);
	EXPECT_EQ(ivshm_endpoint_kind(ep), IVSHM_EP_PCI);
	EXPECT_EQ(ivshm_endpoint_size(ep), 1u << 20);
	EXPECT_EQ(ivshm_endpoint_id(ep), 7);
	EXPECT_EQ(ivshm_endpoint_caps(ep),
		  IVSHM_EP_CAP_DOORBELL | IVSHM_EP_CAP_PEER_ID);
	EXPECT_EQ(ivshm_endpoint_nvectors(ep), 0u);
	EXPECT_EQ(ivshm_endpoint_notify(ep, 3, 2), 0);
	EXPECT_EQ(reg("0000:00:05.0", 12), (3u << 16) | 2);
	EXPECT_EQ(ivshm_endpoint_notify(ep, 0xffff, 63), 0);
	EXPECT_EQ(reg("0000:00:05.0", 12), (0xffffu << 16) | 63);
	EXPECT_EQ(ivshm_endpoint_notify(ep, 1, 64), -EINVAL);
	EXPECT_EQ(ivshm_endpoint_vector_fd(ep, 0), -ENOTSUP);
	EXPECT_EQ(ivshm_endpoint_wait(ep, 0, nullptr), -ENOTSUP);
	EXPECT_EQ(ivshm_endpoint_peers(ep, nullptr, 0), -ENOTSUP);
	auto *h = static_cast<ivshm_region_hdr *>(ivshm_endpoint_base(ep));
	EXPECT_EQ(h->magic, IVSHM_REGION_MAGIC);
	EXPECT_EQ(h->size, 1u << 20);
	ivshm_endpoint_close(ep);

	// The same BAR2 seen as a plain file from "the host" shares the format.
	ivshm_endpoint *host = nullptr;
	ASSERT_EQ(ivshm_endpoint_open(("shm:" + root_ + "/0000:00:05.0/resource2").c_str(),
				      nullptr, &host), 0);
	ASSERT_EQ(ivshm_endpoint_open("pci:00:05.0", nullptr, &ep), 0);
	EXPECT_EQ(static_cast<ivshm_region_hdr *>(ivshm_endpoint_base(ep))->format_id,
		  static_cast<ivshm_region_hdr *>(ivshm_endpoint_base(host))->format_id);
	static_cast<uint8_t *>(ivshm_endpoint_base(host))[IVSHM_REGION_HDR_SIZE] = 0x5a;
	EXPECT_EQ(static_cast<uint8_t *>(ivshm_endpoint_base(ep))[IVSHM_REGION_HDR_SIZE], 0x5a);
	ivshm_endpoint_close(ep);
	ivshm_endpoint_close(host);
}

TEST_F(FakePci, PlainDeviceBehavesAsPlainFile)
{
	add_dev("0000:00:04.0", "0x1af4", "0x1110", false, 65536, 0xffffffffu);
	ivshm_endpoint *ep = nullptr;
	ASSERT_EQ(ivshm_endpoint_open("pci:0000:00:04.0", nullptr, &ep), 0);
	EXPECT_EQ(ivshm_endpoint_caps(ep), 0u);
	EXPECT_EQ(ivshm_endpoint_id(ep), -ENOTSUP);
	EXPECT_EQ(ivshm_endpoint_notify(ep, 1, 0), -ENOTSUP);
	EXPECT_EQ(reg("0000:00:04.0", 12), 0u);
	EXPECT_EQ(static_cast<ivshm_region_hdr *>(ivshm_endpoint_base(ep))->init_state,
		  (uint32_t)IVSHM_REGION_READY);
	ivshm_endpoint_close(ep);
}

TEST_F(FakePci, BadAddressesAndDevices)
{
	add_dev("0000:00:04.0", "0x1af4", "0x1110", true, 65536, 0xffffffffu);
	add_dev("0000:00:06.0", "0x1af4", "0x1110", true, 100000, 1);
	add_dev("0000:00:07.0", "0x1af4", "0x1100", true, 65536, 1);
	ivshm_endpoint *ep = nullptr;
	const char *bad[] = { "pci:", "pci:xyz", "pci:00:04", "pci:0000:00:20.0",
			      "pci:0000:00:04.8", "pci:0000:00:04.0x", "pci:1:2:3:4.0",
			      "pci:Auto", "pci:-1:00:04.0" };
	for (const char *d : bad)
		EXPECT_EQ(ivshm_endpoint_open(d, nullptr, &ep), -EINVAL) << d;
	EXPECT_EQ(ivshm_endpoint_open("pci:0000:00:09.0", nullptr, &ep), -ENOENT);
	EXPECT_EQ(ivshm_endpoint_open("pci:0000:00:07.0", nullptr, &ep), -ENODEV);
	// IVPosition -1 on a doorbell device: no id from the server.
	EXPECT_EQ(ivshm_endpoint_open("pci:0000:00:04.0", nullptr, &ep), -EPROTO);
	// BAR2 that is not a power of two.
	EXPECT_EQ(ivshm_endpoint_open("pci:0000:00:06.0", nullptr, &ep), -EPROTO);
	EXPECT_EQ(ep, nullptr);
	setenv("IVSHM_PCI_SYSFS", (root_ + "/none").c_str(), 1);
	EXPECT_EQ(ivshm_endpoint_open("pci:auto", nullptr, &ep), -ENOENT);
}

} // namespace

// ---- "socket:" against the project's server, run in-process ---------------
#include "ivshm/server.h"
#include <poll.h>
#include <atomic>
#include <mutex>

namespace {

class Sock : public ::testing::Test {
protected:
	void SetUp() override
	{
		std::random_device rd;
		path_ = "/tmp/ivshm-ep-sock-" + std::to_string(getpid()) + "-" +
			std::to_string(rd());
		ivshm_server_params sp{};
		sp.socket_path = path_.c_str();
		sp.size = 1 << 20;
		sp.vectors = 2;
		ASSERT_EQ(ivshm_server_create(&sp, &srv_), 0);
		thr_ = std::thread([this] { ivshm_server_run(srv_); });
	}
	void TearDown() override { stop_server(); }
	void stop_server()
	{
		if (srv_ == nullptr)
			return;
		ivshm_server_stop(srv_);
		thr_.join();
		ivshm_server_destroy(srv_);
		srv_ = nullptr;
	}
	std::string desc() const { return "socket:" + path_; }
	// Handle control events until @p ep knows @p n peers (bounded).
	static bool await_peers(ivshm_endpoint *ep, int n)
	{
		for (int i = 0; i < 500; i++) {
			if (ivshm_endpoint_peers(ep, nullptr, 0) == n)
				return true;
			ivshm_endpoint_wait(ep, 10, nullptr);
		}
		return false;
	}
	std::string path_;
	ivshm_server *srv_ = nullptr;
	std::thread thr_;
};

struct Events {
	std::mutex mu;
	std::vector<std::pair<int, int>> ev;
	static void cb(void *arg, uint16_t peer, int joined)
	{
		auto *e = static_cast<Events *>(arg);
		std::lock_guard<std::mutex> g(e->mu);
		e->ev.emplace_back(peer, joined);
	}
};

TEST_F(Sock, TwoClientsShareRegionAndRingEachOther)
{
	Events evs;
	ivshm_endpoint_params pa{};
	pa.peer_event = Events::cb;
	pa.peer_event_arg = &evs;
	ivshm_endpoint *a = nullptr, *b = nullptr;
	ASSERT_EQ(ivshm_endpoint_open(desc().c_str(), &pa, &a), 0);
	ASSERT_EQ(ivshm_endpoint_open(desc().c_str(), nullptr, &b), 0);
	EXPECT_EQ(ivshm_endpoint_kind(a), IVSHM_EP_SOCKET);
	EXPECT_EQ(ivshm_endpoint_caps(a),
		  IVSHM_EP_CAP_DOORBELL | IVSHM_EP_CAP_INTERRUPT |
		  IVSHM_EP_CAP_PEER_EVENTS | IVSHM_EP_CAP_PEER_ID);
	EXPECT_EQ(ivshm_endpoint_size(a), 1u << 20);
	EXPECT_EQ(ivshm_endpoint_nvectors(a), 2u);
	int ida = ivshm_endpoint_id(a), idb = ivshm_endpoint_id(b);
	ASSERT_GE(ida, 0);
	ASSERT_GE(idb, 0);
	EXPECT_NE(ida, idb);
	EXPECT_GE(ivshm_endpoint_control_fd(a), 0);
	EXPECT_GE(ivshm_endpoint_vector_fd(a, 1), 0);
	EXPECT_EQ(ivshm_endpoint_vector_fd(a, 2), -EINVAL);

	// The server formatted the header; both see it and each other's bytes.
	auto *ha = static_cast<ivshm_region_hdr *>(ivshm_endpoint_base(a));
	auto *hb = static_cast<ivshm_region_hdr *>(ivshm_endpoint_base(b));
	EXPECT_EQ(ha->magic, IVSHM_REGION_MAGIC);
	EXPECT_EQ(ha->format_id, hb->format_id);
	auto *pa8 = static_cast<uint8_t *>(ivshm_endpoint_base(a));
	auto *pb8 = static_cast<uint8_t *>(ivshm_endpoint_base(b));
	for (size_t i = IVSHM_REGION_HDR_SIZE; i < (1u << 20); i += 4093)
		pa8[i] = (uint8_t)(i ^ 0x3c);
	for (size_t i = IVSHM_REGION_HDR_SIZE; i < (1u << 20); i += 4093)
		ASSERT_EQ(pb8[i], (uint8_t)(i ^ 0x3c));

	ASSERT_TRUE(await_peers(a, 1));
	ASSERT_TRUE(await_peers(b, 1));
	uint16_t ids[4] = { 0 };
	EXPECT_EQ(ivshm_endpoint_peers(a, ids, 4), 1);
	EXPECT_EQ(ids[0], idb);
	EXPECT_EQ(ivshm_endpoint_peer_present(a, (uint16_t)idb), 1);
	EXPECT_EQ(ivshm_endpoint_peer_present(a, 60000), 0);
	{
		std::lock_guard<std::mutex> g(evs.mu);
		ASSERT_EQ(evs.ev.size(), 1u);
		EXPECT_EQ(evs.ev[0], std::make_pair(idb, 1));
	}

	// a rings b's vector 1; b's wait reports exactly that vector.
	EXPECT_EQ(ivshm_endpoint_notify(a, (uint16_t)idb, 1), 0);
	uint64_t fired = 0;
	ASSERT_EQ(ivshm_endpoint_wait(b, 5000, &fired), 1);
	EXPECT_EQ(fired, 2u);
	// Acknowledged: nothing more pending.
	EXPECT_EQ(ivshm_endpoint_wait(b, 0, &fired), 0);
	// b rings a's vector 0, seen through a's vector fd.
	EXPECT_EQ(ivshm_endpoint_notify(b, (uint16_t)ida, 0), 0);
	pollfd pfd{ ivshm_endpoint_vector_fd(a, 0), POLLIN, 0 };
	ASSERT_EQ(poll(&pfd, 1, 5000), 1);
	uint64_t cnt = 0;
	EXPECT_EQ(read(pfd.fd, &cnt, 8), 8);
	EXPECT_EQ(cnt, 1u);
	EXPECT_EQ(ivshm_endpoint_notify(a, 60000, 0), -ENOENT);
	EXPECT_EQ(ivshm_endpoint_notify(a, (uint16_t)idb, 2), -EINVAL);

	// b leaves: a hears of it.
	ivshm_endpoint_close(b);
	ASSERT_TRUE(await_peers(a, 0));
	{
		std::lock_guard<std::mutex> g(evs.mu);
		ASSERT_EQ(evs.ev.size(), 2u);
		EXPECT_EQ(evs.ev[1], std::make_pair(idb, 0));
	}
	// Server gone: reported, region still mapped.
	stop_server();
	int ret = 0;
	for (int i = 0; i < 100 && ret >= 0; i++) {
		ret = ivshm_endpoint_process(a);
		usleep(1000);
	}
	EXPECT_EQ(ret, -ECONNRESET);
	EXPECT_EQ(pa8[IVSHM_REGION_HDR_SIZE], (uint8_t)(IVSHM_REGION_HDR_SIZE ^ 0x3c));
	ivshm_endpoint_close(a);
}

TEST_F(Sock, PollFlagHidesInterrupts)
{
	ivshm_endpoint_params p{};
	p.flags = IVSHM_EP_F_POLL;
	ivshm_endpoint *a = nullptr, *b = nullptr;
	ASSERT_EQ(ivshm_endpoint_open(desc().c_str(), &p, &a), 0);
	ASSERT_EQ(ivshm_endpoint_open((desc() + "?poll=1").c_str(), nullptr, &b), 0);
	EXPECT_EQ(ivshm_endpoint_caps(a) & IVSHM_EP_CAP_INTERRUPT, 0u);
	EXPECT_NE(ivshm_endpoint_caps(a) & IVSHM_EP_CAP_DOORBELL, 0u);
	EXPECT_EQ(ivshm_endpoint_nvectors(a), 0u);
	EXPECT_EQ(ivshm_endpoint_vector_fd(a, 0), -ENOTSUP);
	ASSERT_TRUE(await_peers(a, 1));
	ASSERT_TRUE(await_peers(b, 1));
	// Doorbells still go out; a polling peer's wait sees no vectors.
	EXPECT_EQ(ivshm_endpoint_notify(a, (uint16_t)ivshm_endpoint_id(b), 0), 0);
	uint64_t fired = 7;
	EXPECT_EQ(ivshm_endpoint_wait(b, 20, &fired), 0);
	EXPECT_EQ(fired, 0u);
	ivshm_endpoint_close(a);
	ivshm_endpoint_close(b);
}

TEST_F(Sock, NoServerThere)
{
	ivshm_endpoint *ep = nullptr;
	std::string d = "socket:/tmp/ivshm-no-such-" + std::to_string(getpid()) + "?timeout=1";
	EXPECT_EQ(ivshm_endpoint_open(d.c_str(), nullptr, &ep), -ENOENT);
	EXPECT_EQ(ep, nullptr);
	EXPECT_EQ(ivshm_endpoint_open("socket:", nullptr, &ep), -EINVAL);
}

} // namespace
