#include "suid_backend.hpp"

#include "common/error.hpp"
#include "config/hooks_config.hpp"
#include "loop_keeper.hpp"
#include "common/log.hpp"
#include "common/process.hpp"
#include "runtime/mount_tree.hpp"
#include "privileges.hpp"
#include "security_checks.hpp"
#include "suid_sandbox.hpp"

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <grp.h>
#include <unistd.h>

namespace sarus::suid {

namespace {

// sarus forwards signals to the supervisor, as root, from the moment it
// exists; most of them end or stop a process by default. The supervisor
// starts with all of them held and lets them through once it forwards them
// in turn (superviseContainer), so none can end or stop root half-way.
pid_t cloneSupervisor() {
    sigset_t forwarded = forwardedSignalSet(), callerMask;
    ::sigprocmask(SIG_BLOCK, &forwarded, &callerMask);
    pid_t supervisor = -1;
    try {
        RootScope root;
        supervisor = cloneSandbox(0, "cannot start the container's supervisor");
    } catch (...) {
        ::sigprocmask(SIG_SETMASK, &callerMask, nullptr);
        throw;
    }
    if (supervisor != 0) {
        ::sigprocmask(SIG_SETMASK, &callerMask, nullptr);
    }
    return supervisor;
}

std::string trustedTool(const Config& config, const std::string& key, const std::string& fallback) {
    auto path = config.stringOr(key, fallback);
    if (::access(path.c_str(), X_OK) != 0) {
        throw systemError(key + " " + path + " in " + config.file().string(), errno);
    }
    return path;
}

// Everything the caller names is opened here, with the caller's effective
// ids (and so the caller's permissions): root later uses only these
// descriptors. Never a path from an annotation, a label or the environment.
FileDescriptor openAsCaller(const std::string& path, int flags, const std::string& what) {
    FileDescriptor fd(::open(path.c_str(), flags | O_CLOEXEC));
    if (fd.get() < 0) {
        throw systemError(what + " '" + path + "'", errno);
    }
    return fd;
}

// The caller opens the source with the caller's permissions; root then
// clones exactly that object into a detached mount tree, which the sandbox
// attaches inside the container. Root never resolves the caller's path.
FileDescriptor cloneMountAsCaller(const BindMount& mount) {
    // An O_PATH open does not check read permission on the path itself:
    // openMountSource checks it on the opened object.
    auto fd = openMountSource(mount);
    RootScope root;
    return cloneMountTree(fd.get(), "", "'" + mount.source + "'");
}

std::vector<gid_t> callerGroupIds(const Identity& identity) {
    std::vector<gid_t> groups{identity.gid};
    groups.insert(groups.end(), identity.supplementaryGids.begin(), identity.supplementaryGids.end());
    return groups;
}

}  // namespace

int SuidBackend::run(const ContainerSpec& spec, const StoredImage& image) {
    checkInstallation(config_);
    SandboxPlan plan;
    plan.spec = spec;
    plan.bundleDir = config_.stringOr("OCIBundleDir", "");
    plan.ramFilesystemType = config_.stringOr("ramFilesystemType", "tmpfs");
    plan.runtimePath = trustedTool(config_, "runcPath", "/usr/bin/runc");
    if (spec.init) {
        plan.initPath = trustedTool(config_, "initPath", "/usr/bin/tini-static");
    }
    plan.workdirHelperPath = Config::installPrefix() / "libexec" / "sarus" / "sarus-workdir";
    plan.userMountRules = userMountRestrictions(config_.json());
    plan.hostFiles = HostFiles::read(spec.identity);
    plan.callerGroups = callerGroupIds(spec.identity);
    // selected before the user mounts are done by the sandbox (hasBindMounts)
    plan.hooks = configuredHooks(config_, spec);
    plan.image = openAsCaller(image.imageFile, O_RDONLY, "image");
    plan.imageMountIdleTime = std::chrono::seconds(config_.json().value("imageMountIdleTime", 60));
    plan.keeperPaths = loopKeeperPaths(spec.identity.uid, config_.file());
    for (const auto& mount : spec.userMounts) {
        plan.userMountTrees.push_back(cloneMountAsCaller(mount));
    }
    for (auto& device : plan.spec.devices) {
        device.node = statDeviceNode(device);  // as the caller
    }

    auto channels = makeSandboxChannels();
    pid_t supervisor = cloneSupervisor();
    if (supervisor == 0) {
        runSandboxChild(channels, [&](int parentAliveFd) {
            return superviseContainer(plan, parentAliveFd, channels.status[1]);
        });
    }
    // The supervisor runs as root: forwarding signals to it needs root too.
    RootScope root;
    Supervision supervision;
    supervision.watchTerminal = spec.tty;
    supervision.endWithProcessFd = spec.endWithProcessFd;
    // Closing the go pipe tells the supervisor that sarus is gone: it kills
    // the container and cleans up.
    supervision.endNow = [&] {
        ::close(channels.go[1]);
        channels.go[1] = -1;
    };
    return superviseSandbox(supervisor, channels, [] {}, supervision);
}

}  // namespace sarus::suid
