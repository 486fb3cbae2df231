#include "suid_backend.hpp"

#include "error.hpp"
#include "hooks_config.hpp"
#include "log.hpp"
#include "privileges.hpp"
#include "security_checks.hpp"
#include "suid_sandbox.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

namespace sarus::suid {

namespace {

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
int openAsCaller(const std::string& path, int flags, const std::string& what) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    if (fd < 0) {
        throw systemError(what + " '" + path + "'", errno);
    }
    return fd;
}

// The caller opens the source with the caller's permissions; root then
// clones exactly that object into a detached mount tree, which the sandbox
// attaches inside the container. Root never resolves the caller's path.
int cloneMountAsCaller(const std::string& source) {
    // An O_PATH open does not check read permission on the path itself.
    checkMountSourceReadable(source);
    int fd = openAsCaller(source, O_PATH, "mount source");
    int tree;
    {
        RootScope root;
        tree = ::open_tree(fd, "", OPEN_TREE_CLONE | AT_RECURSIVE | AT_EMPTY_PATH);
    }
    int err = errno;
    ::close(fd);
    if (tree < 0) {
        throw systemError("cannot prepare the mount of '" + source + "'", err);
    }
    return tree;
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
    plan.userMountRules = userMountRestrictions(config_.json());
    plan.hostFiles = HostFiles::read(spec.identity);
    // selected before the user mounts are done by the sandbox (hasBindMounts)
    plan.hooks = configuredHooks(config_, spec);
    plan.imageFd = openAsCaller(image.imageFile, O_RDONLY, "image");
    for (auto& mount : plan.spec.userMounts) {
        mount.source = "/proc/self/fd/" + std::to_string(cloneMountAsCaller(mount.source));
    }
    for (const auto& device : spec.devices) {
        checkDeviceNode(device.source);  // as the caller
    }

    auto channels = makeSandboxChannels();
    unsigned long flags = CLONE_NEWNS | (spec.pidHost ? 0 : CLONE_NEWPID);
    pid_t sandbox;
    {
        RootScope root;
        sandbox = cloneSandbox(flags, "cannot create the container's namespaces");
    }
    if (sandbox == 0) {
        runSandboxChild(channels, [&](int parentAliveFd) { return runSuidSandbox(plan, parentAliveFd); });
    }
    // The sandbox runs as root: forwarding signals to it needs root too.
    RootScope root;
    return superviseSandbox(sandbox, channels, [] {});
}

}  // namespace sarus::suid
