// Ctrl-C, SIGTERM and SIGHUP turned into a flag that long operations poll
// (transfers, waits for data, prompts), so they unwind normally and every
// RAII guard removes what it created. Signals are blocked in all threads and
// read by one watcher thread from a signalfd: no async-signal-unsafe work
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
    void close();

    sigset_t watched_{};
    sigset_t previous_{};
    int signalFd_ = -1;
    int stopFd_ = -1;  // eventfd that ends the watcher at once
    std::thread thread_;
};

}  // namespace sarus::cancellation
