#include "runtime/runtime_signals.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

namespace {

void onUsr2(int) {}

// A child that ignores SIGUSR1, handles SIGUSR2 and leaves SIGTERM alone.
pid_t startChild() {
    int ready[2];
    EXPECT_EQ(::pipe(ready), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::signal(SIGUSR1, SIG_IGN);
        ::signal(SIGUSR2, onUsr2);
        ::signal(SIGTERM, SIG_DFL);
        ::close(ready[0]);
        (void)!::write(ready[1], "r", 1);
        ::pause();
        ::_exit(0);
    }
    ::close(ready[1]);
    char c;
    EXPECT_EQ(::read(ready[0], &c, 1), 1);
    ::close(ready[0]);
    return pid;
}

TEST(RuntimeSignals, TheProcessStatusTellsWhichSignalsAreHandledOrIgnored) {
    pid_t child = startChild();
    EXPECT_TRUE(sarus::handlesOrIgnores(child, SIGUSR1));
    EXPECT_TRUE(sarus::handlesOrIgnores(child, SIGUSR2));
    EXPECT_FALSE(sarus::handlesOrIgnores(child, SIGTERM));
    EXPECT_FALSE(sarus::handlesOrIgnores(child, SIGHUP));
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
}

TEST(RuntimeSignals, AProcessThatIsGoneGetsNothingMore) {
    pid_t child = startChild();
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    EXPECT_TRUE(sarus::handlesOrIgnores(child, SIGTERM));
}

}  // namespace
