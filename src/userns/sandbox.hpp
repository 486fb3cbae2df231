// What runs inside the container's user, mount (and PID) namespaces before
// the runtime: the bundle tmpfs, the image through squashfuse_ll, the
// writable overlay, the /etc files, then crun. Everything here is a child of
// the sandbox process, which is PID 1 of its namespace when the container has
// a private PID namespace, so all of it dies with the sandbox.
#pragma once

#include "container_spec.hpp"
#include "id_mapping.hpp"
#include "mount_options.hpp"
#include "rootfs_files.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace sarus::userns {

enum class OverlayType { automatic, kernel, fuse };

struct SandboxPlan {
    ContainerSpec spec;
    std::filesystem::path imageFile;
    std::filesystem::path bundleDir;
    std::string ramFilesystemType = "tmpfs";
    std::string crunPath;
    std::string squashfusePath;
    std::string fuseOverlayfsPath;
    std::string initPath;
    OverlayType overlay = OverlayType::automatic;
    IdMappingPlan ids;
    UserMountRestrictions userMountRules;
    std::vector<GroupEntry> callerGroups;
    std::string containerName;
    std::string hostsFile;
    std::string resolvConf;
    int parentAliveFd = -1;  // read end of a pipe whose write end sarus holds until it exits
};

// Runs in the cloned child: waits for the go byte on goFd (whose write end
// sarus keeps open while it lives), prepares the
// bundle and runs crun. Errors before the container starts are written as
// text to statusFd. Never returns: exits with the container's exit code.
[[noreturn]] void runSandbox(const SandboxPlan& plan, int goFd, int statusFd);

}  // namespace sarus::userns
