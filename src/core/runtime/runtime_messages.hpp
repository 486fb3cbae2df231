#pragma once

#include <filesystem>
#include <string>

namespace sarus {

struct RuntimeFailure {
    std::string explanation;  // extra line for the user; empty when the runtime's own message is clear
    std::string sarusLine;    // Sarus's (runc's) wording of the same failure, printed after the runtime's
    int exitCode = 0;         // 0: keep the runtime's exit code
};

// Reads the OCI runtime's --log file after it failed. The runtime has already
// printed its message on stderr; only messages that need explaining (e.g. the
// hybrid cgroup refusal) get an explanation, and a command that could not be
// found or executed gets the exit code a shell would give (127, 126).
RuntimeFailure runtimeFailure(const std::filesystem::path& runtimeLog);

RuntimeFailure explainRuntimeError(const std::string& message);

}  // namespace sarus
