#include "hook_log.hpp"

#include "common/log_line.hpp"

#include <cstdio>
#include <cstdlib>
#include <strings.h>

namespace hook::log {

namespace {

Level current = Level::info;
std::string subsystem = "hook";

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

// A name (error, warn, info, debug), or Sarus's number: its LogLevel
// enumeration, 0 DEBUG, 1 INFO, 2 WARN, 3 ERROR, 4 GENERAL (only what is
// always shown: errors here), as its documentation tells users to set it.
void setLevelByName(const char* value) {
    static const Level sarusLevels[] = {Level::debug, Level::info, Level::warn, Level::error, Level::error};
    if (value[0] >= '0' && value[0] <= '4' && value[1] == '\0') {
        current = sarusLevels[value[0] - '0'];
        return;
    }
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

void setSubsystem(const std::string& name) {
    subsystem = name;
}

bool enabled(Level level) {
    return level <= current;
}

void write(Level level, const std::string& message) {
    if (level <= current) {
        // one fputs per line so lines of hooks running side by side do not mix
        std::fputs(sarus::log::sarusLogLine(subsystem, name(level), message).c_str(), stderr);
    }
}

}  // namespace hook::log
