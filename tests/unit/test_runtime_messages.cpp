#include "common/file_utils.hpp"
#include "runtime/runtime_messages.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace fs = std::filesystem;

namespace {

// Messages as crun 1.8 writes them to its --log file.
const char* notFound = "executable file `nonexistent` not found in $PATH: No such file or directory";
const char* absoluteNotFound = "executable file `/nonexistent/abs` not found in $PATH: No such file or directory";
const char* permissionDenied = "open executable: Permission denied";
const char* directory = "open executable: Operation not permitted";
const char* hybrid = "cgroups in hybrid mode not supported, drop all controllers from cgroupv2";

const char* hybridExplanation =
    "the OCI runtime refuses this host's hybrid cgroups (controllers left on the v2 side); "
    "as root, mount them in v1, e.g. 'mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o "
    "hugetlb cgroup /sys/fs/cgroup/hugetlb' (tools/prepare_host.sh does it)";

class RuntimeLogTest : public ::testing::Test {
protected:
    sarus::TempDirectory dir{fs::temp_directory_path(), "runtime-messages-test"};

    fs::path log(const std::string& content) {
        auto path = dir.path() / "crun.log";
        std::ofstream(path) << content;
        return path;
    }
};

}  // namespace

TEST(ExplainRuntimeError, HybridCgroupsAreExplained) {
    auto failure = sarus::explainRuntimeError(hybrid);
    EXPECT_EQ(failure.explanation, hybridExplanation);
    EXPECT_EQ(failure.exitCode, 0);
}

TEST(ExplainRuntimeError, ExecutableNotFoundIs127) {
    auto failure = sarus::explainRuntimeError(notFound);
    EXPECT_EQ(failure.exitCode, 127);
    EXPECT_EQ(failure.explanation, "");
}

TEST(ExplainRuntimeError, ExecutableNotFoundAlsoInRuncsWords) {
    EXPECT_EQ(sarus::explainRuntimeError(notFound).sarusLine,
              R"(level=error msg="exec: \"nonexistent\": executable file not found in $PATH")");
    const char* runc = R"(time="2024-01-01T00:00:00Z" level=error msg="runc create failed: unable to start )"
                       R"(container process: exec: \"x\": executable file not found in $PATH")";
    EXPECT_EQ(sarus::explainRuntimeError(runc).sarusLine, "");  // runc's own line says it already
    EXPECT_EQ(sarus::explainRuntimeError(runc).exitCode, 127);
}

TEST(ExplainRuntimeError, AbsoluteExecutableNotFoundIs127) {
    EXPECT_EQ(sarus::explainRuntimeError(absoluteNotFound).exitCode, 127);
}

TEST(ExplainRuntimeError, PermissionDeniedIs126) {
    auto failure = sarus::explainRuntimeError(permissionDenied);
    EXPECT_EQ(failure.exitCode, 126);
    EXPECT_EQ(failure.explanation, "");
}

TEST(ExplainRuntimeError, DirectoryAsCommandIs126) {
    // A shell gives 126 for a command it finds but cannot execute.
    EXPECT_EQ(sarus::explainRuntimeError(directory).exitCode, 126);
}

TEST(ExplainRuntimeError, PermissionDeniedUnrelatedToExecKeepsRuntimeCode) {
    auto failure = sarus::explainRuntimeError("mount `/proc` to `/proc`: Permission denied");
    EXPECT_EQ(failure.exitCode, 0);
    EXPECT_EQ(failure.explanation, "");
}

TEST(ExplainRuntimeError, OperationNotPermittedUnrelatedToExecKeepsRuntimeCode) {
    auto failure = sarus::explainRuntimeError("mount `shm` to `/dev/shm`: Operation not permitted");
    EXPECT_EQ(failure.exitCode, 0);
    EXPECT_EQ(failure.explanation, "");
}

TEST(ExplainRuntimeError, NotFoundWithoutExecutableFileKeepsRuntimeCode) {
    EXPECT_EQ(sarus::explainRuntimeError("open `/etc/x`: not found").exitCode, 0);
}

TEST(ExplainRuntimeError, OtherMessagesHaveNoExplanation) {
    auto failure = sarus::explainRuntimeError("pivot_root: Invalid argument");
    EXPECT_EQ(failure.explanation, "");
    EXPECT_EQ(failure.exitCode, 0);
}

TEST(ExplainRuntimeError, EmptyMessage) {
    auto failure = sarus::explainRuntimeError("");
    EXPECT_EQ(failure.explanation, "");
    EXPECT_EQ(failure.exitCode, 0);
}

TEST_F(RuntimeLogTest, LastLineDecides) {
    auto failure = sarus::runtimeFailure(log(std::string(hybrid) + "\n" + notFound + "\n"));
    EXPECT_EQ(failure.exitCode, 127);
    EXPECT_EQ(failure.explanation, "");
}

TEST_F(RuntimeLogTest, EarlierLinesAreIgnored) {
    auto failure = sarus::runtimeFailure(log(std::string(notFound) + "\nsomething else failed\n"));
    EXPECT_EQ(failure.exitCode, 0);
    EXPECT_EQ(failure.explanation, "");
}

TEST_F(RuntimeLogTest, TrailingEmptyLinesAreSkipped) {
    auto failure = sarus::runtimeFailure(log(std::string(permissionDenied) + "\n\n\n"));
    EXPECT_EQ(failure.exitCode, 126);
}

TEST_F(RuntimeLogTest, LastLineWithoutNewline) {
    auto failure = sarus::runtimeFailure(log(std::string("first\n") + hybrid));
    EXPECT_EQ(failure.explanation, hybridExplanation);
}

TEST_F(RuntimeLogTest, EmptyLog) {
    auto failure = sarus::runtimeFailure(log(""));
    EXPECT_EQ(failure.explanation, "");
    EXPECT_EQ(failure.exitCode, 0);
}

TEST_F(RuntimeLogTest, MissingLog) {
    auto failure = sarus::runtimeFailure(dir.path() / "absent.log");
    EXPECT_EQ(failure.explanation, "");
    EXPECT_EQ(failure.exitCode, 0);
}
