// Files sarus places into a container's root filesystem. Paths are resolved
// inside the rootfs and the last component is never followed, so a symlink
// planted in an image cannot redirect a write to the host.
#pragma once

#include "config/identity.hpp"

#include <filesystem>
#include <string>
#include <sys/types.h>
#include <vector>

namespace sarus {

// Creates the directory (and missing parents) inside root; new directories
// get mode 0755 and the given owner. Returns the resolved container path.
std::string createDirectoryInRoot(const std::filesystem::path& root, const std::string& containerPath,
                                  uid_t uid, gid_t gid);

// Replaces a file inside root (a symlink in its place is removed first).
void writeFileInRoot(const std::filesystem::path& root, const std::string& containerPath,
                     const std::string& content, mode_t mode, uid_t uid, gid_t gid);

// Reads a regular file inside root; empty if it does not exist.
std::string readFileInRoot(const std::filesystem::path& root, const std::string& containerPath);

struct GroupEntry {
    std::string name;
    gid_t gid;
};

// The container's passwd: the host's database as the installation cached it
// (Sarus copies that file over the image's), the image's own entries whose
// name and uid the host does not use (its service users), and the caller's
// current entry, which replaces any other of the same name or uid.
std::string mergePasswd(const std::string& imagePasswd, const Identity& identity,
                        const std::string& hostPasswd = "");
// The same for group, with the caller's groups and the caller as member.
std::string mergeGroup(const std::string& imageGroup, const Identity& identity,
                       const std::vector<GroupEntry>& callerGroups, const std::string& hostGroup = "");
// Names of the caller's primary and supplementary groups on the host.
std::vector<GroupEntry> callerGroups(const Identity& identity);

}  // namespace sarus
