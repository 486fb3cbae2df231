// Stream sockets on a path, for the engine's own rendezvous points (a
// shared container's agent, the image keeper). Their paths are under
// tempDir, so their length depends on the admin's choice.
#pragma once

#include "common/file_descriptor.hpp"

#include <filesystem>

namespace sarus {

// Binds and listens; throws sarus::Error naming the path.
FileDescriptor listenOnUnixSocket(const std::filesystem::path& socketPath);

// A connection to whoever listens on socketPath; throws sarus::Error (with
// the errno of connect) when nobody does.
FileDescriptor connectToUnixSocket(const std::filesystem::path& socketPath);

}  // namespace sarus
