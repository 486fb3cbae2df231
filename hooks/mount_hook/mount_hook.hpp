// mount_hook: the --mount and --device arguments of `sarus run`, performed
// by a createContainer hook inside the container's mount namespace.
#pragma once

#include "container_state.hpp"
#include "runtime/mount_options.hpp"

#include <string>
#include <vector>

namespace hook {

struct MountHookArgs {
    std::vector<sarus::BindMount> mounts;
    std::vector<sarus::DeviceMount> devices;
};

// Parses "--mount=..." and "--device=..." (or the value as the next argument)
// with the engine's parsers, replacing <FI_PROVIDER_PATH> by fiProviderPath.
MountHookArgs parseMountHookArgs(const std::vector<std::string>& args, const std::string& fiProviderPath);

// The value of <FI_PROVIDER_PATH>: the container's FI_PROVIDER_PATH, else the
// directory of libfabric in its ld cache + "/libfabric" (`ldconfig -p` when
// ldconfigPath is set, else the cache file read directly),
// else /usr/lib.
std::string fiProviderPath(const ContainerState& state, const std::string& ldconfigPath);

// The whole hook; returns the exit status.
int runMountHook(const std::vector<std::string>& args);

}  // namespace hook
