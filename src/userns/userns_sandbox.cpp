#include "userns_sandbox.hpp"

#include "runtime/entrypoint_prefetch.hpp"
#include "common/error.hpp"
#include "common/file_descriptor.hpp"
#include "runtime/mount_tree.hpp"
#include "runtime/mount_options.hpp"
#include "common/log.hpp"
#include "common/process.hpp"
#include "squashfuse_mount.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <linux/capability.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace sarus::userns {

namespace fs = std::filesystem;

namespace {

bool hostHasMqueueMount() {
    constexpr long mqueueMagic = 0x19800202;  // MQUEUE_MAGIC of the kernel's ipc/mqueue.c
    struct statfs fs {};
    return ::statfs("/dev/mqueue", &fs) == 0 && fs.f_type == mqueueMagic;
}

dev_t deviceOf(const fs::path& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? st.st_dev : 0;
}

// FUSE daemons run in the foreground (so PDEATHSIG ties them to us); the
// mount is ready when the mount point's device changes.
void waitForMount(pid_t daemon, const fs::path& mountpoint, dev_t before, const std::string& what) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (deviceOf(mountpoint) == before) {
        int status = 0;
        if (::waitpid(daemon, &status, WNOHANG) == daemon) {
            throw Error(what + " exited before mounting (exit code " +
                        std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)) + ")");
        }
        if (std::chrono::steady_clock::now() > deadline) {
            throw Error(what + " did not mount " + mountpoint.string() + " within 30 s");
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
}

void mountImage(const SandboxPlan& plan, const fs::path& lower) {
    if (!plan.keptImageMount.empty()) {
        mountOrThrow(plan.keptImageMount, lower, "", MS_BIND, "");
        // The keeper's other images need not stay busy for this container.
        ::umount2(plan.keptMountsDir.c_str(), MNT_DETACH);
        return;
    }
    // The daemon reads the repository as the caller; the mount is ours.
    mountSquashfs({plan.squashfusePath, plan.imageFile, lower, plan.ids.callerUidInside, plan.ids.callerGidInside,
                   plan.squashfusePreload});
}

bool mountKernelOverlay(const std::string& options, const fs::path& rootfs) {
    if (::mount("overlay", rootfs.c_str(), "overlay", MS_NOSUID | MS_NODEV, options.c_str()) == 0) {
        return true;
    }
    log::debug(std::string("kernel overlayfs refused in this user namespace: ") + std::strerror(errno));
    return false;
}

void mountFuseOverlay(const SandboxPlan& plan, const std::string& options, const fs::path& rootfs) {
    auto before = deviceOf(rootfs);
    // As the caller, like the container process: fuse-overlayfs refuses
    // operations from other ids than its own. Without xattrs: over a
    // squashfuse lower, exec fails with EOPNOTSUPP otherwise.
    SpawnOptions spawnOptions;
    spawnOptions.uid = plan.ids.callerUidInside;
    spawnOptions.gid = plan.ids.callerGidInside;
    spawnOptions.ambientCapabilities = {CAP_SYS_ADMIN, CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
                                        CAP_FOWNER, CAP_FSETID, CAP_SETUID, CAP_SETGID, CAP_MKNOD};
    spawnOptions.env = helperEnvironment;
    auto pid = spawn({plan.fuseOverlayfsPath, "-f", "-o", options + ",allow_other,noxattrs=1,nosuid,nodev", rootfs.string()},
                     spawnOptions);
    waitForMount(pid, rootfs, before, plan.fuseOverlayfsPath);
}

void mountWritableLayer(const SandboxPlan& plan) {
    auto bundle = plan.bundleDir;
    auto options = "lowerdir=" + (bundle / "lower").string() + ",upperdir=" + (bundle / "upper").string() +
                   ",workdir=" + (bundle / "work").string();
    auto rootfs = bundle / "rootfs";
    if (plan.overlay != OverlayType::fuse && mountKernelOverlay(options + ",userxattr", rootfs)) {
        log::verbose("writable layer: kernel overlayfs (in the user namespace)");
        return;
    }
    if (plan.overlay == OverlayType::kernel) {
        throw Error("kernel overlayfs cannot be mounted in a user namespace on this host, and "
                    "sarus.json forces it (overlayType \"kernel\"): use \"auto\" or \"fuse\"");
    }
    mountFuseOverlay(plan, options, rootfs);
    log::verbose("writable layer: fuse-overlayfs (" + plan.fuseOverlayfsPath + ")");
}

// The image is mounted as the caller, who can read the repository. What
// sarus adds to the rootfs afterwards (/etc files, mount points) belongs to
// root of the namespace, as in a Sarus container.
void becomeNamespaceRoot(int parentAliveFd) {
    if (::setresgid(0, 0, 0) != 0 || ::setresuid(0, 0, 0) != 0) {
        throw systemError("cannot become root of the container's user namespace", errno);
    }
    rearmParentDeathSignal(parentAliveFd);
}

// Each user mount is cloned here, made nosuid and nodev (and read-only when
// asked), and crun binds that clone into the container. The bind copies our
// flags; crun's own remount could not add them in a user namespace, where
// the host's mounts have their flags locked.
void stageUserMounts(ContainerSpec& spec, const fs::path& bundle) {
    auto staging = bundle / "mounts";
    if (spec.userMounts.empty() || (::mkdir(staging.c_str(), 0755) != 0 && errno != EEXIST)) {
        return;
    }
    for (std::size_t i = 0; i < spec.userMounts.size(); ++i) {
        auto& mount = spec.userMounts[i];
        auto what = "'" + mount.source + "'";
        auto tree = cloneMountTree(AT_FDCWD, mount.source, what);
        setMountTreeAttributes(tree.get(), MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (mount.readonly ? MOUNT_ATTR_RDONLY : 0),
                               what);
        struct stat st {};
        ::fstat(tree.get(), &st);
        auto point = staging / std::to_string(i);
        int made = S_ISDIR(st.st_mode) ? ::mkdir(point.c_str(), 0755)
                                       : ::close(::open(point.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
        FileDescriptor target(::open(point.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
        if (made != 0 || target.get() < 0) {
            throw systemError("cannot prepare the mount of " + what, errno);
        }
        attachMountTree(tree.get(), target.get(), what);
        mount.source = point.string();
    }
}

// Where a mount's destination lies inside an earlier bind mount, its mount
// point is in that mount's source, a host directory. crun would make what is
// missing there as root of our namespace: a subordinate id on the host, which
// the user cannot remove. The user's own process makes it first. It stops at
// a symlink or an error and leaves the rest to crun, whose resolution in the
// container (and error) it does not second-guess.
void makeNestedMountPointsAsCaller(const ContainerSpec& spec, Owner caller) {
    std::vector<const BindMount*> mounts;
    for (const auto* list : {&spec.siteMounts, &spec.userMounts}) {
        for (const auto& mount : *list) {
            mounts.push_back(&mount);
        }
    }
    for (std::size_t j = 1; j < mounts.size(); ++j) {
        const BindMount* enclosing = nullptr;
        for (std::size_t i = 0; i < j; ++i) {
            if (mounts[i]->destination != mounts[j]->destination &&
                isSameOrBelow(mounts[j]->destination, mounts[i]->destination)) {
                enclosing = mounts[i];  // the last one is on top
            }
        }
        struct stat source {};
        if (enclosing == nullptr || ::stat(mounts[j]->source.c_str(), &source) != 0) {
            continue;
        }
        auto relative = fs::path(mounts[j]->destination).lexically_relative(enclosing->destination);
        std::vector<std::string> components(relative.begin(), relative.end());
        bool directory = S_ISDIR(source.st_mode);
        pid_t child = ::fork();
        if (child == 0) {
            // only system calls here: the sandbox may have threads
            int dir = ::open(enclosing->source.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (::setresgid(caller.gid, caller.gid, caller.gid) != 0 ||
                ::setresuid(caller.uid, caller.uid, caller.uid) != 0) {
                ::_exit(1);
            }
            for (std::size_t k = 0; dir >= 0 && k < components.size(); ++k) {
                const char* name = components[k].c_str();
                if (k + 1 == components.size() && !directory) {
                    ::close(::openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
                    break;
                }
                ::mkdirat(dir, name, 0755);
                dir = ::openat(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            }
            ::_exit(0);
        }
        if (child > 0) {
            ::waitpid(child, nullptr, 0);
        }
    }
}

}  // namespace

int runUsernsSandbox(SandboxPlan plan, int parentAliveFd) {
    auto rootfs = plan.bundleDir / "rootfs";
    log::debug("sandbox: ids mapped, preparing the bundle");
    prepareBundleDirectory(plan.bundleDir, plan.ramFilesystemType, !plan.spec.pidHost);
    mountImage(plan, plan.bundleDir / "lower");
    becomeNamespaceRoot(parentAliveFd);
    mountWritableLayer(plan);
    log::debug("sandbox: writable layer mounted");
    std::optional<EntrypointPrefetch> prefetch;
    if (plan.readAhead) {
        prefetch.emplace(rootfs, plan.spec, plan.ids.callerUidInside, plan.ids.callerGidInside);
    }
    provideEtcFiles(rootfs, plan.spec.identity, plan.hostFiles, plan.ids.callerUidInside, plan.ids.callerGidInside);
    Owner callerInside{plan.ids.callerUidInside, plan.ids.callerGidInside};
    makeSystemDirectoriesReal(RootDirectory(rootfs), {{0, 0}, callerInside, std::nullopt});
    prepareMountPoints(plan.spec, rootfs, plan.userMountRules, plan.ids.callerUidInside, plan.ids.callerGidInside);
    stageUserMounts(plan.spec, plan.bundleDir);
    makeNestedMountPointsAsCaller(plan.spec, callerInside);
    createDirectoryInRoot(rootfs, plan.spec.cwd, plan.ids.callerUidInside, plan.ids.callerGidInside);

    OciConfigOptions options;
    options.rootless = true;
    options.mountNamespace = false;
    options.uidMappings = plan.ids.nestedUidMap;
    options.gidMappings = plan.ids.nestedGidMap;
    options.initPath = plan.initPath;
    options.hostMqueue = hostHasMqueueMount();
    options.hooks = plan.hooks;
    writeBundleConfig(plan.bundleDir, plan.spec, options);

    log::debug("sandbox: bundle ready, starting " + plan.crunPath);
    SpawnOptions runtime;
    runtime.uid = 0;  // crun acts as root of our namespace, never as "rootless"
    runtime.gid = 0;
    runtime.env = helperEnvironment;
    // Cgroups cannot be delegated to an unprivileged user here; disabling
    // them also keeps crun away from hybrid-hierarchy refusals.
    return runRuntime({plan.crunPath, "--cgroup-manager=disabled"}, plan.bundleDir, plan.spec, runtime,
                      prefetch ? &*prefetch : nullptr, parentAliveFd);
}

}  // namespace sarus::userns
