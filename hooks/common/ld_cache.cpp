#include "ld_cache.hpp"

#include "common/error.hpp"
#include "common/mountinfo.hpp"
#include "hook_log.hpp"
#include "namespaces.hpp"
#include "runtime/mount_options.hpp"
#include "runtime/path_in_root.hpp"
#include "runtime/root_directory.hpp"
#include "common/process.hpp"

#include <algorithm>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string_view>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <unistd.h>

namespace hook {

namespace {

// Resolved inside the rootfs: an image's symlink must not point us at a host file.
std::filesystem::path cacheFile(const std::filesystem::path& rootfs) {
    return rootfs / std::filesystem::path(sarus::resolveInRoot(rootfs, "/etc/ld.so.cache")).relative_path();
}

}  // namespace

std::string runCommand(const std::vector<std::string>& argv, sarus::SpawnOptions options) {
    auto result = sarus::runCapturingOutput(argv, std::move(options));
    if (result.exitCode != 0) {
        throw sarus::Error(argv[0] + " failed (exit code " + std::to_string(result.exitCode) + ")");
    }
    return result.output;
}

namespace {

// For ldconfig run by the host's root: in a mount namespace of its own,
// every mount below rootfs but the container's own root is read-only, and
// every one is nodev. ldconfig writes the cache and soname links wherever
// the image's symlinks and ld.so.conf lead, and those may lead into a
// bind-mounted host directory that the user may only read; it opens what
// they name, and a device node there (--device puts the host's nodes
// anywhere, with their modes, allowed in the container's cgroup, which the
// hook is in) would be opened by root; and chroot does not hold procfs'
// magic links. Runs in the child (no allocation).
const char* confineToTheContainersFiles(const char* rootfs, const std::vector<std::string>& procMounts) {
    if (::unshare(CLONE_NEWNS) != 0) {
        return "enter a mount namespace of its own for";
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        return "make the mounts private for";
    }
    // A mount of its own at rootfs, whatever rootfs is (mount_setattr
    // wants the root of a mount).
    if (::mount(rootfs, rootfs, nullptr, MS_BIND | MS_REC, nullptr) != 0) {
        return "bind the container's root for";
    }
    mount_attr readOnly{};
    readOnly.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV;
    if (::mount_setattr(AT_FDCWD, rootfs, AT_RECURSIVE, &readOnly, sizeof readOnly) != 0) {
        return "make the container's mounts read-only and nodev for";
    }
    mount_attr writable{};
    writable.attr_clr = MOUNT_ATTR_RDONLY;
    if (::mount_setattr(AT_FDCWD, rootfs, 0, &writable, sizeof writable) != 0) {
        return "make the container's root writable for";
    }
    // chroot does not hold procfs' magic links (/proc/1/root is the host's
    // root): no proc mount may stay in ldconfig's view. umount2 takes the
    // topmost mount at a path, and a user may stack a mount of their own on
    // a proc file system they bound: everything at the path goes, until it
    // is no mount point any more.
    for (const auto& procMount : procMounts) {
        if (::umount2(procMount.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0) {
            return "detach a proc mount in the container's root for";
        }
        int stacked = 0;
        while (::umount2(procMount.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) {
            if (++stacked == 64) {
                return "detach the mounts stacked on a proc mount in the container's root for";
            }
        }
        if (errno != EINVAL) {
            return "detach a proc mount in the container's root for";
        }
    }
    for (const auto& procMount : procMounts) {
        struct statfs left {};
        if (::statfs(procMount.c_str(), &left) == 0 && left.f_type == PROC_SUPER_MAGIC) {
            return "detach every proc mount in the container's root for";
        }
    }
    return nullptr;
}

// The proc mounts at or below rootfs, deepest first.
std::vector<std::string> procMountsBelow(const std::string& rootfs) {
    std::ifstream file("/proc/self/mountinfo");
    std::string mountinfo((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    std::vector<std::string> found;
    for (const auto& entry : sarus::parseMountInfo(mountinfo)) {
        if (entry.type == "proc" && sarus::isSameOrBelow(entry.mountPoint, rootfs)) {
            found.push_back(entry.mountPoint);
        }
    }
    std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
    return found;
}

// Runs "<ldconfig> -r <rootfs> [args]", confined as the host's root (see
// confineToTheContainersFiles). As a user (userns mode, rootless engines)
// the kernel checks the user's own permissions: nothing to confine.
std::string runLdconfig(const std::string& ldconfigPath, const std::filesystem::path& rootfs,
                        const std::vector<std::string>& args) {
    std::string root = rootfs.lexically_normal().string();
    if (root.size() > 1 && root.back() == '/') {
        root.pop_back();
    }
    sarus::SpawnOptions options;
    std::vector<std::string> procMounts;
    if (isHostRoot()) {
        procMounts = procMountsBelow(root);
        options.prepareChild = [&root, &procMounts] { return confineToTheContainersFiles(root.c_str(), procMounts); };
    }
    std::vector<std::string> argv{ldconfigPath, "-r", root};
    argv.insert(argv.end(), args.begin(), args.end());
    return runCommand(argv, std::move(options));
}

}  // namespace

void updateLdCache(const std::string& ldconfigPath, const std::filesystem::path& rootfs) {
    runLdconfig(ldconfigPath, rootfs, {});
    log::info("updated the dynamic linker cache of the container with " + ldconfigPath);
}

std::vector<CachedLibrary> listCachedLibraries(const std::string& ldconfigPath, const std::filesystem::path& rootfs) {
    // lines look like "\tlibfabric.so.1 (libc6,x86-64) => /usr/lib64/libfabric.so.1"
    std::vector<CachedLibrary> entries;
    auto cache = cacheFile(rootfs);
    if (!std::filesystem::exists(cache)) {
        log::debug("the container has no /etc/ld.so.cache: no library known to its dynamic linker");
        return entries;  // a static image; ldconfig -p would fail
    }
    std::istringstream lines(runLdconfig(ldconfigPath, rootfs, {"-p"}));
    std::string line;
    while (std::getline(lines, line)) {
        auto name = line.find_first_not_of(" \t");
        auto nameEnd = line.find(' ', name);
        auto arrow = line.find(" => ");
        if (name != std::string::npos && nameEnd != std::string::npos && arrow != std::string::npos) {
            entries.push_back({line.substr(name, nameEnd - name), line.substr(arrow + 4)});
        }
    }
    return entries;
}

std::string findLibrary(const std::string& ldconfigPath, const std::filesystem::path& rootfs,
                        const std::string& soname) {
    for (const auto& entry : listCachedLibraries(ldconfigPath, rootfs)) {
        if (entry.soname.rfind(soname, 0) == 0) {
            return entry.path;
        }
    }
    return "";
}

std::string findLibraryInCacheFile(const std::filesystem::path& rootfs, const std::string& soname) {
    // a regular file inside the root, read with a bound: never a device node
    // or FIFO a user or an image put there
    auto text = sarus::RootDirectory(rootfs).readFile("/etc/ld.so.cache");
    size_t start = 0;
    for (size_t end = text.find('\0'); end != std::string::npos; start = end + 1, end = text.find('\0', start)) {
        std::string_view entry(text.data() + start, end - start);
        auto slash = entry.rfind('/');
        if (!entry.empty() && entry[0] == '/' && slash != std::string_view::npos &&
            entry.substr(slash + 1).rfind(soname, 0) == 0) {
            return std::string(entry);
        }
    }
    return "";
}

}  // namespace hook
