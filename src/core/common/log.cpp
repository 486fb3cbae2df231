#include "common/log.hpp"

#include <chrono>
#include <cstdio>

namespace sarus::log {

namespace {
Level currentLevel = Level::info;
// Debug lines carry the time since start: where a container start spends
// its milliseconds is what --debug is most often asked for.
const auto processStart = std::chrono::steady_clock::now();

const char* prefix(Level level) {
    switch (level) {
    case Level::error: return "error: ";
    case Level::warn: return "warning: ";
    case Level::verbose: return "[verbose] ";
    case Level::debug: return "[debug] ";
    default: return "";
    }
}
}  // namespace

void setLevel(Level level) { currentLevel = level; }
Level level() { return currentLevel; }
bool enabled(Level l) { return static_cast<int>(l) <= static_cast<int>(currentLevel); }

void write(Level l, const std::string& message) {
    if (!enabled(l)) {
        return;
    }
    // One fprintf per line keeps lines whole when several ranks share a terminal.
    if (l == Level::debug) {
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - processStart).count();
        std::fprintf(stderr, "[debug +%.1fms] %s\n", ms, message.c_str());
        return;
    }
    std::fprintf(stderr, "%s%s\n", prefix(l), message.c_str());
}

}  // namespace sarus::log
