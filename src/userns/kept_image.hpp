// The client side of the image keeper (image_keeper.hpp): a container's
// claim on a kept image mount, and the sandbox cloned into the keeper's
// namespaces.
#pragma once

#include "common/file_descriptor.hpp"
#include "common/process.hpp"
#include "id_mapping.hpp"
#include "image_keeper.hpp"

#include <filesystem>
#include <sys/types.h>

namespace sarus::userns {

// Held for as long as the container runs: the keeper releases the mount
// only after the connection closed (also when sarus is killed).
struct KeptImage {
    FileDescriptor connection;
    FileDescriptor userNamespace;
    FileDescriptor mountNamespace;
    std::filesystem::path mountpoint;  // in the keeper's mount namespace
    bool fresh = false;                // mounted for this container: its caches are cold
};

// The kept mount of imageFile, from the keeper of settings.paths; starts the
// keeper (in a user namespace mapped with ids and tools) when none serves.
// Throws sarus::Error.
KeptImage acquireKeptImage(const KeeperSettings& settings, const IdMappingPlan& ids, const IdMappingTools& tools,
                           const std::filesystem::path& imageFile);

// Like cloneSandbox, but the child is created in the keeper's user
// namespace with a copy of its mount namespace (plus the other namespaces
// of flags, of which CLONE_NEWUSER is ignored). It is still this process's
// child. Returns 0 in the child. The short-lived process that entered the
// namespaces is left to `entering`, reaped later rather than waited for now.
pid_t cloneSandboxIntoKeeper(const KeptImage& kept, unsigned long flags, ReapedChild& entering);

}  // namespace sarus::userns
