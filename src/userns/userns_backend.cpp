#include "userns_backend.hpp"

#include "error.hpp"
#include "file_utils.hpp"
#include "log.hpp"
#include "process.hpp"
#include "sandbox.hpp"

#include <cerrno>
#include <csignal>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace sarus::userns {

namespace {

std::string requiredTool(const Config& config, const std::string& key, const std::string& fallback,
                         const std::string& package) {
    auto path = config.stringOr(key, fallback);
    if (::access(path.c_str(), X_OK) != 0) {
        throw Error("userns mode needs " + path + " (" + key + " in " + config.file().string() +
                    "; Debian package " + package + "): " + std::strerror(errno));
    }
    return path;
}

OverlayType overlayType(const Config& config) {
    auto type = config.stringOr("overlayType", "auto");
    return type == "kernel" ? OverlayType::kernel : type == "fuse" ? OverlayType::fuse : OverlayType::automatic;
}

std::string readOrEmpty(const std::string& path) {
    try {
        return readFile(path);
    } catch (const Error&) {
        return "";
    }
}

// User mount sources are checked as the caller, before any namespace
// exists: a user can only mount what the user can reach.
void checkMountSources(const ContainerSpec& spec) {
    for (const auto& mount : spec.userMounts) {
        struct stat st {};
        if (::stat(mount.source.c_str(), &st) != 0) {
            throw systemError("mount source '" + mount.source + "'", errno);
        }
    }
    for (const auto& device : spec.devices) {
        struct stat st {};
        if (::stat(device.source.c_str(), &st) != 0) {
            throw systemError("device '" + device.source + "'", errno);
        }
        if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) {
            throw Error("device '" + device.source + "' is not a character or block device");
        }
    }
}

SandboxPlan makePlan(const Config& config, const ContainerSpec& spec, const StoredImage& image) {
    SandboxPlan plan;
    plan.spec = spec;
    plan.imageFile = image.imageFile;
    plan.bundleDir = config.stringOr("OCIBundleDir", "");
    plan.ramFilesystemType = config.stringOr("ramFilesystemType", "tmpfs");
    plan.crunPath = requiredTool(config, "crunPath", "/usr/bin/crun", "crun");
    plan.squashfusePath = requiredTool(config, "squashfusePath", "/usr/bin/squashfuse_ll", "squashfuse");
    plan.fuseOverlayfsPath = config.stringOr("fuseOverlayfsPath", "/usr/bin/fuse-overlayfs");
    plan.overlay = overlayType(config);
    if (plan.overlay == OverlayType::fuse) {
        requiredTool(config, "fuseOverlayfsPath", "/usr/bin/fuse-overlayfs", "fuse-overlayfs");
    }
    if (spec.init) {
        plan.initPath = requiredTool(config, "initPath", "/usr/bin/tini-static", "tini");
    }
    struct stat st {};
    if (plan.bundleDir.empty() || ::stat(plan.bundleDir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        throw Error("OCIBundleDir '" + plan.bundleDir.string() + "' in " + config.file().string() +
                    " is not an existing directory");
    }
    plan.userMountRules = userMountRestrictions(config.json());
    plan.callerGroups = callerGroups(spec.identity);
    plan.containerName = spec.name;
    plan.hostsFile = readOrEmpty("/etc/hosts");
    plan.resolvConf = readOrEmpty("/etc/resolv.conf");

    auto subuid = findSubordinateRange("/etc/subuid", spec.identity.userName, spec.identity.uid);
    auto subgid = findSubordinateRange("/etc/subgid", spec.identity.userName, spec.identity.uid);
    plan.ids = planIdMapping(spec.identity, subuid, subgid);
    if (!plan.ids.keepId) {
        log::verbose("no subordinate id range for " + spec.identity.userName +
                     " in /etc/subuid and /etc/subgid: using a single-id map (files of other owners "
                     "in the image appear as nobody)");
    } else {
        log::verbose("id map: keep-id with subordinate ranges from /etc/subuid and /etc/subgid");
    }
    return plan;
}

// clone(2) without a new stack behaves like fork(2) but can create the
// namespaces at once, which makes the sandbox PID 1 of its own namespace.
pid_t cloneSandbox(bool newPidNamespace) {
    unsigned long flags = CLONE_NEWUSER | CLONE_NEWNS | SIGCHLD;
    if (newPidNamespace) {
        flags |= CLONE_NEWPID;
    }
    auto pid = static_cast<pid_t>(::syscall(SYS_clone, flags, nullptr, nullptr, nullptr, 0));
    if (pid < 0) {
        int err = errno;
        throw Error(std::string("cannot create a user namespace: ") + std::strerror(err) +
                    (err == EPERM || err == ENOSPC || err == EINVAL
                         ? " (are unprivileged user namespaces enabled? see user.max_user_namespaces "
                           "and kernel.unprivileged_userns_clone)"
                         : ""));
    }
    return pid;
}

std::string readAll(int fd) {
    std::string text;
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(fd, buffer, sizeof buffer)) > 0) {
        text.append(buffer, static_cast<std::size_t>(n));
    }
    return text;
}

}  // namespace

int UsernsBackend::run(const ContainerSpec& spec, const StoredImage& image) {
    checkMountSources(spec);
    auto plan = makePlan(config_, spec, image);
    IdMappingTools tools;
    tools.newuidmap = config_.stringOr("newuidmapPath", tools.newuidmap);
    tools.newgidmap = config_.stringOr("newgidmapPath", tools.newgidmap);

    int go[2], status[2];
    makePipe(go);
    makePipe(status);
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t sandbox = cloneSandbox(!spec.pidHost);
    if (sandbox == 0) {
        ::close(go[1]);
        ::close(status[0]);
        runSandbox(plan, go[0], status[1]);
    }
    ::close(go[0]);
    ::close(status[1]);
    try {
        applyIdMapping(sandbox, plan.ids, tools);
    } catch (...) {
        ::kill(sandbox, SIGKILL);
        waitForExit(sandbox);
        throw;
    }
    forwardSignalsTo(sandbox);
    if (::write(go[1], "g", 1) != 1) {
        throw systemError("cannot start the container sandbox", errno);
    }
    // go[1] stays open until we exit: the sandbox sees it close if we die.
    int code = waitForExit(sandbox);
    ::close(go[1]);
    auto failure = readAll(status[0]);
    ::close(status[0]);
    if (!failure.empty()) {
        throw Error(failure);
    }
    return code;
}

}  // namespace sarus::userns
