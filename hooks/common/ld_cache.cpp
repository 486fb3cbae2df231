#include "ld_cache.hpp"

#include "common/error.hpp"
#include "hook_log.hpp"
#include "runtime/path_in_root.hpp"
#include "common/process.hpp"

#include <fstream>
#include <iterator>
#include <sstream>
#include <string_view>

namespace hook {

namespace {

// Resolved inside the rootfs: an image's symlink must not point us at a host file.
std::filesystem::path cacheFile(const std::filesystem::path& rootfs) {
    return rootfs / std::filesystem::path(sarus::resolveInRoot(rootfs, "/etc/ld.so.cache")).relative_path();
}

}  // namespace

std::string runCommand(const std::vector<std::string>& argv) {
    auto result = sarus::runCapturingOutput(argv);
    if (result.exitCode != 0) {
        throw sarus::Error(argv[0] + " failed (exit code " + std::to_string(result.exitCode) + ")");
    }
    return result.output;
}

void updateLdCache(const std::string& ldconfigPath, const std::filesystem::path& rootfs) {
    runCommand({ldconfigPath, "-r", rootfs.string()});
    log::info("updated the dynamic linker cache of the container with " + ldconfigPath);
}

std::vector<CachedLibrary> listCachedLibraries(const std::string& ldconfigPath, const std::filesystem::path& rootfs) {
    // lines look like "\tlibfabric.so.1 (libc6,x86-64) => /usr/lib64/libfabric.so.1"
    std::vector<CachedLibrary> entries;
    auto cache = cacheFile(rootfs);
    if (!std::filesystem::exists(cache)) {
        log::debug("the container has no /etc/ld.so.cache: no library known to its dynamic linker");
        return entries;  // a static image; ldconfig -p would fail
    }
    std::istringstream lines(runCommand({ldconfigPath, "-r", rootfs.string(), "-p"}));
    std::string line;
    while (std::getline(lines, line)) {
        auto name = line.find_first_not_of(" \t");
        auto nameEnd = line.find(' ', name);
        auto arrow = line.find(" => ");
        if (name != std::string::npos && nameEnd != std::string::npos && arrow != std::string::npos) {
            entries.push_back({line.substr(name, nameEnd - name), line.substr(arrow + 4)});
        }
    }
    return entries;
}

std::string findLibrary(const std::string& ldconfigPath, const std::filesystem::path& rootfs,
                        const std::string& soname) {
    for (const auto& entry : listCachedLibraries(ldconfigPath, rootfs)) {
        if (entry.soname.rfind(soname, 0) == 0) {
            return entry.path;
        }
    }
    return "";
}

std::string findLibraryInCacheFile(const std::filesystem::path& rootfs, const std::string& soname) {
    auto cache = cacheFile(rootfs);
    std::ifstream in(cache, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t start = 0;
    for (size_t end = text.find('\0'); end != std::string::npos; start = end + 1, end = text.find('\0', start)) {
        std::string_view entry(text.data() + start, end - start);
        auto slash = entry.rfind('/');
        if (!entry.empty() && entry[0] == '/' && slash != std::string_view::npos &&
            entry.substr(slash + 1).rfind(soname, 0) == 0) {
            return std::string(entry);
        }
    }
    return "";
}

}  // namespace hook
