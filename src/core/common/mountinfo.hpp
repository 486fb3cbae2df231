// The lines of /proc/<pid>/mountinfo (proc(5)), for the few places that
// must know what is mounted where: the caller's cgroup mounts, the proc
// mounts below a container's root.
#pragma once

#include <string>
#include <vector>

namespace sarus {

struct MountInfoEntry {
    std::string root;        // of the mount inside its filesystem
    std::string mountPoint;  // unescaped
    std::string type;
    std::string superOptions;
};

// Lines that do not have the fields proc(5) describes are skipped.
std::vector<MountInfoEntry> parseMountInfo(const std::string& text);

}  // namespace sarus
