// config.json of the OCI bundle. Both backends use this generator; the few
// differences of a rootless runtime are switched by OciConfigOptions.
#pragma once

#include "runtime/container_spec.hpp"

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
    // rootless: the host has an mqueue filesystem on /dev/mqueue, bound there
    bool hostMqueue = false;
    // The sandbox made /dev, /dev/shm, the site and user mounts, the devices
    // and /dev/init itself (suid mode): config.json lists none of them.
    bool sandboxMounts = false;
    // Container path of sarus-workdir: the process starts in "/" and the
    // helper enters spec.cwd as the container's user.
    std::string workdirHelper;
    // The working directory the runtime enters by name, when not the
    // container's own ("" for spec.cwd): the path as resolved in the rootfs.
    std::string runtimeCwd;
    std::string cgroupsPath;  // linux.cgroupsPath when not empty
    // false: the container stays in the sandbox's own private mount namespace
    // and the runtime enters the rootfs with chroot. A runtime that makes a
    // mount namespace binds the rootfs onto itself and remounts the bind
    // without nosuid and nodev; the sandbox's mount of the rootfs keeps them.
    // (A runtime-made user namespace needs its own mount namespace: then the
    // flags are locked, and the runtime keeps them.)
    bool mountNamespace = true;
    nlohmann::json hooks = nlohmann::json::object();
    std::string hooksStdout;  // files crun gives the hooks as stdout and stderr
    std::string hooksStderr;
};

nlohmann::json generateOciConfig(const ContainerSpec& spec, const OciConfigOptions& options);

// Whether an annotation of the user or the image goes into config.json: only
// the com.hooks.* keys that the hooks read. Everything else would be acted on
// by the runtime (as root in suid mode) with values the user chose.
bool annotationReachesRuntime(const std::string& key);

}  // namespace sarus
