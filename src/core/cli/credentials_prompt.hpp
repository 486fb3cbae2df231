// Reading registry credentials from the user: on the terminal (/dev/tty, the
// password without echo) or the password from stdin for scripts. They stay
// in memory: never on a command line, in a file or in a log.
#pragma once

#include "registry/registry_auth.hpp"

#include <string>

namespace sarus {

struct CredentialsRequest {
    std::string username;        // from -u; prompted for when empty
    bool passwordFromStdin = false;
};

// Throws sarus::Error when a value cannot be read (no terminal, empty input).
Credentials readCredentials(const CredentialsRequest& request, const std::string& registry);

}  // namespace sarus
