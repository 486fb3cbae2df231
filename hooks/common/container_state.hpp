// What a hook knows about its container: the OCI state on stdin and the
// bundle's config.json it points to.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <istream>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace hook {

struct ContainerState {
    // 0 when the runtime runs the hook inside the container (crun's
    // createContainer): the hook then already shares its namespaces and cgroup.
    pid_t pid = 0;
    std::filesystem::path bundle;
    std::map<std::string, std::string> annotations;  // state's, else config.json's
    std::filesystem::path rootfs;                    // absolute (root.path relative to bundle)
    std::vector<std::string> env;                    // process.env
    std::vector<std::string> args;                   // process.args
    uid_t uid = 0;                                   // process.user: what a hook creates
    gid_t gid = 0;                                   // outside the container's own mounts is theirs
    std::vector<gid_t> additionalGids;               // process.user.additionalGids
};

// Parses the state JSON and reads <bundle>/config.json; throws sarus::Error.
ContainerState readContainerState(std::istream& stateJson);

// "/proc/<pid>", or "/proc/self" when pid is 0 (the hook is inside the container).
std::string procDir(pid_t pid);

// The value of NAME in the container's environment, nullopt when unset.
std::optional<std::string> containerEnvIfSet(const ContainerState& state, const std::string& name);

// The value of NAME in the container's environment, "" when unset.
std::string containerEnv(const ContainerState& state, const std::string& name);

}  // namespace hook
