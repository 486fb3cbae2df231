// glibc_hook: replaces the container's glibc by the host's when the host's
// is newer and the sonames match, as the Sarus glibc hook does. Configured by
// the admin through GLIBC_LIBS, LDCONFIG_PATH and READELF_PATH.
#pragma once

#include "shared_library.hpp"

#include <functional>
#include <string>
#include <vector>

namespace hook {

struct GlibcMount {
    std::string hostPath;
    std::string containerPath;  // the real file inside the container
};

// The host library of GLIBC_LIBS each container library is replaced by:
// same linker name (of the cache's soname); the sonames (host's and container's, as readelf reads
// them) must be equal, else it throws naming both. Host libraries the
// container does not have are not added.
std::vector<GlibcMount> planGlibcReplacement(const std::vector<std::string>& hostLibraries,
                                             const std::vector<ContainerLibrary>& containerLibraries,
                                             const std::function<std::string(const std::string&)>& hostSoname,
                                             const std::function<std::string(const std::string&)>& containerSoname);

// The whole hook; returns the exit status.
int runGlibcHook();

}  // namespace hook
