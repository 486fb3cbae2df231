#include "runtime/rootfs_files.hpp"

#include "common/decimal.hpp"
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

namespace {

// The lines of databases (name:x:id:...) in order, skipping an entry whose
// name or id an earlier one (or the caller's) has.
class Database {
public:
    Database(std::set<std::string> names, std::set<std::string> ids)
        : names_(std::move(names)), ids_(std::move(ids)) {}

    void addEntriesOf(const std::string& database) {
        for (const auto& line : lines(database)) {
            auto f = fields(line);
            if (f.size() >= 3) {
                if (names_.count(f[0]) || (isDecimalNumber(f[2]) && ids_.count(f[2]))) {
                    continue;
                }
                names_.insert(f[0]);
                if (isDecimalNumber(f[2])) {
                    ids_.insert(f[2]);
                }
            }
            text_ += line + "\n";  // what is no entry (NIS "+" lines, ...) is left as it is
        }
    }
    std::string text() const { return text_; }

private:
    std::set<std::string> names_, ids_;
    std::string text_;
};

}  // namespace

std::string mergePasswd(const std::string& imagePasswd, const Identity& identity, const std::string& hostPasswd) {
    Database passwd({identity.userName}, {std::to_string(identity.uid)});
    passwd.addEntriesOf(hostPasswd);
    passwd.addEntriesOf(imagePasswd);
    return passwd.text() + identity.userName + ":x:" + std::to_string(identity.uid) + ":" +
           std::to_string(identity.gid) + "::" + identity.home + ":" + identity.shell + "\n";
}

std::string mergeGroup(const std::string& imageGroup, const Identity& identity,
                       const std::vector<GroupEntry>& groups, const std::string& hostGroup) {
    std::set<std::string> names, gids;
    for (const auto& g : groups) {
        names.insert(g.name);
        gids.insert(std::to_string(g.gid));
    }
    Database group(names, gids);
    group.addEntriesOf(hostGroup);
    group.addEntriesOf(imageGroup);
    auto out = group.text();
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
