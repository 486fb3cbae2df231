#include "id_mapping.hpp"

#include "common/decimal.hpp"
#include "common/error.hpp"
#include "common/process.hpp"

#include <cerrno>
#include <fcntl.h>
#include <fstream>
#include <unistd.h>

namespace sarus::userns {

std::optional<SubordinateRange> findSubordinateRange(const std::filesystem::path& file,
                                                     const std::string& user, unsigned id) {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
        auto first = line.find(':');
        auto second = line.find(':', first + 1);
        if (first == std::string::npos || second == std::string::npos) {
            continue;
        }
        auto owner = line.substr(0, first);
        if (owner != user && owner != std::to_string(id)) {
            continue;
        }
        // A malformed line (not plain decimal numbers within 32 bits) is
        // skipped, as newuidmap does; stoul alone would accept "-5" or "5x".
        auto number = [](const std::string& text) -> std::optional<unsigned> {
            if (!isDecimalNumber(text) || text.size() > 10) {
                return std::nullopt;
            }
            auto value = std::stoull(text);
            return value > 0xffffffffULL ? std::nullopt : std::optional<unsigned>(static_cast<unsigned>(value));
        };
        auto start = number(line.substr(first + 1, second - first - 1));
        auto count = number(line.substr(second + 1));
        if (start && count && *count > 0) {
            return SubordinateRange{*start, *count};
        }
    }
    return std::nullopt;
}

std::vector<IdMap> keepIdMap(unsigned id, const SubordinateRange& range) {
    std::vector<IdMap> map;
    unsigned below = std::min(id, range.count);
    if (below > 0) {
        map.push_back({0, range.start, below});
    }
    map.push_back({id, id, 1});
    if (range.count > below) {
        map.push_back({id + 1, range.start + below, range.count - below});
    }
    return map;
}

IdMappingPlan planIdMapping(const Identity& identity, const std::optional<SubordinateRange>& subuid,
                            const std::optional<SubordinateRange>& subgid) {
    IdMappingPlan plan;
    if (subuid && subgid) {
        plan.keepId = true;
        plan.uidMap = keepIdMap(identity.uid, *subuid);
        plan.gidMap = keepIdMap(identity.gid, *subgid);
        plan.callerUidInside = identity.uid;
        plan.callerGidInside = identity.gid;
        return plan;
    }
    plan.uidMap = {{0, identity.uid, 1}};
    plan.gidMap = {{0, identity.gid, 1}};
    plan.nestedUidMap = {{identity.uid, 0, 1}};
    plan.nestedGidMap = {{identity.gid, 0, 1}};
    return plan;
}

namespace {

std::vector<std::string> mapArguments(const std::string& tool, pid_t pid, const std::vector<IdMap>& map) {
    std::vector<std::string> argv = {tool, std::to_string(pid)};
    for (const auto& m : map) {
        argv.push_back(std::to_string(m.containerId));
        argv.push_back(std::to_string(m.hostId));
        argv.push_back(std::to_string(m.size));
    }
    return argv;
}

void writeProcFile(pid_t pid, const std::string& name, const std::string& content) {
    auto path = "/proc/" + std::to_string(pid) + "/" + name;
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        throw systemError("cannot open " + path, errno);
    }
    auto n = ::write(fd, content.data(), content.size());
    int err = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(content.size())) {
        throw systemError("cannot write " + path, err);
    }
}

void checkMapTool(const std::string& tool) {
    if (::access(tool.c_str(), X_OK) != 0) {
        throw Error(tool + " is missing (package uidmap): it is needed to map the subordinate "
                    "ids of /etc/subuid and /etc/subgid");
    }
}

void checkMapToolExit(const std::string& tool, int code) {
    if (code != 0) {
        throw Error(tool + " failed (exit code " + std::to_string(code) +
                    "): check the entries of this user in /etc/subuid and /etc/subgid");
    }
}

}  // namespace

void applyIdMapping(pid_t pid, const IdMappingPlan& plan, const IdMappingTools& tools) {
    if (plan.keepId) {
        checkMapTool(tools.newuidmap);
        checkMapTool(tools.newgidmap);
        // Independent of each other: run both at once, it is on every start's path.
        auto uidTool = spawn(mapArguments(tools.newuidmap, pid, plan.uidMap));
        auto gidTool = spawn(mapArguments(tools.newgidmap, pid, plan.gidMap));
        int uidCode = waitForExit(uidTool);
        int gidCode = waitForExit(gidTool);
        checkMapToolExit(tools.newuidmap, uidCode);
        checkMapToolExit(tools.newgidmap, gidCode);
        return;
    }
    // One id, our own: the kernel lets an unprivileged parent write it.
    writeProcFile(pid, "setgroups", "deny");
    const auto& u = plan.uidMap[0];
    const auto& g = plan.gidMap[0];
    writeProcFile(pid, "uid_map", std::to_string(u.containerId) + " " + std::to_string(u.hostId) + " 1\n");
    writeProcFile(pid, "gid_map", std::to_string(g.containerId) + " " + std::to_string(g.hostId) + " 1\n");
}

}  // namespace sarus::userns
