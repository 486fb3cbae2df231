#include "config/identity.hpp"

#include "common/error.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

namespace sarus {

Identity Identity::ofCaller() {
    Identity identity;
    identity.uid = ::getuid();
    identity.gid = ::getgid();
    struct passwd* pw = ::getpwuid(identity.uid);
    if (pw == nullptr) {
        throw Error("user " + std::to_string(identity.uid) + " is not in the passwd database");
    }
    identity.userName = pw->pw_name;
    identity.home = pw->pw_dir;
    identity.shell = pw->pw_shell;
    int count = ::getgroups(0, nullptr);
    std::vector<gid_t> groups(count > 0 ? count : 0);
    if (count > 0 && ::getgroups(count, groups.data()) == count) {
        for (auto g : groups) {
            if (g != identity.gid) {
                identity.supplementaryGids.push_back(g);
            }
        }
    }
    return identity;
}

}  // namespace sarus
