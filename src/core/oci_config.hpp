// config.json of the OCI bundle. Both backends use this generator; the few
// differences of a rootless runtime are switched by OciConfigOptions.
#pragma once

#include "container_spec.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <sys/types.h>
#include <vector>

namespace sarus {

struct IdMap {
    unsigned containerId;
    unsigned hostId;
    unsigned size;
};

struct OciConfigOptions {
    std::string rootfs = "rootfs";
    // The runtime runs inside a user namespace we created: no sysfs/mqueue
    // mounts, devices bind-mounted instead of created, groups kept as they are.
    bool rootless = false;
    // When set, the runtime creates the container's own user namespace with
    // these mappings (used when only a single id could be mapped).
    std::vector<IdMap> uidMappings;
    std::vector<IdMap> gidMappings;
    std::string initPath;  // bind-mounted at /dev/init when spec.init
    nlohmann::json hooks = nlohmann::json::object();
    std::string hooksOutput;  // file crun gives the hooks as stdout and stderr
};

nlohmann::json generateOciConfig(const ContainerSpec& spec, const OciConfigOptions& options);

}  // namespace sarus
