// Mounts handled as file descriptors (the kernel's new mount API): a tree is
// cloned or created detached, its flags are set while nothing can reach it,
// and it is attached onto a descriptor of its mount point. Nothing resolves a
// path string at the moment a mount appears.
#pragma once

#include "common/file_descriptor.hpp"

#include <cstdint>
#include <string>

namespace sarus {

// A detached copy of the mount tree at path (relative to dirfd; "" means
// dirfd itself), with every mount below it.
FileDescriptor cloneMountTree(int dirfd, const std::string& path, const std::string& what);

// Sets MOUNT_ATTR_* flags on every mount of a (detached) tree, private
// propagation included: nothing mounted later propagates to or from the host.
void setMountTreeAttributes(int treeFd, std::uint64_t attributes, const std::string& what);

// Attaches a detached tree on top of the mount point that targetFd refers to.
void attachMountTree(int treeFd, int targetFd, const std::string& what);

// A new detached mount of a file system of this type with these attributes
// and "key=value,..." options (a key alone sets a flag).
FileDescriptor newMount(const std::string& type, const std::string& options, std::uint64_t attributes,
                        const std::string& what);

// A new detached tmpfs with these attributes and "key=value,..." options.
FileDescriptor newTmpfs(const std::string& options, std::uint64_t attributes, const std::string& what);

}  // namespace sarus
