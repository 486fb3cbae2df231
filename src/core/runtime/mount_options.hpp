// The --mount and --device formats of `sarus run`. The same parser serves the
// engine and mount_hook, so a mount prototyped on the command line can be
// copied into a hook configuration unchanged.
#pragma once

#include "common/file_descriptor.hpp"

#include <functional>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace sarus {

struct BindMount {
    std::string source;
    std::string destination;
    bool readonly = false;
    // A directory of the launcher for the job (PMIx): opened as the caller
    // like a user's mount, but not subject to the userMounts rules.
    bool launcher = false;
    std::string request;  // the --mount text, for messages
};

// What stat(2) of a device node said: enough to make the same node again
// without resolving its path.
struct DeviceNode {
    char type = 'c';  // 'c' or 'b'
    unsigned major = 0;
    unsigned minor = 0;
    mode_t mode = 0;
    uid_t uid = 0;
    gid_t gid = 0;
};

struct DeviceMount {
    std::string source;
    std::string destination;
    std::string access = "rwm";  // subset of "rwm"
    std::optional<DeviceNode> node;  // filled by statDeviceNode, as the caller
    std::string request;             // the --device text, for messages
};

// type=bind,src|source=PATH,dst|destination|target=PATH[,readonly], checked
// in Sarus's order and refused in its words.
BindMount parseMount(const std::string& text);

// HOST[:CONTAINER][:ACCESS]
DeviceMount parseDevice(const std::string& text);

struct UserMountRestrictions {
    std::vector<std::string> notAllowedPrefixesOfPath;
    std::vector<std::string> notAllowedPaths;
};

// Where an absolute path leads in the container's root filesystem,
// nullopt where nothing is.
using PathInRootResolver = std::function<std::optional<std::string>(const std::string&)>;

// Throws if destination (already normalised) is refused by the admin's
// userMounts restrictions, in Sarus's words about the request. With
// leadsTo, also where an image's symlink takes a refused path (/etc ->
// /mnt/etc): the destination may neither be there nor cover it.
void checkUserMountDestination(const std::string& destination, const UserMountRestrictions& rules,
                               const std::string& request, const PathInRootResolver& leadsTo = {});

// Opens mount.source (O_PATH) and throws unless the caller (this process's
// ids) can read that object; call it with the caller's ids, before anything
// privileged happens.
FileDescriptor openMountSource(const BindMount& mount);

// What the existing character or block device at path is (looked at with the
// caller's permissions); throws for anything else, and for a node on a nodev
// filesystem.
DeviceNode statDeviceNode(const std::string& path);
// The same, its error naming the --device request as Sarus does.
DeviceNode statDeviceNode(const DeviceMount& device);
// The same for a node already opened (O_PATH, or a cloned mount of it).
DeviceNode deviceNodeOf(int fd, const std::string& path);

// Collapses "//", "." and ".." of an absolute path without touching the
// filesystem; ".." never goes above "/".
std::string normalizeAbsolutePath(const std::string& path);

// Whether the normalized absolute path is directory itself or below it.
bool isSameOrBelow(const std::string& path, const std::string& directory);

// Destinations the runtime mounts over (and /dev itself): a mount there
// would be hidden, or would carry the runtime's own files (where the runtime
// writes as root). Takes the destination as resolved in the rootfs.
void checkNotRuntimeMountPoint(const std::string& resolvedDestination, const std::string& what);
// For a hook, which mounts after the runtime's /proc and /sys are there:
// only /, /dev, /proc, /sys themselves and what is below /dev/pts.
void checkNotRuntimeMountPointForHook(const std::string& resolvedDestination, const std::string& what);

}  // namespace sarus
