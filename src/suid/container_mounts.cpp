#include "container_mounts.hpp"

#include "common/error.hpp"
#include "common/log.hpp"
#include "runtime/mount_tree.hpp"
#include "runtime/sandbox.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace sarus::suid {

namespace {

constexpr std::uint64_t noSuidNoDev = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;

bool isDirectory(int fd) {
    struct stat st {};
    return ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

ContainerMounts::ContainerMounts(RootDirectory& root, const CreationPolicy& policy,
                                 const std::filesystem::path& deviceStaging)
    : root_(root), policy_(policy), deviceStaging_(deviceStaging) {}

void ContainerMounts::mountDev() {
    makeSystemDirectoriesReal(root_, policy_);
    auto dev = root_.open("/dev", O_PATH | O_DIRECTORY | O_NOFOLLOW);
    // Device nodes work here (no nodev), and only the runtime's and the
    // whitelisted ones are ever made in it.
    auto tmpfs = newTmpfs("mode=755,size=65536k", MOUNT_ATTR_NOSUID | MOUNT_ATTR_STRICTATIME, "/dev");
    attachMountTree(tmpfs.get(), dev.get(), "a tmpfs on /dev");
    root_.declareOwnMount(root_.open("/dev", O_PATH | O_DIRECTORY | O_NOFOLLOW).get());
    // The host's /dev/shm, as Sarus shares the host's IPC: MPI ranks of one
    // node, each in its own container, exchange data through files there.
    auto shm = cloneMountTree(AT_FDCWD, "/dev/shm", "/dev/shm");
    setMountTreeAttributes(shm.get(), noSuidNoDev, "/dev/shm");
    auto target = root_.ensureMountPoint("/dev/shm", true, policy_);
    attachMountTree(shm.get(), target.get(), "/dev/shm");
}

namespace {

// As Sarus: what is made for a mount or device belongs to the user, who may
// then work beside it (the rest of the image is the user's too).
CreationPolicy ownedByTheCaller(const CreationPolicy& policy) {
    return {policy.caller, policy.caller, policy.callerGroups};
}

}  // namespace

std::string ContainerMounts::attach(int tree, const BindMount& mount, const std::string& what,
                                    const UserMountRestrictions* rules) {
    auto target = root_.ensureMountPoint(mount.destination, isDirectory(tree), ownedByTheCaller(policy_));
    auto resolved = root_.containerPathOf(target.get());
    if (rules != nullptr && !mount.launcher) {
        checkUserMountDestination(resolved, *rules, mount.request, [&](const std::string& path) {
            try {  // a refused path the image does not have (or not as a path) leads nowhere
                auto found = root_.openIfExists(path, O_PATH);
                return found ? std::optional<std::string>(root_.containerPathOf(found->get())) : std::nullopt;
            } catch (const Error&) {
                return std::optional<std::string>();
            }
        });
    }
    checkNotRuntimeMountPoint(resolved, what + " (destination " + mount.destination + ")");
    setMountTreeAttributes(tree, noSuidNoDev | (mount.readonly ? MOUNT_ATTR_RDONLY : 0), what);
    attachMountTree(tree, target.get(), what + " on " + resolved);
    log::debug("mounted " + mount.source + " on " + resolved + (mount.readonly ? " (read-only)" : ""));
    return resolved;
}

std::string ContainerMounts::attachUserTree(int tree, const BindMount& mount, const UserMountRestrictions& rules) {
    return attach(tree, mount, "mount source '" + mount.source + "'", &rules);
}

void ContainerMounts::bindHostPath(const BindMount& mount) {
    auto what = "site mount '" + mount.source + "'";
    auto tree = cloneMountTree(AT_FDCWD, mount.source, what);
    attach(tree.get(), mount, what, nullptr);
}

void ContainerMounts::createDevice(const DeviceMount& device) {
    if (!device.node) {
        throw Error("device '" + device.source + "' was not examined as the caller");
    }
    const auto& node = *device.node;
    if (deviceNodes_.get() < 0) {
        // Only a mount of this namespace can be cloned: the nodes' tmpfs is
        // attached on a directory of the bundle, which nothing else reaches.
        auto tmpfs = newTmpfs("mode=700", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, "device nodes");
        FileDescriptor staging(::open(deviceStaging_.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (staging.get() < 0) {
            throw systemError("cannot open " + deviceStaging_.string(), errno);
        }
        attachMountTree(tmpfs.get(), staging.get(), "the device nodes' tmpfs");
        deviceNodes_ = FileDescriptor(::open(deviceStaging_.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    }
    auto name = std::to_string(nodeCount_++);
    mode_t type = node.type == 'b' ? S_IFBLK : S_IFCHR;
    if (::mknodat(deviceNodes_.get(), name.c_str(), type | (node.mode & 0777), makedev(node.major, node.minor)) != 0 ||
        ::fchownat(deviceNodes_.get(), name.c_str(), node.uid, node.gid, AT_SYMLINK_NOFOLLOW) != 0 ||
        ::fchmodat(deviceNodes_.get(), name.c_str(), node.mode & 0777, 0) != 0) {
        throw systemError("cannot create the device node of " + device.source, errno);
    }
    auto tree = cloneMountTree(deviceNodes_.get(), name, "device " + device.source);
    auto target = root_.ensureMountPoint(device.destination, false, ownedByTheCaller(policy_));
    auto resolved = root_.containerPathOf(target.get());
    checkNotRuntimeMountPoint(resolved, "device destination '" + device.destination + "'");
    setMountTreeAttributes(tree.get(), MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, "device " + device.source);
    attachMountTree(tree.get(), target.get(), "device " + device.source + " on " + resolved);
    log::debug("device " + device.source + " made at " + resolved);
}

void ContainerMounts::attachFile(int fd, const std::string& destination) {
    auto tree = cloneMountTree(fd, "", destination);
    setMountTreeAttributes(tree.get(), noSuidNoDev | MOUNT_ATTR_RDONLY, destination);
    auto target = root_.ensureMountPoint(destination, false, policy_);
    attachMountTree(tree.get(), target.get(), destination);
}

}  // namespace sarus::suid
