// The mounts a suid sandbox makes in the container's rootfs, as root, before
// the runtime starts. Every destination is resolved inside the rootfs from a
// descriptor, after the mounts before it are attached, and every mount is
// attached onto that descriptor (see core/runtime/root_directory.hpp and
// core/runtime/mount_tree.hpp). The runtime afterwards mounts only /proc, /sys and
// /dev/pts, which is why user mounts may not go there.
#pragma once

#include "common/file_descriptor.hpp"
#include "runtime/mount_options.hpp"
#include "runtime/root_directory.hpp"

#include <filesystem>
#include <string>

namespace sarus::suid {

class ContainerMounts {
public:
    // deviceStaging: an empty directory of the bundle for making device nodes.
    ContainerMounts(RootDirectory& root, const CreationPolicy& policy,
                    const std::filesystem::path& deviceStaging);

    // /dev, /proc and /sys become real directories of the rootfs (an image
    // may have planted symlinks there), and /dev gets its own tmpfs with the
    // host's /dev/shm in it.
    void mountDev();
    // A user's mount tree (cloned already) at its destination; nosuid,
    // nodev, and read-only when asked. The resolved destination must pass the
    // userMounts rules (unless the launcher's). Returns it.
    std::string attachUserTree(int tree, const BindMount& mount, const UserMountRestrictions& rules);
    // A host path named by the administrator (a site mount).
    void bindHostPath(const BindMount& mount);
    // A device node made from what the caller's stat saw, never from a path.
    void createDevice(const DeviceMount& device);
    // A file sarus opened before any mount (the init, the workdir helper).
    void attachFile(int fd, const std::string& destination);

private:
    std::string attach(int tree, const BindMount& mount, const std::string& what, const UserMountRestrictions* rules);

    RootDirectory& root_;
    CreationPolicy policy_;
    std::filesystem::path deviceStaging_;
    FileDescriptor deviceNodes_;  // the tmpfs on deviceStaging_, once needed
    int nodeCount_ = 0;
};

}  // namespace sarus::suid
