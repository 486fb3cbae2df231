// A rank decides from a failed connect whether its group's leader is gone
// (it then deletes the group's generation and leads a new container): only
// "nobody listens" may say so.
#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "common/unix_socket.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

class UnixSocket : public ::testing::Test {
protected:
    sarus::TempDirectory temp{fs::temp_directory_path(), "test-unix-socket"};
    const fs::path directory = temp.path();
};

}  // namespace

TEST_F(UnixSocket, AListenerIsReached) {
    auto listener = sarus::listenOnUnixSocket(directory / "s");
    auto connection = sarus::connectUnlessNobodyListens(directory / "s");
    ASSERT_TRUE(connection);
    EXPECT_GE(connection->get(), 0);
}

TEST_F(UnixSocket, NoSocketOrNoListenerMeansNobodyListens) {
    EXPECT_FALSE(sarus::connectUnlessNobodyListens(directory / "never-made"));
    {
        auto listener = sarus::listenOnUnixSocket(directory / "s");
    }  // the socket file stays, nobody listens: connection refused
    ASSERT_TRUE(fs::exists(directory / "s"));
    EXPECT_FALSE(sarus::connectUnlessNobodyListens(directory / "s"));
}

// Out of descriptors, the rank cannot tell: it must not take the leader for dead.
TEST_F(UnixSocket, OutOfDescriptorsIsAnErrorNotAGoneListener) {
    auto listener = sarus::listenOnUnixSocket(directory / "s");
    pid_t child = ::fork();
    if (child == 0) {
        int lowest = ::dup(0);  // the next descriptor: the limit ends just below it
        ::close(lowest);
        struct rlimit limit {static_cast<rlim_t>(lowest), static_cast<rlim_t>(lowest)};
        ::setrlimit(RLIMIT_NOFILE, &limit);
        try {
            auto connection = sarus::connectUnlessNobodyListens(directory / "s");
            ::_exit(connection ? 1 : 2);  // 2: taken for a gone listener
        } catch (const sarus::Error&) {
            ::_exit(0);
        }
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "exit " << WEXITSTATUS(status);
}
