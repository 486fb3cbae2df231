#include "user_hook_dir.hpp"

#include "error.hpp"
#include "hook_log.hpp"
#include "hook_main.hpp"

#include <cerrno>
#include <fstream>
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

std::filesystem::path userHookDirectory(const std::string& hookDirectory, uid_t uid) {
    std::filesystem::path base = absolutePathFromEnvironment("HOOK_BASE_DIR", true);
    std::filesystem::path passwd = absolutePathFromEnvironment("PASSWD_FILE", true);
    return base / userNameFromPasswdFile(passwd, uid) / ".oci-hooks" / hookDirectory;
}

UserIds containerUserSeenHere(const ContainerState& state) {
    std::ifstream in("/proc/self/uid_map");
    for (unsigned long inside, outside, count; in >> inside >> outside >> count;) {
        if (state.uid >= inside && state.uid - inside < count) {
            return {state.uid, state.gid};
        }
    }
    return {::geteuid(), ::getegid()};
}

void becomeContainerUser(const ContainerState& state) {
    auto user = containerUserSeenHere(state);
    if (::geteuid() != 0 || user.uid == 0) {
        return;
    }
    if (::setgroups(1, &user.gid) != 0 || ::setresgid(user.gid, user.gid, user.gid) != 0 ||
        ::setresuid(user.uid, user.uid, user.uid) != 0) {
        throw sarus::systemError("cannot become user " + std::to_string(user.uid) + ":" + std::to_string(user.gid),
                                 errno);
    }
    log::debug("acting as user " + std::to_string(user.uid) + ":" + std::to_string(user.gid));
}

}  // namespace hook
