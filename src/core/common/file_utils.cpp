#include "common/file_utils.hpp"

#include "common/error.hpp"

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <fstream>
#include <pwd.h>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace sarus {

std::string readFile(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw systemError("cannot read " + path.string(), errno);
    }
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

void writeFileAtomically(const std::filesystem::path& path, const std::string& content,
                         mode_t mode, Durability durability) {
    auto temp = path.string() + ".tmp-" + std::to_string(getpid());
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        throw systemError("cannot create " + temp, errno);
    }
    ScopedFile cleanup(temp);
    size_t written = 0;
    while (written < content.size()) {
        ssize_t n = ::write(fd, content.data() + written, content.size() - written);
        if (n < 0) {
            int err = errno;
            ::close(fd);
            throw systemError("cannot write " + temp, err);
        }
        written += static_cast<size_t>(n);
    }
    if ((durability == Durability::onDisk && ::fsync(fd) != 0) || ::close(fd) != 0) {
        throw systemError("cannot write " + temp, errno);
    }
    if (::rename(temp.c_str(), path.c_str()) != 0) {
        throw systemError("cannot rename " + temp + " to " + path.string(), errno);
    }
    cleanup.release();
}

void createDirectories(const std::filesystem::path& path, mode_t mode) {
    std::filesystem::path current;
    for (const auto& part : path) {
        current /= part;
        if (::mkdir(current.c_str(), mode) != 0 && errno != EEXIST) {
            throw systemError("cannot create directory " + current.string(), errno);
        }
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        throw Error("cannot create directory " + path.string() + ": not a directory");
    }
}

namespace {

bool isCallersDirectory(const struct stat& st, mode_t othersMayNot) {
    return S_ISDIR(st.st_mode) && st.st_uid == ::getuid() && (st.st_mode & othersMayNot) == 0;
}

}  // namespace

bool takenByAnother(const std::filesystem::path& path, mode_t othersMayNot) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && !isCallersDirectory(st, othersMayNot);
}

bool isPrivateDirectoryOfCaller(const std::filesystem::path& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && isCallersDirectory(st, 077);
}

namespace {

std::string userDescription(uid_t uid) {
    const struct passwd* pw = ::getpwuid(uid);
    return pw != nullptr ? std::string(pw->pw_name) + " (uid " + std::to_string(uid) + ")"
                         : "uid " + std::to_string(uid);
}

// In a user namespace (a hook of a rootless container) an owner the
// namespace does not map, root included, shows as the overflow uid: the
// base, the admin's setting, is then taken as root's.
bool isUnmappedOwner(uid_t uid) {
    std::ifstream overflow("/proc/sys/kernel/overflowuid");
    uid_t overflowUid = 0;
    if (!(overflow >> overflowUid) || uid != overflowUid) {
        return false;
    }
    std::ifstream map("/proc/self/uid_map");
    unsigned long inside = 0, outside = 0, count = 0;
    bool initial = map >> inside >> outside >> count && inside == 0 && outside == 0 && count == 4294967295UL;
    return !initial;
}

}  // namespace

void refuseDirectoriesOfAnother(const std::filesystem::path& base, const std::filesystem::path& path, uid_t owner) {
    auto refuseOwnerOf = [&](const std::filesystem::path& entry, const struct stat& st) {
        if (st.st_uid != owner && st.st_uid != 0) {
            throw Error(entry.string() + " belongs to " + userDescription(st.st_uid) + ", not to " +
                        userDescription(owner) + ": another user may have made it first in " + base.string() +
                        "; refusing to use it (an admin can remove it)");
        }
    };
    struct stat parent {};
    if (::stat(base.c_str(), &parent) != 0) {
        return;  // made by the caller, as the caller
    }
    if (parent.st_uid != owner && parent.st_uid != 0 && !isUnmappedOwner(parent.st_uid)) {
        throw Error(base.string() + " belongs to " + userDescription(parent.st_uid) + ", who could replace what is "
                    "made there for you; refusing to use it (it must be root's or yours)");
    }
    if ((parent.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (parent.st_mode & S_ISVTX) == 0) {
        throw Error(base.string() + " is writable by other users and not sticky: another user could rename what is "
                    "made there for you and put their own in its place; refusing to use it (chmod +t " +
                    base.string() + ")");
    }
    auto current = base;
    for (const auto& part : path.lexically_relative(base)) {
        current /= part;
        struct stat entry {};
        if (::lstat(current.c_str(), &entry) != 0) {
            return;  // the rest is made by the caller, as the caller
        }
        struct stat target {};
        if (::stat(current.c_str(), &target) != 0) {
            throw systemError("cannot use " + current.string(), errno);
        }
        // A symlink cannot be changed, only replaced: its owner matters only
        // where others may replace entries (in a user namespace, root's own
        // links show as the overflow uid).
        if (S_ISLNK(entry.st_mode) && (parent.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
            refuseOwnerOf(current, entry);
        }
        refuseOwnerOf(current, target);
        if (S_ISDIR(target.st_mode) && (target.st_mode & S_IWOTH) != 0) {
            throw Error(current.string() + " is writable by every user, who could replace what is kept there;"
                        " refusing to use it (chmod o-w " + current.string() + ")");
        }
        parent = target;
    }
}

bool claimDirectory(const std::filesystem::path& path, mode_t othersMayNot) {
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
        throw systemError("cannot create " + path.string(), errno);
    }
    return !takenByAnother(path, othersMayNot);
}

void ensurePrivateDirectory(const std::filesystem::path& path, const std::string& purpose) {
    if (!claimDirectory(path, 077)) {
        throw Error(path.string() + " must be a directory of the caller's that nobody else can use (" + purpose +
                    ")");
    }
}

ScopedFile::~ScopedFile() {
    if (!path_.empty()) {
        ::unlink(path_.c_str());
    }
}

TempDirectory::TempDirectory(const std::filesystem::path& base, const std::string& prefix) {
    auto pattern = (base / (prefix + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        throw systemError("cannot create temporary directory in " + base.string(), errno);
    }
    path_ = pattern;
}

TempDirectory::~TempDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

std::string humanReadableSize(unsigned long long bytes) {
    const char* units[] = {"B", "KB", "MB", "GB", "TB"};
    double value = static_cast<double>(bytes);
    int unit = 0;
    while (value >= 1024 && unit < 4) {
        value /= 1024;
        ++unit;
    }
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, unit == 0 ? "%.0f%s" : "%.2f%s", value, units[unit]);
    return buffer;
}

}  // namespace sarus
