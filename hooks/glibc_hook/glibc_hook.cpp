#include "glibc_hook.hpp"

#include "container_state.hpp"
#include "common/error.hpp"
#include "glibc_version.hpp"
#include "hook_log.hpp"
#include "hook_main.hpp"
#include "ld_cache.hpp"
#include "mounts.hpp"
#include "namespaces.hpp"
#include "runtime/root_directory.hpp"
#include "shared_library.hpp"
#include "user_hook_dir.hpp"

#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>

namespace fs = std::filesystem;

namespace hook {

namespace {

const ContainerLibrary* findByLinkerName(const std::vector<ContainerLibrary>& libraries, const std::string& linkerName) {
    for (const auto& library : libraries) {
        if (parseLibraryName(library.soname).linkerName == linkerName) {
            return &library;
        }
    }
    return nullptr;
}

std::string hostLibc(const std::vector<std::string>& hostLibraries) {
    for (const auto& path : hostLibraries) {
        if (parseLibraryName(fs::path(path).filename()).linkerName == "libc.so") {
            return path;
        }
    }
    throw sarus::Error("GLIBC_LIBS names no libc.so.* library: the host glibc version cannot be known");
}

fs::path inRootfs(const fs::path& rootfs, const std::string& containerPath) {
    return rootfs / fs::path(containerPath).relative_path();
}

}  // namespace

std::vector<GlibcMount> planGlibcReplacement(const std::vector<std::string>& hostLibraries,
                                             const std::vector<ContainerLibrary>& containerLibraries,
                                             const std::function<std::string(const std::string&)>& hostSoname,
                                             const std::function<std::string(const std::string&)>& containerSoname) {
    std::vector<GlibcMount> mounts;
    for (const auto& host : hostLibraries) {
        auto linkerName = parseLibraryName(fs::path(host).filename()).linkerName;
        std::string hostName;  // read once, only when the container has the library
        bool found = false;
        for (const auto& container : containerLibraries) {
            // by the cache's soname: old glibc files are named libc-2.31.so
            if (parseLibraryName(container.soname).linkerName != linkerName) {
                continue;
            }
            if (!found) {
                hostName = hostSoname(host);
            }
            auto containerName = containerSoname(container.realPath);
            if (hostName != containerName) {
                throw sarus::Error("host glibc library " + host + " (soname " + hostName +
                                   ") is not ABI compatible with the container's " + container.realPath + " (soname " +
                                   containerName + ")");
            }
            mounts.push_back({host, container.realPath});
            found = true;
        }
        if (!found) {
            log::debug("the container has no " + linkerName + ": host " + host + " not injected");
        }
    }
    return mounts;
}

int runGlibcHook() {
    return runHookMain("Glibc hook", [] {
        auto state = readContainerState(std::cin);
        log::setLevelFromAnnotations(state.annotations);
        auto ldconfig = absolutePathFromEnvironment("LDCONFIG_PATH", true);
        auto readelf = absolutePathFromEnvironment("READELF_PATH", true);
        auto hostLibraries = splitColonList(environmentVariable("GLIBC_LIBS"));
        if (hostLibraries.empty()) {
            throw sarus::Error("GLIBC_LIBS is empty: it must list the host's glibc libraries");
        }
        requireMountPrivileges(state, "glibc_hook");
        enterMountNamespace(state.pid);
        auto containerLibraries = hook::containerLibraries(ldconfig, state.rootfs);
        const auto* containerLibc = findByLinkerName(containerLibraries, "libc.so");
        auto containerVersion =
            containerLibc ? glibcVersionOf(sarus::RootDirectory(state.rootfs).readFile(containerLibc->realPath),
                                           fs::path(containerLibc->realPath).filename().string())
                          : std::vector<unsigned long>{};
        if (containerVersion.empty()) {
            log::info("the container has no glibc (no glibc libc.so in its dynamic linker cache: a static, "
                      "musl or busybox image): glibc left alone");
            return;
        }
        auto hostPath = hostLibc(hostLibraries);
        auto hostVersion = glibcVersion(hostPath);
        if (hostVersion.empty()) {
            throw sarus::Error("cannot tell the glibc version of host " + hostPath + " (GLIBC_LIBS)");
        }
        if (containerVersion >= hostVersion) {
            log::info("the container's glibc " + versionString(containerVersion) + " is not older than the host's " +
                      versionString(hostVersion) + ": glibc left alone");
            return;
        }
        // The container's libraries are read as the container's user when
        // the hook is the host's root; the host's (GLIBC_LIBS) are the admin's.
        std::optional<UserIds> imageReader;
        if (isHostRoot()) {
            imageReader = hostUserSeenHere(state);
        }
        auto soname = [&](const fs::path& file, const std::optional<UserIds>& as) {
            auto name = readSoname(readelf, file, as);
            return name.empty() ? file.filename().string() : name;
        };
        auto mounts = planGlibcReplacement(
            hostLibraries, containerLibraries, [&](const std::string& host) { return soname(host, std::nullopt); },
            [&](const std::string& container) { return soname(inRootfs(state.rootfs, container), imageReader); });
        for (const auto& mount : mounts) {
            bindMount(state, {mount.hostPath, mount.containerPath, true});
        }
        log::info("replaced the container's glibc " + versionString(containerVersion) + " with the host's " +
                  versionString(hostVersion) + " (" + std::to_string(mounts.size()) + " libraries)");
        updateLdCache(ldconfig, state.rootfs);
    });
}

}  // namespace hook
