#include "timestamp_hook.hpp"

#include "hook_log.hpp"

#include "common/log_line.hpp"
#include "common/process.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <unistd.h>

namespace hook {

std::string timestampLine(const timespec& now, const std::string& hostname, pid_t pid, const std::string& message) {
    return sarus::log::formatLogLine(now, hostname + "-" + std::to_string(pid), "hook", "INFO",
                                     "Timestamp hook: " + message);
}

namespace {

// The runtime writes the container state to every hook's stdin. crun up to
// 1.8 (Debian's, which Podman and a standalone crun use) fails the container
// with "writing to pipe: Broken pipe" when a hook ends before that write.
void readTheStateToItsEnd() {
    if (::isatty(STDIN_FILENO)) {
        return;  // run by hand
    }
    char buffer[4096];
    for (;;) {
        auto n = ::read(STDIN_FILENO, buffer, sizeof buffer);
        if (n == 0 || (n < 0 && errno != EINTR)) {
            return;
        }
    }
}

}  // namespace

int runTimestampHook() {
    log::setSubsystem("Timestamp hook");
    timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    readTheStateToItsEnd();
    const char* message = std::getenv("TIMESTAMP_HOOK_MESSAGE");
    auto line = timestampLine(now, sarus::hostName(), ::getpid(), message == nullptr ? "" : message);
    // Only the hook's own environment (the admin's hook JSON) names the log
    // file: never the container's environment or annotations, which the user
    // controls (the original engine's hole).
    const char* logFile = std::getenv("TIMESTAMP_HOOK_LOGFILE");
    int fd = STDERR_FILENO;
    if (logFile != nullptr && *logFile != '\0') {
        if (*logFile != '/') {  // relative to whatever directory the runtime starts hooks in
            log::error(std::string("TIMESTAMP_HOOK_LOGFILE '") + logFile + "' is not an absolute path");
            return 1;
        }
        fd = ::open(logFile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0) {
            // A rootless engine's hook may not write the admin's log (the
            // template's /var/log): a timestamp is no reason to stop a job.
            log::warn(std::string("cannot open ") + logFile + ": " + std::strerror(errno) +
                      ": the timestamp goes to stderr");
            fd = STDERR_FILENO;
        }
    }
    // one write(2) with O_APPEND: lines of concurrent hooks never interleave
    bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    if (fd != STDERR_FILENO) {
        ::close(fd);
    }
    if (!ok) {
        log::error("cannot write the timestamp line");
        return 1;
    }
    return 0;
}

}  // namespace hook
