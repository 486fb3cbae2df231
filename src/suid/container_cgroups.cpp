#include "container_cgroups.hpp"

#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "common/log.hpp"
#include "common/mountinfo.hpp"
#include "common/process.hpp"
#include "runtime/mount_options.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <dirent.h>
#include <fcntl.h>
#include <iterator>
#include <linux/openat2.h>
#include <sstream>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>

namespace sarus::suid {

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> parts;
    std::stringstream in(text);
    for (std::string part; std::getline(in, part, separator);) {
        parts.push_back(part);
    }
    return parts;
}

struct CgroupMount {
    std::string root;
    std::string mountPoint;
    bool unified;
    std::vector<std::string> options;
};

std::vector<CgroupMount> cgroupMounts(const std::string& mountinfo) {
    std::vector<CgroupMount> mounts;
    for (const auto& entry : parseMountInfo(mountinfo)) {
        if (entry.type == "cgroup" || entry.type == "cgroup2") {
            mounts.push_back({entry.root, entry.mountPoint, entry.type == "cgroup2", split(entry.superOptions, ',')});
        }
    }
    return mounts;
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
    return std::find(list.begin(), list.end(), item) != list.end();
}

std::string relativeTo(const std::string& path, const std::string& root) {
    auto relative = root == "/" ? path : path.substr(root.size());
    while (!relative.empty() && relative.front() == '/') {
        relative.erase(0, 1);
    }
    return relative.empty() ? "." : relative;
}

FileDescriptor openBeneath(int dirfd, const std::string& path, int flags, const std::string& what) {
    struct open_how how {};
    how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS;
    FileDescriptor fd(static_cast<int>(::syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how)));
    if (fd.get() < 0) {
        throw systemError("cannot open " + what, errno);
    }
    return fd;
}

bool writeText(int dirfd, const char* file, const std::string& text) {
    FileDescriptor fd(::openat(dirfd, file, O_WRONLY | O_CLOEXEC));
    return fd.get() >= 0 && ::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

std::string readText(int dirfd, const char* file) {
    FileDescriptor fd(::openat(dirfd, file, O_RDONLY | O_CLOEXEC));
    std::string text;
    char buffer[4096];
    ssize_t n;
    while (fd.get() >= 0 && (n = ::read(fd.get(), buffer, sizeof buffer)) > 0) {
        text.append(buffer, static_cast<std::size_t>(n));
    }
    return text;
}

std::string describe(const CgroupHierarchy& hierarchy) {
    if (hierarchy.unified) {
        return "cgroup v2";
    }
    std::string names;
    for (const auto& controller : hierarchy.controllers) {
        names += (names.empty() ? "" : ",") + controller;
    }
    return "cgroup " + names;
}

// Subdirectories first (a runtime may nest its own), each emptied of
// processes; then the directory itself.
std::vector<std::string> subdirectories(int dirfd) {
    std::vector<std::string> names;
    int listing = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (listing < 0) {
        return names;
    }
    DIR* dir = ::fdopendir(listing);
    if (dir == nullptr) {
        ::close(listing);
        return names;
    }
    while (auto* entry = ::readdir(dir)) {
        std::string name = entry->d_name;
        if (entry->d_type == DT_DIR && name != "." && name != "..") {
            names.push_back(name);
        }
    }
    ::closedir(dir);
    return names;
}

std::vector<pid_t> members(int dirfd) {
    std::istringstream listed(readText(dirfd, "cgroup.procs"));
    std::vector<pid_t> pids{std::istream_iterator<pid_t>(listed), std::istream_iterator<pid_t>()};
    std::sort(pids.begin(), pids.end());
    return pids;
}

// A member that exits after cgroup.procs was read leaves its pid free for
// any process: members are pinned with pidfds, the list is read once more,
// and only those still on it are signalled. In batches, to bound the
// descriptors a container with many processes makes the reaper hold.
void killListedMembers(int dirfd, const std::vector<pid_t>& listed) {
    constexpr std::size_t batch = 256;
    for (std::size_t first = 0; first < listed.size(); first += batch) {
        std::vector<std::pair<pid_t, FileDescriptor>> pinned;
        for (std::size_t i = first; i < std::min(first + batch, listed.size()); ++i) {
            if (auto fd = pinProcess(listed[i]); fd.get() >= 0) {
                pinned.emplace_back(listed[i], std::move(fd));
            }
        }
        auto still = members(dirfd);
        for (const auto& [pid, fd] : pinned) {
            if (std::binary_search(still.begin(), still.end(), pid)) {
                signalPinned(fd, SIGKILL);
            }
        }
    }
}

void killMembers(int dirfd) {
    for (const auto& name : subdirectories(dirfd)) {
        FileDescriptor sub(::openat(dirfd, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (sub.get() >= 0) {
            killMembers(sub.get());
        }
    }
    auto deadline = Clock::now() + std::chrono::seconds(5);
    for (auto listed = members(dirfd); !listed.empty() && Clock::now() <= deadline; listed = members(dirfd)) {
        killListedMembers(dirfd, listed);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

void removeTree(int parentfd, const std::string& name) {
    FileDescriptor self(::openat(parentfd, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (self.get() < 0) {
        return;
    }
    for (const auto& sub : subdirectories(self.get())) {
        removeTree(self.get(), sub);
    }
    // A cgroup whose last process just died may still count as busy for a moment.
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (::unlinkat(parentfd, name.c_str(), AT_REMOVEDIR) != 0 && errno == EBUSY && Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

}  // namespace

std::vector<CgroupHierarchy> callerHierarchies(const std::string& mountinfo, const std::string& procCgroup) {
    auto mounts = cgroupMounts(mountinfo);
    std::vector<CgroupHierarchy> hierarchies;
    std::istringstream in(procCgroup);
    for (std::string line; std::getline(in, line);) {
        auto first = line.find(':');
        auto second = line.find(':', first + 1);
        if (first == std::string::npos || second == std::string::npos) {
            continue;
        }
        auto controllers = split(line.substr(first + 1, second - first - 1), ',');
        auto path = line.substr(second + 1);
        bool unified = controllers.empty();
        auto mount = std::find_if(mounts.begin(), mounts.end(), [&](const CgroupMount& m) {
            if (m.unified != unified || !isSameOrBelow(path, m.root)) {
                return false;
            }
            return std::all_of(controllers.begin(), controllers.end(),
                               [&](const std::string& c) { return contains(m.options, c); });
        });
        if (mount == mounts.end()) {
            continue;
        }
        hierarchies.push_back({mount->mountPoint, mount->root, controllers, unified, path});
    }
    return hierarchies;
}

std::vector<DeviceRule> defaultDeviceRules() {
    std::vector<DeviceRule> rules;
    for (const char* rule : {"c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
                             "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm"}) {
        rules.push_back({rule, false});
    }
    return rules;
}

// Each cgroup costs a directory, a move and a removal per start (11
// hierarchies on a hybrid host): only those where sarus acts, unless the
// host has neither (then every one, to find the container's processes).
std::vector<CgroupHierarchy> selectHierarchies(std::vector<CgroupHierarchy> hierarchies, CgroupScope scope) {
    std::vector<CgroupHierarchy> chosen;
    for (auto& hierarchy : hierarchies) {
        if (hierarchy.unified || contains(hierarchy.controllers, "devices")) {
            chosen.push_back(hierarchy);
        }
    }
    return scope == CgroupScope::everyHierarchy || chosen.empty() ? hierarchies : chosen;
}

ContainerCgroups ContainerCgroups::createBelow(pid_t caller, const std::string& leaf, CgroupScope scope) {
    auto procDir = "/proc/" + std::to_string(caller);
    auto hierarchies =
        selectHierarchies(callerHierarchies(readFile("/proc/self/mountinfo"), readFile(procDir + "/cgroup")), scope);
    ContainerCgroups cgroups;
    cgroups.leaf_ = leaf;
    for (auto& hierarchy : hierarchies) {
        auto what = describe(hierarchy) + " " + hierarchy.callerPath;
        FileDescriptor mount(::open(hierarchy.mountPoint.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (mount.get() < 0) {
            throw systemError("cannot open the cgroup mount " + hierarchy.mountPoint, errno);
        }
        auto parent = openBeneath(mount.get(), relativeTo(hierarchy.callerPath, hierarchy.mountRoot),
                                  O_PATH | O_DIRECTORY, "your " + what);
        if (::mkdirat(parent.get(), leaf.c_str(), 0755) != 0) {
            int err = errno;
            // a directory left by a supervisor that was killed with this pid
            if (err != EEXIST || ::unlinkat(parent.get(), leaf.c_str(), AT_REMOVEDIR) != 0 ||
                ::mkdirat(parent.get(), leaf.c_str(), 0755) != 0) {
                throw systemError("cannot create the container's cgroup below your " + what, err);
            }
        }
        auto self = openBeneath(parent.get(), leaf, O_PATH | O_DIRECTORY, "the container's " + what);
        if (contains(hierarchy.controllers, "cpuset")) {
            // v1 cpusets start empty: the container gets the caller's.
            for (const char* file : {"cpuset.cpus", "cpuset.mems"}) {
                writeText(self.get(), file, readText(parent.get(), file));
            }
        }
        cgroups.directories_.push_back({std::move(hierarchy), std::move(parent), std::move(self)});
    }
    return cgroups;
}

void ContainerCgroups::restrictDevices(const std::vector<DeviceRule>& rules) const {
    for (const auto& directory : directories_) {
        if (!contains(directory.hierarchy.controllers, "devices")) {
            continue;
        }
        if (!writeText(directory.self.get(), "devices.deny", "a")) {
            throw systemError("cannot restrict the container's devices", errno);
        }
        for (const auto& rule : rules) {
            if (writeText(directory.self.get(), "devices.allow", rule.rule)) {
                continue;
            }
            if (rule.required) {
                throw Error("device '" + rule.rule + "' cannot be allowed: your cgroup (" +
                            directory.hierarchy.callerPath + ") does not allow it");
            }
            log::debug("devices cgroup: '" + rule.rule + "' not allowed by " + directory.hierarchy.callerPath);
        }
    }
}

void ContainerCgroups::enter() const {
    for (const auto& directory : directories_) {
        if (!writeText(directory.self.get(), "cgroup.procs", "0")) {
            throw systemError("cannot enter the container's " + describe(directory.hierarchy) + " below " +
                                  directory.hierarchy.callerPath,
                              errno);
        }
    }
}

std::vector<int> ContainerCgroups::descriptors() const {
    std::vector<int> fds;
    for (const auto& directory : directories_) {
        fds.push_back(directory.parent.get());
        fds.push_back(directory.self.get());
    }
    return fds;
}

void ContainerCgroups::killAndRemove() {
    for (const auto& directory : directories_) {
        if (directory.hierarchy.unified && writeText(directory.self.get(), "cgroup.kill", "1")) {
            continue;  // the kernel kills the whole subtree at once
        }
    }
    for (const auto& directory : directories_) {
        killMembers(directory.self.get());
    }
    for (auto& directory : directories_) {
        // Only the directory made for this container: after it is gone, a
        // later container of a reused supervisor pid may have the same name.
        struct stat ours {}, named {};
        bool same = ::fstat(directory.self.get(), &ours) == 0 &&
                    ::fstatat(directory.parent.get(), leaf_.c_str(), &named, AT_SYMLINK_NOFOLLOW) == 0 &&
                    ours.st_ino == named.st_ino && ours.st_dev == named.st_dev;
        directory.self.reset();
        if (same) {
            removeTree(directory.parent.get(), leaf_);
        }
    }
    directories_.clear();
}

}  // namespace sarus::suid
