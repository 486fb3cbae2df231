// Diagnostics go to stderr, with a level chosen once by --verbose/--debug.
// User-facing results (tables, "created" lines) are printed to stdout by the
// commands themselves, not through this.
#pragma once

#include <sstream>
#include <string>

namespace sarus::log {

enum class Level { error = 0, warn = 1, info = 2, verbose = 3, debug = 4 };

void setLevel(Level level);
Level level();
bool enabled(Level level);
void write(Level level, const std::string& message);

inline void warn(const std::string& m) { write(Level::warn, m); }
inline void info(const std::string& m) { write(Level::info, m); }
inline void verbose(const std::string& m) { write(Level::verbose, m); }
inline void debug(const std::string& m) { write(Level::debug, m); }

}  // namespace sarus::log
