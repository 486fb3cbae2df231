#include "runtime/mount_tree.hpp"

#include "common/error.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sstream>
#include <sys/mount.h>
#include <unistd.h>

#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

namespace sarus {

FileDescriptor cloneMountTree(int dirfd, const std::string& path, const std::string& what) {
    unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | (path.empty() ? AT_EMPTY_PATH : 0);
    FileDescriptor tree(::open_tree(dirfd, path.c_str(), flags));
    if (tree.get() < 0) {
        throw systemError("cannot prepare the mount of " + what, errno);
    }
    return tree;
}

void setMountTreeAttributes(int treeFd, std::uint64_t attributes, const std::string& what) {
    struct mount_attr attr {};
    attr.attr_set = attributes;
    attr.propagation = MS_PRIVATE;
    if (::mount_setattr(treeFd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0) {
        throw systemError("cannot set the flags of the mount of " + what, errno);
    }
}

void attachMountTree(int treeFd, int targetFd, const std::string& what) {
    if (::move_mount(treeFd, "", targetFd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
        throw systemError("cannot mount " + what, errno);
    }
}

FileDescriptor newMount(const std::string& type, const std::string& options, std::uint64_t attributes,
                        const std::string& what) {
    auto failure = "cannot create a " + type + " mount for " + what;
    FileDescriptor context(::fsopen(type.c_str(), FSOPEN_CLOEXEC));
    if (context.get() < 0) {
        throw systemError(failure, errno);
    }
    std::stringstream in(options);
    for (std::string option; std::getline(in, option, ',');) {
        auto eq = option.find('=');
        auto key = option.substr(0, eq);
        int result = eq == std::string::npos
                         ? ::fsconfig(context.get(), FSCONFIG_SET_FLAG, key.c_str(), nullptr, 0)
                         : ::fsconfig(context.get(), FSCONFIG_SET_STRING, key.c_str(),
                                      option.substr(eq + 1).c_str(), 0);
        if (result != 0) {
            throw systemError("cannot set " + type + " option '" + option + "' for " + what, errno);
        }
    }
    if (::fsconfig(context.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
        throw systemError(failure, errno);
    }
    FileDescriptor tree(::fsmount(context.get(), FSMOUNT_CLOEXEC, static_cast<unsigned>(attributes)));
    if (tree.get() < 0) {
        throw systemError(failure, errno);
    }
    return tree;
}

FileDescriptor newTmpfs(const std::string& options, std::uint64_t attributes, const std::string& what) {
    return newMount("tmpfs", options, attributes, what);
}

}  // namespace sarus
