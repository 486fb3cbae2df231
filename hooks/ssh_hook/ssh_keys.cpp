#include "ssh_keys.hpp"

#include "common/error.hpp"
#include "common/file_descriptor.hpp"
#include "common/file_utils.hpp"
#include "hook_log.hpp"
#include "hook_main.hpp"
#include "common/process.hpp"
#include "user_hook_dir.hpp"

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <sstream>
#include <sys/file.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace hook::ssh {

namespace {

fs::path keysDirectory() {
    return userHookDirectory("ssh/keys", ::getuid());
}

// dropbearkey talks on stderr ("Generating 256 bit ecdsa key..."): only at debug level.
sarus::CommandOutput dropbearkey(const fs::path& dropbear, const std::vector<std::string>& args) {
    sarus::FileDescriptor null(::open("/dev/null", O_WRONLY | O_CLOEXEC));
    sarus::SpawnOptions options;
    if (!log::enabled(log::Level::debug)) {
        options.stderrFd = null.get();
    }
    std::vector<std::string> argv{(dropbear / "bin/dropbearkey").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return sarus::runCapturingOutput(argv, options);
}

void makeKey(const fs::path& dropbear, const fs::path& file) {
    log::info("Generating " + file.string());
    auto result = dropbearkey(dropbear, {"-t", "ecdsa", "-f", file});
    if (result.exitCode != 0) {
        throw sarus::Error("dropbearkey failed to generate " + file.string() + " (exit status " +
                           std::to_string(result.exitCode) + ")");
    }
}

void writeAuthorizedKeys(const fs::path& dropbear, const fs::path& keys) {
    auto clientKey = keys / clientKeyFile;
    auto result = dropbearkey(dropbear, {"-y", "-f", clientKey});
    if (result.exitCode != 0) {
        throw sarus::Error("dropbearkey cannot read the public key of " + clientKey.string());
    }
    auto line = publicKeyLine(result.output) + "\n";
    auto file = keys / authorizedKeysFile;
    sarus::FileDescriptor out(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (out.get() < 0 || ::write(out.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
        throw sarus::systemError("cannot write " + file.string(), errno);
    }
}

}  // namespace

fs::path dropbearDirectory() {
    auto configured = absolutePathFromEnvironment("DROPBEAR_DIR", false);
    if (!configured.empty()) {
        return configured;
    }
    auto installed = fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "dropbear";
    log::info("DROPBEAR_DIR is not set: using " + installed.string());
    return installed;
}

bool hasSshKeys(const fs::path& keys) {
    for (const char* name : {hostKeyFile, clientKeyFile, authorizedKeysFile}) {
        if (!fs::exists(keys / name)) {
            log::debug("Expected SSH key file " + (keys / name).string() + " not found");
            return false;
        }
    }
    return true;
}

std::string publicKeyLine(const std::string& output) {
    std::istringstream in(output);
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("ecdsa-", 0) == 0) {
            return line;
        }
    }
    throw sarus::Error("no ecdsa public key in the output of dropbearkey -y");
}

int generateSshKeys(bool overwrite) {
    auto keys = keysDirectory();
    auto dropbear = dropbearDirectory();
    sarus::createDirectories(keys, 0700);  // whatever the umask: the re-check refuses world-writable ones
    keysDirectory();
    fs::permissions(keys, fs::perms::owner_all);
    sarus::FileDescriptor lock(::open(keys.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (lock.get() < 0 || ::flock(lock.get(), LOCK_EX) != 0) {  // one keygen at a time
        throw sarus::systemError("cannot lock " + keys.string(), errno);
    }
    if (hasSshKeys(keys) && !overwrite) {
        std::printf("SSH keys not generated because they already exist in %s. Use the '--overwrite' option to "
                    "overwrite the existing keys.\n", keys.c_str());
        return 0;
    }
    for (const char* name : {hostKeyFile, clientKeyFile, authorizedKeysFile}) {
        fs::remove(keys / name);
    }
    makeKey(dropbear, keys / hostKeyFile);
    makeKey(dropbear, keys / clientKeyFile);
    writeAuthorizedKeys(dropbear, keys);
    std::printf("Successfully generated SSH keys\n");
    return 0;
}

int checkUserHasSshKeys() {
    auto keys = keysDirectory();
    if (!hasSshKeys(keys)) {
        log::info("no SSH keys in " + keys.string());
        return 1;
    }
    log::debug("Found SSH keys in " + keys.string());
    return 0;
}

}  // namespace hook::ssh
