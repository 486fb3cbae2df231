// The userns-specific part of the sandbox (see core/runtime/sandbox.hpp): the image
// through squashfuse_ll as the caller, the writable overlay in the user
// namespace, then crun as root of that namespace.
#pragma once

#include "runtime/container_spec.hpp"
#include "id_mapping.hpp"
#include "runtime/mount_options.hpp"
#include "runtime/sandbox.hpp"

#include <filesystem>
#include <string>

namespace sarus::userns {

enum class OverlayType { automatic, kernel, fuse };

struct SandboxPlan {
    ContainerSpec spec;
    std::filesystem::path imageFile;
    // Set when the sandbox runs in the image keeper's namespaces: the kept
    // mount of imageFile, and the keeper's tmpfs of mounts it lies in.
    std::filesystem::path keptImageMount;
    std::filesystem::path keptMountsDir;
    bool readAhead = true;  // the image's caches are cold: read the entrypoint ahead
    std::filesystem::path bundleDir;
    std::string ramFilesystemType = "tmpfs";
    std::string crunPath;
    std::string squashfusePath;
    std::filesystem::path squashfusePreload;  // empty: squashfuse runs without it
    std::string fuseOverlayfsPath;
    std::string initPath;
    OverlayType overlay = OverlayType::automatic;
    IdMappingPlan ids;
    UserMountRestrictions userMountRules;
    HostFiles hostFiles;
    nlohmann::json hooks = nlohmann::json::object();  // config.json "hooks"
};

// The sandbox's work once its ids are mapped; returns the container's exit code.
int runUsernsSandbox(SandboxPlan plan, int parentAliveFd);

}  // namespace sarus::userns
