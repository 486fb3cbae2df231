#include "sandbox.hpp"

#include "error.hpp"
#include "log.hpp"
#include "oci_config.hpp"
#include "path_in_root.hpp"
#include "process.hpp"
#include "runtime_messages.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <linux/capability.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace sarus::userns {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string> cleanEnvironment = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};

void mountOrThrow(const std::string& source, const std::string& target, const std::string& type,
                  unsigned long flags, const std::string& data) {
    if (::mount(source.c_str(), target.c_str(), type.empty() ? nullptr : type.c_str(), flags,
                data.empty() ? nullptr : data.c_str()) != 0) {
        throw systemError("cannot mount " + (type.empty() ? source : type) + " on " + target, errno);
    }
}

void makeDirectory(const fs::path& path) {
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
        throw systemError("cannot create " + path.string(), errno);
    }
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
    auto before = deviceOf(lower);
    // As the caller (who can read the repository) with CAP_SYS_ADMIN of our
    // namespace kept across exec, so the FUSE mount needs no fusermount.
    SpawnOptions options;
    options.uid = plan.ids.callerUidInside;
    options.gid = plan.ids.callerGidInside;
    options.ambientCapabilities = {CAP_SYS_ADMIN};
    options.env = cleanEnvironment;
    auto pid = spawn({plan.squashfusePath, "-f", "-o", "allow_other", plan.imageFile.string(), lower.string()},
                     options);
    waitForMount(pid, lower, before, plan.squashfusePath);
    log::debug("image " + plan.imageFile.string() + " mounted with " + plan.squashfusePath);
}

bool mountKernelOverlay(const std::string& options, const fs::path& rootfs) {
    if (::mount("overlay", rootfs.c_str(), "overlay", 0, options.c_str()) == 0) {
        return true;
    }
    log::debug(std::string("kernel overlayfs refused in this user namespace: ") + std::strerror(errno));
    return false;
}

void mountFuseOverlay(const SandboxPlan& plan, const std::string& options, const fs::path& rootfs) {
    auto before = deviceOf(rootfs);
    // As the caller, like the container process: fuse-overlayfs refuses
    // operations from other ids than its own with EOPNOTSUPP.
    SpawnOptions spawnOptions;
    spawnOptions.uid = plan.ids.callerUidInside;
    spawnOptions.gid = plan.ids.callerGidInside;
    spawnOptions.ambientCapabilities = {CAP_SYS_ADMIN, CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
                                        CAP_FOWNER, CAP_FSETID, CAP_SETUID, CAP_SETGID, CAP_MKNOD};
    spawnOptions.env = cleanEnvironment;
    auto pid = spawn({plan.fuseOverlayfsPath, "-f", "-o", options + ",allow_other,noxattrs=1", rootfs.string()},
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

void provideEtcFiles(const SandboxPlan& plan, const fs::path& rootfs) {
    writeFileInRoot(rootfs, "/etc/hosts", plan.hostsFile, 0644, 0, 0);
    writeFileInRoot(rootfs, "/etc/resolv.conf", plan.resolvConf, 0644, 0, 0);
    auto passwd = mergePasswd(readFileInRoot(rootfs, "/etc/passwd"), plan.spec.identity);
    writeFileInRoot(rootfs, "/etc/passwd", passwd, 0644, 0, 0);
    auto group = mergeGroup(readFileInRoot(rootfs, "/etc/group"), plan.spec.identity, plan.callerGroups);
    writeFileInRoot(rootfs, "/etc/group", group, 0644, 0, 0);
}

// Destinations are resolved in the image (symlinks followed inside the
// rootfs), checked again against userMounts so a link like /scratch -> /etc
// cannot get around them, and created; the runtime then gets the resolved
// path and never has to follow an image symlink itself.
std::string prepareMountPoint(const fs::path& rootfs, const std::string& source, const std::string& destination) {
    auto resolved = resolveInRoot(rootfs, destination);
    if (resolved == "/") {
        throw Error("mount destination '" + destination + "' resolves to the container's root");
    }
    struct stat st {};
    bool directory = ::stat(source.c_str(), &st) != 0 || S_ISDIR(st.st_mode);
    struct stat existing {};
    if (::lstat((rootfs.string() + resolved).c_str(), &existing) == 0) {
        return resolved;
    }
    if (directory) {
        createDirectoryInRoot(rootfs, resolved, 0, 0);
    } else {
        writeFileInRoot(rootfs, resolved, "", 0644, 0, 0);
    }
    return resolved;
}

void prepareMountPoints(SandboxPlan& plan, const fs::path& rootfs) {
    for (auto& mount : plan.spec.userMounts) {
        mount.destination = prepareMountPoint(rootfs, mount.source, mount.destination);
        checkUserMountDestination(mount.destination, plan.userMountRules);
    }
    for (auto& mount : plan.spec.siteMounts) {
        mount.destination = prepareMountPoint(rootfs, mount.source, mount.destination);
    }
    for (auto& device : plan.spec.devices) {
        device.destination = resolveInRoot(rootfs, device.destination);
    }
}

void writeBundleConfig(const SandboxPlan& plan) {
    OciConfigOptions options;
    options.rootless = true;
    options.uidMappings = plan.ids.nestedUidMap;
    options.gidMappings = plan.ids.nestedGidMap;
    options.initPath = plan.initPath;
    auto config = generateOciConfig(plan.spec, options);
    std::ofstream out(plan.bundleDir / "config.json");
    out << config.dump();
    if (!out) {
        throw Error("cannot write " + (plan.bundleDir / "config.json").string());
    }
}

// The image is mounted as the caller, who can read the repository. What
// sarus adds to the rootfs afterwards (/etc files, mount points) belongs to
// root of the namespace, as in a Sarus container; fuse-overlayfs also refuses
// some writes from other ids than its own.
void becomeNamespaceRoot(int parentAliveFd) {
    if (::setresgid(0, 0, 0) != 0 || ::setresuid(0, 0, 0) != 0) {
        throw systemError("cannot become root of the container's user namespace", errno);
    }
    // The credential change cleared PDEATHSIG; if sarus died meanwhile, its
    // end of the pipe is closed.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    struct pollfd check {parentAliveFd, POLLIN, 0};
    if (::poll(&check, 1, 0) > 0 && (check.revents & (POLLHUP | POLLIN))) {
        _exit(1);
    }
}

void prepareBundle(SandboxPlan& plan) {
    // Our mounts must never propagate back to the host.
    mountOrThrow("none", "/", "", MS_REC | MS_PRIVATE, "");
    if (!plan.spec.pidHost) {
        // The runtime finds its processes through /proc: it must show our PID namespace.
        mountOrThrow("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "");
    }
    mountOrThrow("sarus-bundle", plan.bundleDir, plan.ramFilesystemType, MS_NOSUID | MS_NODEV, "mode=0755");
    for (const char* dir : {"lower", "upper", "work", "rootfs", "state"}) {
        makeDirectory(plan.bundleDir / dir);
    }
    auto rootfs = plan.bundleDir / "rootfs";
    mountImage(plan, plan.bundleDir / "lower");
    becomeNamespaceRoot(plan.parentAliveFd);
    mountWritableLayer(plan);
    provideEtcFiles(plan, rootfs);
    prepareMountPoints(plan, rootfs);
    createDirectoryInRoot(rootfs, plan.spec.cwd, plan.ids.callerUidInside, plan.ids.callerGidInside);
    writeBundleConfig(plan);
}

int runRuntime(const SandboxPlan& plan) {
    auto log = plan.bundleDir / "crun.log";
    SpawnOptions options;
    options.uid = 0;  // crun acts as root of our namespace, never as "rootless"
    options.gid = 0;
    options.env = cleanEnvironment;
    // Cgroups cannot be delegated to an unprivileged user here; disabling
    // them also keeps crun away from hybrid-hierarchy refusals.
    auto pid = spawn({plan.crunPath, "--cgroup-manager=disabled", "--root", (plan.bundleDir / "state").string(),
                      "--log", log.string(), "run", "--bundle", plan.bundleDir.string(), plan.containerName},
                     options);
    forwardSignalsTo(pid);
    int code = waitForExit(pid);
    if (code != 0) {
        auto failure = runtimeFailure(log);
        if (!failure.explanation.empty()) {
            throw Error(failure.explanation);
        }
        if (failure.exitCode != 0) {
            code = failure.exitCode;
        }
    }
    return code;
}

void sendStatus(int fd, const std::string& message) {
    std::size_t done = 0;
    while (done < message.size()) {
        auto n = ::write(fd, message.data() + done, message.size() - done);
        if (n <= 0) {
            return;
        }
        done += static_cast<std::size_t>(n);
    }
}

}  // namespace

void runSandbox(const SandboxPlan& plan, int goFd, int statusFd) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    char go = 0;
    if (::read(goFd, &go, 1) != 1 || go != 'g') {
        _exit(1);  // the parent failed to map our ids, or died
    }
    // Until the runtime runs there is nothing to forward to: a signal ends
    // the sandbox, and with it (PID 1, PDEATHSIG) every helper and mount.
    struct sigaction quit {};
    quit.sa_handler = [](int signal) { _exit(128 + signal); };
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
        ::sigaction(s, &quit, nullptr);
    }
    int code = 1;
    try {
        auto prepared = plan;  // mount destinations get resolved in the copy
        prepared.parentAliveFd = goFd;
        prepareBundle(prepared);
        code = runRuntime(prepared);
    } catch (const Error& e) {
        sendStatus(statusFd, e.what());
        code = 1;
    } catch (const std::exception& e) {
        sendStatus(statusFd, std::string("unexpected error in the container sandbox: ") + e.what());
        code = 1;
    }
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(code);
}

}  // namespace sarus::userns
