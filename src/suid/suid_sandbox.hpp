// The SUID-specific part of the sandbox (see core/sandbox.hpp), run as root:
// the image loop-mounted from a file descriptor the caller opened, kernel
// overlayfs, the user's bind mounts from descriptors the caller opened, then
// the runtime (runc or crun) as root.
#pragma once

#include "container_spec.hpp"
#include "core/sandbox.hpp"
#include "mount_options.hpp"

#include <filesystem>
#include <string>

namespace sarus::suid {

struct SandboxPlan {
    ContainerSpec spec;
    int imageFd = -1;    // the squashfs, opened as the caller
    std::filesystem::path bundleDir;
    std::string ramFilesystemType = "tmpfs";
    std::string runtimePath;
    std::string initPath;
    UserMountRestrictions userMountRules;
    HostFiles hostFiles;
    nlohmann::json hooks = nlohmann::json::object();  // config.json "hooks"
};

int runSuidSandbox(SandboxPlan plan, int parentAliveFd);

}  // namespace sarus::suid
