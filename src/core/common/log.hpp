// Diagnostics, at a level chosen once by --verbose/--debug, in Sarus's line
// format (common/log_line.hpp) with Sarus's levels: --verbose shows INFO,
// --debug DEBUG, warnings always. All of them go to stderr, so the
// container's stdout stays the program's alone. User-facing results (tables,
// "created" lines) are printed to stdout by the commands themselves.
#pragma once

#include <source_location>
#include <string>

namespace sarus::log {

enum class Level { error = 0, warn = 1, info = 2, verbose = 3, debug = 4 };

void setLevel(Level level);
Level level();
bool enabled(Level level);
// The subsystem of the line (CLI, Config, ImageStore, Registry, Runtime) is
// the part of sarus the calling file belongs to.
void write(Level level, const std::string& message, const std::source_location& where);

inline void warn(const std::string& m, const std::source_location& w = std::source_location::current()) {
    write(Level::warn, m, w);
}
inline void verbose(const std::string& m, const std::source_location& w = std::source_location::current()) {
    write(Level::verbose, m, w);
}
inline void debug(const std::string& m, const std::source_location& w = std::source_location::current()) {
    write(Level::debug, m, w);
}

// The subsystem named in lines written from this source file.
const char* subsystemOf(const char* sourceFile);

}  // namespace sarus::log
