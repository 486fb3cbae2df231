#include "shared_library.hpp"

#include "hook_log.hpp"
#include "ld_cache.hpp"
#include "runtime/path_in_root.hpp"

#include <algorithm>
#include <grp.h>
#include <cctype>
#include <set>
#include <sstream>

namespace fs = std::filesystem;

namespace hook {

namespace {

// The end of ".so" when it is followed by nothing or by a '.'.
size_t endOfSoSuffix(const std::string& name) {
    for (auto at = name.find(".so"); at != std::string::npos; at = name.find(".so", at + 1)) {
        auto end = at + 3;
        if (end == name.size() || name[end] == '.') {
            return end;
        }
    }
    return std::string::npos;
}

}  // namespace

std::string LibraryName::soname() const {
    return hasMajor() ? linkerName + "." + std::to_string(major()) : linkerName;
}

std::string dottedVersion(const std::vector<unsigned long>& version) {
    std::string text;
    for (auto number : version) {
        text += (text.empty() ? "" : ".") + std::to_string(number);
    }
    return text;
}

std::string LibraryName::versionString() const {
    return version.empty() ? "none" : dottedVersion(version);
}

LibraryName parseLibraryName(const std::string& fileName) {
    LibraryName name;
    auto end = endOfSoSuffix(fileName);
    if (end == std::string::npos) {
        name.linkerName = fileName;
        return name;
    }
    name.linkerName = fileName.substr(0, end);
    std::stringstream rest(fileName.substr(end));
    std::string part;
    std::getline(rest, part, '.');  // the empty text before the first '.'
    while (std::getline(rest, part, '.')) {
        if (part.empty() || part.size() > 9 || !std::all_of(part.begin(), part.end(), ::isdigit)) {
            break;
        }
        name.version.push_back(std::stoul(part));
    }
    return name;
}

std::vector<ContainerLibrary> containerLibraries(const std::string& ldconfigPath, const fs::path& rootfs) {
    std::vector<ContainerLibrary> libraries;
    std::set<std::string> seen;
    for (const auto& entry : listCachedLibraries(ldconfigPath, rootfs)) {
        // resolved inside the rootfs: an image's symlink must not lead us to a host file
        auto real = sarus::resolveInRoot(rootfs, entry.path);
        std::error_code ec;
        if (!fs::is_regular_file(rootfs / fs::path(real).relative_path(), ec)) {
            log::debug("ld cache entry " + entry.path + " leads to no file in the container: skipped");
            continue;
        }
        if (seen.insert(real).second) {
            libraries.push_back({entry.path, entry.soname, real, parseLibraryName(fs::path(real).filename())});
        }
    }
    return libraries;
}

std::string readSoname(const std::string& readelfPath, const fs::path& file, const std::optional<UserIds>& as) {
    sarus::SpawnOptions options;
    if (as) {
        options.uid = as->uid;
        options.gid = as->gid;
        options.prepareChild = [] { return ::setgroups(0, nullptr) == 0 ? nullptr : "drop the groups of"; };
    }
    // "0x000000000000000e (SONAME)             Library soname: [libc.so.6]"
    std::istringstream lines(runCommand({readelfPath, "-d", file.string()}, std::move(options)));
    std::string line;
    while (std::getline(lines, line)) {
        auto open = line.find("Library soname: [");
        auto close = line.rfind(']');
        if (line.find("(SONAME)") != std::string::npos && open != std::string::npos && close != std::string::npos) {
            open += 17;
            return line.substr(open, close - open);
        }
    }
    return "";
}

}  // namespace hook
