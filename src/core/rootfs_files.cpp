#include "rootfs_files.hpp"

#include "error.hpp"
#include "path_in_root.hpp"

#include <cerrno>
#include <fcntl.h>
#include <grp.h>
#include <set>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace sarus {

namespace fs = std::filesystem;

namespace {

std::string parentOf(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

std::string baseName(const std::string& path) { return path.substr(path.rfind('/') + 1); }

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty()) {
            out.push_back(line);
        }
    }
    return out;
}

std::vector<std::string> fields(const std::string& line) {
    std::vector<std::string> out;
    std::string field;
    std::istringstream in(line);
    while (std::getline(in, field, ':')) {
        out.push_back(field);
    }
    if (!line.empty() && line.back() == ':') {
        out.emplace_back();
    }
    return out;
}

}  // namespace

std::string createDirectoryInRoot(const fs::path& root, const std::string& containerPath, uid_t uid,
                                  gid_t gid) {
    auto resolved = resolveInRoot(root, containerPath);
    std::string current;
    std::istringstream in(resolved);
    for (std::string part; std::getline(in, part, '/');) {
        if (part.empty()) {
            continue;
        }
        current += "/" + part;
        auto host = root.string() + current;
        if (::mkdir(host.c_str(), 0755) == 0) {
            if (::lchown(host.c_str(), uid, gid) != 0) {
                throw systemError("cannot set the owner of " + containerPath + " in the container", errno);
            }
        } else if (errno != EEXIST) {
            throw systemError("cannot create " + containerPath + " in the container", errno);
        }
    }
    return resolved;
}

void writeFileInRoot(const fs::path& root, const std::string& containerPath, const std::string& content,
                     mode_t mode, uid_t uid, gid_t gid) {
    auto dir = createDirectoryInRoot(root, parentOf(containerPath), 0, 0);
    auto hostDir = root.string() + dir;
    // O_PATH: some FUSE filesystems (fuse-overlayfs) refuse to open a
    // directory for reading with O_NOFOLLOW, and a path fd is all openat needs.
    int dirFd = ::open(hostDir.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dirFd < 0) {
        throw systemError("cannot open " + dir + " in the container", errno);
    }
    auto name = baseName(containerPath);
    struct stat st {};
    if (::fstatat(dirFd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode)) {
        ::unlinkat(dirFd, name.c_str(), S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0);
    }
    int fd = ::openat(dirFd, name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
    ::close(dirFd);
    if (fd < 0) {
        throw systemError("cannot write " + containerPath + " in the container", errno);
    }
    bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
    ok = ok && ::fchown(fd, uid, gid) == 0 && ::fchmod(fd, mode) == 0;
    int err = errno;
    ::close(fd);
    if (!ok) {
        throw systemError("cannot write " + containerPath + " in the container", err);
    }
}

std::string readFileInRoot(const fs::path& root, const std::string& containerPath) {
    auto resolved = resolveInRoot(root, containerPath);
    int fd = ::open((root.string() + resolved).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return "";
    }
    std::string content;
    char buffer[8192];
    ssize_t n;
    while ((n = ::read(fd, buffer, sizeof buffer)) > 0) {
        content.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return content;
}

std::string mergePasswd(const std::string& imagePasswd, const Identity& identity) {
    std::string out;
    for (const auto& line : lines(imagePasswd)) {
        auto f = fields(line);
        if (f.size() >= 3 && (f[0] == identity.userName || f[2] == std::to_string(identity.uid))) {
            continue;
        }
        out += line + "\n";
    }
    out += identity.userName + ":x:" + std::to_string(identity.uid) + ":" + std::to_string(identity.gid) +
           "::" + identity.home + ":" + identity.shell + "\n";
    return out;
}

std::string mergeGroup(const std::string& imageGroup, const Identity& identity,
                       const std::vector<GroupEntry>& groups) {
    std::set<std::string> names;
    std::set<gid_t> gids;
    for (const auto& g : groups) {
        names.insert(g.name);
        gids.insert(g.gid);
    }
    std::string out;
    for (const auto& line : lines(imageGroup)) {
        auto f = fields(line);
        if (f.size() >= 3 && (names.count(f[0]) || (!f[2].empty() &&
                              f[2].find_first_not_of("0123456789") == std::string::npos &&
                              gids.count(static_cast<gid_t>(std::stoul(f[2])))))) {
            continue;
        }
        out += line + "\n";
    }
    for (const auto& g : groups) {
        out += g.name + ":x:" + std::to_string(g.gid) + ":" + identity.userName + "\n";
    }
    return out;
}

std::vector<GroupEntry> callerGroups(const Identity& identity) {
    std::vector<GroupEntry> groups;
    auto add = [&](gid_t gid) {
        struct group* gr = ::getgrgid(gid);
        groups.push_back({gr ? gr->gr_name : "group" + std::to_string(gid), gid});
    };
    add(identity.gid);
    for (auto gid : identity.supplementaryGids) {
        add(gid);
    }
    return groups;
}

}  // namespace sarus
