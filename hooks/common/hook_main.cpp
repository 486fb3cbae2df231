#include "hook_main.hpp"

#include "common/error.hpp"
#include "hook_log.hpp"

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <unistd.h>

namespace hook {

int runHookMain(const std::string& hookName, const std::function<void()>& body) {
    // An ignored SIGCHLD of whoever started the runtime survives exec; the
    // hooks wait for what they start (ldconfig, the SSH daemon's start-up).
    ::signal(SIGCHLD, SIG_DFL);
    log::setSubsystem(hookName);
    log::setLevelFromEnvironment();
    try {
        body();
        return 0;
    } catch (const sarus::Error& e) {
        std::string message;
        for (auto it = e.contexts().rbegin(); it != e.contexts().rend(); ++it) {
            message += *it + ": ";
        }
        log::error(message + e.what());
    } catch (const std::exception& e) {
        log::error(e.what());
    }
    return 1;
}

std::string environmentVariable(const char* name) {
    const char* value = std::getenv(name);
    return value == nullptr ? "" : value;
}

std::string absolutePathFromEnvironment(const char* name, bool required) {
    auto value = environmentVariable(name);
    if (value.empty()) {
        if (required) {
            throw sarus::Error(std::string(name) + " is not set: the hook's configuration must give it");
        }
        return value;
    }
    if (!std::filesystem::path(value).is_absolute()) {
        throw sarus::Error(std::string(name) + " must be an absolute path, not '" + value + "'");
    }
    return value;
}

std::vector<std::string> splitColonList(const std::string& list) {
    std::vector<std::string> items;
    std::stringstream in(list);
    std::string item;
    while (std::getline(in, item, ':')) {
        if (!item.empty()) {
            items.push_back(item);
        }
    }
    return items;
}

void requireMountPrivileges(const ContainerState& state, const std::string& hookName) {
    if (state.pid == 0 && ::geteuid() != 0) {
        throw sarus::Error("no privileges to mount: the runtime runs this createContainer hook as the "
                           "container's user; configure " + hookName + " for the createRuntime stage");
    }
}

}  // namespace hook
