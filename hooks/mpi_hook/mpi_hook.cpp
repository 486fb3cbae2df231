#include "mpi_hook.hpp"

#include "container_state.hpp"
#include "common/error.hpp"
#include "hook_log.hpp"
#include "hook_main.hpp"
#include "ld_cache.hpp"
#include "mounts.hpp"
#include "namespaces.hpp"

#include <filesystem>
#include <iostream>
#include <sys/stat.h>

namespace fs = std::filesystem;

namespace hook {

namespace {

// Where host libraries without a counterpart go: a default search directory
// of ld.so and ldconfig in every distribution (the Sarus documentation's).
const std::string addedLibraryDirectory = "/usr/lib";

std::vector<Library> counterparts(const Library& host, const std::vector<ContainerLibrary>& container) {
    std::vector<Library> found;
    for (const auto& library : container) {
        if (library.name.linkerName == host.name.linkerName) {
            found.push_back({library.realPath, library.name});
        }
    }
    return found;
}

Library addedInContainer(const Library& host) {
    auto fileName = fs::path(host.path).filename().string();
    return {addedLibraryDirectory + "/" + fileName, parseLibraryName(fileName)};
}

void planMpiLibrary(AbiCheck check, const Library& host, const std::vector<Library>& matches, MpiPlan& plan) {
    if (matches.empty()) {
        plan.mounts.push_back({host, addedInContainer(host), true});
        return;
    }
    for (const auto& container : matches) {
        auto warning = checkAbiCompatibility(check, host, container);
        if (!warning.empty()) {
            plan.warnings.push_back(warning);
        }
        plan.mounts.push_back({host, container, false});
    }
}

// A dependency replaces the container's library of the same soname unless
// that one is newer: within a soname a newer library serves the host MPI
// too, and the container's programs may need it. Otherwise it is added.
void planDependency(const Library& host, const std::vector<Library>& matches, MpiPlan& plan) {
    bool satisfied = false;
    for (const auto& container : matches) {
        if (container.name.soname() != host.name.soname()) {
            continue;
        }
        satisfied = true;
        if (container.name.version > host.name.version) {
            plan.notes.push_back("kept the container's " + container.path + " (ABI " + container.name.versionString() +
                                 "), newer than host dependency library " + host.path + " (ABI " +
                                 host.name.versionString() + ")");
        } else {
            plan.mounts.push_back({host, container, false});
        }
    }
    if (!satisfied) {
        plan.mounts.push_back({host, addedInContainer(host), true});
    }
}

std::string linkerNames(const std::vector<Library>& libraries) {
    std::string names;
    for (const auto& library : libraries) {
        names += (names.empty() ? "" : ", ") + library.name.linkerName;
    }
    return names;
}

void mountLibrary(const ContainerState& state, const LibraryMount& mount) {
    bindMount(state, {mount.host.path, mount.container.path, true});
    // ld.so finds a library by soname: keep "<soname> -> file" in its directory
    auto directory = fs::path(mount.container.path).parent_path().string();
    auto fileName = fs::path(mount.container.path).filename().string();
    auto soname = mount.host.name.soname();
    if (soname != fileName) {
        createSymlinkIfMissing(state, directory, soname, fileName);
    }
    if (mount.added) {
        log::info("added host library " + mount.host.path + " (ABI " + mount.host.name.versionString() + ") as " +
                  mount.container.path + " (no counterpart in the container)");
    } else {
        log::info("replaced " + mount.container.path + " (ABI " + mount.container.name.versionString() +
                  ") with host library " + mount.host.path + " (ABI " + mount.host.name.versionString() + ")");
    }
}

void performBindMounts(const ContainerState& state, const std::vector<std::string>& paths, bool rootless) {
    for (const auto& path : paths) {
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0 && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) {
            deviceMount(state, {path, path, "rw"}, rootless);
        } else {
            bindMount(state, {path, path, false});
        }
    }
}

std::vector<Library> hostLibraries(const char* variable, bool required) {
    auto paths = splitColonList(environmentVariable(variable));
    if (paths.empty() && required) {
        throw sarus::Error(std::string(variable) + " is empty: it must list the host's MPI libraries");
    }
    std::vector<Library> libraries;
    for (const auto& path : paths) {
        if (!fs::path(path).is_absolute()) {
            throw sarus::Error(std::string(variable) + " must list absolute paths, not '" + path + "'");
        }
        libraries.push_back(hostLibrary(path));
    }
    return libraries;
}

}  // namespace

Library hostLibrary(const std::string& path) {
    auto name = parseLibraryName(fs::path(path).filename());
    std::error_code ec;
    auto real = fs::canonical(path, ec);
    if (ec) {
        throw sarus::Error("host library " + path + " does not exist: " + ec.message());
    }
    if (!name.hasMajor()) {
        name = parseLibraryName(real.filename());
    }
    return {path, name};
}

MpiPlan planMpiInjection(AbiCheck check, const std::vector<Library>& mpiLibraries,
                         const std::vector<Library>& dependencyLibraries,
                         const std::vector<ContainerLibrary>& containerLibraries) {
    for (const auto& host : mpiLibraries) {
        if (!host.name.hasMajor()) {
            throw sarus::Error("The host's MPI libraries (configured through the env variable MPI_LIBS) must have at "
                               "least the MAJOR ABI number, e.g. libmpi.so.<MAJOR>. Only then can the compatibility "
                               "between host and container MPI libraries be checked. Found host's MPI library " +
                               host.path + ". Please contact your system administrator to solve this issue.");
        }
    }
    MpiPlan plan;
    bool containerHasMpi = false;
    for (const auto& host : mpiLibraries) {
        auto matches = counterparts(host, containerLibraries);
        containerHasMpi = containerHasMpi || !matches.empty();
        planMpiLibrary(check, host, matches, plan);
    }
    if (!containerHasMpi) {
        throw sarus::Error("Failed to activate MPI support. No MPI libraries found in the container. The container "
                           "should be configured to access the MPI libraries through the dynamic linker. Hint: run "
                           "'ldconfig' when building the container image to configure the dynamic linker. (None of " +
                           linkerNames(mpiLibraries) + " is in its dynamic linker cache.)");
    }
    for (const auto& host : dependencyLibraries) {
        planDependency(host, counterparts(host, containerLibraries), plan);
    }
    return plan;
}

int runMpiHook() {
    return runHookMain("MPI hook", [] {
        auto state = readContainerState(std::cin);
        log::setLevelFromAnnotations(state.annotations);
        bool rootless = isRootless();
        auto ldconfig = absolutePathFromEnvironment("LDCONFIG_PATH", true);
        auto check = abiCheckFromString(environmentVariable("MPI_COMPATIBILITY_TYPE"));
        auto mpiLibraries = hostLibraries("MPI_LIBS", true);
        auto dependencies = hostLibraries("MPI_DEPENDENCY_LIBS", false);
        auto bindMounts = splitColonList(environmentVariable("BIND_MOUNTS"));
        requireMountPrivileges(state, "mpi_hook");
        enterMountNamespace(state.pid);
        log::debug("MPI compatibility type: " + toString(check));
        auto plan = planMpiInjection(check, mpiLibraries, dependencies, containerLibraries(ldconfig, state.rootfs));
        for (const auto& warning : plan.warnings) {
            log::warn(warning);
        }
        for (const auto& note : plan.notes) {
            log::info(note);
        }
        for (const auto& mount : plan.mounts) {
            mountLibrary(state, mount);
        }
        performBindMounts(state, bindMounts, rootless);
        updateLdCache(ldconfig, state.rootfs);
    });
}

}  // namespace hook
