// Leveled logging of the hooks to stderr: "[hook] [INFO] message". The level
// is info unless HOOK_LOG_LEVEL (error, warn, info, debug) says otherwise;
// the runtime shows stderr of a failing hook, so errors reach the user.
#pragma once

#include <string>

namespace hook::log {

enum class Level { error = 0, warn = 1, info = 2, debug = 3 };

void setLevelFromEnvironment();
void write(Level level, const std::string& message);

inline void error(const std::string& m) { write(Level::error, m); }
inline void warn(const std::string& m) { write(Level::warn, m); }
inline void info(const std::string& m) { write(Level::info, m); }
inline void debug(const std::string& m) { write(Level::debug, m); }

}  // namespace hook::log
