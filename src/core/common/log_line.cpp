#include "common/log_line.hpp"

#include <cstdio>
#include <ctime>
#include <unistd.h>

namespace sarus::log {

namespace {

// Sarus's "instance id": the pid of the sarus process the user started,
// taken at start-up so that lines of its helpers (forked later, some of them
// PID 1 of a new PID namespace) name the same instance.
const pid_t instancePid = ::getpid();

// Looked up once: a line may be written after this process entered a UTS
// namespace, where the name would be the container's.
const std::string& hostname() {
    static const std::string name = [] {
        char buffer[256] = {};
        ::gethostname(buffer, sizeof buffer - 1);
        return std::string(buffer);
    }();
    return name;
}

}  // namespace

std::string instanceId() {
    return hostname() + "-" + std::to_string(instancePid);
}

std::string sarusLogLine(std::string_view subsystem, std::string_view level, std::string_view message) {
    timespec now {};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    char prefix[96];
    std::snprintf(prefix, sizeof prefix, "[%lld.%09ld] [", static_cast<long long>(now.tv_sec), now.tv_nsec);
    std::string line = prefix;
    line += instanceId();
    line += "] [";
    line += subsystem;
    line += "] [";
    line += level;
    line += "] ";
    line += message;
    line += '\n';
    return line;
}

}  // namespace sarus::log
