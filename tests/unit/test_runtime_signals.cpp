#include "runtime/runtime_signals.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

void onUsr2(int) {}

// Ignores SIGUSR1, handles SIGUSR2, leaves SIGTERM alone, then says so on ready.
[[noreturn]] void waitWithKnownDispositions(int ready) {
    ::signal(SIGUSR1, SIG_IGN);
    ::signal(SIGUSR2, onUsr2);
    ::signal(SIGTERM, SIG_DFL);
    (void)!::write(ready, "r", 1);
    for (;;) {
        ::pause();
    }
}

struct Child {
    pid_t pid = -1;     // the process whose dispositions are known
    pid_t parent = -1;  // what to wait for
};

// A process with those dispositions; with namespaceInit, PID 1 of a new PID
// namespace (in a user namespace of its own, so that no privilege is needed).
Child start(bool namespaceInit) {
    int ready[2], pid[2];
    EXPECT_EQ(::pipe(ready), 0);
    EXPECT_EQ(::pipe(pid), 0);
    Child child;
    child.parent = ::fork();
    if (child.parent == 0) {
        if (!namespaceInit) {
            waitWithKnownDispositions(ready[1]);
        }
        if (::unshare(CLONE_NEWUSER | CLONE_NEWPID) != 0) {
            ::_exit(1);
        }
        pid_t init = ::fork();
        if (init == 0) {
            waitWithKnownDispositions(ready[1]);
        }
        (void)!::write(pid[1], &init, sizeof init);
        ::waitpid(init, nullptr, 0);
        ::_exit(0);
    }
    ::close(ready[1]);
    ::close(pid[1]);
    char c;
    EXPECT_EQ(::read(ready[0], &c, 1), 1);
    child.pid = child.parent;
    if (namespaceInit) {
        EXPECT_EQ(::read(pid[0], &child.pid, sizeof child.pid), static_cast<ssize_t>(sizeof child.pid));
    }
    ::close(ready[0]);
    ::close(pid[0]);
    return child;
}

void stop(const Child& child) {
    ::kill(child.pid, SIGKILL);
    ::waitpid(child.parent, nullptr, 0);
}

TEST(RuntimeSignals, ANamespaceInitDropsTheSignalsItNeitherHandlesNorIgnores) {
    auto init = start(true);
    EXPECT_TRUE(sarus::droppedAsNamespaceInit(init.pid, SIGTERM));
    EXPECT_TRUE(sarus::droppedAsNamespaceInit(init.pid, SIGHUP));
    EXPECT_FALSE(sarus::droppedAsNamespaceInit(init.pid, SIGUSR1));  // ignored: as by any process
    EXPECT_FALSE(sarus::droppedAsNamespaceInit(init.pid, SIGUSR2));  // handled: delivered
    stop(init);
}

TEST(RuntimeSignals, AnyOtherProcessGetsItsSignals) {
    auto ordinary = start(false);
    EXPECT_FALSE(sarus::droppedAsNamespaceInit(ordinary.pid, SIGTERM));
    stop(ordinary);
    EXPECT_FALSE(sarus::droppedAsNamespaceInit(ordinary.pid, SIGTERM));  // gone
}

}  // namespace
