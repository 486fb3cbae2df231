// Diagnostics, at a level chosen once by --verbose/--debug, in Sarus's line
// format (common/log_line.hpp) with Sarus's levels: --verbose shows INFO,
// --debug DEBUG, warnings always. All of them go to stderr, so the
// container's stdout stays the program's alone. User-facing results (tables,
// "created" lines) are printed to stdout by the commands themselves.
#pragma once

#include <string>

namespace sarus::log {

enum class Level { error = 0, warn = 1, info = 2, verbose = 3, debug = 4 };

void setLevel(Level level);
Level level();
bool enabled(Level level);
// The subsystem of the line (CLI, Config, ImageStore, Registry, Runtime) is
// the part of sarus the calling source file belongs to. (__builtin_FILE
// rather than std::source_location: the fuzzers' clang 14 lacks the latter
// with this libstdc++.)
void write(Level level, const std::string& message, const char* sourceFile);

inline void warn(const std::string& m, const char* sourceFile = __builtin_FILE()) {
    write(Level::warn, m, sourceFile);
}
inline void verbose(const std::string& m, const char* sourceFile = __builtin_FILE()) {
    write(Level::verbose, m, sourceFile);
}
inline void debug(const std::string& m, const char* sourceFile = __builtin_FILE()) {
    write(Level::debug, m, sourceFile);
}

// The subsystem named in lines written from this source file.
const char* subsystemOf(const char* sourceFile);

}  // namespace sarus::log
