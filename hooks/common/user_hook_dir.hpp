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
// environment (both variables required, absolute), for the caller's own
// uid. Throws unless its directories below HOOK_BASE_DIR that exist are the
// user's (sarus::refuseDirectoriesOfAnother): checked again after making
// them, since another user may make them in between.
std::filesystem::path userHookDirectory(const std::string& hookDirectory, uid_t uid);
// The same for the user of a container, whose ids this hook may see through
// a user namespace; for a rootless engine's container run as its root, the
// user who runs the engine.
std::filesystem::path userHookDirectory(const std::string& hookDirectory, const ContainerState& state);

struct UserIds {
    uid_t uid = 0;
    gid_t gid = 0;
};

// process.user's host ids as ids of this process's user namespace (config.json
// holds host ids, as Sarus and keep-id engines write it); this process's own
// ids when they are not mapped here.
UserIds hostUserSeenHere(const ContainerState& state);

// A hook running as root (of the host or of a user namespace) reads and
// writes the user's files on the host only as the user: it becomes
// hostUserSeenHere, for good. A hook that already is that user stays as it is.
void becomeUserOnHost(const ContainerState& state);

// Inside the container's user namespace: becomes process.user when that id
// is mapped there and the hook is its root, for good.
void becomeContainerUser(const ContainerState& state);

}  // namespace hook
