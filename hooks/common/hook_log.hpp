// Leveled logging of the hooks to stderr, in Sarus's line format with the
// hook's name as Sarus gives it ("[...] [MPI hook] [INFO] message"). The level
// is info unless HOOK_LOG_LEVEL (error, warn, info, debug) says otherwise;
// the runtime shows stderr of a failing hook, so errors reach the user.
#pragma once

#include <map>
#include <string>

namespace hook::log {

enum class Level { error = 0, warn = 1, info = 2, debug = 3 };

void setLevelFromEnvironment();
// com.hooks.logging.level (Sarus's 0-4, or error, warn, info, debug), set by
// sarus from --verbose/--debug; the admin's HOOK_LOG_LEVEL takes precedence.
void setLevelFromAnnotations(const std::map<std::string, std::string>& annotations);
// The hook's name in each line, as Sarus's hooks name themselves.
void setSubsystem(const std::string& name);
void write(Level level, const std::string& message);
bool enabled(Level level);

inline void error(const std::string& m) { write(Level::error, m); }
inline void warn(const std::string& m) { write(Level::warn, m); }
inline void info(const std::string& m) { write(Level::info, m); }
inline void debug(const std::string& m) { write(Level::debug, m); }

}  // namespace hook::log
