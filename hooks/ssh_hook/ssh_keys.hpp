// The user's SSH keys for containers, made by `sarus ssh-keygen` (which runs
// `ssh_hook keygen` as the user) in <HOOK_BASE_DIR>/<user>/.oci-hooks/ssh/keys:
// the daemons' host key, the clients' key and the authorized_keys that lets
// that client key in.
#pragma once

#include <filesystem>
#include <string>

namespace hook::ssh {

inline const char* const hostKeyFile = "dropbear_ecdsa_host_key";
inline const char* const clientKeyFile = "id_dropbear";
inline const char* const authorizedKeysFile = "authorized_keys";

// The installation's Dropbear: DROPBEAR_DIR, else <prefix>/dropbear next to
// this program's bin/ (said at info level).
std::filesystem::path dropbearDirectory();

bool hasSshKeys(const std::filesystem::path& keysDirectory);

// The public key line ("ecdsa-sha2-nistp256 AAAA...") in dropbearkey -y output.
std::string publicKeyLine(const std::string& dropbearkeyOutput);

// keygen [--overwrite]: prints Sarus's messages; returns the exit status.
int generateSshKeys(bool overwrite);

// check-user-has-sshkeys: exit status 0 when the keys are all there.
int checkUserHasSshKeys();

}  // namespace hook::ssh
