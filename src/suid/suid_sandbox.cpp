#include "suid_sandbox.hpp"

#include "container_cgroups.hpp"
#include "container_mounts.hpp"
#include "runtime/entrypoint_prefetch.hpp"
#include "common/error.hpp"
#include "common/file_descriptor.hpp"
#include "common/log.hpp"
#include "loop_device.hpp"
#include "runtime/mount_tree.hpp"
#include "standard_streams.hpp"
#include "runtime/root_directory.hpp"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <optional>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sarus::suid {

namespace fs = std::filesystem;

namespace {

const char* const workdirHelperDestination = "/dev/.sarus-workdir";

FileDescriptor openProgram(const std::string& path, const std::string& what) {
    FileDescriptor fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
    if (fd.get() < 0) {
        throw systemError("cannot open " + what + " " + path, errno);
    }
    return fd;
}

// The runtime runs each hook from /proc/<sandbox>/fd/N: the very file opened
// here, before any mount of the container, whatever is mounted later.
std::vector<FileDescriptor> pinHookPrograms(nlohmann::json& hooks) {
    std::vector<FileDescriptor> programs;
    auto procDir = "/proc/" + std::to_string(::getpid()) + "/fd/";
    for (auto& [stage, entries] : hooks.items()) {
        for (auto& entry : entries) {
            auto path = entry.at("path").get<std::string>();
            programs.push_back(openProgram(path, "the " + stage + " hook"));
            entry["path"] = procDir + std::to_string(programs.back().get());
        }
    }
    return programs;
}

void mountImage(const SandboxPlan& plan, const fs::path& lower) {
    if (plan.keptMount.get() >= 0) {
        auto tree = cloneMountTree(plan.keptMount.get(), "", "the kept image");
        FileDescriptor target(::open(lower.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (target.get() < 0) {
            throw systemError("cannot open " + lower.string(), errno);
        }
        attachMountTree(tree.get(), target.get(), "the kept image");
        log::debug("image attached from its kept mount");
        return;
    }
    LoopDevice loop(plan.image.get());
    mountOrThrow(loop.path(), lower.string(), "squashfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "");
    log::debug("image loop-mounted from " + loop.path());
}

// Whether the caller can change what `resolved` (a directory's path as
// resolved in the root) leads to: a directory on its way that is not on the
// container's own filesystems, that is the caller's (who may chmod it), or
// that the caller may write to (without the sticky bit) lets the caller
// rename what follows and put a symlink in its place.
bool callerCanChangePath(const RootDirectory& root, const std::string& resolved, const Owner& caller,
                         const std::vector<gid_t>& groups) {
    std::string parent = "/";
    std::size_t next = 1;
    for (;;) {
        auto directory = root.open(parent, O_PATH | O_DIRECTORY);
        struct stat st {};
        if (::fstat(directory.get(), &st) != 0 || !root.onRootMount(directory.get()) || st.st_uid == caller.uid) {
            return true;
        }
        bool inGroup = st.st_gid == caller.gid || std::find(groups.begin(), groups.end(), st.st_gid) != groups.end();
        bool writable = (st.st_mode & S_IWOTH) || ((st.st_mode & S_IWGRP) && inGroup);
        if (writable && !(st.st_mode & S_ISVTX)) {
            return true;
        }
        auto slash = resolved.find('/', next);
        if (slash == std::string::npos) {
            return false;  // the last directory itself: its entry is its parent's
        }
        parent = resolved.substr(0, slash);
        next = slash + 1;
    }
}

// The merged root takes its owner and mode from the upper directory, which
// root made: give it the image root's, so the image's owner (the user who
// imported it) can write in / as in Sarus. Both are directories of this
// sandbox, opened without following links.
FileDescriptor openSandboxDirectory(const fs::path& path) {
    FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0) {
        throw systemError("cannot open " + path.string(), errno);
    }
    return fd;
}

void giveUpperTheImageRootsOwner(const fs::path& bundle) {
    auto lower = openSandboxDirectory(bundle / "lower");
    auto upper = openSandboxDirectory(bundle / "upper");
    struct stat image {};
    if (::fstat(lower.get(), &image) != 0) {
        throw systemError("cannot stat the image's root", errno);
    }
    if (::fchown(upper.get(), image.st_uid, image.st_gid) != 0 ||
        ::fchmod(upper.get(), image.st_mode & 07777) != 0) {
        throw systemError("cannot give the container's writable layer the image root's owner", errno);
    }
}

void mountOverlay(const fs::path& bundle) {
    giveUpperTheImageRootsOwner(bundle);
    auto options = "lowerdir=" + (bundle / "lower").string() + ",upperdir=" + (bundle / "upper").string() +
                   ",workdir=" + (bundle / "work").string();
    mountOrThrow("overlay", (bundle / "rootfs").string(), "overlay", MS_NOSUID | MS_NODEV, options);
}

std::vector<std::string> runtimeCommand(const std::string& runtime) {
    // crun leaves the cgroups alone: the container inherits the ones the
    // supervisor made. runc has no such switch; its relative cgroupsPath
    // (see below) puts its cgroups below ours.
    if (fs::path(runtime).filename() == "crun") {
        return {runtime, "--cgroup-manager=disabled"};
    }
    return {runtime};
}

}  // namespace

int runSuidSandbox(SandboxPlan& plan, const ContainerCgroups& cgroups, int parentAliveFd) {
    rearmParentDeathSignal(parentAliveFd);
    const auto& spec = plan.spec;
    auto rootfs = plan.bundleDir / "rootfs";
    prepareBundleDirectory(plan.bundleDir, plan.ramFilesystemType, !spec.pidHost);

    // Everything root executes, opened before the first mount that a user's
    // input (the image, a mount, a path) could steer.
    SpawnOptions runtime;
    runtime.env = helperEnvironment;
    protectRuntimeBinary(plan.runtimePath, runtime);
    auto runtimeProgram = openProgram(plan.runtimePath, "runcPath");
    FileDescriptor init = spec.init ? openProgram(plan.initPath, "initPath") : FileDescriptor();
    auto workdirHelper = openProgram(plan.workdirHelperPath, "the working directory helper");
    auto hookPrograms = pinHookPrograms(plan.hooks);

    mountImage(plan, plan.bundleDir / "lower");
    mountOverlay(plan.bundleDir);
    RootDirectory root(rootfs);
    Owner caller{spec.identity.uid, spec.identity.gid};
    CreationPolicy policy{{0, 0}, caller, plan.callerGroups};
    std::optional<EntrypointPrefetch> prefetch;
    if (plan.readAhead) {
        prefetch.emplace(rootfs, spec, caller.uid, caller.gid);
    }
    provideEtcFiles(rootfs, spec.identity, plan.hostFiles, caller.uid, caller.gid);

    ContainerMounts mounts(root, policy, plan.bundleDir / "devices");
    mounts.mountDev();
    if (spec.init) {
        mounts.attachFile(init.get(), "/dev/init");
    }
    for (const auto& mount : spec.siteMounts) {
        mounts.bindHostPath(mount);
    }
    for (std::size_t i = 0; i < spec.userMounts.size(); ++i) {
        mounts.attachUserTree(plan.userMountTrees[i].get(), spec.userMounts[i], plan.userMountRules);
        plan.userMountTrees[i].reset();
    }
    for (const auto& device : spec.devices) {
        mounts.createDevice(device);
    }

    OciConfigOptions options;
    options.rootless = false;
    options.sandboxMounts = true;
    options.hooks = plan.hooks;
    if (fs::path(plan.runtimePath).filename() == "crun") {
        options.mountNamespace = false;
    } else {
        options.cgroupsPath = "sarus";
    }
    // The caller can change the path to the working directory where a
    // directory on its way is the caller's or writable by the caller: on a
    // bind-mounted host directory, and even on the container's own root,
    // through /proc/PID/root of the caller's processes that run in the
    // container's mount namespace before it starts (the SSH daemon, a hook's
    // readelf). The runtime (root) enters by name only a path the caller
    // cannot change, as resolved; sarus-workdir enters any other as the
    // caller.
    auto workdir = root.ensureDirectory(spec.cwd, {caller, caller, plan.callerGroups});
    auto resolvedCwd = root.containerPathOf(workdir.get());
    checkWorkingDirectoryOutsideProcAndSys(resolvedCwd, "working directory '" + spec.cwd + "'");
    if (resolvedCwd != "/" && callerCanChangePath(root, resolvedCwd, caller, plan.callerGroups)) {
        mounts.attachFile(workdirHelper.get(), workdirHelperDestination);
        options.workdirHelper = workdirHelperDestination;
        log::debug("working directory " + spec.cwd + " is entered by " + workdirHelperDestination);
    } else {
        options.runtimeCwd = resolvedCwd;
    }
    writeBundleConfig(plan.bundleDir, spec, options);

    cgroups.enter();
    runtime.executableFd = runtimeProgram.get();
    // runc copies between its streams and pipes of its own, or a terminal
    // of its own, which it gives the container: crun gives it the streams.
    std::optional<StandardStreamRelay> streams;
    if (fs::path(plan.runtimePath).filename() == "crun") {
        streams.emplace(spec.identity.uid, spec.identity.gid, plan.callerGroups, spec.tty);
        runtime.stdinFd = streams->runtimeFd(STDIN_FILENO);
        runtime.stdoutFd = streams->runtimeFd(STDOUT_FILENO);
        runtime.stderrFd = streams->runtimeFd(STDERR_FILENO);
    }
    int code = runRuntime(runtimeCommand(plan.runtimePath), plan.bundleDir, spec, runtime,
                          prefetch ? &*prefetch : nullptr);
    if (streams) {
        streams->finish();
    }
    return code;
}

}  // namespace sarus::suid
