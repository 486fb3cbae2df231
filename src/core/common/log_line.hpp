// The line Sarus's logger writes:
//   [<monotonic seconds>.<nanoseconds>] [<hostname>-<pid of sarus>] [<subsystem>] [<LEVEL>] message
// Sites grep Sarus's output for these parts ([WARN], [DEBUG], [MPI hook]),
// and the monotonic time lets a reader of --debug see where a start spends
// its time by subtracting two lines.
#pragma once

#include <ctime>
#include <string>
#include <string_view>

namespace sarus::log {

// text with its control characters but newline and tab written as \xNN:
// messages carry what registries, images and archives say (an error body,
// a file name), and an escape sequence there would act on the terminal.
std::string printableText(std::string_view text);

// "<hostname>-<pid of sarus>": whom a line comes from, also for a helper
// program that writes its own lines.
const std::string& instanceId();

// The line, at the monotonic time now, from instanceId().
std::string sarusLogLine(std::string_view subsystem, std::string_view level, std::string_view message);

// The line with a given time and instance (the timestamp hook's line has the
// real time, for comparing lines of several nodes).
std::string formatLogLine(const timespec& time, std::string_view instance, std::string_view subsystem,
                          std::string_view level, std::string_view message);

}  // namespace sarus::log
