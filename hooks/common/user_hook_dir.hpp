// Where hooks keep per-user state, laid out as Sarus does:
// <HOOK_BASE_DIR>/<user name>/.oci-hooks/<hook>, the user name taken from
// the admin's PASSWD_FILE (the host's database may not resolve in a job).
#pragma once

#include "container_state.hpp"

#include <filesystem>
#include <string>
#include <sys/types.h>

namespace hook {

// The login name of uid in a passwd(5) file; throws sarus::Error when absent.
std::string userNameFromPasswdFile(const std::filesystem::path& passwdFile, uid_t uid);

// <HOOK_BASE_DIR>/<name of uid>/.oci-hooks/<hookDirectory>, from the hook's
// environment (both variables required, absolute).
std::filesystem::path userHookDirectory(const std::string& hookDirectory, uid_t uid);

struct UserIds {
    uid_t uid = 0;
    gid_t gid = 0;
};

// The container's user (process.user of config.json) as ids of this
// process's user namespace: the same ids when they are mapped here (the host,
// keep-id namespaces); else this process's own ids, as in a namespace whose
// only id is the user (single-id maps), where its root is the user.
UserIds containerUserSeenHere(const ContainerState& state);

// A hook running as root (of the host or of a user namespace) touches the
// user's files only as the container's user: setgroups, setresgid, setresuid,
// for good. A hook that already is that user stays as it is.
void becomeContainerUser(const ContainerState& state);

}  // namespace hook
