// mpi_hook: replaces the container's MPICH-ABI libraries by the host's,
// ABI-checked, as the Sarus native MPI hook does. Configured by the admin
// through LDCONFIG_PATH, MPI_LIBS, MPI_DEPENDENCY_LIBS, BIND_MOUNTS,
// MPI_COMPATIBILITY_TYPE and HOOK_ROOTLESS.
#pragma once

#include "abi_compatibility.hpp"
#include "shared_library.hpp"

#include <string>
#include <vector>

namespace hook {

// A host library bound into the container: over one of its libraries, or
// added in /usr/lib when the container has no counterpart.
struct LibraryMount {
    Library host;
    Library container;
    bool added = false;
};

struct MpiPlan {
    std::vector<LibraryMount> mounts;
    std::vector<std::string> warnings;
    std::vector<std::string> notes;  // decisions worth a line at --verbose
};

// A host library named by the admin; the version comes from the file name
// given, else from the file it resolves to.
Library hostLibrary(const std::string& path);

// Decides every mount, or throws the reason the container cannot get the
// host MPI: no MPI library in the container, a library without a major
// version, or an incompatibility under `check`. Pure: no file is touched.
MpiPlan planMpiInjection(AbiCheck check, const std::vector<Library>& mpiLibraries,
                         const std::vector<Library>& dependencyLibraries,
                         const std::vector<ContainerLibrary>& containerLibraries);

// The whole hook; returns the exit status.
int runMpiHook();

}  // namespace hook
