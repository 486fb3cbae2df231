// Where hooks keep per-user state, laid out as Sarus does:
// <HOOK_BASE_DIR>/<user name>/.oci-hooks/<hook>, the user name taken from
// the admin's PASSWD_FILE (the host's database may not resolve in a job).
#pragma once

#include <filesystem>
#include <string>
#include <sys/types.h>

namespace hook {

// The login name of uid in a passwd(5) file; throws sarus::Error when absent.
std::string userNameFromPasswdFile(const std::filesystem::path& passwdFile, uid_t uid);

// <HOOK_BASE_DIR>/<name of uid>/.oci-hooks/<hookDirectory>, from the hook's
// environment (both variables required, absolute).
std::filesystem::path userHookDirectory(const std::string& hookDirectory, uid_t uid);

// A hook that runs as real root (a SUID installation) touches the user's
// directories only as that user: setgroups, setresgid, setresuid, for good.
// Inside a user namespace the hook already acts as the user and stays as it is.
void actAsUserIfRoot(uid_t uid, gid_t gid);

}  // namespace hook
