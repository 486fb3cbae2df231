#include "security_checks.hpp"

#include "config/config.hpp"
#include "common/error.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <fstream>
#include <sys/stat.h>

namespace sarus::suid {

namespace fs = std::filesystem;

namespace {

void checkOne(const fs::path& path, const fs::path& checked) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        throw systemError("security check of " + checked.string() + ": cannot stat " + path.string(), errno);
    }
    // Sarus's words, which site scripts know; an ancestor is named as such.
    auto ancestry = path == checked ? std::string() : " (ancestor of " + checked.string() + ")";
    if (st.st_uid != 0) {
        throw Error("Path \"" + path.string() + "\" must be owned by root in order to prevent other users from "
                    "tampering its contents. Found uid=" + std::to_string(st.st_uid) + ", gid=" +
                    std::to_string(st.st_gid) + "." + ancestry);
    }
    // A symlink's own mode bits mean nothing; its target is checked on its own.
    if (!S_ISLNK(st.st_mode) && (st.st_mode & (S_IWGRP | S_IWOTH))) {
        throw Error("Path \"" + path.string() + "\" cannot be group- or world-writable in order to prevent other "
                    "users from tampering its contents." + ancestry);
    }
}

}  // namespace

void checkRootOwnedAndNotWritable(const fs::path& path) {
    if (!path.is_absolute()) {
        throw Error("Path \"" + path.string() + "\" must be absolute to be checked");
    }
    // What does not exist is reported missing by its user (as in Sarus,
    // the check skips it); its existing ancestors are still checked, so
    // that nobody but root can create it there later.
    auto first = path;
    struct stat st {};
    while (first != first.root_path() && ::lstat(first.c_str(), &st) != 0 && errno == ENOENT) {
        first = first.parent_path();
    }
    for (fs::path current = first;; current = current.parent_path()) {
        checkOne(current, path);
        if (current == current.root_path()) {
            break;
        }
    }
    std::error_code ec;
    auto target = fs::canonical(path, ec);
    if (!ec && target != path) {
        for (fs::path current = target;; current = current.parent_path()) {
            checkOne(current, path);
            if (current == current.root_path()) {
                break;
            }
        }
    }
}

namespace {

void checkDirectoryAndEntries(const fs::path& directory) {
    checkRootOwnedAndNotWritable(directory);
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(directory, ec)) {
        checkRootOwnedAndNotWritable(entry.path());
    }
}

}  // namespace

void checkConfigurationFiles(const fs::path& configFile, const fs::path& schemaFile) {
    checkRootOwnedAndNotWritable(configFile);
    checkRootOwnedAndNotWritable(schemaFile);
}

void checkInstallation(const Config& config) {
    if (!config.json().value("securityChecks", true)) {
        return;
    }
    // mksquashfsPath is accepted but never run (images are written with
    // libsquashfs): like Sarus since 1.5.2, it is not checked.
    for (const char* key : {"runcPath", "initPath", "OCIBundleDir", "seccompProfile"}) {
        auto value = config.stringOr(key, "");
        if (!value.empty()) {
            try {
                checkRootOwnedAndNotWritable(value);
            } catch (const Error& e) {
                throw Error(std::string(e.what()) + " (" + key + " in " + config.file().string() + ")");
            }
        }
    }
    // The programs root runs or copies into containers: sarus and the hooks,
    // the helpers, and the Dropbear the SSH hook installs in containers.
    for (const auto& directory : {config.prefixDir() / "bin", config.prefixDir() / "libexec" / "sarus",
                                  config.prefixDir() / "dropbear" / "bin"}) {
        checkDirectoryAndEntries(directory);
    }
    std::error_code ec;
    auto hooksDir = config.stringOr("hooksDir", "");
    if (hooksDir.empty()) {
        return;
    }
    checkRootOwnedAndNotWritable(hooksDir);
    for (const auto& entry : fs::directory_iterator(hooksDir, ec)) {
        if (entry.path().extension() != ".json") {
            continue;
        }
        checkRootOwnedAndNotWritable(entry.path());
        try {
            std::ifstream in(entry.path());
            auto hook = nlohmann::json::parse(in);
            // a relative path is refused with the file's name by the hook configuration code
            if (hook.contains("hook") && hook["hook"].contains("path") && hook["hook"]["path"].is_string() &&
                hook["hook"]["path"].get<std::string>().rfind('/', 0) == 0) {
                checkRootOwnedAndNotWritable(hook["hook"]["path"].get<std::string>());
            }
        } catch (const nlohmann::json::exception&) {
            // a malformed hook file is reported by the hook configuration code
        }
    }
}

}  // namespace sarus::suid
