// The SUID-specific part of the sandbox (see core/runtime/sandbox.hpp), run as root.
//
//   sarus (the caller's ids)        opens the image, clones the user's mount
//     │                             sources and stats the devices, as the caller
//     └─ supervisor (root)          creates the container's cgroups below the
//          │                        caller's; outlives sarus to remove them
//          └─ sandbox (root, PID 1) mounts the image and every mount from
//               │                   descriptors, then execs the runtime it
//               └─ crun/runc        opened before any of those mounts
//
// The caller cannot signal or trace the root processes; if sarus dies, the
// supervisor kills the sandbox (and with it everything in its PID namespace),
// kills what is left in the cgroups (--pid=host) and removes them.
#pragma once

#include "runtime/container_spec.hpp"
#include "runtime/sandbox.hpp"
#include "common/file_descriptor.hpp"
#include "runtime/mount_keeper.hpp"
#include "runtime/mount_options.hpp"

#include <chrono>

#include <filesystem>
#include <string>
#include <vector>

namespace sarus::suid {

class ContainerCgroups;

struct SandboxPlan {
    ContainerSpec spec;
    FileDescriptor image;                        // the squashfs, opened as the caller
    std::chrono::seconds imageMountIdleTime{0};  // 0: no kept mount
    KeeperPaths keeperPaths;
    FileDescriptor keptMount;                    // the image's detached kept mount, if any
    bool readAhead = true;                       // the image's caches are cold: read the entrypoint ahead
    std::vector<FileDescriptor> userMountTrees;  // of spec.userMounts, cloned from what the caller opened
    std::filesystem::path bundleDir;
    std::string ramFilesystemType = "tmpfs";
    std::string runtimePath;
    std::string initPath;
    std::filesystem::path workdirHelperPath;
    UserMountRestrictions userMountRules;
    HostFiles hostFiles;
    std::vector<gid_t> callerGroups;
    nlohmann::json hooks = nlohmann::json::object();  // config.json "hooks"
};

// The supervisor's work (in the child of sarus, once started): returns the
// container's exit code after everything of it is gone.
int superviseContainer(SandboxPlan& plan, int parentAliveFd, int statusFd);

// The sandbox's work, in its new mount and PID namespaces.
int runSuidSandbox(SandboxPlan& plan, const ContainerCgroups& cgroups, int parentAliveFd);

}  // namespace sarus::suid
