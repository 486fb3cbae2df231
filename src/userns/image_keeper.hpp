// The image keeper of userns mode (see runtime/mount_keeper.hpp): one per
// user and node, in a user and mount namespace of its own, mounting each
// image once with squashfuse_ll. Containers join those namespaces (see
// kept_image.hpp), so a start needs neither an id mapping nor an image
// mount, and an image's caches stay warm from one container to the next.
// Its answer: the mount point in its mount namespace, and its user and
// mount namespaces as descriptors.
#pragma once

#include "common/file_descriptor.hpp"
#include "runtime/mount_keeper.hpp"
#include "squashfuse_mount.hpp"

#include <filesystem>

namespace sarus::userns {

struct KeeperSettings {
    KeeperOptions options;
    SquashfuseMount squashfuse;  // daemon, ids and preload; image and mount point per image
    // A tmpfs in the keeper's mount namespace (empty on the host).
    std::filesystem::path mountsDir() const { return options.paths.directory / "images"; }
};

// In a process that just created its user and mount namespaces (ids
// mapped): makes the mount tmpfs and the listening socket. Throws
// sarus::Error.
FileDescriptor prepareKeeper(const KeeperSettings& settings);

// Serves until the last mount is released, then exits; never returns.
[[noreturn]] void serveAsKeeper(const KeeperSettings& settings, FileDescriptor listener);

}  // namespace sarus::userns
