#include "suid_sandbox.hpp"

#include "entrypoint_prefetch.hpp"
#include "error.hpp"
#include "file_utils.hpp"
#include "log.hpp"
#include "loop_device.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <sys/mount.h>
#include <unistd.h>

#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

namespace sarus::suid {

namespace fs = std::filesystem;

namespace {

void becomeRoot(int parentAliveFd) {
    if (::setresuid(0, 0, 0) != 0 || ::setresgid(0, 0, 0) != 0 || ::setgroups(0, nullptr) != 0) {
        throw systemError("cannot switch to root for the container setup", errno);
    }
    rearmParentDeathSignal(parentAliveFd);
}

void mountImage(const SandboxPlan& plan, const fs::path& lower) {
    LoopDevice loop(plan.imageFd);
    mountOrThrow(loop.path(), lower.string(), "squashfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "");
    log::debug("image loop-mounted from " + loop.path());
}

void mountOverlay(const fs::path& bundle) {
    auto options = "lowerdir=" + (bundle / "lower").string() + ",upperdir=" + (bundle / "upper").string() +
                   ",workdir=" + (bundle / "work").string();
    mountOrThrow("overlay", (bundle / "rootfs").string(), "overlay", MS_NOSUID | MS_NODEV, options);
}

// Attaches the detached mount tree that sarus cloned from a descriptor the
// caller opened (see SuidBackend): never a path that root would resolve, so a
// symlink swapped after the checks cannot redirect the mount. nosuid and
// nodev (and ro) are applied to the whole recursive tree.
void bindUserMount(const fs::path& rootfs, const BindMount& mount) {
    auto target = rootfs.string() + mount.destination;
    int tree = std::stoi(mount.source.substr(mount.source.rfind('/') + 1));
    if (::move_mount(tree, "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
        throw systemError("cannot bind-mount onto " + mount.destination, errno);
    }
    ::close(tree);
    struct mount_attr attr {};
    attr.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (mount.readonly ? MOUNT_ATTR_RDONLY : 0);
    attr.propagation = MS_PRIVATE;
    if (::mount_setattr(AT_FDCWD, target.c_str(), AT_RECURSIVE, &attr, sizeof attr) != 0) {
        throw systemError("cannot make the mount on " + mount.destination + " nosuid/read-only", errno);
    }
}

void refuseHybridCgroupsForCrun(const std::string& runtime) {
    if (fs::path(runtime).filename() != "crun") {
        return;
    }
    std::string controllers;
    try {
        controllers = readFile("/sys/fs/cgroup/unified/cgroup.controllers");
    } catch (const Error&) {
        return;  // not a hybrid hierarchy
    }
    if (controllers.find_first_not_of(" \n") != std::string::npos) {
        throw Error("crun (runcPath) refuses this host's hybrid cgroups: controllers '" +
                    controllers.substr(0, controllers.find('\n')) +
                    "' are left on the v2 side; as root, mount them in v1, e.g. 'mkdir -p "
                    "/sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb' "
                    "(tools/prepare_host.sh does it), or use runc");
    }
}

}  // namespace

int runSuidSandbox(SandboxPlan plan, int parentAliveFd) {
    becomeRoot(parentAliveFd);
    auto rootfs = plan.bundleDir / "rootfs";
    prepareBundleDirectory(plan.bundleDir, plan.ramFilesystemType, !plan.spec.pidHost);
    mountImage(plan, plan.bundleDir / "lower");
    mountOverlay(plan.bundleDir);
    EntrypointPrefetch prefetch(rootfs, plan.spec, plan.spec.identity.uid, plan.spec.identity.gid);
    provideEtcFiles(rootfs, plan.spec.identity, plan.hostFiles);
    prepareMountPoints(plan.spec, rootfs, plan.userMountRules);
    for (const auto& mount : plan.spec.userMounts) {
        bindUserMount(rootfs, mount);
    }
    plan.spec.userMounts.clear();  // done: the runtime only sees trusted (site) mounts
    createDirectoryInRoot(rootfs, plan.spec.cwd, plan.spec.identity.uid, plan.spec.identity.gid);

    OciConfigOptions options;
    options.rootless = false;
    options.initPath = plan.initPath;
    options.hooks = plan.hooks;
    writeBundleConfig(plan.bundleDir, plan.spec, options);
    refuseHybridCgroupsForCrun(plan.runtimePath);

    SpawnOptions runtime;
    runtime.env = helperEnvironment;
    return runRuntime({plan.runtimePath}, plan.bundleDir, plan.spec, runtime);
}

}  // namespace sarus::suid
