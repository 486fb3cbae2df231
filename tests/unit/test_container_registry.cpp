#include "runtime/container_registry.hpp"
#include "common/error.hpp"
#include "common/file_utils.hpp"

#include <gtest/gtest.h>

#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <csignal>
#include <fstream>
#include <vector>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

class ContainerRegistryTest : public ::testing::Test {
protected:
    sarus::TempDirectory dir{fs::temp_directory_path(), "registry-test"};
    sarus::ContainerRegistry registry{dir.path() / "sarus"};

    sarus::RunningContainer container(const std::string& name) {
        return {name, ::getpid(), "/var/sarus/OCIBundleDir", "2026-11-22T00:00:00.5Z"};
    }
};

}  // namespace

TEST_F(ContainerRegistryTest, ValidNamesAreRegisteredInAPrivateFile) {
    for (const std::string& name : std::vector<std::string>{"job1", "a", "Rank_0.step-3", std::string(128, 'x')}) {
        registry.add(container(name));
        auto file = dir.path() / "sarus" / (name + ".json");
        struct stat st {};
        ASSERT_EQ(::stat(file.c_str(), &st), 0) << name;
        EXPECT_EQ(st.st_mode & 0777, 0600u) << name;
        registry.remove(name);
        EXPECT_FALSE(fs::exists(file)) << name;
    }
    struct stat st {};
    ASSERT_EQ(::stat((dir.path() / "sarus").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(ContainerRegistryTest, InvalidNamesAreRefusedNamingThem) {
    for (const std::string& name : std::vector<std::string>{"", "-job", ".hidden", "_x", "a/b", "../up", "sp ace", "tab\t", "ü",
                                   std::string(129, 'x')}) {
        try {
            registry.add(container(name));
            ADD_FAILURE() << "accepted '" << name << "'";
        } catch (const sarus::Error& e) {
            EXPECT_NE(std::string(e.what()).find("invalid container name '" + name + "'"), std::string::npos)
                << e.what();
        }
    }
    EXPECT_TRUE(!fs::exists(dir.path() / "sarus") || fs::is_empty(dir.path() / "sarus"));
}

TEST_F(ContainerRegistryTest, RegistrationsOfProcessesThatAreNotSarusAreStale) {
    // This test program is not named sarus: its registration counts as left over.
    registry.add(container("leftover"));
    EXPECT_TRUE(registry.list().empty());
    EXPECT_FALSE(fs::exists(dir.path() / "sarus" / "leftover.json"));
}

// A record left by a kill -9 names a pid that a later sarus may get: the
// start time tells them apart, so `sarus kill` never signals that one.
TEST_F(ContainerRegistryTest, ARecordOfAnEarlierProcessWithTheSamePidIsStale) {
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    pid_t child = ::fork();
    if (child == 0) {
        ::prctl(PR_SET_NAME, "sarus");
        ssize_t ignored = ::write(ready[1], "r", 1);
        (void)ignored;
        ::pause();
        ::_exit(0);
    }
    char byte = 0;
    ASSERT_EQ(::read(ready[0], &byte, 1), 1);
    registry.add({"named", child, "/b", "2026-11-22T00:00:00.5Z"});
    auto listed = registry.list();
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0].pid, child);
    auto file = dir.path() / "sarus" / "named.json";
    auto json = sarus::readFile(file);
    auto at = json.find("\"startTime\":\"");
    ASSERT_NE(at, std::string::npos) << json;
    json.insert(at + 13, "1");  // another process's start time
    std::ofstream(file) << json;
    EXPECT_TRUE(registry.list().empty());
    EXPECT_THROW(registry.stop("named", std::chrono::milliseconds(10)), sarus::Error);
    EXPECT_EQ(::kill(child, 0), 0) << "the process of the same pid was signalled";
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    ::close(ready[0]);
    ::close(ready[1]);
}

// A kill -9 between writeFileAtomically's write and rename leaves its
// temporary file; nothing else would ever remove it.
TEST_F(ContainerRegistryTest, TheTemporaryFileOfAKilledWriterIsRemoved) {
    registry.add(container("kept"));  // makes the directory
    pid_t dead = ::fork();
    if (dead == 0) {
        ::_exit(0);
    }
    ::waitpid(dead, nullptr, 0);
    auto left = dir.path() / "sarus" / ("sarus-container-x.json.tmp-" + std::to_string(dead));
    auto ours = dir.path() / "sarus" / ("sarus-container-y.json.tmp-" + std::to_string(::getpid()));
    std::ofstream(left) << "{";
    std::ofstream(ours) << "{";
    registry.list();
    EXPECT_FALSE(fs::exists(left));
    EXPECT_TRUE(fs::exists(ours));  // its writer may still rename it
}

