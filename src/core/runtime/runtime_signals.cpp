#include "runtime/runtime_signals.hpp"

#include "runtime/entrypoint_prefetch.hpp"
#include "runtime/hooks_output_relay.hpp"
#include "runtime/terminal_relay.hpp"

#include "common/error.hpp"
#include "common/file_descriptor.hpp"
#include "common/log.hpp"
#include "common/process.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <poll.h>
#include <sstream>
#include <string>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

namespace sarus {

namespace {

bool endsAProcessByDefault(int sig) {
    switch (sig) {
        case SIGHUP: case SIGINT: case SIGQUIT: case SIGABRT: case SIGUSR1: case SIGUSR2: case SIGALRM:
        case SIGTERM: case SIGSTKFLT: case SIGXCPU: case SIGXFSZ: case SIGVTALRM: case SIGPROF: case SIGIO:
        case SIGPWR:
            return true;
        default:
            return false;
    }
}

// The runtime's first child: the container's process (crun and runc stay
// its parent while `run` waits for it), or a hook the runtime runs, which
// is no PID 1 of a namespace.
pid_t containerProcessOf(pid_t runtime) {
    auto children = childrenOf(runtime);
    return children.empty() ? 0 : children.front();
}

unsigned long long signalMask(const std::string& line) {
    return std::strtoull(line.c_str() + line.find(':') + 1, nullptr, 16);
}

}  // namespace

bool droppedAsNamespaceInit(pid_t pid, int sig) {
    std::istringstream status(readProcessFile(pid, "status"));
    unsigned long long dealtWith = 0;
    bool namespaceInit = false;
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("SigIgn:", 0) == 0 || line.rfind("SigCgt:", 0) == 0) {
            dealtWith |= signalMask(line);
        } else if (line.rfind("NSpid:", 0) == 0) {
            // its number in each PID namespace, the innermost last
            namespaceInit = line.substr(line.find_last_of(" \t") + 1) == "1";
        }
    }
    // A process that is gone (or unreadable) reads as no init.
    return namespaceInit && (dealtWith & (1ULL << (sig - 1))) == 0;
}

namespace {

// The container's first process, once the runtime wrote its pid: a
// descriptor readable once it ended, or -1 while there is no pid yet.
class FirstProcessWatch {
public:
    explicit FirstProcessWatch(std::string pidFile) : pidFile_(std::move(pidFile)) {}
    int fd() {
        if (exited_.get() < 0 && !gone_) {
            std::ifstream in(pidFile_);
            pid_t pid = 0;
            if (in >> pid && pid > 0) {
                exited_ = FileDescriptor(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
                gone_ = exited_.get() < 0;  // ended before we looked
            }
        }
        return exited_.get();
    }
    bool gone() const { return gone_; }

private:
    std::string pidFile_;
    FileDescriptor exited_;
    bool gone_ = false;
};

}  // namespace

int waitRelayingSignals(pid_t runtime, TerminalRelay* terminal, HooksOutputRelay* hooksOutput,
                        EntrypointPrefetch* prefetch, const std::string& firstProcessPidFile, int callerAliveFd) {
    sigset_t relayed = forwardedSignalSet(), previous;
    ::sigprocmask(SIG_BLOCK, &relayed, &previous);
    FileDescriptor signals(::signalfd(-1, &relayed, SFD_CLOEXEC | SFD_NONBLOCK));
    FileDescriptor exited(static_cast<int>(::syscall(SYS_pidfd_open, runtime, 0)));
    if (signals.get() < 0 || exited.get() < 0) {
        ::sigprocmask(SIG_SETMASK, &previous, nullptr);
        throw systemError("cannot watch the runtime's signals", errno);
    }
    int substituted = 0;
    // A signal that would have ended the container's process, had it not
    // been PID 1, ends it.
    auto endIfIgnoredByPid1 = [&](int sig, bool onlyInForeground) {
        pid_t container = containerProcessOf(runtime);
        if (!endsAProcessByDefault(sig) || container <= 0 || !droppedAsNamespaceInit(container, sig) ||
            (onlyInForeground && ::getpgid(container) != terminal->foregroundGroup())) {
            return;
        }
        auto stillTheRuntimesChild = [runtime](pid_t pid) { return isChildOf(pid, runtime); };
        if (signalPinnedProcess(container, SIGKILL, stillTheRuntimesChild)) {
            substituted = sig;
        }
    };
    std::vector<pollfd> watched;
    bool hostPid = !firstProcessPidFile.empty();
    FirstProcessWatch first(firstProcessPidFile);
    bool firstEnded = false;
    for (bool running = true; running;) {
        int firstFd = hostPid && !firstEnded ? first.fd() : -1;
        firstEnded = firstEnded || (hostPid && first.gone());
        int timeout = -1;
        if (hostPid && firstEnded) {
            killChildrenInOtherSessions(runtime);  // and those they leave to the runtime
            timeout = 50;
        } else if (hostPid && firstFd < 0) {
            timeout = 20;  // the runtime has not made it yet
        }
        watched = {{signals.get(), POLLIN, 0}, {exited.get(), POLLIN, 0}, {firstFd, POLLIN, 0},
                   {callerAliveFd, POLLIN, 0}};
        bool prefetching = prefetch && prefetch->exitFd() >= 0;
        if (prefetching) {
            watched.push_back({prefetch->exitFd(), POLLIN, 0});
        }
        if (terminal) {
            terminal->watch(watched);
        }
        if (hooksOutput) {
            hooksOutput->watch(watched);
        }
        if (::poll(watched.data(), watched.size(), timeout) < 0) {
            if (errno == EINTR) {
                continue;  // nothing is lost: the signals wait in the descriptor
            }
            break;  // then waits for the runtime without relaying
        }
        signalfd_siginfo info{};
        while (::read(signals.get(), &info, sizeof info) == sizeof info) {
            int sig = static_cast<int>(info.ssi_signo);
            if (terminal && sig == SIGWINCH) {
                terminal->resize();  // the container's terminal tells its programs
                continue;
            }
            ::kill(runtime, sig);
            endIfIgnoredByPid1(sig, false);
        }
        running = !(watched[1].revents & POLLIN);
        firstEnded = firstEnded || (watched[2].revents & POLLIN);
        if (watched[3].revents) {
            log::debug("sarus is gone: ending the container");
            ::kill(runtime, SIGKILL);  // not yet reaped: still our child
            callerAliveFd = -1;
        }
        if (prefetching && (watched[4].revents & POLLIN)) {
            prefetch->reapIfDone();
        }
        if (terminal) {
            if (int typed = terminal->serve(watched)) {
                endIfIgnoredByPid1(typed, true);
            }
        }
        if (hooksOutput) {
            hooksOutput->serve(watched);
        }
    }
    if (hooksOutput) {
        hooksOutput->drain();
    }
    if (terminal) {
        terminal->drain();
    }
    ::sigprocmask(SIG_SETMASK, &previous, nullptr);
    int code = waitForExit(runtime);
    return substituted && code == 128 + SIGKILL ? 128 + substituted : code;
}

}  // namespace sarus
