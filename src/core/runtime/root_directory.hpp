// A container's root filesystem reached through a file descriptor. Every path
// inside it is resolved by the kernel with openat2(RESOLVE_IN_ROOT |
// RESOLVE_NO_MAGICLINKS): symlinks (absolute or relative) and ".." stay inside
// the root whatever the image or a bind-mounted directory holds, and however
// it changes meanwhile. What is found is used as a descriptor; no host path
// string is built for something else to resolve again.
#pragma once

#include "common/file_descriptor.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace sarus {

struct Owner {
    uid_t uid = 0;
    gid_t gid = 0;
};

// Who creates what is missing. Inside the container's own filesystem (the
// mount of the root itself, private to this container) sarus creates it and
// gives it to `owner`. Anywhere else (a bind-mounted host directory) it is
// created with the caller's file-system ids, so that the kernel checks the
// caller's permissions and the caller owns the result.
struct CreationPolicy {
    Owner owner;
    Owner caller;
    // Supplementary groups to act with as the caller (suid mode, where root
    // has none); nullopt leaves the process's groups as they are.
    std::optional<std::vector<gid_t>> callerGroups;
};

// File-system ids (and groups) of the caller for the scope's lifetime: the
// kernel then checks the caller's permissions, and what is created belongs
// to the caller. Effective ids, and so the right to switch back, stay.
// Changes the calling thread's ids and the process's groups: for
// single-threaded root code.
class ActingAsCaller {
public:
    explicit ActingAsCaller(const CreationPolicy& policy);
    ~ActingAsCaller();
    ActingAsCaller(const ActingAsCaller&) = delete;
    ActingAsCaller& operator=(const ActingAsCaller&) = delete;

private:
    uid_t savedUid_ = 0;
    gid_t savedGid_ = 0;
    std::vector<gid_t> savedGroups_;
    bool restoreGroups_ = false;
};

class RootDirectory {
public:
    explicit RootDirectory(const std::filesystem::path& path);

    const std::filesystem::path& path() const { return path_; }
    int fd() const { return fd_.get(); }

    // Opens containerPath inside the root; throws naming the path.
    FileDescriptor open(const std::string& containerPath, int flags) const;
    // The same, but nullopt when a component is missing.
    std::optional<FileDescriptor> openIfExists(const std::string& containerPath, int flags) const;

    // Creates the missing directories of containerPath as the policy says;
    // returns an O_PATH descriptor of the last one.
    FileDescriptor ensureDirectory(const std::string& containerPath, const CreationPolicy& policy) const;
    // A mount point: whatever exists there is kept; a missing one becomes a
    // directory or an empty file. Returns an O_PATH descriptor of it.
    FileDescriptor ensureMountPoint(const std::string& containerPath, bool directory,
                                    const CreationPolicy& policy) const;
    // Replaces a regular file (anything else of that name is removed first;
    // a symlink there is never followed).
    void writeFile(const std::string& containerPath, const std::string& content, mode_t mode,
                   const CreationPolicy& policy) const;
    // Creates the symlink name -> target in the directory `parent` (opened
    // through this root) unless something of that name is there already;
    // returns whether it created it.
    bool createSymlink(int parent, const std::string& name, const std::string& target,
                       const CreationPolicy& policy) const;
    // A regular file's content (at most 64 MiB); "" when it is missing, not
    // a regular file, or one of procfs, sysfs and the like.
    std::string readFile(const std::string& containerPath) const;
    // Replaces whatever containerPath names (a symlink, a file) by an empty
    // directory unless it is one already; the path's parent must exist.
    FileDescriptor replaceWithDirectory(const std::string& containerPath, const CreationPolicy& policy) const;

    // The container path of a descriptor opened through this root.
    std::string containerPathOf(int fd) const;
    // Whether fd lies on the root's own mount, or on one that the engine
    // attached in it and declared its own (not on a host directory).
    bool onRootMount(int fd) const;
    void declareOwnMount(int fd);

private:
    enum class Missing { fail, directory, file };
    FileDescriptor walk(const std::string& containerPath, Missing missing, const CreationPolicy& policy) const;
    void createAt(int parent, const std::string& name, bool directory, const CreationPolicy& policy,
                  const std::string& what) const;

    std::filesystem::path path_;
    FileDescriptor fd_;
    std::vector<std::uint64_t> ownMounts_;
};

// Splits a container path into its components, dropping "" and "."; ".." is
// kept for the kernel to resolve.
std::vector<std::string> pathComponents(const std::string& path);

// The mount id of what fd refers to (statx STATX_MNT_ID).
std::uint64_t mountIdOf(int fd);

}  // namespace sarus
