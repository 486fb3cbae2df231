#include "image_keeper.hpp"

#include "common/error.hpp"
#include "common/process.hpp"
#include "common/unix_socket.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <map>
#include <poll.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace sarus::userns {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// What makes an image file the same image: a pull or load that replaces it
// writes a new file (a new inode), a removal leaves none.
struct ImageIdentity {
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = 0;
    long modified = 0;
    bool operator==(const ImageIdentity& other) const {
        return device == other.device && inode == other.inode && size == other.size && modified == other.modified;
    }
    static ImageIdentity of(const struct stat& st) {
        return {st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec * 1000000000L + st.st_mtim.tv_nsec};
    }
};

struct KeptMount {
    fs::path image;
    ImageIdentity identity;
    fs::path mountpoint;
    pid_t daemon = -1;
    int users = 0;
    Clock::time_point idleSince = Clock::now();
};

struct Client {
    FileDescriptor connection;
    std::string received;
    int mount = -1;  // key in Keeper::mounts_ once served
};

class Keeper {
public:
    Keeper(const KeeperSettings& settings, FileDescriptor listener)
        : settings_(settings), listener_(std::move(listener)),
          userNamespace_(::open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC)),
          mountNamespace_(::open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC)) {
        struct stat st {};
        ::stat(settings_.paths.socket().c_str(), &st);
        socketInode_ = st.st_ino;
        sigset_t terminate;
        sigemptyset(&terminate);
        sigaddset(&terminate, SIGTERM);
        ::sigprocmask(SIG_BLOCK, &terminate, nullptr);
        signals_ = FileDescriptor(::signalfd(-1, &terminate, SFD_CLOEXEC));
    }

    [[noreturn]] void serve() {
        for (;;) {
            releaseWhatIsDone();
            if (mounts_.empty() && clients_.empty() && Clock::now() - lastActivity_ > std::chrono::seconds(1)) {
                end();
            }
            waitForEvents();
        }
    }

private:
    void waitForEvents() {
        std::vector<pollfd> watched{{listener_.get(), POLLIN, 0}, {signals_.get(), POLLIN, 0}};
        for (const auto& client : clients_) {
            watched.push_back({client.connection.get(), POLLIN, 0});
        }
        int n = ::poll(watched.data(), watched.size(), 500);
        if (n <= 0) {
            return;
        }
        if (watched[1].revents & POLLIN) {
            releaseAll();
            end();
        }
        // Clients first: their indices in watched are those of clients_.
        for (std::size_t i = clients_.size(); i-- > 0;) {
            if (watched[i + 2].revents & (POLLIN | POLLHUP | POLLERR)) {
                readFrom(i);
            }
        }
        if (watched[0].revents & POLLIN) {
            FileDescriptor connection(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (connection.get() >= 0) {
                clients_.push_back({std::move(connection), "", -1});
                lastActivity_ = Clock::now();
            }
        }
    }

    void readFrom(std::size_t index) {
        auto& client = clients_[index];
        char buffer[4096];
        auto n = ::read(client.connection.get(), buffer, sizeof buffer);
        if (n <= 0 || client.mount >= 0) {
            disconnect(index);  // EOF: its container ended; anything after the request is a protocol error
            return;
        }
        client.received.append(buffer, static_cast<std::size_t>(n));
        auto end = client.received.find('\n');
        if (end == std::string::npos) {
            if (client.received.size() > 8192) {
                disconnect(index);
            }
            return;
        }
        auto request = client.received.substr(0, end);
        if (request.rfind("MOUNT ", 0) != 0) {
            disconnect(index);
            return;
        }
        try {
            auto mountsBefore = nextKey_;
            client.mount = mountFor(request.substr(6));
            auto state = nextKey_ != mountsBefore ? "fresh " : "kept ";
            ++mounts_[client.mount].users;
            reply(client.connection.get(), "OK " + std::string(state) + mounts_[client.mount].mountpoint.string() + "\n",
                  true);
        } catch (const std::exception& e) {
            reply(client.connection.get(), std::string("ERR ") + e.what() + "\n", false);
            disconnect(index);
        }
    }

    void disconnect(std::size_t index) {
        auto mount = mounts_.find(clients_[index].mount);
        if (mount != mounts_.end() && --mount->second.users == 0) {
            mount->second.idleSince = Clock::now();
        }
        clients_.erase(clients_.begin() + static_cast<std::ptrdiff_t>(index));
        lastActivity_ = Clock::now();
    }

    int mountFor(const fs::path& image) {
        FileDescriptor file(::open(image.c_str(), O_RDONLY | O_CLOEXEC));
        struct stat st {};
        if (file.get() < 0 || ::fstat(file.get(), &st) != 0) {
            throw systemError("cannot open the image " + image.string(), errno);
        }
        auto identity = ImageIdentity::of(st);
        for (const auto& [key, mount] : mounts_) {
            if (mount.image == image && mount.identity == identity) {
                return key;
            }
        }
        int key = nextKey_++;
        KeptMount mount{image, identity, settings_.paths.mounts() / std::to_string(key)};
        if (::mkdir(mount.mountpoint.c_str(), 0700) != 0) {
            throw systemError("cannot create " + mount.mountpoint.string(), errno);
        }
        auto squashfuse = settings_.squashfuse;
        squashfuse.image = image;
        squashfuse.imageFd = file.get();
        squashfuse.mountpoint = mount.mountpoint;
        try {
            mount.daemon = mountSquashfs(squashfuse);
        } catch (...) {
            ::rmdir(mount.mountpoint.c_str());
            throw;
        }
        mounts_.emplace(key, mount);
        return key;
    }

    void reply(int connection, const std::string& text, bool withNamespaces) {
        iovec data{const_cast<char*>(text.data()), text.size()};
        msghdr message{};
        message.msg_iov = &data;
        message.msg_iovlen = 1;
        alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
        if (withNamespaces) {
            message.msg_control = control;
            message.msg_controllen = sizeof control;
            auto* header = CMSG_FIRSTHDR(&message);
            header->cmsg_level = SOL_SOCKET;
            header->cmsg_type = SCM_RIGHTS;
            header->cmsg_len = CMSG_LEN(2 * sizeof(int));
            int fds[2] = {userNamespace_.get(), mountNamespace_.get()};
            std::memcpy(CMSG_DATA(header), fds, sizeof fds);
        }
        ::sendmsg(connection, &message, MSG_NOSIGNAL);
    }

    // A mount ends when its daemon died, or when no container uses it and
    // its idle time passed or its image file is no longer the one mounted.
    void releaseWhatIsDone() {
        auto now = Clock::now();
        for (auto it = mounts_.begin(); it != mounts_.end();) {
            auto& mount = it->second;
            bool daemonGone = ::waitpid(mount.daemon, nullptr, WNOHANG) == mount.daemon;
            if (daemonGone) {
                mount.daemon = -1;
            }
            bool unused = mount.users == 0;
            if (daemonGone || (unused && (now - mount.idleSince >= settings_.idleTime || replaced(mount)))) {
                release(mount);
                it = mounts_.erase(it);
                lastActivity_ = now;
            } else {
                ++it;
            }
        }
    }

    static bool replaced(const KeptMount& mount) {
        struct stat st {};
        return ::stat(mount.image.c_str(), &st) != 0 || !(ImageIdentity::of(st) == mount.identity);
    }

    void release(const KeptMount& mount) {
        ::umount2(mount.mountpoint.c_str(), MNT_DETACH);
        if (mount.daemon > 0) {
            ::kill(mount.daemon, SIGKILL);
            waitForExit(mount.daemon);
        }
        ::rmdir(mount.mountpoint.c_str());
    }

    void releaseAll() {
        for (const auto& [key, mount] : mounts_) {
            release(mount);
        }
        mounts_.clear();
    }

    // Under the lock that starters hold: the socket (only if it is still
    // ours), then the whole directory. A client that connected before gets
    // EOF and starts anew.
    [[noreturn]] void end() {
        const auto& paths = settings_.paths;
        FileDescriptor lock(::open(paths.lock().c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
        if (lock.get() >= 0) {
            ::flock(lock.get(), LOCK_EX);
        }
        releaseAll();
        ::umount2(paths.mounts().c_str(), MNT_DETACH);
        struct stat st {};
        if (::stat(paths.socket().c_str(), &st) == 0 && st.st_ino == socketInode_) {
            ::unlink(paths.socket().c_str());
            ::rmdir(paths.mounts().c_str());
            ::unlink(paths.lock().c_str());
            ::rmdir(paths.directory.c_str());
        }
        ::_exit(0);
    }

    const KeeperSettings& settings_;
    FileDescriptor listener_;
    FileDescriptor userNamespace_;
    FileDescriptor mountNamespace_;
    FileDescriptor signals_;
    ino_t socketInode_ = 0;
    std::map<int, KeptMount> mounts_;
    std::vector<Client> clients_;
    int nextKey_ = 0;
    Clock::time_point lastActivity_ = Clock::now();
};

// The keeper is a fork of `sarus run`: without a title of its own, ps would
// show a container command that ended long ago. The title overwrites the
// argument strings in place (they are contiguous from argv[0]).
void setProcessTitle(const std::string& title) {
    ::prctl(PR_SET_NAME, "sarus-keeper");
    std::ifstream cmdline("/proc/self/cmdline", std::ios::binary);
    std::string arguments((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
    if (arguments.empty()) {
        return;
    }
    char* area = program_invocation_name;
    std::memset(area, 0, arguments.size());
    std::memcpy(area, title.data(), std::min(title.size(), arguments.size() - 1));
}

}  // namespace

FileDescriptor prepareKeeper(const KeeperSettings& settings) {
    // Unmounts on the host reach the keeper's copy of the host's mounts, so
    // it never keeps a file system of the host busy.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) {
        throw systemError("cannot make the image keeper's mounts follow the host's", errno);
    }
    auto mounts = settings.paths.mounts();
    if (::mkdir(mounts.c_str(), 0700) != 0 && errno != EEXIST) {
        throw systemError("cannot create " + mounts.string(), errno);
    }
    if (::mount("tmpfs", mounts.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") != 0) {
        throw systemError("cannot mount a tmpfs on " + mounts.string(), errno);
    }
    ::unlink(settings.paths.socket().c_str());  // a dead keeper's; starters hold the lock
    return listenOnUnixSocket(settings.paths.socket());
}

void serveAsKeeper(const KeeperSettings& settings, FileDescriptor listener) {
    setProcessTitle("sarus image keeper " + settings.paths.directory.string());
    Keeper(settings, std::move(listener)).serve();
}

}  // namespace sarus::userns
