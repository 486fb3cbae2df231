#include "mounts.hpp"

#include "container_state.hpp"
#include "error.hpp"
#include "hook_log.hpp"
#include "path_in_root.hpp"

#include <cerrno>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace hook {

namespace {

void createMountPoint(const fs::path& target, bool directory) {
    std::error_code ec;
    if (fs::exists(target, ec)) {
        return;
    }
    fs::create_directories(directory ? target : target.parent_path(), ec);
    if (ec) {
        throw sarus::Error("cannot create mount point " + target.string() + ": " + ec.message());
    }
    if (!directory) {
        int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            throw sarus::systemError("cannot create mount point " + target.string(), errno);
        }
        ::close(fd);
    }
}

// Flags a remount must keep: in a user namespace the kernel refuses to
// clear the locked nodev/noexec/... flags of the source mount.
unsigned long lockedFlags(const fs::path& path) {
    struct statvfs st {};
    if (::statvfs(path.c_str(), &st) != 0) {
        return 0;
    }
    unsigned long flags = 0;
    if (st.f_flag & ST_NODEV) flags |= MS_NODEV;
    if (st.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
    if (st.f_flag & ST_RDONLY) flags |= MS_RDONLY;
    if (st.f_flag & ST_NOATIME) flags |= MS_NOATIME;
    if (st.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
    if (st.f_flag & ST_RELATIME) flags |= MS_RELATIME;
    return flags;
}

fs::path bindOnto(const fs::path& rootfs, const std::string& source, const std::string& destination,
              unsigned long extraFlags) {
    struct stat st {};
    if (::stat(source.c_str(), &st) != 0) {
        throw sarus::systemError("cannot bind " + source, errno);
    }
    auto inRoot = sarus::resolveInRoot(rootfs, destination);
    auto target = rootfs / fs::path(inRoot).relative_path();
    createMountPoint(target, S_ISDIR(st.st_mode));
    if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
        throw sarus::systemError("cannot bind " + source + " onto " + inRoot, errno);
    }
    auto flags = MS_REMOUNT | MS_BIND | MS_NOSUID | extraFlags | lockedFlags(target);
    if (::mount(nullptr, target.c_str(), nullptr, flags, nullptr) != 0) {
        int err = errno;
        ::umount2(target.c_str(), MNT_DETACH);
        throw sarus::systemError("cannot remount " + inRoot + " (nosuid" +
                                     std::string(extraFlags & MS_RDONLY ? ",ro" : "") + ")",
                                 err);
    }
    return inRoot;
}

std::string cgroupPath(pid_t pid) {
    std::ifstream in(procDir(pid) + "/cgroup");
    std::string line;
    while (std::getline(in, line)) {
        // "4:devices:/path" (v1); v2 is "0::/path" and has no devices file
        auto first = line.find(':');
        auto second = line.find(':', first + 1);
        if (first == std::string::npos || second == std::string::npos) {
            continue;
        }
        std::stringstream controllers(line.substr(first + 1, second - first - 1));
        std::string controller;
        while (std::getline(controllers, controller, ',')) {
            if (controller == "devices") {
                return line.substr(second + 1);
            }
        }
    }
    return "";
}

}  // namespace

void bindMount(const fs::path& rootfs, const sarus::BindMount& mount) {
    auto inRoot = bindOnto(rootfs, mount.source, mount.destination, mount.readonly ? MS_RDONLY : 0);
    log::info("bind mounted " + mount.source + " at " + inRoot.string() + (mount.readonly ? " (read-only)" : ""));
}

bool createSymlinkIfMissing(const fs::path& rootfs, const std::string& directory, const std::string& name,
                            const std::string& target) {
    auto inRoot = sarus::resolveInRoot(rootfs, directory);
    auto link = rootfs / fs::path(inRoot).relative_path() / name;
    std::error_code ec;
    if (fs::symlink_status(link, ec).type() != fs::file_type::not_found) {
        return false;
    }
    fs::create_directories(link.parent_path(), ec);
    if (::symlink(target.c_str(), link.c_str()) != 0) {
        throw sarus::systemError("cannot create the symlink " + (fs::path(inRoot) / name).string(), errno);
    }
    log::debug("created the symlink " + (fs::path(inRoot) / name).string() + " -> " + target);
    return true;
}

bool whitelistDevice(pid_t pid, char type, unsigned major, unsigned minor, const std::string& access) {
    auto path = cgroupPath(pid);
    if (path.empty()) {
        log::info("no devices cgroup v1 controller for the container (cgroup v2?): "
                  "device access left to the runtime's configuration");
        return false;
    }
    auto allow = fs::path("/sys/fs/cgroup/devices") / fs::path(path).relative_path() / "devices.allow";
    std::ofstream out(allow);
    std::ostringstream rule;
    rule << type << ' ' << major << ':' << minor << ' ' << access;
    out << rule.str() << std::flush;
    if (!out) {
        log::info("cannot write '" + rule.str() + "' to " + allow.string() + ": device not whitelisted");
        return false;
    }
    log::info("whitelisted '" + rule.str() + "' in " + allow.string());
    return true;
}

void deviceMount(const fs::path& rootfs, const sarus::DeviceMount& device, pid_t pid, bool rootless) {
    sarus::checkDeviceNode(device.source);
    struct stat st {};
    ::stat(device.source.c_str(), &st);
    auto inRoot = bindOnto(rootfs, device.source, device.destination, 0);
    log::info("device " + device.source + " mounted at " + inRoot.string());
    if (rootless) {
        log::info("rootless: device " + device.source + " not whitelisted in the devices cgroup");
        return;
    }
    whitelistDevice(pid, S_ISBLK(st.st_mode) ? 'b' : 'c', major(st.st_rdev), minor(st.st_rdev), device.access);
}

}  // namespace hook
