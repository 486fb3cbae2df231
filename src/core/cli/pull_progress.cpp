#include "cli/pull_progress.hpp"

#include "common/file_utils.hpp"
#include "common/log.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace sarus {

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string shortDigest(const std::string& digest) {
    auto colon = digest.find(':');
    return digest.substr(colon + 1, 12);
}

std::string format(const char* pattern, double value) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, pattern, value);
    return buffer;
}

std::string rate(std::uint64_t bytes, double elapsed) {
    if (elapsed <= 0.01) {
        return "";
    }
    return humanReadableSize(static_cast<unsigned long long>(bytes / elapsed)) + "/s";
}

}  // namespace

bool PullProgress::stdoutIsInteractive() {
    const char* term = std::getenv("TERM");
    return ::isatty(STDOUT_FILENO) == 1 && term != nullptr && std::strcmp(term, "dumb") != 0;
}

PullProgress::PullProgress(std::vector<Layer> layers, bool interactive)
    : entries_(layers.size()), interactive_(interactive) {
    for (std::size_t i = 0; i < layers.size(); ++i) {
        entries_[i].layer = std::move(layers[i]);
    }
    if (interactive_) {
        redraw(true);
        painter_ = std::thread([this] {
            std::unique_lock lock(mutex_);
            while (!stopping_) {
                wake_.wait_for(lock, std::chrono::milliseconds(200));
                if (!stopping_) {
                    lock.unlock();
                    redraw(false);
                    lock.lock();
                }
            }
        });
    }
}

PullProgress::~PullProgress() { stop(); }

void PullProgress::stop() {
    {
        std::lock_guard lock(mutex_);
        if (stopping_) {
            return;
        }
        stopping_ = true;
    }
    wake_.notify_all();
    if (painter_.joinable()) {
        painter_.join();
        redraw(false);
    }
}

void PullProgress::print(const std::string& text) {
    std::lock_guard lock(mutex_);
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
}

void PullProgress::cached(std::size_t i) {
    auto& e = entries_[i];
    e.done = e.layer.size;
    e.state = State::cached;
    if (!interactive_) {
        print("> cached         : " + e.layer.digest + " (" + humanReadableSize(e.layer.size) + ")\n");
    }
}

void PullProgress::downloading(std::size_t i) {
    auto& e = entries_[i];
    {
        std::lock_guard lock(mutex_);
        e.started = Clock::now();
    }
    e.state = State::downloading;
    if (!interactive_ && log::enabled(log::Level::verbose)) {
        print("> pulling        : " + e.layer.digest + " (" + humanReadableSize(e.layer.size) + ")\n");
    }
}

void PullProgress::bytes(std::size_t i, std::uint64_t done) { entries_[i].done = done; }

void PullProgress::downloaded(std::size_t i) {
    auto& e = entries_[i];
    double elapsed;
    {
        std::lock_guard lock(mutex_);
        e.finished = Clock::now();
        elapsed = seconds(e.finished - e.started);
    }
    e.state = State::downloaded;
    if (!interactive_) {
        auto speed = rate(e.layer.size, elapsed);
        print("> downloaded     : " + e.layer.digest + " (" + humanReadableSize(e.layer.size) + " in " +
              format("%.1f", elapsed) + " s" + (speed.empty() ? "" : ", " + speed) + ")\n");
    }
}

void PullProgress::flattening(std::size_t i) { entries_[i].flattening = true; }

void PullProgress::flattened(std::size_t i) {
    entries_[i].flattened = true;
    if (!interactive_ && log::enabled(log::Level::verbose)) {
        print("> flattened      : " + entries_[i].layer.digest + "\n");
    }
}

std::uint64_t PullProgress::bytesDownloaded() const {
    std::uint64_t total = 0;
    for (const auto& e : entries_) {
        if (e.state != State::cached) {
            total += e.done;
        }
    }
    return total;
}

std::size_t PullProgress::layersFromCache() const {
    std::size_t n = 0;
    for (const auto& e : entries_) {
        n += e.state == State::cached ? 1 : 0;
    }
    return n;
}

std::string PullProgress::line(const Entry& e) const {
    auto total = humanReadableSize(e.layer.size);
    auto state = e.state.load();
    std::string status;
    if (state == State::waiting) {
        status = "Waiting";
    } else if (state == State::cached) {
        status = (e.flattened ? "Done  " : "Already cached  ") + total + (e.flattened ? " (cached)" : "");
    } else if (state == State::downloading) {
        auto done = e.done.load();
        auto speed = rate(done, seconds(Clock::now() - e.started));
        status = "Downloading  " + humanReadableSize(done) + " / " + total + (speed.empty() ? "" : "  " + speed);
    } else {
        double elapsed = seconds(e.finished - e.started);
        auto speed = rate(e.layer.size, elapsed);
        status = (e.flattened ? "Done  " : "Downloaded  ") + total + " in " + format("%.1f", elapsed) +
                 " s" + (speed.empty() ? "" : "  " + speed);
    }
    if (e.flattening && !e.flattened) {
        status += "  [flattening]";
    }
    return shortDigest(e.layer.digest) + ": " + status;
}

void PullProgress::redraw(bool first) {
    std::lock_guard lock(mutex_);
    std::string out;
    if (!first && drawn_) {
        out += "\x1b[" + std::to_string(entries_.size()) + "A";  // back to the first layer line
    }
    for (const auto& e : entries_) {
        out += "\r\x1b[2K" + line(e) + "\n";
    }
    drawn_ = true;
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
}

}  // namespace sarus
