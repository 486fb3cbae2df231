// Ctrl-C, SIGTERM and SIGHUP turned into a flag that long operations poll
// (transfers, waits for data, prompts), so they unwind normally and every
// RAII guard removes what it created. Signals are blocked in all threads and
// taken by one watcher thread with sigtimedwait: no async-signal-unsafe work
// ever runs in a handler.
#pragma once

#include <atomic>
#include <csignal>
#include <thread>

namespace sarus::cancellation {

bool requested();
// Throws sarus::Error("interrupted by SIGINT") once a signal arrived.
void throwIfRequested();

class SignalWatcher {
public:
    // Must be created before any other thread so they inherit the mask.
    SignalWatcher();
    ~SignalWatcher();
    SignalWatcher(const SignalWatcher&) = delete;
    SignalWatcher& operator=(const SignalWatcher&) = delete;

private:
    sigset_t watched_{};
    sigset_t previous_{};
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace sarus::cancellation
