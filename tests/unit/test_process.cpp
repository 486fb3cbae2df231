#include "common/process.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

TEST(ProcessStatus, NamesThisProcessAndItsParent) {
    // a name with a space and a parenthesis, as /proc/PID/stat writes it unescaped
    char original[16] = {};
    ::prctl(PR_GET_NAME, original);
    ::prctl(PR_SET_NAME, "odd (name) x");
    auto status = sarus::readProcessStatus(::getpid());
    ::prctl(PR_SET_NAME, original);
    ASSERT_TRUE(status);
    EXPECT_EQ(status->name, "odd (name) x");
    EXPECT_EQ(status->parent, ::getppid());
    EXPECT_FALSE(status->startTime.empty());
    EXPECT_EQ(status->startTime.find_first_not_of("0123456789"), std::string::npos);
}

TEST(ProcessStatus, StartTimeTellsTwoProcessesApart) {
    auto self = sarus::readProcessStatus(::getpid());
    auto init = sarus::readProcessStatus(1);
    ASSERT_TRUE(self && init);
    EXPECT_LT(std::stoull(init->startTime), std::stoull(self->startTime));
}

TEST(ProcessStatus, NothingForAProcessThatIsGone) {
    pid_t child = ::fork();
    if (child == 0) {
        ::_exit(0);
    }
    ::waitpid(child, nullptr, 0);
    EXPECT_FALSE(sarus::readProcessStatus(child));
}

}  // namespace

TEST(CloseDescriptorsExcept, ClosesEveryOtherDescriptorAboveStderr) {
    int a = ::open("/dev/null", O_RDONLY);
    int b = ::open("/dev/null", O_RDONLY);
    int c = ::open("/dev/null", O_RDONLY);
    int high = ::fcntl(a, F_DUPFD, 900);
    ASSERT_GE(high, 900);
    pid_t child = ::fork();
    if (child == 0) {
        sarus::closeDescriptorsExcept({b, high, b, 1});
        bool open = ::fcntl(b, F_GETFD) >= 0 && ::fcntl(high, F_GETFD) >= 0 && ::fcntl(2, F_GETFD) >= 0;
        bool closed = ::fcntl(a, F_GETFD) < 0 && ::fcntl(c, F_GETFD) < 0 && ::fcntl(high - 1, F_GETFD) < 0;
        ::_exit(open && closed ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    for (int fd : {a, b, c, high}) {
        ::close(fd);
    }
}
