// The container's dynamic linker cache, through a trusted host ldconfig.
#pragma once

#include "common/process.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace hook {

struct CachedLibrary {
    std::string soname;  // "libmpich.so.12"
    std::string path;    // container path, as the cache has it
};

// Every entry of "<ldconfig> -r <rootfs> -p", in the cache's order; as the
// host's root confined as updateLdCache is.
std::vector<CachedLibrary> listCachedLibraries(const std::string& ldconfigPath, const std::filesystem::path& rootfs);

// Runs "<ldconfig> -r <rootfs>" (ldconfig chroots there itself); throws on
// failure. As the host's root it runs where only the container's own root
// mount is writable, every mount is nodev (a --device node is never opened)
// and no proc mount is left below rootfs.
void updateLdCache(const std::string& ldconfigPath, const std::filesystem::path& rootfs);

// The container path of the first library named like `soname` ("libfabric.so")
// in "<ldconfig> -r <rootfs> -p"; "" when there is none.
std::string findLibrary(const std::string& ldconfigPath, const std::filesystem::path& rootfs,
                        const std::string& soname);

// The same from the container's /etc/ld.so.cache file itself, without
// running anything: its string table holds the absolute paths of the
// libraries (old and new glibc formats alike). "" when there is none, or
// when the cache is not a regular file (never opened then); throws when a
// regular one cannot be opened (the hook then fails the container).
std::string findLibraryInCacheFile(const std::filesystem::path& rootfs, const std::string& soname);

// Runs argv, returns its stdout; throws sarus::Error when it fails.
std::string runCommand(const std::vector<std::string>& argv, sarus::SpawnOptions options = {});

}  // namespace hook
