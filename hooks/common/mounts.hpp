// Mounts a hook performs inside the container's rootfs, with the engine's
// own parsers' structures (sarus/core/mount_options.hpp).
#pragma once

#include "mount_options.hpp"

#include <filesystem>
#include <sys/types.h>

namespace hook {

// Binds mount.source onto mount.destination resolved inside rootfs (symlinks
// of the image are followed there), creating the mount point; nosuid, and
// read-only when asked. Must run in the container's mount namespace.
void bindMount(const std::filesystem::path& rootfs, const sarus::BindMount& mount);

// Creates the symlink <directory>/<name> -> target in the container unless
// something of that name is there already (an image's own file wins).
// Returns whether it created it.
bool createSymlinkIfMissing(const std::filesystem::path& rootfs, const std::string& directory,
                            const std::string& name, const std::string& target);

// Binds the device node into rootfs and, unless rootless, allows it in the
// devices cgroup (v1) of pid; when that is impossible it says so and continues.
void deviceMount(const std::filesystem::path& rootfs, const sarus::DeviceMount& device, pid_t pid,
                 bool rootless);

// Writes "<c|b> MAJ:MIN access" to devices.allow of pid's cgroup v1.
// Returns false (after logging why) when there is no such controller.
bool whitelistDevice(pid_t pid, char type, unsigned major, unsigned minor, const std::string& access);

}  // namespace hook
