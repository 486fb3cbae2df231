#include "common/unix_socket.hpp"

#include "common/error.hpp"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/un.h>

namespace sarus {

namespace {

sockaddr_un socketAddress(const std::filesystem::path& socketPath) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (socketPath.native().size() >= sizeof address.sun_path) {
        throw Error("the socket path " + socketPath.string() + " is too long (choose a shorter tempDir in sarus.json)");
    }
    std::strcpy(address.sun_path, socketPath.c_str());
    return address;
}

FileDescriptor streamSocket() {
    FileDescriptor fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
        throw systemError("cannot create a socket", errno);
    }
    return fd;
}

}  // namespace

FileDescriptor listenOnUnixSocket(const std::filesystem::path& socketPath) {
    auto address = socketAddress(socketPath);
    auto fd = streamSocket();
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(fd.get(), 256) != 0) {
        throw systemError("cannot listen on " + socketPath.string(), errno);
    }
    return fd;
}

FileDescriptor connectToUnixSocket(const std::filesystem::path& socketPath) {
    auto address = socketAddress(socketPath);
    auto connection = streamSocket();
    if (::connect(connection.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        throw systemError("cannot connect to " + socketPath.string(), errno);
    }
    return connection;
}

}  // namespace sarus
