#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "runtime/root_directory.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fcntl.h>
#include <thread>
#include <fstream>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

class RootDirectoryTest : public ::testing::Test {
protected:
    sarus::TempDirectory dir{fs::temp_directory_path(), "root-directory-test"};
    fs::path rootPath = dir.path() / "rootfs";
    fs::path outside = dir.path() / "outside";
    sarus::CreationPolicy policy{{0, 0}, {1234, 5678}, std::nullopt};

    void SetUp() override {
        fs::create_directories(rootPath);
        fs::create_directories(outside);
    }
};

}  // namespace

TEST_F(RootDirectoryTest, DanglingAbsoluteSymlinkIsCreatedInsideTheRoot) {
    fs::create_symlink(outside / "target", rootPath / "link");
    sarus::RootDirectory root(rootPath);
    auto fd = root.ensureDirectory("/link/sub", policy);
    EXPECT_EQ(root.containerPathOf(fd.get()), (outside / "target" / "sub").string());
    EXPECT_FALSE(fs::exists(outside / "target"));
    EXPECT_TRUE(fs::is_directory(rootPath / outside.relative_path() / "target" / "sub"));
}

TEST_F(RootDirectoryTest, DotDotNeverClimbsAboveTheRoot) {
    fs::create_directories(rootPath / "a");
    fs::create_symlink("../../../../..", rootPath / "a" / "up");
    sarus::RootDirectory root(rootPath);
    auto fd = root.ensureDirectory("/a/up/../../made", policy);
    EXPECT_EQ(root.containerPathOf(fd.get()), "/made");
    EXPECT_TRUE(fs::is_directory(rootPath / "made"));
    EXPECT_FALSE(fs::exists(dir.path() / "made"));
}

TEST_F(RootDirectoryTest, SymlinkLoopIsAnError) {
    fs::create_symlink("b", rootPath / "a");
    fs::create_symlink("a", rootPath / "b");
    sarus::RootDirectory root(rootPath);
    EXPECT_THROW(root.ensureDirectory("/a/x", policy), sarus::Error);
}

TEST_F(RootDirectoryTest, CreatedDirectoriesOnTheRootMountBelongToTheOwner) {
    sarus::RootDirectory root(rootPath);
    root.ensureDirectory("/x/y", {{42, 43}, {1234, 5678}, std::nullopt});
    struct stat st {};
    ASSERT_EQ(::stat((rootPath / "x" / "y").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 42u);
    EXPECT_EQ(st.st_gid, 43u);
}

TEST_F(RootDirectoryTest, MountPointFileThroughSymlinkedParent) {
    fs::create_directories(rootPath / "real");
    fs::create_symlink("/real", rootPath / "dir");
    sarus::RootDirectory root(rootPath);
    auto fd = root.ensureMountPoint("/dir/file", false, policy);
    EXPECT_EQ(root.containerPathOf(fd.get()), "/real/file");
    EXPECT_TRUE(fs::is_regular_file(rootPath / "real" / "file"));
}

TEST_F(RootDirectoryTest, ExistingMountPointIsKeptWhateverItIs) {
    fs::create_directories(rootPath / "etc");
    std::ofstream(rootPath / "etc" / "hosts") << "x";
    sarus::RootDirectory root(rootPath);
    auto fd = root.ensureMountPoint("/etc/hosts", true, policy);
    EXPECT_EQ(root.containerPathOf(fd.get()), "/etc/hosts");
    EXPECT_EQ(sarus::readFile(rootPath / "etc" / "hosts"), "x");
}

TEST_F(RootDirectoryTest, ReplaceWithDirectoryRemovesAPlantedSymlink) {
    fs::create_symlink(outside, rootPath / "dev");
    sarus::RootDirectory root(rootPath);
    root.replaceWithDirectory("/dev", policy);
    EXPECT_TRUE(fs::is_directory(fs::symlink_status(rootPath / "dev")));
    EXPECT_TRUE(fs::exists(outside));
}

TEST_F(RootDirectoryTest, ReadingAFifoDoesNotHang) {
    ASSERT_EQ(::mkfifo((rootPath / "fifo").c_str(), 0644), 0);
    sarus::RootDirectory root(rootPath);
    EXPECT_EQ(root.readFile("/fifo"), "");
}

TEST_F(RootDirectoryTest, FilesOfProcfsBoundIntoTheRootAreNotRead) {
    // As `--mount src=/proc` puts them there: /proc/kmsg would block root
    // and take the kernel log from its readers.
    fs::create_directories(rootPath / "p");
    fs::create_directories(rootPath / "etc");
    std::ofstream(rootPath / "etc" / "hosts") << "x";
    pid_t child = ::fork();
    if (child == 0) {
        if (::unshare(CLONE_NEWNS) != 0 && ::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
            _exit(2);
        }
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
            ::mount("/proc", (rootPath / "p").c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
            _exit(3);
        }
        sarus::RootDirectory root(rootPath);
        bool procRead = !root.readFile("/p/self/status").empty();
        bool ownRead = root.readFile("/etc/hosts") == "x";
        _exit(procRead ? 4 : ownRead ? 0 : 5);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "2, 3: no mount namespace here; 4: a proc file was read";
}

TEST_F(RootDirectoryTest, ReadingOpensNothingButARegularFile) {
    // A writer blocked in open() goes on only when a reader opens the FIFO:
    // the reader must not open what it will not read (a device node's open
    // alone may rewind a tape or arm a watchdog).
    auto fifo = rootPath / "fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
    std::atomic<bool> writerOpened{false};
    std::thread writer([&] {
        int fd = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
        writerOpened = true;
        ::close(fd);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the writer waits in open()
    sarus::RootDirectory root(rootPath);
    EXPECT_EQ(root.readFile("/fifo"), "");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_FALSE(writerOpened) << "readFile opened the FIFO";
    int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);  // lets the writer go
    writer.join();
    ::close(reader);
}

TEST_F(RootDirectoryTest, SymlinkIsCreatedOnceAndAnExistingEntryWins) {
    fs::create_directories(rootPath / "lib");
    std::ofstream(rootPath / "lib" / "libx.so.1") << "image's own";
    sarus::RootDirectory root(rootPath);
    auto lib = root.open("/lib", O_PATH | O_DIRECTORY);
    EXPECT_FALSE(root.createSymlink(lib.get(), "libx.so.1", "libx.so.1.2", policy));
    EXPECT_TRUE(root.createSymlink(lib.get(), "liby.so.1", "liby.so.1.2", policy));
    EXPECT_EQ(fs::read_symlink(rootPath / "lib" / "liby.so.1"), "liby.so.1.2");
}

TEST(PathComponents, DropsEmptyAndDotButKeepsDotDot) {
    EXPECT_EQ(sarus::pathComponents("//a/./b/../c/"), (std::vector<std::string>{"a", "b", "..", "c"}));
    EXPECT_TRUE(sarus::pathComponents("/").empty());
}
