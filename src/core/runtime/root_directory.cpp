#include "runtime/root_directory.hpp"

#include "common/error.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <deque>
#include <fcntl.h>
#include <grp.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/vfs.h>
#include <sstream>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace sarus {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t maxReadSize = 64 << 20;

// A "regular" file of procfs, sysfs and the like, which a user may bind
// into the container: reading one as root can block (/proc/kmsg), take
// what others wait for (the kernel log, trace_pipe) or never end (kcore).
bool isKernelInterface(int fd) {
    struct statfs fs {};
    if (::fstatfs(fd, &fs) != 0) {
        return true;
    }
    switch (static_cast<unsigned long>(fs.f_type)) {
    case PROC_SUPER_MAGIC: case SYSFS_MAGIC: case DEBUGFS_MAGIC: case TRACEFS_MAGIC: case SECURITYFS_MAGIC:
    case CGROUP_SUPER_MAGIC: case CGROUP2_SUPER_MAGIC: case BPF_FS_MAGIC: case PSTOREFS_MAGIC:
    case EFIVARFS_MAGIC: case 0x62656570 /* configfs */:
        return true;
    default:
        return false;
    }
}

int openat2InRoot(int rootFd, const std::string& relative, int flags) {
    struct open_how how {};
    how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    // EAGAIN: a rename somewhere in the filesystem raced with a ".." step;
    // the kernel refuses rather than risk an escape. Another try is safe.
    for (int attempt = 0;; ++attempt) {
        int fd = static_cast<int>(::syscall(SYS_openat2, rootFd, relative.c_str(), &how, sizeof how));
        if (fd >= 0 || errno != EAGAIN || attempt == 100) {
            return fd;
        }
    }
}

std::string relativeOf(const std::string& containerPath) {
    auto parts = pathComponents(containerPath);
    std::string relative = ".";
    for (const auto& part : parts) {
        relative += "/" + part;
    }
    return relative;
}

std::string parentOf(const std::string& path) {
    auto parts = pathComponents(path);
    std::string parent;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
        parent += "/" + parts[i];
    }
    return parent.empty() ? "/" : parent;
}

std::string lastComponent(const std::string& path) {
    auto parts = pathComponents(path);
    return parts.empty() ? "" : parts.back();
}

void giveTo(int fd, const Owner& owner, const std::string& what) {
    if (::fchownat(fd, "", owner.uid, owner.gid, AT_EMPTY_PATH) != 0) {
        throw systemError("cannot set the owner of " + what + " in the container", errno);
    }
}

}  // namespace

ActingAsCaller::ActingAsCaller(const CreationPolicy& policy) {
    if (policy.callerGroups) {
        savedGroups_.resize(static_cast<std::size_t>(::getgroups(0, nullptr)));
        ::getgroups(static_cast<int>(savedGroups_.size()), savedGroups_.data());
        if (::setgroups(policy.callerGroups->size(), policy.callerGroups->data()) != 0) {
            throw systemError("cannot take the caller's groups", errno);
        }
        restoreGroups_ = true;
    }
    savedGid_ = static_cast<gid_t>(::setfsgid(policy.caller.gid));
    savedUid_ = static_cast<uid_t>(::setfsuid(policy.caller.uid));
}

ActingAsCaller::~ActingAsCaller() {
    ::setfsuid(savedUid_);
    ::setfsgid(savedGid_);
    if (restoreGroups_) {
        ::setgroups(savedGroups_.size(), savedGroups_.data());
    }
}

std::vector<std::string> pathComponents(const std::string& path) {
    std::vector<std::string> parts;
    std::stringstream in(path);
    for (std::string part; std::getline(in, part, '/');) {
        if (!part.empty() && part != ".") {
            parts.push_back(part);
        }
    }
    return parts;
}

std::uint64_t mountIdOf(int fd) {
    struct statx st {};
    if (::statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &st) != 0) {
        throw systemError("cannot read the mount of a descriptor", errno);
    }
    return st.stx_mnt_id;
}

RootDirectory::RootDirectory(const fs::path& path)
    : path_(path), fd_(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)) {
    if (fd_.get() < 0) {
        throw systemError("cannot open the container's root " + path.string(), errno);
    }
    ownMounts_.push_back(mountIdOf(fd_.get()));
}

std::optional<FileDescriptor> RootDirectory::openIfExists(const std::string& containerPath, int flags) const {
    FileDescriptor fd(openat2InRoot(fd_.get(), relativeOf(containerPath), flags));
    if (fd.get() < 0) {
        if (errno == ENOENT) {
            return std::nullopt;
        }
        throw systemError("cannot open " + containerPath + " in the container", errno);
    }
    return fd;
}

FileDescriptor RootDirectory::open(const std::string& containerPath, int flags) const {
    auto fd = openIfExists(containerPath, flags);
    if (!fd) {
        throw systemError("cannot open " + containerPath + " in the container", ENOENT);
    }
    return std::move(*fd);
}

bool RootDirectory::onRootMount(int fd) const {
    return std::find(ownMounts_.begin(), ownMounts_.end(), mountIdOf(fd)) != ownMounts_.end();
}

void RootDirectory::declareOwnMount(int fd) { ownMounts_.push_back(mountIdOf(fd)); }

std::string RootDirectory::containerPathOf(int fd) const {
    char target[PATH_MAX + 1];
    auto link = "/proc/self/fd/" + std::to_string(fd);
    auto n = ::readlink(link.c_str(), target, PATH_MAX);
    if (n < 0) {
        throw systemError("cannot name a path of the container", errno);
    }
    std::string host(target, static_cast<std::size_t>(n));
    const auto& root = path_.string();
    if (host == root) {
        return "/";
    }
    if (host.compare(0, root.size() + 1, root + "/") != 0) {
        throw Error("a path resolved outside of the container's root: " + host);
    }
    return host.substr(root.size());
}

void RootDirectory::createAt(int parent, const std::string& name, bool directory, const CreationPolicy& policy,
                             const std::string& what) const {
    bool own = onRootMount(parent);
    int result;
    {
        std::optional<ActingAsCaller> caller;
        if (!own) {
            caller.emplace(policy);
        }
        result = directory ? ::mkdirat(parent, name.c_str(), 0755)
                           : ::openat(parent, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    }
    if (result < 0) {
        if (errno == EEXIST) {
            return;  // made meanwhile: the walk looks at it again
        }
        throw systemError("cannot create " + what + " in the container", errno);
    }
    if (!directory) {
        ::close(result);
    }
    if (own) {
        FileDescriptor created(::openat(parent, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
        if (created.get() < 0) {
            throw systemError("cannot open " + what + " in the container", errno);
        }
        giveTo(created.get(), policy.owner, what);
    }
}

// Resolves containerPath one component at a time from descriptors it holds,
// as RESOLVE_IN_ROOT does (symlinks are read and followed inside the root,
// ".." never climbs above it), creating what is missing on the way. Every
// step is an openat(O_NOFOLLOW) on a directory already resolved, so nothing
// that changes meanwhile can lead the walk outside the root.
FileDescriptor RootDirectory::walk(const std::string& containerPath, Missing missing,
                                   const CreationPolicy& policy) const {
    constexpr int maxLinks = 40;
    std::vector<FileDescriptor> stack;
    stack.emplace_back(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
    auto partsOfPath = pathComponents(containerPath);
    std::deque<std::string> pending(partsOfPath.begin(), partsOfPath.end());
    int links = 0;
    while (!pending.empty()) {
        auto part = pending.front();
        pending.pop_front();
        if (part == "..") {
            if (stack.size() > 1) {
                stack.pop_back();
            }
            continue;
        }
        bool last = pending.empty();
        int parent = stack.back().get();
        FileDescriptor next(::openat(parent, part.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
        if (next.get() < 0 && errno == ENOENT && missing != Missing::fail) {
            createAt(parent, part, !last || missing == Missing::directory, policy, containerPath);
            next = FileDescriptor(::openat(parent, part.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
        }
        if (next.get() < 0) {
            throw systemError("cannot resolve " + containerPath + " in the container", errno);
        }
        struct stat st {};
        if (::fstat(next.get(), &st) != 0) {
            throw systemError("cannot resolve " + containerPath + " in the container", errno);
        }
        if (S_ISLNK(st.st_mode)) {
            if (++links > maxLinks) {
                throw Error("too many levels of symbolic links resolving " + containerPath + " in the container");
            }
            char target[PATH_MAX + 1];
            auto n = ::readlinkat(next.get(), "", target, PATH_MAX);
            if (n < 0) {
                throw systemError("cannot read a symlink resolving " + containerPath, errno);
            }
            std::string link(target, static_cast<std::size_t>(n));
            if (!link.empty() && link[0] == '/') {
                stack.resize(1);
            }
            auto linkParts = pathComponents(link);
            pending.insert(pending.begin(), linkParts.begin(), linkParts.end());
            continue;
        }
        if (!last && !S_ISDIR(st.st_mode)) {
            throw systemError("cannot resolve " + containerPath + " in the container", ENOTDIR);
        }
        stack.push_back(std::move(next));
    }
    return std::move(stack.back());
}

FileDescriptor RootDirectory::ensureDirectory(const std::string& containerPath,
                                              const CreationPolicy& policy) const {
    auto directory = walk(containerPath, Missing::directory, policy);
    struct stat st {};
    if (::fstat(directory.get(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        throw systemError("cannot create " + containerPath + " in the container", ENOTDIR);
    }
    return directory;
}

FileDescriptor RootDirectory::ensureMountPoint(const std::string& containerPath, bool directory,
                                               const CreationPolicy& policy) const {
    return walk(containerPath, directory ? Missing::directory : Missing::file, policy);
}

void RootDirectory::writeFile(const std::string& containerPath, const std::string& content, mode_t mode,
                              const CreationPolicy& policy) const {
    // Missing parents are the engine's, like mount points; the file is the owner's.
    auto parentPolicy = policy;
    parentPolicy.owner = {::geteuid(), ::getegid()};
    auto parent = ensureDirectory(parentOf(containerPath), parentPolicy);
    auto name = lastComponent(containerPath);
    bool own = onRootMount(parent.get());
    int fd;
    {
        // Outside the container's own filesystem even the removal is the
        // caller's: root must not delete in a host directory the caller
        // can only read.
        std::optional<ActingAsCaller> caller;
        if (!own) {
            caller.emplace(policy);
        }
        struct stat st {};
        if (::fstatat(parent.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode)) {
            ::unlinkat(parent.get(), name.c_str(), S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0);
        }
        // Never into a mount there: a file bind-mounted onto the name is
        // the host's, which root would truncate and write (and chown).
        struct open_how how {};
        how.flags = O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC;
        how.mode = mode;
        how.resolve = RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH;
        fd = static_cast<int>(::syscall(SYS_openat2, parent.get(), name.c_str(), &how, sizeof how));
    }
    if (fd < 0 && errno == EXDEV) {
        throw Error("cannot write " + containerPath + " in the container: something is mounted there");
    }
    if (fd < 0) {
        throw systemError("cannot write " + containerPath + " in the container", errno);
    }
    FileDescriptor file(fd);
    bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
    if (ok && own) {
        ok = ::fchown(fd, policy.owner.uid, policy.owner.gid) == 0;
    }
    ok = ok && ::fchmod(fd, mode) == 0;
    if (!ok) {
        throw systemError("cannot write " + containerPath + " in the container", errno);
    }
}

bool RootDirectory::createSymlink(int parent, const std::string& name, const std::string& target,
                                  const CreationPolicy& policy) const {
    struct stat st {};
    if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        return false;
    }
    bool own = onRootMount(parent);
    int result;
    {
        std::optional<ActingAsCaller> caller;
        if (!own) {
            caller.emplace(policy);
        }
        result = ::symlinkat(target.c_str(), parent, name.c_str());
    }
    if (result != 0) {
        if (errno == EEXIST) {
            return false;
        }
        throw systemError("cannot create the symlink " + name + " in the container", errno);
    }
    if (own) {
        ::fchownat(parent, name.c_str(), policy.owner.uid, policy.owner.gid, AT_SYMLINK_NOFOLLOW);
    }
    return true;
}

std::string RootDirectory::readFile(const std::string& containerPath) const {
    // Typed before it is opened for reading: opening a device node (one a
    // user put there with --device) or a FIFO does things of its own, which
    // root must never do for the image or the user.
    auto node = openIfExists(containerPath, O_PATH);
    struct stat st {};
    if (!node || ::fstat(node->get(), &st) != 0 || !S_ISREG(st.st_mode) || isKernelInterface(node->get())) {
        return "";
    }
    auto procPath = "/proc/self/fd/" + std::to_string(node->get());
    FileDescriptor fd(::open(procPath.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (fd.get() < 0) {
        throw systemError("cannot open " + containerPath + " in the container", errno);
    }
    std::string content;
    char buffer[8192];
    ssize_t n;
    while (content.size() < maxReadSize && (n = ::read(fd.get(), buffer, sizeof buffer)) > 0) {
        content.append(buffer, static_cast<std::size_t>(n));
    }
    return content;
}

FileDescriptor RootDirectory::replaceWithDirectory(const std::string& containerPath,
                                                   const CreationPolicy& policy) const {
    auto parent = open(parentOf(containerPath), O_PATH | O_DIRECTORY);
    auto name = lastComponent(containerPath);
    struct stat st {};
    if (::fstatat(parent.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) {
        if (::unlinkat(parent.get(), name.c_str(), 0) != 0) {
            throw systemError("cannot replace " + containerPath + " in the container by a directory", errno);
        }
    }
    if (::mkdirat(parent.get(), name.c_str(), 0755) != 0 && errno != EEXIST) {
        throw systemError("cannot create " + containerPath + " in the container", errno);
    }
    FileDescriptor directory(::openat(parent.get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (directory.get() < 0) {
        throw systemError("cannot open " + containerPath + " in the container", errno);
    }
    if (onRootMount(directory.get())) {
        giveTo(directory.get(), policy.owner, containerPath);
    }
    return directory;
}

}  // namespace sarus
