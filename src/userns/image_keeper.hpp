// The image keeper (userns mode): one process per user and node that owns a
// user and a mount namespace in which every image is mounted once with
// squashfuse_ll. Containers join those namespaces (see kept_image.hpp), so a
// start needs neither an id mapping nor an image mount, and the kernel's
// caches of an image stay warm from one container to the next.
//
// It serves on DIR/keeper.sock. A client sends "MOUNT <image file>\n" and
// gets "OK fresh|kept <mount point>\n" (fresh: mounted for this request) with the keeper's user and mount namespaces as
// SCM_RIGHTS, or "ERR <message>\n". The connection stays open for as long
// as the client's container runs. A mount without clients is released after
// the idle time, at once when its image file was removed or replaced; the
// keeper ends with its last mount.
#pragma once

#include "common/file_descriptor.hpp"
#include "squashfuse_mount.hpp"

#include <chrono>
#include <filesystem>

namespace sarus::userns {

struct KeeperPaths {
    std::filesystem::path directory;  // the caller's, mode 0700
    std::filesystem::path socket() const { return directory / "keeper.sock"; }
    std::filesystem::path lock() const { return directory / "lock"; }
    // A tmpfs in the keeper's mount namespace, empty on the host.
    std::filesystem::path mounts() const { return directory / "images"; }
};

struct KeeperSettings {
    KeeperPaths paths;
    std::chrono::seconds idleTime{60};
    SquashfuseMount squashfuse;  // daemon, ids and preload; image and mount point per image
};

// In a process that just created its user and mount namespaces (ids
// mapped): makes the mount tmpfs and the listening socket. Throws
// sarus::Error.
FileDescriptor prepareKeeper(const KeeperSettings& settings);

// Serves until the last mount is released, then exits; never returns.
[[noreturn]] void serveAsKeeper(const KeeperSettings& settings, FileDescriptor listener);

}  // namespace sarus::userns
