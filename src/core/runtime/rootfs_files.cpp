#include "runtime/rootfs_files.hpp"

#include "common/error.hpp"
#include "runtime/root_directory.hpp"

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

CreationPolicy ownedBy(uid_t uid, gid_t gid) { return {{uid, gid}, {uid, gid}, std::nullopt}; }

}  // namespace

std::string createDirectoryInRoot(const fs::path& root, const std::string& containerPath, uid_t uid,
                                  gid_t gid) {
    RootDirectory directory(root);
    auto fd = directory.ensureDirectory(containerPath, ownedBy(uid, gid));
    return directory.containerPathOf(fd.get());
}

void writeFileInRoot(const fs::path& root, const std::string& containerPath, const std::string& content,
                     mode_t mode, uid_t uid, gid_t gid) {
    RootDirectory(root).writeFile(containerPath, content, mode, ownedBy(uid, gid));
}

std::string readFileInRoot(const fs::path& root, const std::string& containerPath) {
    return RootDirectory(root).readFile(containerPath);
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
