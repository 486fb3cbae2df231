#include "hook_log.hpp"

#include <cstdio>
#include <cstdlib>
#include <strings.h>

namespace hook::log {

namespace {

Level current = Level::info;

const char* name(Level level) {
    switch (level) {
    case Level::error: return "ERROR";
    case Level::warn: return "WARN";
    case Level::info: return "INFO";
    case Level::debug: return "DEBUG";
    }
    return "?";
}

}  // namespace

void setLevelByName(const char* value) {
    for (auto level : {Level::error, Level::warn, Level::info, Level::debug}) {
        if (::strcasecmp(value, name(level)) == 0) {
            current = level;
        }
    }
}

void setLevelFromEnvironment() {
    if (const char* value = std::getenv("HOOK_LOG_LEVEL")) {
        setLevelByName(value);
    }
}

void setLevelFromAnnotations(const std::map<std::string, std::string>& annotations) {
    auto it = annotations.find("com.hooks.logging.level");
    if (it != annotations.end() && std::getenv("HOOK_LOG_LEVEL") == nullptr) {
        setLevelByName(it->second.c_str());
    }
}

bool enabled(Level level) {
    return level <= current;
}

void write(Level level, const std::string& message) {
    if (level <= current) {
        // one fprintf per line so lines of hooks running side by side do not mix
        std::fprintf(stderr, "[hook] [%s] %s\n", name(level), message.c_str());
    }
}

}  // namespace hook::log
