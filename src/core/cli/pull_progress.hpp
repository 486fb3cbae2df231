// What `sarus pull` shows while it works. On a terminal: one line per layer,
// redrawn in place a few times per second (state, bytes done/total, rate), as
// docker and podman do. Otherwise (logs, batch jobs): one plain line per
// layer when it is in, nothing redrawn.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sarus {

class PullProgress {
public:
    struct Layer {
        std::string digest;
        std::uint64_t size = 0;
    };

    // interactive: redraw lines in place (stdout is a terminal).
    PullProgress(std::vector<Layer> layers, bool interactive);
    ~PullProgress();
    PullProgress(const PullProgress&) = delete;
    PullProgress& operator=(const PullProgress&) = delete;

    // Called from download threads.
    void cached(std::size_t layer);
    void downloading(std::size_t layer);
    void bytes(std::size_t layer, std::uint64_t done);
    void downloaded(std::size_t layer);
    // Called from the flattening thread.
    void flattening(std::size_t layer);
    void flattened(std::size_t layer);
    // Last redraw; the layer lines stay on screen.
    void stop();

    std::uint64_t bytesDownloaded() const;
    std::size_t layersFromCache() const;

    // Whether stdout is a terminal that understands cursor movement.
    static bool stdoutIsInteractive();

private:
    enum class State { waiting, cached, downloading, downloaded };
    struct Entry {
        Layer layer;
        std::atomic<State> state{State::waiting};
        std::atomic<std::uint64_t> done{0};
        std::atomic<bool> flattening{false};
        std::atomic<bool> flattened{false};
        std::chrono::steady_clock::time_point started;
        std::chrono::steady_clock::time_point finished;
    };

    std::string line(const Entry& entry) const;
    void redraw(bool first);
    void print(const std::string& text);

    std::vector<Entry> entries_;
    bool interactive_;
    std::mutex mutex_;  // stdout and timestamps
    std::condition_variable wake_;
    bool stopping_ = false;
    bool drawn_ = false;
    std::thread painter_;
};

}  // namespace sarus
