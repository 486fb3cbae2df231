#include "mount_hook.hpp"

#include "common/error.hpp"
#include "hook_log.hpp"
#include "hook_main.hpp"
#include "ld_cache.hpp"
#include "mounts.hpp"
#include "namespaces.hpp"

#include <filesystem>
#include <iostream>

namespace hook {

namespace {

const std::string wildcard = "<FI_PROVIDER_PATH>";

std::string substitute(std::string text, const std::string& value) {
    for (auto at = text.find(wildcard); at != std::string::npos; at = text.find(wildcard, at + value.size())) {
        text.replace(at, wildcard.size(), value);
    }
    return text;
}

// "--mount=X" or "--mount X"; returns whether args[i] was this option.
bool optionValue(const std::vector<std::string>& args, size_t& i, const std::string& option, std::string& value) {
    if (args[i].rfind(option + "=", 0) == 0) {
        value = args[i].substr(option.size() + 1);
        return true;
    }
    if (args[i] == option) {
        if (i + 1 >= args.size()) {
            throw sarus::Error(option + " needs a value");
        }
        value = args[++i];
        return true;
    }
    return false;
}

}  // namespace

MountHookArgs parseMountHookArgs(const std::vector<std::string>& args, const std::string& fiProviderPath) {
    MountHookArgs parsed;
    std::string value;
    for (size_t i = 0; i < args.size(); ++i) {
        if (optionValue(args, i, "--mount", value)) {
            parsed.mounts.push_back(sarus::parseMount(substitute(value, fiProviderPath)));
        } else if (optionValue(args, i, "--device", value)) {
            parsed.devices.push_back(sarus::parseDevice(value));
        } else {
            throw sarus::Error("unknown argument '" + args[i] + "' (expected --mount=... or --device=...)");
        }
    }
    return parsed;
}

std::string fiProviderPath(const ContainerState& state, const std::string& ldconfigPath) {
    auto fromEnv = containerEnv(state, "FI_PROVIDER_PATH");
    if (!fromEnv.empty()) {
        return fromEnv;
    }
    auto library = ldconfigPath.empty() ? findLibraryInCacheFile(state.rootfs, "libfabric.so")
                                        : findLibrary(ldconfigPath, state.rootfs, "libfabric.so");
    if (!library.empty()) {
        return std::filesystem::path(library).parent_path().string() + "/libfabric";
    }
    return "/usr/lib";
}

int runMountHook(const std::vector<std::string>& args) {
    return runHookMain("Mount hook", [&] {
        auto state = readContainerState(std::cin);
        log::setLevelFromAnnotations(state.annotations);  // before anything logs
        bool rootless = isRootless();
        auto ldconfig = absolutePathFromEnvironment("LDCONFIG_PATH", false);
        requireMountPrivileges(state, "mount_hook");
        enterMountNamespace(state.pid);
        bool needsWildcard = false;
        for (const auto& arg : args) {
            needsWildcard = needsWildcard || arg.find(wildcard) != std::string::npos;
        }
        auto parsed = parseMountHookArgs(args, needsWildcard ? fiProviderPath(state, ldconfig) : "");
        for (const auto& mount : parsed.mounts) {
            bindMount(state, mount);
        }
        for (const auto& device : parsed.devices) {
            deviceMount(state, device, rootless);
        }
        if (!ldconfig.empty()) {
            updateLdCache(ldconfig, state.rootfs);
        }
    });
}

}  // namespace hook
