// Mounts a hook performs inside the container's rootfs, with the engine's
// own parsers' structures (src/core/runtime/mount_options.hpp).
#pragma once

#include "container_state.hpp"
#include "runtime/mount_options.hpp"
#include "runtime/root_directory.hpp"

#include <filesystem>
#include <sys/types.h>

namespace hook {

// The container's rootfs with the mounts the engine made its own (the rootfs
// itself and its /dev); anything else there is a directory of the host.
sarus::RootDirectory openContainerRootfs(const ContainerState& state);

// Binds mount.source onto mount.destination resolved inside the container's
// rootfs from a descriptor (symlinks of the image or of a bind-mounted
// directory are followed there, never on the host), creating the mount
// point: as the container's user where it lies on a bind-mounted host
// directory. nosuid, and read-only when asked. Must run in the container's
// mount namespace.
void bindMount(const ContainerState& state, const sarus::BindMount& mount);

// Creates the symlink <directory>/<name> -> target in the container unless
// something of that name is there already (an image's own file wins).
// Returns whether it created it.
bool createSymlinkIfMissing(const ContainerState& state, const std::string& directory, const std::string& name,
                            const std::string& target);

// Binds the device node into the rootfs and, unless rootless, allows it in
// the devices cgroup (v1) of the container; when that is impossible it says
// so and continues.
void deviceMount(const ContainerState& state, const sarus::DeviceMount& device, bool rootless);

// Writes "<c|b> MAJ:MIN access" to devices.allow of pid's cgroup v1.
// Returns false (after logging why) when there is no such controller.
bool whitelistDevice(pid_t pid, char type, unsigned major, unsigned minor, const std::string& access);

}  // namespace hook
