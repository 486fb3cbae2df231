#include "security_checks.hpp"

#include "config/config.hpp"
#include "common/error.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <fstream>
#include <iterator>
#include <set>
#include <sys/stat.h>

namespace sarus::suid {

namespace fs = std::filesystem;

namespace {

// The kernel's limit on symbolic links in one lookup (ELOOP).
constexpr int maxSymlinks = 40;

// Sarus's words, which site scripts know; an ancestor is named as such.
std::string ancestryOf(const fs::path& path, const fs::path& checked) {
    return path == checked ? std::string() : " (ancestor of " + checked.string() + ")";
}

// `ancestry` ends the message: ancestryOf, or what the caller knows better.
void refuseUnlessRootOwned(const fs::path& path, const struct stat& st, const std::string& ancestry) {
    if (st.st_uid != 0) {
        throw Error("Path \"" + path.string() + "\" must be owned by root in order to prevent other users from "
                    "tampering its contents. Found uid=" + std::to_string(st.st_uid) + ", gid=" +
                    std::to_string(st.st_gid) + "." + ancestry);
    }
}

[[noreturn]] void refuseWritableByOthers(const fs::path& path, const std::string& ancestry) {
    throw Error("Path \"" + path.string() + "\" cannot be group- or world-writable in order to prevent other "
                "users from tampering its contents." + ancestry);
}

// The target of a symlink met on the way, as a path from where the link is.
fs::path linkTarget(const fs::path& link, const fs::path& checked) {
    std::error_code ec;
    auto target = fs::read_symlink(link, ec);
    if (ec) {
        throw Error("security check of " + checked.string() + ": cannot read the symbolic link " + link.string() +
                    ": " + ec.message());
    }
    return target.is_absolute() ? target : link.parent_path() / target;
}

struct stat checkOne(const fs::path& path, const fs::path& checked) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        throw systemError("security check of " + checked.string() + ": cannot stat " + path.string(), errno);
    }
    auto ancestry = ancestryOf(path, checked);
    refuseUnlessRootOwned(path, st, ancestry);
    // A symlink's own mode bits mean nothing; its target is checked on its own.
    if (!S_ISLNK(st.st_mode) && (st.st_mode & (S_IWGRP | S_IWOTH))) {
        refuseWritableByOthers(path, ancestry);
    }
    return st;
}

// Checks path and each of its ancestors as written; a symlink among them is
// followed and its target checked the same way, so that no link of a chain
// leads through a directory another account owns. What does not exist is
// reported missing by its user (as in Sarus, the check skips it); its
// existing ancestors are still checked, so that nobody but root can create
// it there later.
void checkChain(const fs::path& path, const fs::path& checked, int links, std::set<fs::path>& visited) {
    if (links > maxSymlinks) {
        throw Error("security check of " + checked.string() + ": too many levels of symbolic links");
    }
    auto current = path;
    struct stat st {};
    while (current != current.root_path() && ::lstat(current.c_str(), &st) != 0 && errno == ENOENT) {
        current = current.parent_path();
    }
    for (;; current = current.parent_path()) {
        if (!visited.insert(current).second) {
            break;  // it and its ancestors are checked already
        }
        if (S_ISLNK(checkOne(current, checked).st_mode)) {
            checkChain(linkTarget(current, checked), checked, links + 1, visited);
        }
        if (current == current.root_path()) {
            break;
        }
    }
}

// A directory on the way to a site mount's or device's source: root's, and
// writable by nobody else unless it is sticky and the entry below it is
// root's (a source in /scratch, say), so that only root can replace what
// lies below it. `child` does not exist when childStat is null.
void checkSourceParent(const fs::path& directory, const struct stat& st, const fs::path& child,
                       const struct stat* childStat, const fs::path& checked) {
    auto ancestry = " (ancestor of " + checked.string() + ")";
    refuseUnlessRootOwned(directory, st, ancestry);
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) == 0) {
        return;
    }
    if ((st.st_mode & S_ISVTX) == 0) {
        refuseWritableByOthers(directory, ancestry);
    }
    if (childStat == nullptr) {
        throw Error("Path \"" + child.string() + "\" does not exist, and any user may create it in \"" +
                    directory.string() + "\"" + ancestry);
    }
    if (childStat->st_uid != 0) {
        throw Error("Path \"" + child.string() + "\" must be owned by root: it is in \"" + directory.string() +
                    "\", where other users may create entries." + ancestry);
    }
    // A user may have linked a root file there under that name (without
    // fs.protected_hardlinks).
    if (!S_ISDIR(childStat->st_mode) && childStat->st_nlink > 1) {
        throw Error("Path \"" + child.string() + "\" has other hard links and is in \"" + directory.string() +
                    "\", where other users may create entries." + ancestry);
    }
}

// A site mount's or device's source (or a log file root appends to), which
// root reaches by its path: the source itself may be anyone's, but nobody
// else may replace it or a directory on the way. Resolved component by
// component as the kernel does: a symlink met anywhere (root's, or
// checkSourceParent refuses it in time) restarts the walk on its target
// followed by the rest of the path.
void checkSourceChain(const fs::path& path, const fs::path& checked, int links) {
    if (links > maxSymlinks) {
        throw Error("security check of " + checked.string() + ": too many levels of symbolic links");
    }
    fs::path resolved = "/";  // a real directory: no symlink in it
    struct stat directory {};
    if (::lstat("/", &directory) != 0) {
        throw systemError("security check of " + checked.string() + ": cannot stat /", errno);
    }
    auto relative = path.relative_path();
    for (auto part = relative.begin(); part != relative.end(); ++part) {
        if (part->empty() || *part == ".") {
            continue;
        }
        if (*part == "..") {
            resolved = resolved.parent_path();
            if (::lstat(resolved.c_str(), &directory) != 0) {
                throw systemError("security check of " + checked.string() + ": cannot stat " + resolved.string(),
                                  errno);
            }
            continue;
        }
        auto next = resolved / *part;
        struct stat st {};
        if (::lstat(next.c_str(), &st) != 0) {
            if (errno != ENOENT) {
                throw systemError("security check of " + checked.string() + ": cannot stat " + next.string(), errno);
            }
            checkSourceParent(resolved, directory, next, nullptr, checked);
            return;  // what is missing, its user reports
        }
        checkSourceParent(resolved, directory, next, &st, checked);
        if (S_ISLNK(st.st_mode)) {
            auto rest = linkTarget(next, checked);
            for (auto remaining = std::next(part); remaining != relative.end(); ++remaining) {
                rest /= *remaining;
            }
            checkSourceChain(rest, checked, links + 1);
            return;
        }
        resolved = next;
        directory = st;
    }
}

}  // namespace

void checkRootOwnedAndNotWritable(const fs::path& path) {
    if (!path.is_absolute()) {
        throw Error("Path \"" + path.string() + "\" must be absolute to be checked");
    }
    std::set<fs::path> visited;
    checkChain(path, path, 0, visited);
}

namespace {

void checkDirectoryAndEntries(const fs::path& directory) {
    checkRootOwnedAndNotWritable(directory);
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(directory, ec)) {
        checkRootOwnedAndNotWritable(entry.path());
    }
}

// A path root reaches by name, but whose own owner does not matter (a site
// mount's source, a log file root appends to), named in a configuration.
void checkConfiguredSource(const fs::path& path, const std::string& origin) {
    try {
        checkSourceChain(path, path, 0);
    } catch (const Error& e) {
        throw Error(std::string(e.what()) + " (" + origin + ")");
    }
}

// Checks a path named in a configuration, the message saying where.
void checkConfigured(const fs::path& path, const std::string& origin) {
    try {
        checkRootOwnedAndNotWritable(path);
    } catch (const Error& e) {
        throw Error(std::string(e.what()) + " (" + origin + ")");
    }
}

// A hook's program, and what its environment names for root to run, to copy
// into containers or to append to.
void checkHook(const nlohmann::json& hook, const std::string& origin) {
    if (!hook.is_object()) {
        return;  // the hook configuration code reports it
    }
    // a relative path is refused with the file's name by the hook configuration code
    if (hook.contains("path") && hook["path"].is_string() && hook["path"].get<std::string>().rfind('/', 0) == 0) {
        checkConfigured(hook["path"].get<std::string>(), "hook of " + origin);
    }
    if (!hook.contains("env") || !hook["env"].is_array()) {
        return;
    }
    for (const auto& entry : hook["env"]) {
        if (!entry.is_string()) {
            continue;
        }
        auto text = entry.get<std::string>();
        auto equals = text.find('=');
        auto name = text.substr(0, equals);
        auto value = equals == std::string::npos ? std::string() : text.substr(equals + 1);
        if (value.rfind('/', 0) != 0) {
            continue;  // the hook refuses a relative path itself
        }
        auto where = name + " of the hook of " + origin;
        if (name == "LDCONFIG_PATH" || name == "READELF_PATH") {
            checkConfigured(value, where);
        } else if (name == "TIMESTAMP_HOOK_LOGFILE") {
            checkConfiguredSource(value, where);  // a log file in /var/log or a sticky /var/tmp/logs
        } else if (name == "DROPBEAR_DIR") {
            checkConfigured(value, where);
            try {
                checkDirectoryAndEntries(fs::path(value) / "bin");
            } catch (const Error& e) {
                throw Error(std::string(e.what()) + " (" + where + ")");
            }
        }
    }
}

void checkHooksDirectory(const fs::path& hooksDir) {
    checkRootOwnedAndNotWritable(hooksDir);
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(hooksDir, ec)) {
        if (entry.path().extension() != ".json") {
            continue;
        }
        checkRootOwnedAndNotWritable(entry.path());
        try {
            std::ifstream in(entry.path());
            auto document = nlohmann::json::parse(in);
            if (document.is_object() && document.contains("hook")) {
                checkHook(document["hook"], entry.path().string());
            }
        } catch (const nlohmann::json::exception&) {
            // a malformed hook file is reported by the hook configuration code
        }
    }
}

// Sarus's OCIHooks in sarus.json: {"<stage>": [{"path": ..., "env": [...]}]}.
void checkLegacyHooks(const Config& config) {
    const auto& json = config.json();
    if (!json.contains("OCIHooks") || !json["OCIHooks"].is_object()) {
        return;
    }
    for (const auto& [stage, hooks] : json["OCIHooks"].items()) {
        if (!hooks.is_array()) {
            continue;
        }
        for (const auto& hook : hooks) {
            checkHook(hook, "OCIHooks." + stage + " in " + config.file().string());
        }
    }
}

// siteMounts and siteDevices: root binds or recreates what their sources
// lead to in every container.
void checkSiteSources(const Config& config) {
    for (const char* key : {"siteMounts", "siteDevices"}) {
        const auto& json = config.json();
        if (!json.contains(key) || !json[key].is_array()) {
            continue;
        }
        for (const auto& entry : json[key]) {
            if (!entry.is_object() || !entry.contains("source") || !entry["source"].is_string()) {
                continue;  // the schema reports it
            }
            fs::path source = entry["source"].get<std::string>();
            if (!source.is_absolute()) {
                continue;  // refused with its key when the mounts are read
            }
            checkConfiguredSource(source, std::string(key) + " source in " + config.file().string());
        }
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
            checkConfigured(value, std::string(key) + " in " + config.file().string());
        }
    }
    // The programs root runs or copies into containers: sarus and the hooks,
    // the helpers, and the Dropbear the SSH hook installs in containers.
    std::vector<fs::path> directories{config.prefixDir() / "bin", config.prefixDir() / "libexec" / "sarus",
                                      config.prefixDir() / "dropbear" / "bin"};
    // The helpers root runs or mounts into containers (sarus-workdir,
    // sarus-rank-agent) are those installed next to the running sarus: the
    // same directory unless an admin set prefixDir elsewhere.
    auto helpers = Config::installPrefix() / "libexec" / "sarus";
    if (helpers != directories[1]) {
        directories.push_back(helpers);
    }
    for (const auto& directory : directories) {
        checkDirectoryAndEntries(directory);
    }
    auto hooksDir = config.stringOr("hooksDir", "");
    if (!hooksDir.empty()) {
        checkHooksDirectory(hooksDir);
    }
    checkLegacyHooks(config);
    checkSiteSources(config);
}

}  // namespace sarus::suid
