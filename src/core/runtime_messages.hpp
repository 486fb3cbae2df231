#pragma once

#include <filesystem>
#include <string>

namespace sarus {

// The OCI runtime's own error (from its --log file), turned into a message a
// user can act on; empty when the runtime logged no error (the container
// itself exited non-zero).
std::string runtimeFailure(const std::filesystem::path& runtimeLog);

// Translates one runtime error message.
std::string explainRuntimeError(const std::string& message);

}  // namespace sarus
