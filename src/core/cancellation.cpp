#include "cancellation.hpp"

#include "error.hpp"

#include <pthread.h>
#include <cstring>
#include <ctime>

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
    thread_ = std::thread([this] {
        const timespec tick{0, 100 * 1000 * 1000};
        while (!stop_.load()) {
            int sig = sigtimedwait(&watched_, nullptr, &tick);
            if (sig > 0) {
                int expected = 0;
                receivedSignal.compare_exchange_strong(expected, sig);
            }
        }
    });
}

SignalWatcher::~SignalWatcher() {
    stop_ = true;
    thread_.join();
    // A signal still pending would be delivered (and kill us) when unblocked:
    // it has been seen already, so it is consumed here.
    const timespec none{0, 0};
    while (sigtimedwait(&watched_, nullptr, &none) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
}

}  // namespace sarus::cancellation
