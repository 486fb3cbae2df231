#include "common/log_line.hpp"

#include "common/process.hpp"

#include <cstdio>
#include <ctime>
#include <unistd.h>

namespace sarus::log {

namespace {

// Sarus's "instance id": the pid of the sarus process the user started,
// taken at start-up so that lines of its helpers (forked later, some of them
// PID 1 of a new PID namespace) name the same instance.
const pid_t instancePid = ::getpid();

}  // namespace

// Built once, by whichever process writes the first line: sarus and its
// helpers share the host's name (none of them enters a UTS namespace) and
// instancePid.
const std::string& instanceId() {
    static const std::string id = hostName() + "-" + std::to_string(instancePid);
    return id;
}

std::string printableText(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (unsigned char c : text) {
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
            char escaped[5];
            std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
            out += escaped;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::string formatLogLine(const timespec& time, std::string_view instance, std::string_view subsystem,
                          std::string_view level, std::string_view message) {
    char seconds[48];
    std::snprintf(seconds, sizeof seconds, "[%lld.%09ld] [", static_cast<long long>(time.tv_sec), time.tv_nsec);
    std::string line = seconds;
    line += instance;
    line += "] [";
    line += subsystem;
    line += "] [";
    line += level;
    line += "] ";
    line += printableText(message);
    line += '\n';
    return line;
}

std::string sarusLogLine(std::string_view subsystem, std::string_view level, std::string_view message) {
    timespec now {};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return formatLogLine(now, instanceId(), subsystem, level, message);
}

}  // namespace sarus::log
