// Stream sockets on a path, for the engine's own rendezvous points (a
// shared container's agent, the image keeper). Their paths are under
// tempDir, so their length depends on the admin's choice.
#pragma once

#include "common/file_descriptor.hpp"

#include <cstddef>
#include <filesystem>
#include <optional>
#include <sys/socket.h>
#include <sys/types.h>
#include <vector>

namespace sarus {

// Binds and listens; throws sarus::Error naming the path.
FileDescriptor listenOnUnixSocket(const std::filesystem::path& socketPath);

// A connection to whoever listens on socketPath; throws sarus::Error (with
// the errno of connect) when nobody does.
FileDescriptor connectToUnixSocket(const std::filesystem::path& socketPath);

// The same, but nullopt when nobody listens there (no such socket, or
// connection refused): only then is a listener known to be gone. Any other
// failure (out of descriptors or memory) throws.
std::optional<FileDescriptor> connectUnlessNobodyListens(const std::filesystem::path& socketPath);

// Who is at the other end of a connected unix socket (SO_PEERCRED, ids as
// seen from this process's user namespace); nullopt when it cannot be told.
std::optional<ucred> peerCredentials(int connection);

// One sendmsg of size bytes with the descriptors fds (SCM_RIGHTS, at most
// maxSentDescriptors), retried on EINTR, without SIGPIPE. Returns what
// sendmsg returns: bytes sent, or -1 with errno.
constexpr std::size_t maxSentDescriptors = 16;
ssize_t sendWithDescriptors(int connection, const void* data, std::size_t size, const std::vector<int>& fds);

// One recvmsg of up to size bytes (retried on EINTR), with the descriptors
// that came along (SCM_RIGHTS, close-on-exec) appended to descriptors.
// Returns what recvmsg returns: bytes, 0 at the end, -1 with errno.
ssize_t receiveWithDescriptors(int connection, void* buffer, std::size_t size,
                               std::vector<FileDescriptor>& descriptors, int flags = 0);

}  // namespace sarus
