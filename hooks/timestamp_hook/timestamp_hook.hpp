// timestamp_hook: appends one timestamped line, to measure when each hook
// stage runs. Configured only through its own environment.
#pragma once

#include <ctime>
#include <string>
#include <sys/types.h>

namespace hook {

// "[<s.ns>] [<hostname>-<pid>] [hook] [INFO] Timestamp hook: <message>\n"
std::string timestampLine(const timespec& now, const std::string& hostname, pid_t pid, const std::string& message);

int runTimestampHook();

}  // namespace hook
