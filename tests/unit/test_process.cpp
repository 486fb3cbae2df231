#include "common/process.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <string>
#include <thread>
#include <cstdio>
#include <fcntl.h>
#include <sched.h>
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

// A process that ends between the open of its /proc file and the read makes
// the read fail with ESRCH; sarus reads such files while containers end.
TEST(ProcessStatus, FilesOfProcessesEndingWhileTheyAreReadReadAsGone) {
    std::atomic<pid_t> current{0};
    std::atomic<bool> done{false};
    std::atomic<long> reads{0};
    std::string thrown;
    std::thread reader([&] {
        while (!done) {
            pid_t pid = current;
            try {
                sarus::readProcessStatus(pid);
                sarus::childrenOf(pid);
                sarus::readProcessFile(pid, "status");
                ++reads;
            } catch (const std::exception& e) {
                thrown = e.what();
                return;
            }
        }
    });
    for (int i = 0; i < 1500 && thrown.empty(); ++i) {
        pid_t child = ::fork();
        if (child == 0) {
            ::_exit(0);
        }
        current = child;
        ::usleep(100);
        ::waitpid(child, nullptr, 0);
    }
    done = true;
    reader.join();
    EXPECT_EQ(thrown, "");
    EXPECT_GT(reads, 0);
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

namespace {

// Returns once the child has the default action for SIGTERM, not the
// handler of a forwarder it may have been forked from.
pid_t forkPausing() {
    int ready[2];
    if (::pipe(ready) != 0) {
        return -1;
    }
    pid_t pid = ::fork();
    if (pid == 0) {
        ::signal(SIGTERM, SIG_DFL);
        ::close(ready[1]);
        ::pause();
        ::_exit(0);
    }
    ::close(ready[1]);
    char none;
    (void)!::read(ready[0], &none, 1);  // EOF: the child's end closed
    ::close(ready[0]);
    return pid;
}

bool stillRunning(pid_t pid) {
    return ::waitpid(pid, nullptr, WNOHANG) == 0;
}

// In a PID namespace of its own, where only this code forks, ns_last_pid
// hands a pid that was just freed to the next child.
pid_t forkWithPid(pid_t wanted) {
    std::FILE* last = std::fopen("/proc/sys/kernel/ns_last_pid", "w");
    if (last == nullptr) {
        return -1;
    }
    std::fprintf(last, "%d", wanted - 1);
    std::fclose(last);
    return forkPausing();
}

// Runs body as PID 1 of a new PID namespace; its exit code is returned.
int inNewPidNamespace(int (*body)()) {
    pid_t outer = ::fork();
    if (outer == 0) {
        if (::unshare(CLONE_NEWPID) != 0) {
            ::_exit(100);
        }
        pid_t init = ::fork();
        if (init == 0) {
            ::_exit(body());
        }
        int status = 0;
        ::waitpid(init, &status, 0);
        ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 101);
    }
    int status = 0;
    ::waitpid(outer, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 102;
}

}  // namespace

TEST(IsChildOf, OnlyTheParentOfALiveChild) {
    pid_t child = forkPausing();
    EXPECT_TRUE(sarus::isChildOf(child, ::getpid()));
    EXPECT_FALSE(sarus::isChildOf(child, ::getppid()));
    EXPECT_FALSE(sarus::isChildOf(::getpid(), child));
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    EXPECT_FALSE(sarus::isChildOf(child, ::getpid()));
}

// A pidfd keeps naming its process: once that has been reaped, a signal
// through it reaches nobody, whoever has the pid now.
TEST(PinProcess, ASignalThroughThePidfdOfAReapedProcessReachesNobody) {
    pid_t child = forkPausing();
    auto pinned = sarus::pinProcess(child);
    ASSERT_GE(pinned.get(), 0);
    EXPECT_TRUE(sarus::signalPinned(pinned, 0));
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    EXPECT_FALSE(sarus::signalPinned(pinned, SIGKILL));
    EXPECT_LT(sarus::pinProcess(child).get(), 0);
}

TEST(SignalPinnedProcess, SignalsTheTargetWhileItIsStillTheTarget) {
    pid_t target = forkPausing();
    EXPECT_TRUE(sarus::signalPinnedProcess(target, SIGKILL, [](pid_t) { return true; }));
    int status = 0;
    ASSERT_EQ(::waitpid(target, &status, 0), target);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

TEST(SignalPinnedProcess, APidThatNoLongerNamesTheTargetIsNotSignalled) {
    pid_t other = forkPausing();
    EXPECT_FALSE(sarus::signalPinnedProcess(other, SIGKILL, [](pid_t) { return false; }));
    EXPECT_TRUE(stillRunning(other));
    ::kill(other, SIGKILL);
    ::waitpid(other, nullptr, 0);
}

// The race a root sweep loses with kill(): the target ends, and its pid goes
// to another process, between the check and the signal.
TEST(SignalPinnedProcess, AProcessThatGotThePidAfterTheCheckIsNotSignalled) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "a PID namespace and ns_last_pid need root";
    }
    int code = inNewPidNamespace([] {
        pid_t target = forkPausing();
        pid_t successor = -1;
        bool signalled = sarus::signalPinnedProcess(target, SIGKILL, [&](pid_t pid) {
            ::kill(pid, SIGKILL);  // the target ends after its check...
            ::waitpid(pid, nullptr, 0);
            successor = forkWithPid(pid);  // ...and another process gets its pid
            return true;
        });
        if (successor != target) {
            return 3;  // the pid was not reused: nothing shown
        }
        int code = signalled ? 1 : stillRunning(successor) ? 0 : 2;
        ::kill(successor, SIGKILL);
        return code;
    });
    EXPECT_EQ(code, 0) << "1: reported as signalled, 2: the successor was killed, 3: pid not reused, 10x: namespace";
}

// The supervisor forwards a signal that arrives after it has reaped the
// sandbox (while it removes the cgroups): it must not reach the process
// that got the sandbox's pid.
TEST(ForwardSignalsTo, ASignalAfterTheTargetIsReapedReachesNotItsSuccessor) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "a PID namespace and ns_last_pid need root";
    }
    int code = inNewPidNamespace([] {
        pid_t target = forkPausing();
        sarus::forwardSignalsTo(target);
        ::kill(target, SIGKILL);
        ::waitpid(target, nullptr, 0);
        pid_t successor = forkWithPid(target);
        if (successor != target) {
            return 3;
        }
        ::raise(SIGTERM);  // forwarded from the handler, before raise returns
        ::usleep(20000);
        int code = stillRunning(successor) ? 0 : 2;
        ::kill(successor, SIGKILL);
        return code;
    });
    EXPECT_EQ(code, 0) << "2: the successor got the signal, 3: pid not reused, 10x: namespace";
}

TEST(ForwardSignalsTo, ReachesTheLiveTarget) {
    pid_t forwarder = ::fork();
    if (forwarder == 0) {
        pid_t target = forkPausing();
        sarus::forwardSignalsTo(target);
        ::raise(SIGTERM);
        int status = 0;
        ::waitpid(target, &status, 0);
        ::_exit(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(forwarder, &status, 0), forwarder);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// The stream relay and the read-ahead helper, which root forks to act as
// the caller: they end with the caller's ids alone, no capability and no
// way back to root, and not dumpable (so not traceable by the caller)
// whatever fs.suid_dumpable says.
TEST(BecomeUntraceably, EndsAsTheUserAloneAndNotDumpable) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "changing ids needs root";
    }
    pid_t child = ::fork();
    if (child == 0) {
        gid_t groups[] = {4321};
        if (!sarus::becomeUntraceably(1234, 5678, groups, 1)) {
            _exit(1);
        }
        uid_t r, e, s;
        gid_t gr, ge, gs;
        if (::getresuid(&r, &e, &s) != 0 || ::getresgid(&gr, &ge, &gs) != 0 || r != 1234 || e != 1234 ||
            s != 1234 || gr != 5678 || ge != 5678 || gs != 5678) {
            _exit(2);
        }
        gid_t now[4];
        if (::getgroups(4, now) != 1 || now[0] != 4321) {
            _exit(3);
        }
        if (::prctl(PR_GET_DUMPABLE) != 0) {
            _exit(4);
        }
        std::FILE* status = std::fopen("/proc/self/status", "r");
        char line[256];
        bool noCapability = false;
        while (status && std::fgets(line, sizeof line, status)) {
            noCapability = noCapability || std::string(line) == "CapPrm:\t0000000000000000\n";
        }
        if (!noCapability || ::setresuid(0, 0, 0) == 0) {
            _exit(5);
        }
        _exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "1: failed, 2: ids, 3: groups, 4: dumpable, 5: root kept";
}
