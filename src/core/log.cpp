#include "log.hpp"

#include <cstdio>

namespace sarus::log {

namespace {
Level currentLevel = Level::info;

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
    std::fprintf(stderr, "%s%s\n", prefix(l), message.c_str());
}

}  // namespace sarus::log
