// ssh_hook keygen [--overwrite] | check-user-has-sshkeys | start-ssh-daemon
// (start-sshd, the name of older hook files, is the same). The first two run
// as the user, from `sarus ssh-keygen` and `sarus run --ssh`; the last is the
// createRuntime hook. --quiet, --verbose and --debug set the log level.
#include "container_state.hpp"
#include "common/error.hpp"
#include "hook_log.hpp"
#include "hook_main.hpp"
#include "ssh_daemon.hpp"
#include "ssh_keys.hpp"

#include <cstdlib>
#include <iostream>

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    std::vector<std::string> rest;
    for (const auto& arg : args) {
        if (arg == "--verbose" || arg == "--debug" || arg == "--quiet") {
            ::setenv("HOOK_LOG_LEVEL", arg == "--verbose" ? "info" : arg == "--debug" ? "debug" : "warn", 1);
        } else {
            rest.push_back(arg);
        }
    }
    int status = 1;
    int hookStatus = hook::runHookMain("SSH hook", [&] {
        if (rest.empty()) {
            throw sarus::Error("a command is needed: keygen, check-user-has-sshkeys or start-ssh-daemon");
        }
        const auto& command = rest[0];
        if (command == "keygen" && (rest.size() == 1 || (rest.size() == 2 && rest[1] == "--overwrite"))) {
            status = hook::ssh::generateSshKeys(rest.size() == 2);
        } else if (command == "check-user-has-sshkeys" && rest.size() == 1) {
            status = hook::ssh::checkUserHasSshKeys();
        } else if ((command == "start-ssh-daemon" || command == "start-sshd") && rest.size() == 1) {
            auto state = hook::readContainerState(std::cin);
            hook::log::setLevelFromAnnotations(state.annotations);
            hook::ssh::startSshDaemon(state);
            status = 0;
        } else {
            throw sarus::Error("unsupported arguments '" + command + (rest.size() > 1 ? " " + rest[1] : "") + "'");
        }
    });
    return hookStatus != 0 ? hookStatus : status;
}
