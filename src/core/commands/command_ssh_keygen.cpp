// `sarus ssh-keygen [--overwrite]` and the key check of `sarus run --ssh`: as
// in Sarus, both run the installation's ssh_hook as the user, with the hook
// settings derived from sarus.json (keys under localRepositoryBaseDir, the
// cached passwd file, the installation's Dropbear).
#include "commands.hpp"

#include "config/config.hpp"
#include "common/error.hpp"
#include "common/log.hpp"
#include "common/process.hpp"

#include <unistd.h>

namespace sarus {

namespace {

int runSshHookAsUser(const Config& config, std::vector<std::string> args) {
    auto prefix = config.prefixDir();
    auto passwd = prefix / "etc/passwd";
    if (!std::filesystem::exists(passwd)) {
        passwd = "/etc/passwd";  // an installation not finalized by configure_installation.sh
    }
    args.insert(args.begin(), (prefix / "bin/ssh_hook").string());
    if (log::enabled(log::Level::debug)) {
        args.push_back("--debug");
    } else if (log::enabled(log::Level::verbose)) {
        args.push_back("--verbose");
    } else {
        args.push_back("--quiet");
    }
    SpawnOptions options;
    options.uid = ::getuid();
    options.gid = ::getgid();
    options.env = std::vector<std::string>{
        "HOOK_BASE_DIR=" + config.localRepositoryBaseDir().string(),
        "PASSWD_FILE=" + passwd.string(),
        "DROPBEAR_DIR=" + (prefix / "dropbear").string(),
        "PATH=/usr/local/bin:/usr/bin:/bin",
    };
    return waitForExit(spawn(args, options));
}

}  // namespace

int commandSshKeygen(const Config& config, bool overwrite) {
    std::vector<std::string> args{"keygen"};
    if (overwrite) {
        args.push_back("--overwrite");
    }
    if (runSshHookAsUser(config, args) != 0) {
        throw Error("Failed to generate the SSH keys");
    }
    return 0;
}

void checkUserHasSshKeys(const Config& config) {
    log::verbose("Checking that the user has SSH keys");
    if (runSshHookAsUser(config, {"check-user-has-sshkeys"}) != 0) {
        throw Error("Failed to check the SSH keys. Hint: try to generate the SSH keys with 'sarus ssh-keygen'.");
    }
}

}  // namespace sarus
