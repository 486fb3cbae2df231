#include "mounts.hpp"

#include "container_state.hpp"
#include "common/error.hpp"
#include "hook_log.hpp"
#include "namespaces.hpp"
#include "common/file_descriptor.hpp"
#include "runtime/mount_tree.hpp"
#include "runtime/root_directory.hpp"

#include <cerrno>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace hook {

namespace {

using sarus::FileDescriptor;

sarus::CreationPolicy creationPolicy(const ContainerState& state) {
    return {{0, 0}, {state.uid, state.gid}, std::nullopt};
}

bool isDirectory(int fd) {
    struct stat st {};
    return ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
}

// A source the site names (a library of MPI_LIBS, a --mount of the hook) is
// resolved with the permissions of the container's user: whoever may change
// a directory on its way can point it anywhere, and root would then bind
// what is below a directory that user cannot enter.
sarus::FileDescriptor cloneSourceAsContainerUser(const ContainerState& state, const std::string& source) {
    if (!isHostRoot() || state.uid == 0) {
        return sarus::cloneMountTree(AT_FDCWD, source, source);
    }
    std::vector<gid_t> groups{state.gid};
    groups.insert(groups.end(), state.additionalGids.begin(), state.additionalGids.end());
    sarus::ActingAsCaller asUser({{0, 0}, {state.uid, state.gid}, groups});
    try {
        return sarus::cloneMountTree(AT_FDCWD, source, source);
    } catch (const sarus::Error& e) {
        throw sarus::Error(std::string(e.what()) + " (as the container's user, uid " + std::to_string(state.uid) +
                           ": a hook binds only what that user may reach)");
    }
}

// Attaches the cloned source onto destination in the rootfs; returns the
// destination's path there.
std::string attachOnto(const ContainerState& state, int tree, const std::string& source,
                       const std::string& destination, std::uint64_t attributes) {
    auto root = openContainerRootfs(state);
    auto target = root.ensureMountPoint(destination, isDirectory(tree), creationPolicy(state));
    auto inRoot = root.containerPathOf(target.get());
    sarus::checkNotRuntimeMountPointForHook(inRoot, "the mount of " + source + " (destination " + destination + ")");
    sarus::setMountTreeAttributes(tree, MOUNT_ATTR_NOSUID | attributes, source);
    sarus::attachMountTree(tree, target.get(), source + " onto " + inRoot);
    return inRoot;
}

std::string cgroupPath(pid_t pid) {
    std::ifstream in(procDir(pid) + "/cgroup");
    std::string line;
    while (std::getline(in, line)) {
        // "4:devices:/path" (v1); v2 is "0::/path" and has no devices file
        auto first = line.find(':');
        auto second = line.find(':', first + 1);
        if (first == std::string::npos || second == std::string::npos) {
            continue;
        }
        std::stringstream controllers(line.substr(first + 1, second - first - 1));
        std::string controller;
        while (std::getline(controllers, controller, ',')) {
            if (controller == "devices") {
                return line.substr(second + 1);
            }
        }
    }
    return "";
}

}  // namespace

sarus::RootDirectory openContainerRootfs(const ContainerState& state) {
    sarus::RootDirectory root(state.rootfs);
    sarus::FileDescriptor dev(::openat(root.fd(), "dev", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (dev.get() >= 0) {
        root.declareOwnMount(dev.get());
    }
    return root;
}

void bindMount(const ContainerState& state, const sarus::BindMount& mount) {
    // Not nodev: the administrator's mounts may hold device nodes (/dev/infiniband).
    auto tree = cloneSourceAsContainerUser(state, mount.source);
    auto inRoot =
        attachOnto(state, tree.get(), mount.source, mount.destination, mount.readonly ? MOUNT_ATTR_RDONLY : 0);
    log::info("bind mounted " + mount.source + " at " + inRoot + (mount.readonly ? " (read-only)" : ""));
}

bool createSymlinkIfMissing(const ContainerState& state, const std::string& directory, const std::string& name,
                            const std::string& target) {
    auto root = openContainerRootfs(state);
    auto parent = root.ensureDirectory(directory, creationPolicy(state));
    auto where = root.containerPathOf(parent.get()) + "/" + name;
    if (!root.createSymlink(parent.get(), name, target, creationPolicy(state))) {
        return false;
    }
    log::debug("created the symlink " + where + " -> " + target);
    return true;
}

bool whitelistDevice(pid_t pid, char type, unsigned major, unsigned minor, const std::string& access) {
    auto path = cgroupPath(pid);
    if (path.empty()) {
        // warnings, as every degraded outcome: sarus shows hooks' WARN lines by default
        log::warn("no devices cgroup v1 controller for the container (cgroup v2?): "
                  "device access left to the runtime's configuration");
        return false;
    }
    auto allow = fs::path("/sys/fs/cgroup/devices") / fs::path(path).relative_path() / "devices.allow";
    std::ofstream out(allow);
    std::ostringstream rule;
    rule << type << ' ' << major << ':' << minor << ' ' << access;
    out << rule.str() << std::flush;
    if (!out) {
        log::warn("cannot write '" + rule.str() + "' to " + allow.string() + ": device not whitelisted");
        return false;
    }
    log::info("whitelisted '" + rule.str() + "' in " + allow.string());
    return true;
}

void deviceMount(const ContainerState& state, const sarus::DeviceMount& device, bool rootless) {
    // The node whitelisted is the one bound, not another found by the same path.
    auto tree = cloneSourceAsContainerUser(state, device.source);
    auto node = sarus::deviceNodeOf(tree.get(), device.source);
    auto inRoot = attachOnto(state, tree.get(), device.source, device.destination, 0);
    log::info("device " + device.source + " mounted at " + inRoot);
    if (rootless) {
        log::warn("rootless: device " + device.source + " not whitelisted in the devices cgroup");
        return;
    }
    whitelistDevice(state.pid, node.type, node.major, node.minor, device.access);
}

}  // namespace hook
