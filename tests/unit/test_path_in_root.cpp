#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "runtime/path_in_root.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace fs = std::filesystem;

namespace {

class PathInRootTest : public ::testing::Test {
protected:
    sarus::TempDirectory dir{fs::temp_directory_path(), "path-in-root-test"};
    fs::path root = dir.path() / "rootfs";

    void SetUp() override { fs::create_directories(root); }

    void mkdir(const std::string& p) { fs::create_directories(root / p); }
    void link(const std::string& target, const std::string& at) { fs::create_symlink(target, root / at); }
    void file(const std::string& p) { std::ofstream(root / p) << "x"; }

    std::string resolve(const std::string& p) { return sarus::resolveInRoot(root, p); }
};

}  // namespace

TEST_F(PathInRootTest, PlainExistingPath) {
    mkdir("usr/lib");
    EXPECT_EQ(resolve("/usr/lib"), "/usr/lib");
}

TEST_F(PathInRootTest, RootItself) {
    EXPECT_EQ(resolve("/"), "/");
    EXPECT_EQ(resolve(""), "/");
    EXPECT_EQ(resolve("/./"), "/");
}

TEST_F(PathInRootTest, MissingComponentsAreKept) {
    mkdir("usr");
    EXPECT_EQ(resolve("/usr/missing/deeper"), "/usr/missing/deeper");
}

TEST_F(PathInRootTest, RedundantSlashesAndDotsAreRemoved) {
    mkdir("a/b");
    EXPECT_EQ(resolve("//a/./b//"), "/a/b");
}

TEST_F(PathInRootTest, DotDotGoesUpLexicallyForNonLinks) {
    mkdir("a/b");
    EXPECT_EQ(resolve("/a/b/../c"), "/a/c");
}

TEST_F(PathInRootTest, DotDotIsClampedAtRoot) {
    EXPECT_EQ(resolve("/../../../etc"), "/etc");
    EXPECT_EQ(resolve("/a/../../.."), "/");
}

TEST_F(PathInRootTest, AbsoluteSymlinkIsResolvedInsideRoot) {
    mkdir("usr/lib64");
    link("/usr/lib64", "lib64");
    EXPECT_EQ(resolve("/lib64/libc.so"), "/usr/lib64/libc.so");
}

TEST_F(PathInRootTest, AbsoluteSymlinkToHostPathStaysInRoot) {
    // A link to an absolute host path (e.g. the temp dir itself) names that
    // path inside the root, not on the host.
    link(dir.path().string(), "escape");
    EXPECT_EQ(resolve("/escape/x"), dir.path().string() + "/x");
}

TEST_F(PathInRootTest, RelativeSymlinkIsResolvedFromItsDirectory) {
    mkdir("usr/lib/x86_64");
    link("x86_64", "usr/lib/arch");
    EXPECT_EQ(resolve("/usr/lib/arch/file"), "/usr/lib/x86_64/file");
}

TEST_F(PathInRootTest, RelativeSymlinkWithDotDot) {
    mkdir("opt/app");
    mkdir("data");
    link("../../data", "opt/app/data");
    EXPECT_EQ(resolve("/opt/app/data/f"), "/data/f");
}

TEST_F(PathInRootTest, RelativeSymlinkCannotClimbAboveRoot) {
    mkdir("a");
    link("../../../../../../outside", "a/up");
    EXPECT_EQ(resolve("/a/up/f"), "/outside/f");
}

TEST_F(PathInRootTest, AbsoluteSymlinkToRoot) {
    link("/", "toroot");
    EXPECT_EQ(resolve("/toroot/etc"), "/etc");
}

TEST_F(PathInRootTest, ChainOfSymlinks) {
    mkdir("real");
    link("/b", "a");
    link("c", "b");
    link("/real", "c");
    EXPECT_EQ(resolve("/a/file"), "/real/file");
}

TEST_F(PathInRootTest, FinalComponentSymlinkIsFollowed) {
    mkdir("etc");
    file("etc/real");
    link("real", "etc/alias");
    EXPECT_EQ(resolve("/etc/alias"), "/etc/real");
}

TEST_F(PathInRootTest, DanglingSymlinkResolvesToItsTarget) {
    link("/nowhere/at/all", "dangling");
    EXPECT_EQ(resolve("/dangling"), "/nowhere/at/all");
}

TEST_F(PathInRootTest, DotDotAfterSymlinkIsAppliedToTheTarget) {
    mkdir("x/y");
    mkdir("z");
    link("/x/y", "z/link");
    EXPECT_EQ(resolve("/z/link/../w"), "/x/w");
}

TEST_F(PathInRootTest, RelativeInputIsTakenFromRoot) {
    mkdir("a");
    EXPECT_EQ(resolve("a/b"), "/a/b");
}

TEST_F(PathInRootTest, SymlinkLoopIsAnError) {
    link("/loop2", "loop1");
    link("/loop1", "loop2");
    try {
        resolve("/loop1/x");
        FAIL() << "no error";
    } catch (const sarus::Error& e) {
        EXPECT_EQ(std::string(e.what()), "too many levels of symbolic links resolving /loop1/x");
    }
}

TEST_F(PathInRootTest, SelfLoopIsAnError) {
    link("self", "self");
    EXPECT_THROW(resolve("/self"), sarus::Error);
}

TEST_F(PathInRootTest, FortyLinksAreAllowed) {
    mkdir("end");
    // l0 -> l1 -> ... -> l39 -> /end: exactly 40 links.
    for (int i = 0; i < 40; ++i) {
        auto target = i == 39 ? std::string("/end") : "l" + std::to_string(i + 1);
        link(target, "l" + std::to_string(i));
    }
    EXPECT_EQ(resolve("/l0"), "/end");
}

TEST_F(PathInRootTest, FortyOneLinksAreTooMany) {
    mkdir("end");
    for (int i = 0; i < 41; ++i) {
        auto target = i == 40 ? std::string("/end") : "l" + std::to_string(i + 1);
        link(target, "l" + std::to_string(i));
    }
    EXPECT_THROW(resolve("/l0"), sarus::Error);
}
