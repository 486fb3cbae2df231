#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "runtime/rootfs_files.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

class RootfsFilesTest : public ::testing::Test {
protected:
    sarus::TempDirectory dir{fs::temp_directory_path(), "rootfs-files-test"};
    fs::path root = dir.path() / "rootfs";
    fs::path outside = dir.path() / "outside";

    void SetUp() override {
        fs::create_directories(root);
        fs::create_directories(outside);
    }

    static void put(const fs::path& p, const std::string& content) { std::ofstream(p) << content; }
    static std::string get(const fs::path& p) { return sarus::readFile(p); }

    static struct stat lstatOf(const fs::path& p) {
        struct stat st {};
        EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
        return st;
    }

    void write(const std::string& containerPath, const std::string& content) {
        sarus::writeFileInRoot(root, containerPath, content, 0644, 0, 0);
    }
};

sarus::Identity alice() {
    sarus::Identity id;
    id.uid = 1000;
    id.gid = 1001;
    id.userName = "alice";
    id.home = "/home/alice";
    id.shell = "/bin/bash";
    return id;
}

}  // namespace

// ---------------------------------------------------------------- createDirectoryInRoot

TEST_F(RootfsFilesTest, CreateDirectoryMakesParentsWithModeAndOwner) {
    auto resolved = sarus::createDirectoryInRoot(root, "/a/b/c", 1234, 5678);
    EXPECT_EQ(resolved, "/a/b/c");
    for (const char* p : {"a", "a/b", "a/b/c"}) {
        auto st = lstatOf(root / p);
        EXPECT_TRUE(S_ISDIR(st.st_mode)) << p;
        EXPECT_EQ(st.st_mode & 07777, 0755u) << p;
        EXPECT_EQ(st.st_uid, 1234u) << p;
        EXPECT_EQ(st.st_gid, 5678u) << p;
    }
}

TEST_F(RootfsFilesTest, CreateDirectoryLeavesExistingDirectoriesAlone) {
    fs::create_directories(root / "a");
    ::chmod((root / "a").c_str(), 0700);
    sarus::createDirectoryInRoot(root, "/a/b", 1234, 5678);
    auto st = lstatOf(root / "a");
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    EXPECT_EQ(st.st_uid, 0u);
    EXPECT_EQ(lstatOf(root / "a/b").st_uid, 1234u);
}

TEST_F(RootfsFilesTest, CreateDirectoryFollowsSymlinkInsideRoot) {
    fs::create_directories(root / "usr/lib");
    fs::create_symlink("usr/lib", root / "lib");
    EXPECT_EQ(sarus::createDirectoryInRoot(root, "/lib/modules", 0, 0), "/usr/lib/modules");
    EXPECT_TRUE(fs::is_directory(root / "usr/lib/modules"));
    EXPECT_TRUE(fs::is_symlink(root / "lib"));
}

TEST_F(RootfsFilesTest, CreateDirectoryThroughAbsoluteSymlinkStaysInRoot) {
    fs::create_symlink(outside, root / "mnt");
    auto resolved = sarus::createDirectoryInRoot(root, "/mnt/new", 0, 0);
    EXPECT_EQ(resolved, outside.string() + "/new");
    EXPECT_FALSE(fs::exists(outside / "new"));
    EXPECT_TRUE(fs::is_directory(root / outside.relative_path() / "new"));
}

TEST_F(RootfsFilesTest, CreateDirectoryThroughRelativeEscapingSymlinkStaysInRoot) {
    fs::create_symlink("../../../../../../../../outside", root / "mnt");
    EXPECT_EQ(sarus::createDirectoryInRoot(root, "/mnt/new", 0, 0), "/outside/new");
    EXPECT_FALSE(fs::exists(outside / "new"));
    EXPECT_TRUE(fs::is_directory(root / "outside/new"));
}

TEST_F(RootfsFilesTest, CreateDirectoryOverAFileIsAnError) {
    put(root / "file", "x");
    EXPECT_THROW(sarus::createDirectoryInRoot(root, "/file/sub", 0, 0), sarus::Error);
}

// ---------------------------------------------------------------- writeFileInRoot

TEST_F(RootfsFilesTest, WriteCreatesFileWithContentModeAndOwner) {
    sarus::writeFileInRoot(root, "/etc/passwd", "alice:x:1000\n", 0600, 1000, 1001);
    auto path = root / "etc/passwd";
    EXPECT_EQ(get(path), "alice:x:1000\n");
    auto st = lstatOf(path);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(st.st_uid, 1000u);
    EXPECT_EQ(st.st_gid, 1001u);
    auto parent = lstatOf(root / "etc");
    EXPECT_EQ(parent.st_mode & 07777, 0755u);
    EXPECT_EQ(parent.st_uid, 0u);
}

TEST_F(RootfsFilesTest, WriteModeIsNotAffectedByUmask) {
    auto old = ::umask(077);
    sarus::writeFileInRoot(root, "/f", "x", 0644, 0, 0);
    ::umask(old);
    EXPECT_EQ(lstatOf(root / "f").st_mode & 07777, 0644u);
}

TEST_F(RootfsFilesTest, WriteReplacesExistingContentCompletely) {
    fs::create_directories(root / "etc");
    put(root / "etc/hosts", "a much longer previous content\n");
    write("/etc/hosts", "short\n");
    EXPECT_EQ(get(root / "etc/hosts"), "short\n");
}

TEST_F(RootfsFilesTest, WriteReplacesAnEmptyDirectoryAtTheTarget) {
    fs::create_directories(root / "etc/hosts");
    write("/etc/hosts", "h\n");
    EXPECT_TRUE(fs::is_regular_file(root / "etc/hosts"));
    EXPECT_EQ(get(root / "etc/hosts"), "h\n");
}

TEST_F(RootfsFilesTest, WriteNeverFollowsAbsoluteSymlinkAtTarget) {
    auto victim = outside / "victim";
    put(victim, "original");
    fs::create_directories(root / "etc");
    fs::create_symlink(victim, root / "etc/passwd");
    write("/etc/passwd", "evil");
    EXPECT_EQ(get(victim), "original");
    EXPECT_FALSE(fs::is_symlink(root / "etc/passwd"));
    EXPECT_EQ(get(root / "etc/passwd"), "evil");
}

TEST_F(RootfsFilesTest, WriteNeverFollowsRelativeSymlinkAtTarget) {
    auto victim = outside / "victim";
    put(victim, "original");
    fs::create_directories(root / "etc");
    fs::create_symlink("../../outside/victim", root / "etc/group");
    write("/etc/group", "evil");
    EXPECT_EQ(get(victim), "original");
    EXPECT_EQ(get(root / "etc/group"), "evil");
}

TEST_F(RootfsFilesTest, WriteNeverFollowsDanglingSymlinkAtTarget) {
    fs::create_directories(root / "etc");
    fs::create_symlink(outside / "created", root / "etc/passwd");
    write("/etc/passwd", "evil");
    EXPECT_FALSE(fs::exists(outside / "created"));
    EXPECT_EQ(get(root / "etc/passwd"), "evil");
}

TEST_F(RootfsFilesTest, WriteThroughAbsoluteSymlinkedParentStaysInRoot) {
    fs::create_symlink(outside, root / "etc");
    write("/etc/passwd", "evil");
    EXPECT_FALSE(fs::exists(outside / "passwd"));
    EXPECT_EQ(get(root / outside.relative_path() / "passwd"), "evil");
}

TEST_F(RootfsFilesTest, WriteThroughRelativeEscapingParentStaysInRoot) {
    fs::create_symlink("../outside", root / "etc");
    write("/etc/passwd", "evil");
    EXPECT_FALSE(fs::exists(outside / "passwd"));
    EXPECT_EQ(get(root / "outside/passwd"), "evil");
}

TEST_F(RootfsFilesTest, WriteThroughDeepEscapingParentStaysInRoot) {
    fs::create_directories(root / "a");
    fs::create_symlink("../../../../../../../../../../" + outside.relative_path().string(), root / "a/b");
    write("/a/b/c/file", "evil");
    EXPECT_FALSE(fs::exists(outside / "c"));
    EXPECT_EQ(get(root / outside.relative_path() / "c/file"), "evil");
}

TEST_F(RootfsFilesTest, WriteDoesNotModifyExistingOutsideFileThroughParentLink) {
    put(outside / "passwd", "original");
    fs::create_symlink(outside, root / "etc");
    write("/etc/passwd", "evil");
    EXPECT_EQ(get(outside / "passwd"), "original");
}

TEST_F(RootfsFilesTest, WriteThroughSymlinkedParentInsideRootIsAllowed) {
    fs::create_directories(root / "real/etc");
    fs::create_symlink("real/etc", root / "etc");
    write("/etc/hosts", "h");
    EXPECT_EQ(get(root / "real/etc/hosts"), "h");
}

// ---------------------------------------------------------------- readFileInRoot

TEST_F(RootfsFilesTest, ReadExistingFile) {
    fs::create_directories(root / "etc");
    put(root / "etc/passwd", "root:x:0:0::/root:/bin/sh\n");
    EXPECT_EQ(sarus::readFileInRoot(root, "/etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
}

TEST_F(RootfsFilesTest, ReadMissingFileIsEmpty) {
    EXPECT_EQ(sarus::readFileInRoot(root, "/etc/passwd"), "");
}

TEST_F(RootfsFilesTest, ReadFollowsSymlinkInsideRoot) {
    fs::create_directories(root / "usr/etc");
    put(root / "usr/etc/group", "g");
    fs::create_symlink("/usr/etc", root / "etc");
    EXPECT_EQ(sarus::readFileInRoot(root, "/etc/group"), "g");
}

TEST_F(RootfsFilesTest, ReadDoesNotFollowSymlinkToHostFile) {
    put(outside / "secret", "secret");
    fs::create_directories(root / "etc");
    fs::create_symlink(outside / "secret", root / "etc/passwd");
    EXPECT_EQ(sarus::readFileInRoot(root, "/etc/passwd"), "");
}

TEST_F(RootfsFilesTest, ReadDoesNotEscapeThroughRelativeLink) {
    put(outside / "secret", "secret");
    fs::create_symlink("../outside", root / "etc");
    EXPECT_EQ(sarus::readFileInRoot(root, "/etc/secret"), "");
}

// ---------------------------------------------------------------- mergePasswd / mergeGroup

TEST(MergePasswd, AppendsCallerEntry) {
    EXPECT_EQ(sarus::mergePasswd("root:x:0:0:root:/root:/bin/bash\n", alice()),
              "root:x:0:0:root:/root:/bin/bash\n"
              "alice:x:1000:1001::/home/alice:/bin/bash\n");
}

TEST(MergePasswd, ReplacesEntryWithSameName) {
    EXPECT_EQ(sarus::mergePasswd("root:x:0:0::/root:/bin/sh\nalice:x:5:5::/old:/bin/sh\n", alice()),
              "root:x:0:0::/root:/bin/sh\n"
              "alice:x:1000:1001::/home/alice:/bin/bash\n");
}

TEST(MergePasswd, ReplacesEntryWithSameUid) {
    EXPECT_EQ(sarus::mergePasswd("ubuntu:x:1000:1000::/home/ubuntu:/bin/sh\nnobody:x:65534:65534::/:/bin/false",
                                 alice()),
              "nobody:x:65534:65534::/:/bin/false\n"
              "alice:x:1000:1001::/home/alice:/bin/bash\n");
}

TEST(MergePasswd, DropsEmptyLinesAndKeepsUidPrefixes) {
    EXPECT_EQ(sarus::mergePasswd("\nu:x:10000:1::/:/bin/sh\n\n", alice()),
              "u:x:10000:1::/:/bin/sh\n"
              "alice:x:1000:1001::/home/alice:/bin/bash\n");
}

TEST(MergePasswd, EmptyImagePasswd) {
    EXPECT_EQ(sarus::mergePasswd("", alice()), "alice:x:1000:1001::/home/alice:/bin/bash\n");
}

TEST(MergeGroup, AppendsCallerGroupsWithCallerAsMember) {
    EXPECT_EQ(sarus::mergeGroup("root:x:0:\n", alice(), {{"alice", 1001}, {"hpc", 2000}}),
              "root:x:0:\n"
              "alice:x:1001:alice\n"
              "hpc:x:2000:alice\n");
}

TEST(MergeGroup, ReplacesGroupWithSameNameOrGid) {
    EXPECT_EQ(sarus::mergeGroup("root:x:0:\nhpc:x:99:bob\nusers:x:1001:bob\nstaff:x:50:\n", alice(),
                                {{"alice", 1001}, {"hpc", 2000}}),
              "root:x:0:\n"
              "staff:x:50:\n"
              "alice:x:1001:alice\n"
              "hpc:x:2000:alice\n");
}

TEST(MergeGroup, NonNumericGidFieldIsKept) {
    EXPECT_EQ(sarus::mergeGroup("weird:x:abc:\n", alice(), {{"alice", 1001}}),
              "weird:x:abc:\n"
              "alice:x:1001:alice\n");
}

TEST(MergeGroup, EmptyImageGroup) {
    EXPECT_EQ(sarus::mergeGroup("", alice(), {{"alice", 1001}}), "alice:x:1001:alice\n");
}

TEST(MergePasswd, TheHostDatabaseComesFirstAndTheImageKeepsItsOwnUsers) {
    auto host = "root:x:0:0:root:/root:/bin/bash\nbob:x:1002:1002::/home/bob:/bin/bash\n"
                "alice:x:1000:1001::/home/old-alice:/bin/sh\n";
    auto image = "root:x:0:0:root:/root:/bin/ash\n_apt:x:100:65534::/nonexistent:/usr/sbin/nologin\n"
                 "ubuntu:x:1002:1002::/home/ubuntu:/bin/sh\n";
    EXPECT_EQ(sarus::mergePasswd(image, alice(), host),
              "root:x:0:0:root:/root:/bin/bash\n"           // the host's, as Sarus copies it
              "bob:x:1002:1002::/home/bob:/bin/bash\n"
              "_apt:x:100:65534::/nonexistent:/usr/sbin/nologin\n"  // the image's service user
              "alice:x:1000:1001::/home/alice:/bin/bash\n");  // the caller as now, not as cached
}

TEST(MergeGroup, TheHostDatabaseComesFirstAndTheImageKeepsItsOwnGroups) {
    auto host = "root:x:0:\nhpc:x:2000:bob,alice\nstaff:x:50:bob\n";
    auto image = "root:x:0:\nstaff:x:51:\nnogroup:x:65534:\n";
    EXPECT_EQ(sarus::mergeGroup(image, alice(), {{"alice", 1001}, {"hpc", 2000}}, host),
              "root:x:0:\n"
              "staff:x:50:bob\n"
              "nogroup:x:65534:\n"
              "alice:x:1001:alice\n"
              "hpc:x:2000:alice\n");
}

TEST(CallerGroups, PrimaryThenSupplementaryWithNames) {
    sarus::Identity id = alice();
    id.gid = 0;
    id.supplementaryGids = {3999999};
    auto groups = sarus::callerGroups(id);
    ASSERT_EQ(groups.size(), 2u);
    EXPECT_EQ(groups[0].name, "root");
    EXPECT_EQ(groups[0].gid, 0u);
    EXPECT_EQ(groups[1].name, "group3999999");
    EXPECT_EQ(groups[1].gid, 3999999u);
}
