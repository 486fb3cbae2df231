#include "namespaces.hpp"

#include "container_state.hpp"
#include "common/error.hpp"
#include "hook_log.hpp"

#include <cerrno>
#include <cstring>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <sched.h>
#include <string>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

namespace hook {

namespace {

struct Fd {
    int fd;
    explicit Fd(int f) : fd(f) {}
    ~Fd() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
};

std::string nsPath(pid_t pid, const char* type) {
    return procDir(pid) + "/ns/" + type;
}

bool sameNamespace(pid_t pid, const char* type) {
    struct stat mine {}, theirs {};
    if (::stat(("/proc/self/ns/" + std::string(type)).c_str(), &mine) != 0 ||
        ::stat(nsPath(pid, type).c_str(), &theirs) != 0) {
        return false;
    }
    return mine.st_ino == theirs.st_ino && mine.st_dev == theirs.st_dev;
}

void join(pid_t pid, const char* type, int nstype) {
    Fd ns(::open(nsPath(pid, type).c_str(), O_RDONLY | O_CLOEXEC));
    if (ns.fd < 0) {
        throw sarus::systemError("cannot open " + nsPath(pid, type), errno);
    }
    if (::setns(ns.fd, nstype) != 0) {
        throw sarus::systemError("cannot join " + nsPath(pid, type), errno);
    }
}

}  // namespace

// The initial user namespace maps the whole id range onto itself.
bool inInitialUserNamespace() {
    std::ifstream in("/proc/self/uid_map");
    unsigned long inside = 1, outside = 1, count = 0;
    in >> inside >> outside >> count;
    return inside == 0 && outside == 0 && count == 4294967295UL;
}

void enterMountNamespace(pid_t pid) {
    if (pid <= 0 || sameNamespace(pid, "mnt")) {
        log::debug("already in the container's mount namespace");
        return;
    }
    // Joining the container's user namespace first gives us its capabilities;
    // needed when the mount namespace belongs to it and we are not privileged
    // over it from outside.
    if (!sameNamespace(pid, "user") && ::geteuid() != 0) {
        log::debug("joining the user namespace of container process " + std::to_string(pid));
        join(pid, "user", CLONE_NEWUSER);
    }
    log::debug("joining the mount namespace of container process " + std::to_string(pid));
    join(pid, "mnt", CLONE_NEWNS);
}

bool enterPidNamespace(pid_t pid) {
    if (pid <= 0 || sameNamespace(pid, "pid")) {
        return true;
    }
    Fd ns(::open(nsPath(pid, "pid").c_str(), O_RDONLY | O_CLOEXEC));
    if (ns.fd < 0 || ::setns(ns.fd, CLONE_NEWPID) != 0) {
        log::warn("cannot join the PID namespace of container process " + std::to_string(pid) + ": " +
                  std::strerror(errno));
        return false;
    }
    return true;
}

bool isHostRoot() { return ::geteuid() == 0 && inInitialUserNamespace(); }

bool isRootless() {
    const char* value = std::getenv("HOOK_ROOTLESS");
    if (value != nullptr && ::strcasecmp(value, "true") == 0) {
        log::debug("HOOK_ROOTLESS=true: no identity switches, no cgroup writes");
        return true;
    }
    if (value != nullptr && ::strcasecmp(value, "false") != 0) {
        log::warn(std::string("HOOK_ROOTLESS='") + value + "' is neither true nor false: taken as false");
    }
    if (!isHostRoot()) {
        log::debug("rootless container (not root of the initial user namespace): "
                   "no identity switches, no cgroup writes");
        return true;
    }
    return false;
}

}  // namespace hook
