// Shared libraries as the MPI and glibc hooks see them: the ABI version in
// the file name (libNAME.so.MAJOR.MINOR.PATCH, the MPICH ABI convention) and
// the libraries the container's dynamic linker knows.
#pragma once

#include "user_hook_dir.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace hook {

struct LibraryName {
    std::string linkerName;              // "libmpich.so"
    std::vector<unsigned long> version;  // {12, 1, 10}; empty when the name has none

    bool hasMajor() const { return !version.empty(); }
    bool hasMinor() const { return version.size() > 1; }
    unsigned long major() const { return version.at(0); }
    unsigned long minor() const { return version.at(1); }
    std::string soname() const;          // "libmpich.so.12", or the linker name
    std::string versionString() const;   // "12.1.10", or "none"
};

// {12, 1, 10} -> "12.1.10"; "" for no version.
std::string dottedVersion(const std::vector<unsigned long>& version);

// "libmpich.so.12.1.10" -> {"libmpich.so", {12, 1, 10}}. Trailing parts that
// are not numbers end the version ("libfoo.so.1.2rc" -> {1}).
LibraryName parseLibraryName(const std::string& fileName);

// A library of the container, found through its dynamic linker cache.
struct ContainerLibrary {
    std::string cachedPath;  // container path in the cache ("/usr/lib/libmpich.so.12")
    std::string soname;      // the cache's name for it ("libmpich.so.12")
    std::string realPath;    // the file it resolves to inside the rootfs
    LibraryName name;        // parsed from realPath's file name
};

// The libraries in the container's ld cache ("<ldconfig> -r rootfs -p"),
// each resolved inside the rootfs; entries that resolve to nothing are
// skipped, each real file is listed once.
std::vector<ContainerLibrary> containerLibraries(const std::string& ldconfigPath,
                                                 const std::filesystem::path& rootfs);

// The DT_SONAME of an ELF file read with a trusted readelf; "" when it has none.
// With `as`, readelf runs with those ids and no supplementary groups: a
// container's file is the image author's input, and binutils is no parser
// to run as root on it.
std::string readSoname(const std::string& readelfPath, const std::filesystem::path& file,
                       const std::optional<UserIds>& as = std::nullopt);

}  // namespace hook
