// User namespace id maps for unprivileged containers.
//
// With a subordinate range (/etc/subuid and /etc/subgid) the sandbox gets a
// "keep-id" map: the caller's own id maps to itself and the ids around it to
// the range, so files owned by root or other users inside the image keep
// distinct owners. Without a range only one id can be mapped: namespace root
// becomes the caller, and the runtime maps the caller's id back on top of it.
#pragma once

#include "config/identity.hpp"
#include "runtime/oci_config.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace sarus::userns {

struct SubordinateRange {
    unsigned start = 0;
    unsigned count = 0;
};

// The first range of `user` (by name or numeric id) in an /etc/subuid-style file.
std::optional<SubordinateRange> findSubordinateRange(const std::filesystem::path& file,
                                                     const std::string& user, unsigned id);

struct IdMappingPlan {
    bool keepId = false;
    std::vector<IdMap> uidMap;  // for the sandbox namespace (inside -> outside)
    std::vector<IdMap> gidMap;
    // Only without a range: the runtime's nested namespace maps the caller's
    // ids to sandbox root.
    std::vector<IdMap> nestedUidMap;
    std::vector<IdMap> nestedGidMap;
    // The sandbox id that is the caller on the host (owner of the image files).
    uid_t callerUidInside = 0;
    gid_t callerGidInside = 0;
};

std::vector<IdMap> keepIdMap(unsigned id, const SubordinateRange& range);

IdMappingPlan planIdMapping(const Identity& identity, const std::optional<SubordinateRange>& subuid,
                            const std::optional<SubordinateRange>& subgid);

struct IdMappingTools {
    std::string newuidmap = "/usr/bin/newuidmap";
    std::string newgidmap = "/usr/bin/newgidmap";
};

// Writes the maps of process pid (called by its parent, outside the namespace).
void applyIdMapping(pid_t pid, const IdMappingPlan& plan, const IdMappingTools& tools);

}  // namespace sarus::userns
