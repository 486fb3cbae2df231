#include "common/log.hpp"

#include "common/log_line.hpp"

#include <cstdio>
#include <cstring>

namespace sarus::log {

namespace {

Level currentLevel = Level::info;

const char* sarusLevelName(Level level) {
    switch (level) {
    case Level::error: return "ERROR";
    case Level::warn: return "WARN";
    case Level::verbose: return "INFO";
    case Level::debug: return "DEBUG";
    default: return "";
    }
}

}  // namespace

void setLevel(Level level) { currentLevel = level; }
Level level() { return currentLevel; }
bool enabled(Level l) { return static_cast<int>(l) <= static_cast<int>(currentLevel); }

const char* subsystemOf(const char* sourceFile) {
    static const struct {
        const char* directory;
        const char* subsystem;
    } subsystems[] = {
        {"/core/config/", "Config"},   {"/core/image/", "ImageStore"}, {"/core/registry/", "Registry"},
        {"/core/runtime/", "Runtime"}, {"/core/jobs/", "Runtime"},     {"/src/suid/", "Runtime"},
        {"/src/userns/", "Runtime"},
    };
    for (const auto& entry : subsystems) {
        if (std::strstr(sourceFile, entry.directory) != nullptr) {
            return entry.subsystem;
        }
    }
    return "CLI";
}

void write(Level l, const std::string& message, const char* sourceFile) {
    if (!enabled(l)) {
        return;
    }
    // One fputs per line keeps lines whole when several ranks share a terminal.
    std::fputs(sarusLogLine(subsystemOf(sourceFile), sarusLevelName(l), message).c_str(), stderr);
}

}  // namespace sarus::log
