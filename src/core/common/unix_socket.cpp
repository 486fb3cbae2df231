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
        throw Error("the socket path " + socketPath.string() +
                    " is too long (choose a shorter tempDir or OCIBundleDir in sarus.json)");
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

std::optional<FileDescriptor> connectUnlessNobodyListens(const std::filesystem::path& socketPath) {
    auto address = socketAddress(socketPath);
    auto connection = streamSocket();
    if (::connect(connection.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
        return connection;
    }
    if (errno == ECONNREFUSED || errno == ENOENT) {
        return std::nullopt;
    }
    throw systemError("cannot connect to " + socketPath.string(), errno);
}

ssize_t sendWithDescriptors(int connection, const void* data, std::size_t size, const std::vector<int>& fds) {
    if (fds.size() > maxSentDescriptors) {
        errno = EINVAL;
        return -1;
    }
    iovec iov{const_cast<void*>(data), size};
    alignas(cmsghdr) char control[CMSG_SPACE(maxSentDescriptors * sizeof(int))] = {};
    msghdr message{};
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    if (!fds.empty()) {
        message.msg_control = control;
        message.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
        auto* header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
        std::memcpy(CMSG_DATA(header), fds.data(), fds.size() * sizeof(int));
    }
    ssize_t n;
    do {
        n = ::sendmsg(connection, &message, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
}

ssize_t receiveWithDescriptors(int connection, void* buffer, std::size_t size,
                               std::vector<FileDescriptor>& descriptors, int flags) {
    constexpr std::size_t maxDescriptors = 8;
    iovec data{buffer, size};
    alignas(cmsghdr) char control[CMSG_SPACE(maxDescriptors * sizeof(int))] = {};
    msghdr message{};
    message.msg_iov = &data;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    ssize_t n;
    do {
        n = ::recvmsg(connection, &message, flags | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    for (auto* header = CMSG_FIRSTHDR(&message); n >= 0 && header; header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_RIGHTS) {
            auto count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < count; ++i) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof fd);
                descriptors.emplace_back(fd);
            }
        }
    }
    return n;
}

std::optional<ucred> peerCredentials(int connection) {
    ucred peer{};
    socklen_t length = sizeof peer;
    if (::getsockopt(connection, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0) {
        return std::nullopt;
    }
    return peer;
}

}  // namespace sarus
