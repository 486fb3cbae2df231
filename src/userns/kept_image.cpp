#include "kept_image.hpp"

#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "common/log.hpp"
#include "common/process.hpp"
#include "common/unix_socket.hpp"
#include "runtime/sandbox.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <sched.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace sarus::userns {

namespace fs = std::filesystem;

namespace {

struct CloneResult {
    pid_t pid = -1;
    int error = 0;
};

// The keeper removes its directory, lock file included, under the lock when
// it ends: whoever locked a file that is no longer the one there starts over.
FileDescriptor lockKeeper(const KeeperPaths& paths) {
    for (;;) {
        ensurePrivateDirectory(paths.directory, "it holds the caller's kept image mounts");
        FileDescriptor lock(::open(paths.lock().c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
        if (lock.get() < 0 && errno == ENOENT) {
            continue;
        }
        if (lock.get() < 0 || ::flock(lock.get(), LOCK_EX) != 0) {
            throw systemError("cannot lock " + paths.lock().string(), errno);
        }
        struct stat locked {}, current {};
        ::fstat(lock.get(), &locked);
        if (::stat(paths.lock().c_str(), &current) == 0 && current.st_ino == locked.st_ino) {
            return lock;
        }
    }
}

std::optional<FileDescriptor> connectIfServed(const KeeperPaths& paths) {
    try {
        return connectToUnixSocket(paths.socket());
    } catch (const Error&) {
        return std::nullopt;
    }
}

// In the keeper's namespaces, after the id mapping: the listener first, so
// that the socket serves once this process reported success; then the
// keeper proper, detached from the caller's session and descriptors.
void becomeKeeper(const KeeperSettings& settings) {
    auto listener = prepareKeeper(settings);
    pid_t keeper = ::fork();
    if (keeper < 0) {
        throw systemError("cannot start the image keeper", errno);
    }
    if (keeper > 0) {
        return;
    }
    ::setsid();
    int null = ::open("/dev/null", O_RDWR);
    for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) {
        ::dup2(null, fd);
    }
    closeDescriptorsExcept({listener.get()});
    for (int s : {SIGINT, SIGHUP, SIGQUIT, SIGPIPE}) {
        ::signal(s, SIG_IGN);
    }
    serveAsKeeper(settings, std::move(listener));
}

std::string readAll(int fd) {
    std::string text;
    char buffer[1024];
    ssize_t n;
    while ((n = ::read(fd, buffer, sizeof buffer)) > 0) {
        text.append(buffer, static_cast<std::size_t>(n));
    }
    return text;
}

void startKeeper(const KeeperSettings& settings, const IdMappingPlan& ids, const IdMappingTools& tools) {
    log::debug("starting the image keeper in " + settings.paths.directory.string());
    auto channels = makeSandboxChannels();
    pid_t child = cloneSandbox(CLONE_NEWUSER | CLONE_NEWNS, "cannot create the image keeper's user namespace");
    if (child == 0) {
        runSandboxChild(channels, [&](int) {
            becomeKeeper(settings);
            return 0;
        });
    }
    ::close(channels.go[0]);
    ::close(channels.status[1]);
    FileDescriptor go(channels.go[1]);
    FileDescriptor status(channels.status[0]);
    try {
        applyIdMapping(child, ids, tools);
    } catch (...) {
        ::kill(child, SIGKILL);
        waitForExit(child);
        throw;
    }
    if (::write(go.get(), "g", 1) != 1) {
        throw systemError("cannot start the image keeper", errno);
    }
    int code = waitForExit(child);
    auto failure = readAll(status.get());
    if (!failure.empty() || code != 0) {
        throw Error("cannot start the image keeper: " + (failure.empty() ? "exit code " + std::to_string(code) : failure));
    }
}

void checkPeerIsCaller(int connection, const fs::path& socket) {
    ucred peer{};
    socklen_t length = sizeof peer;
    if (::getsockopt(connection, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0 || peer.uid != ::getuid()) {
        throw Error("the image keeper at " + socket.string() + " is not the caller's own process");
    }
}

struct Reply {
    std::string text;
    std::vector<FileDescriptor> descriptors;
};

Reply receiveReply(int connection) {
    Reply reply;
    while (reply.text.find('\n') == std::string::npos) {
        char buffer[4096];
        iovec data{buffer, sizeof buffer};
        alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
        msghdr message{};
        message.msg_iov = &data;
        message.msg_iovlen = 1;
        message.msg_control = control;
        message.msg_controllen = sizeof control;
        auto n = ::recvmsg(connection, &message, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return {};
        }
        for (auto* header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
            if (header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_RIGHTS) {
                auto count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (std::size_t i = 0; i < count; ++i) {
                    int fd;
                    std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof fd);
                    reply.descriptors.emplace_back(fd);
                }
            }
        }
        reply.text.append(buffer, static_cast<std::size_t>(n));
    }
    reply.text.erase(reply.text.find('\n'));
    return reply;
}

}  // namespace

KeptImage acquireKeptImage(const KeeperSettings& settings, const IdMappingPlan& ids, const IdMappingTools& tools,
                           const fs::path& imageFile) {
    const auto& paths = settings.paths;
    auto request = "MOUNT " + imageFile.string() + "\n";
    // A keeper that is ending closes connections it has not served: start anew.
    for (int attempt = 0; attempt < 3; ++attempt) {
        FileDescriptor connection;
        {
            auto lock = lockKeeper(paths);
            auto served = connectIfServed(paths);
            if (!served) {
                startKeeper(settings, ids, tools);
                served = connectToUnixSocket(paths.socket());
            }
            connection = std::move(*served);
        }
        checkPeerIsCaller(connection.get(), paths.socket());
        if (::send(connection.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(request.size())) {
            continue;
        }
        auto reply = receiveReply(connection.get());
        if (reply.text.empty()) {
            continue;
        }
        if (reply.text.rfind("ERR ", 0) == 0) {
            throw Error(reply.text.substr(4));
        }
        bool fresh = reply.text.rfind("OK fresh ", 0) == 0;
        if ((!fresh && reply.text.rfind("OK kept ", 0) != 0) || reply.descriptors.size() != 2) {
            throw Error("unexpected answer from the image keeper at " + paths.socket().string() + ": " + reply.text);
        }
        fs::path mountpoint = reply.text.substr(fresh ? 9 : 8);
        log::debug("image " + imageFile.string() + (fresh ? " mounted" : " kept") + " at " + mountpoint.string());
        return {std::move(connection), std::move(reply.descriptors[0]), std::move(reply.descriptors[1]), mountpoint,
                fresh};
    }
    throw Error("the image keeper at " + paths.socket().string() + " kept ending before it served this container");
}

pid_t cloneSandboxIntoKeeper(const KeptImage& kept, unsigned long flags, ReapedChild& entering) {
    int report[2];
    makePipe(report);
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t middle = ::fork();
    if (middle < 0) {
        int error = errno;
        ::close(report[0]);
        ::close(report[1]);
        throw systemError("cannot start the container sandbox", error);
    }
    if (middle == 0) {
        // setns into a user namespace needs a single-threaded process that
        // shares no filesystem data: this fresh child. CLONE_PARENT makes the
        // sandbox sarus's own child, to wait for and to signal.
        CloneResult result;
        if (::setns(kept.userNamespace.get(), CLONE_NEWUSER) != 0 ||
            ::setns(kept.mountNamespace.get(), CLONE_NEWNS) != 0) {
            result.error = errno;
        } else {
            result.pid = static_cast<pid_t>(::syscall(SYS_clone, (flags & ~CLONE_NEWUSER) | CLONE_PARENT | SIGCHLD,
                                                      nullptr, nullptr, nullptr, 0));
            if (result.pid == 0) {
                ::close(report[0]);
                ::close(report[1]);
                return 0;
            }
            result.error = result.pid < 0 ? errno : 0;
        }
        [[maybe_unused]] auto written = ::write(report[1], &result, sizeof result);
        ::_exit(0);
    }
    ::close(report[1]);
    CloneResult result;
    entering = ReapedChild(middle);
    auto n = ::read(report[0], &result, sizeof result);
    ::close(report[0]);
    if (n != sizeof result || result.pid < 0) {
        throw systemError("cannot enter the namespaces of the kept image mounts", n == sizeof result ? result.error : EIO);
    }
    return result.pid;
}

}  // namespace sarus::userns
