#include "common/cancellation.hpp"

#include "common/error.hpp"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

namespace sarus::cancellation {

namespace {
std::atomic<int> receivedSignal{0};
}

bool requested() { return receivedSignal.load(std::memory_order_relaxed) != 0; }

void throwIfRequested() {
    int sig = receivedSignal.load();
    if (sig != 0) {
        const char* name = sigabbrev_np(sig);
        throw Error(std::string("interrupted by SIG") + (name != nullptr ? name : std::to_string(sig).c_str()));
    }
}

SignalWatcher::SignalWatcher() {
    sigemptyset(&watched_);
    sigaddset(&watched_, SIGINT);
    sigaddset(&watched_, SIGTERM);
    sigaddset(&watched_, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &watched_, &previous_);
    signalFd_ = ::signalfd(-1, &watched_, SFD_CLOEXEC);
    stopFd_ = ::eventfd(0, EFD_CLOEXEC);
    if (signalFd_ < 0 || stopFd_ < 0) {
        int err = errno;
        close();
        throw systemError("cannot watch for signals", err);
    }
    thread_ = std::thread([this] {
        pollfd fds[2] = {{signalFd_, POLLIN, 0}, {stopFd_, POLLIN, 0}};
        while (true) {
            if (::poll(fds, 2, -1) < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return;
            }
            if (fds[1].revents != 0) {
                return;
            }
            signalfd_siginfo info{};
            if (::read(signalFd_, &info, sizeof info) == sizeof info) {
                int expected = 0;
                receivedSignal.compare_exchange_strong(expected, static_cast<int>(info.ssi_signo));
            }
        }
    });
}

void SignalWatcher::close() {
    if (signalFd_ >= 0) {
        ::close(signalFd_);
    }
    if (stopFd_ >= 0) {
        ::close(stopFd_);
    }
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
}

SignalWatcher::~SignalWatcher() {
    std::uint64_t one = 1;
    auto ignored = ::write(stopFd_, &one, sizeof one);
    (void)ignored;
    thread_.join();
    // A signal still pending would be delivered (and kill us) when unblocked:
    // it has been seen already, so it is consumed here.
    const timespec none{0, 0};
    while (sigtimedwait(&watched_, nullptr, &none) > 0) {
    }
    close();
}

}  // namespace sarus::cancellation
