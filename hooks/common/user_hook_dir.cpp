#include "user_hook_dir.hpp"

#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "hook_log.hpp"
#include "hook_main.hpp"
#include "namespaces.hpp"

#include <cerrno>
#include <fstream>
#include <optional>
#include <vector>
#include <grp.h>
#include <sstream>
#include <unistd.h>

namespace hook {

std::string userNameFromPasswdFile(const std::filesystem::path& passwdFile, uid_t uid) {
    std::ifstream in(passwdFile);
    if (!in) {
        throw sarus::Error("cannot read the passwd file " + passwdFile.string());
    }
    std::string line;
    while (std::getline(in, line)) {
        std::stringstream fields(line);
        std::string name, password, id;
        if (std::getline(fields, name, ':') && std::getline(fields, password, ':') &&
            std::getline(fields, id, ':') && id == std::to_string(uid)) {
            return name;
        }
    }
    throw sarus::Error("user " + std::to_string(uid) + " is not in the passwd file " + passwdFile.string());
}

namespace {

struct IdRange {
    unsigned long inside, outside, count;
};

std::vector<IdRange> idMap(const char* file) {
    std::vector<IdRange> ranges;
    std::ifstream in(file);
    for (IdRange r{}; in >> r.inside >> r.outside >> r.count;) {
        ranges.push_back(r);
    }
    return ranges;
}

std::optional<unsigned> insideIdOfOutside(const char* file, unsigned outside) {
    for (const auto& r : idMap(file)) {
        if (outside >= r.outside && outside - r.outside < r.count) {
            return static_cast<unsigned>(r.inside + (outside - r.outside));
        }
    }
    return std::nullopt;
}

std::optional<unsigned> outsideIdOfInside(const char* file, unsigned inside) {
    for (const auto& r : idMap(file)) {
        if (inside >= r.inside && inside - r.inside < r.count) {
            return static_cast<unsigned>(r.outside + (inside - r.inside));
        }
    }
    return std::nullopt;
}

// The host account of a container's user. sarus, root engines and keep-id
// user namespaces write the user's host id into config.json. A rootless
// engine's container run as its root (rootless Podman's default) says 0, an
// id of the engine's own user namespace, where the host's root is not
// mapped: every container of that engine belongs to the user who runs it,
// the host id of the hook's own.
uid_t hostUidOfUser(const ContainerState& state) {
    if (inInitialUserNamespace() || state.uid != 0 || insideIdOfOutside("/proc/self/uid_map", 0)) {
        return state.uid;
    }
    auto outside = outsideIdOfInside("/proc/self/uid_map", ::geteuid());
    return outside ? *outside : state.uid;
}

std::filesystem::path checkedUserHookDirectory(const std::string& hookDirectory, uid_t uid, uid_t uidSeenHere) {
    std::filesystem::path base = absolutePathFromEnvironment("HOOK_BASE_DIR", true);
    std::filesystem::path passwd = absolutePathFromEnvironment("PASSWD_FILE", true);
    auto directory = base / userNameFromPasswdFile(passwd, uid) / ".oci-hooks" / hookDirectory;
    sarus::refuseDirectoriesOfAnother(base, directory, uidSeenHere);
    return directory;
}

}  // namespace

std::filesystem::path userHookDirectory(const std::string& hookDirectory, uid_t uid) {
    return checkedUserHookDirectory(hookDirectory, uid, uid);
}

std::filesystem::path userHookDirectory(const std::string& hookDirectory, const ContainerState& state) {
    return checkedUserHookDirectory(hookDirectory, hostUidOfUser(state), hostUserSeenHere(state).uid);
}

namespace {

void become(uid_t uid, gid_t gid) {
    if (::setgroups(1, &gid) != 0 || ::setresgid(gid, gid, gid) != 0 || ::setresuid(uid, uid, uid) != 0) {
        throw sarus::systemError("cannot become user " + std::to_string(uid) + ":" + std::to_string(gid), errno);
    }
    log::debug("acting as user " + std::to_string(uid) + ":" + std::to_string(gid));
}

}  // namespace

UserIds hostUserSeenHere(const ContainerState& state) {
    auto uid = insideIdOfOutside("/proc/self/uid_map", state.uid);
    auto gid = insideIdOfOutside("/proc/self/gid_map", state.gid);
    if (uid && gid) {
        return {*uid, *gid};
    }
    return {::geteuid(), ::getegid()};
}

void becomeUserOnHost(const ContainerState& state) {
    auto user = hostUserSeenHere(state);
    if (::geteuid() == 0 && user.uid != 0) {
        become(user.uid, user.gid);
    }
}

void becomeContainerUser(const ContainerState& state) {
    if (::geteuid() == 0 && state.uid != 0 && outsideIdOfInside("/proc/self/uid_map", state.uid) &&
        outsideIdOfInside("/proc/self/gid_map", state.gid)) {
        become(state.uid, state.gid);
    }
}

}  // namespace hook
