#include "runtime/mount_keeper.hpp"

#include "common/error.hpp"
#include "common/file_utils.hpp"
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
#include <optional>
#include <poll.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sarus {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// Answers and requests are one line; a failed send shows as the peer's
// end of the connection, which both sides handle.
void sendMessage(int connection, const std::string& text, const std::vector<int>& fds) {
    sendWithDescriptors(connection, text.data(), text.size(), fds);
}

enum class Received { some, nothingYet, end };

// Appends what one recvmsg brings to text and descriptors.
Received receiveSome(int connection, std::string& text, std::vector<FileDescriptor>& descriptors) {
    char buffer[4096];
    ssize_t n = receiveWithDescriptors(connection, buffer, sizeof buffer, descriptors, MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN) {
        return Received::nothingYet;
    }
    if (n <= 0) {
        return Received::end;
    }
    text.append(buffer, static_cast<std::size_t>(n));
    return Received::some;
}

struct Client {
    FileDescriptor connection;
    std::string received;
    std::vector<FileDescriptor> descriptors;
    int mount = -1;  // the key of the mount it uses, once served
};

struct MountUse {
    int users = 0;
    Clock::time_point idleSince = Clock::now();
};

class Keeper {
public:
    Keeper(MountSource& source, FileDescriptor listener, const KeeperOptions& options)
        : source_(source), listener_(std::move(listener)), options_(options) {
        struct stat st {};
        ::stat(options_.paths.socket().c_str(), &st);
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
            if (uses_.empty() && clients_.empty() && Clock::now() - lastActivity_ > std::chrono::seconds(1)) {
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
        if (::poll(watched.data(), watched.size(), 500) <= 0) {
            return;
        }
        if (watched[1].revents & POLLIN) {
            end();
        }
        for (std::size_t i = clients_.size(); i-- > 0;) {
            if (watched[i + 2].revents & (POLLIN | POLLHUP | POLLERR)) {
                readFrom(i);
            }
        }
        if (watched[0].revents & POLLIN) {
            accept();
        }
    }

    void accept() {
        FileDescriptor connection(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        auto peer = connection.get() < 0 ? std::nullopt : peerCredentials(connection.get());
        if (!peer || peer->uid != options_.clientUid) {
            return;
        }
        clients_.push_back({std::move(connection), "", {}, -1});
        lastActivity_ = Clock::now();
    }

    void readFrom(std::size_t index) {
        auto& client = clients_[index];
        // After its request, a client only closes: anything else ends its claim too.
        if (client.mount >= 0 ||
            receiveSome(client.connection.get(), client.received, client.descriptors) == Received::end) {
            disconnect(index);
            return;
        }
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
            auto served = source_.mount(request.substr(6), client.descriptors);
            client.descriptors.clear();
            client.mount = served.key;
            ++uses_[served.key].users;
            sendMessage(client.connection.get(),
                        std::string("OK ") + (served.fresh ? "fresh " : "kept ") + source_.replyText(served.key) + "\n",
                        source_.replyDescriptors(served.key));
        } catch (const std::exception& e) {
            sendMessage(client.connection.get(), std::string("ERR ") + e.what() + "\n", {});
            disconnect(index);
        }
    }

    void disconnect(std::size_t index) {
        auto use = uses_.find(clients_[index].mount);
        if (use != uses_.end() && --use->second.users == 0) {
            use->second.idleSince = Clock::now();
        }
        clients_.erase(clients_.begin() + static_cast<std::ptrdiff_t>(index));
        lastActivity_ = Clock::now();
    }

    void releaseWhatIsDone() {
        auto now = Clock::now();
        for (auto it = uses_.begin(); it != uses_.end();) {
            bool unused = it->second.users == 0;
            if (unused && (now - it->second.idleSince >= options_.idleTime || source_.outdated(it->first))) {
                it = release(it);
            } else {
                ++it;
            }
        }
        releaseIdleBeyondTheLimit();
    }

    void releaseIdleBeyondTheLimit() {
        std::vector<std::map<int, MountUse>::iterator> idle;
        for (auto it = uses_.begin(); it != uses_.end(); ++it) {
            if (it->second.users == 0) {
                idle.push_back(it);
            }
        }
        if (idle.size() <= options_.idleMountLimit) {
            return;
        }
        std::sort(idle.begin(), idle.end(),
                  [](const auto& a, const auto& b) { return a->second.idleSince < b->second.idleSince; });
        for (std::size_t i = 0; i < idle.size() - options_.idleMountLimit; ++i) {
            release(idle[i]);
        }
    }

    std::map<int, MountUse>::iterator release(std::map<int, MountUse>::iterator use) {
        source_.release(use->first);
        lastActivity_ = Clock::now();
        return uses_.erase(use);
    }

    // Under the lock that starters hold: everything released, then the
    // socket (if it still is ours: a new keeper may serve already) and the
    // directory. A client that connected meanwhile gets EOF and starts anew.
    [[noreturn]] void end() {
        const auto& paths = options_.paths;
        FileDescriptor lock(::open(paths.lock().c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
        if (lock.get() >= 0) {
            ::flock(lock.get(), LOCK_EX);
        }
        for (const auto& [key, use] : uses_) {
            source_.release(key);
        }
        source_.finish();
        struct stat st {};
        if (::stat(paths.socket().c_str(), &st) == 0 && st.st_ino == socketInode_) {
            ::unlink(paths.socket().c_str());
            ::unlink(paths.lock().c_str());
            ::rmdir(paths.directory.c_str());
        }
        ::_exit(0);
    }

    MountSource& source_;
    FileDescriptor listener_;
    const KeeperOptions& options_;
    FileDescriptor signals_;
    ino_t socketInode_ = 0;
    std::map<int, MountUse> uses_;
    std::vector<Client> clients_;
    Clock::time_point lastActivity_ = Clock::now();
};

// How long a claim waits for the keeper, and for whom: a keeper stuck on
// one image (a stalled parallel file system) must not hang every start, and
// a root supervisor whose caller is gone (kill -9) must not wait on.
class ClaimWait {
public:
    ClaimWait(const KeeperPaths& paths, int callerAliveFd)
        : paths_(paths), callerAliveFd_(callerAliveFd), deadline_(Clock::now() + std::chrono::seconds(120)) {}

    // Milliseconds to wait at most now; throws once the caller is gone or
    // the time is up.
    int remainingMs() const {
        if (callerAliveFd_ >= 0) {
            struct pollfd caller {callerAliveFd_, POLLIN, 0};
            if (::poll(&caller, 1, 0) > 0) {
                throw Error("the caller ended while the image keeper at " + paths_.socket().string() + " was busy");
            }
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
        if (left <= 0) {
            throw Error("the image keeper at " + paths_.socket().string() + " did not answer within 120 s");
        }
        return static_cast<int>(std::min<long long>(left, 200));
    }
    int callerAliveFd() const { return callerAliveFd_; }

private:
    const KeeperPaths& paths_;
    int callerAliveFd_;
    Clock::time_point deadline_;
};

// A keeper removes its directory, lock file included, under the lock when
// it ends: whoever locked a file that is no longer the one there starts over.
// So may a keeper of the caller's have removed the directory between its
// check and the open, and another user have made the name again: under the
// lock, which the name then keeps (only its owner can remove it from a
// sticky directory, and its keeper only under the lock), the directory must
// still be the caller's own, and the lock the caller's file.
FileDescriptor lockKeeper(const KeeperPaths& paths, const ClaimWait& wait) {
    for (;;) {
        ensurePrivateDirectory(paths.directory, "it holds kept image mounts");
        FileDescriptor lock(::open(paths.lock().c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
        if (lock.get() < 0 && errno == ENOENT) {
            continue;
        }
        if (lock.get() < 0) {
            throw systemError("cannot lock " + paths.lock().string(), errno);
        }
        while (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
            if (errno != EWOULDBLOCK && errno != EINTR) {
                throw systemError("cannot lock " + paths.lock().string(), errno);
            }
            ::poll(nullptr, 0, std::min(wait.remainingMs(), 10));
        }
        struct stat locked {}, current {};
        ::fstat(lock.get(), &locked);
        if (::lstat(paths.lock().c_str(), &current) == 0 && current.st_ino == locked.st_ino &&
            current.st_dev == locked.st_dev && locked.st_uid == ::getuid() &&
            isPrivateDirectoryOfCaller(paths.directory)) {
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

void checkPeer(int connection, uid_t expected, const fs::path& socket) {
    auto peer = peerCredentials(connection);
    if (!peer || peer->uid != expected) {
        throw Error("the image keeper at " + socket.string() + " runs as uid " +
                    (peer ? std::to_string(peer->uid) : "?") + ", not " + std::to_string(expected));
    }
}

std::string receiveLine(int connection, std::vector<FileDescriptor>& descriptors, const ClaimWait& wait) {
    std::string text;
    while (text.find('\n') == std::string::npos) {
        struct pollfd readable {connection, POLLIN, 0};
        int ready = ::poll(&readable, 1, wait.remainingMs());
        if (ready < 0 && errno != EINTR) {
            return "";
        }
        if (ready <= 0) {
            continue;
        }
        if (receiveSome(connection, text, descriptors) == Received::end) {
            return "";
        }
    }
    return text.substr(0, text.find('\n'));
}

}  // namespace

bool sameImageFile(const struct stat& a, const struct stat& b) {
    // ctime too: a writer can set the modification time back, not that
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size &&
           a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec &&
           a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec;
}

void serveKeptMounts(MountSource& source, FileDescriptor listener, const KeeperOptions& options) {
    Keeper(source, std::move(listener), options).serve();
}

void detachAsKeeper(const std::vector<int>& keep, const std::string& title) {
    detachFromCaller(keep);
    for (int s : {SIGINT, SIGHUP, SIGQUIT, SIGPIPE}) {
        ::signal(s, SIG_IGN);
    }
    // A fork of `sarus run`: without a title of its own, ps would show a
    // container command that ended long ago. The title overwrites the
    // argument strings in place (they are contiguous from argv[0]).
    ::prctl(PR_SET_NAME, "sarus-keeper");
    std::ifstream cmdline("/proc/self/cmdline", std::ios::binary);
    std::string arguments((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
    if (!arguments.empty()) {
        std::memset(program_invocation_name, 0, arguments.size());
        std::memcpy(program_invocation_name, title.data(), std::min(title.size(), arguments.size() - 1));
    }
}

namespace {

// prefix, then nothing or "-..." (a Slurm step's scope), then suffix: the
// prefix of uid 100 does not take the names of uid 1001.
bool isKeeperName(const std::string& name, const std::string& prefix, const std::string& suffix) {
    if (name.size() < prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
        return false;
    }
    return name.size() == prefix.size() + suffix.size() || name[prefix.size()] == '-';
}

}  // namespace

void removeDeadKeeperDirectories(const fs::path& parent, const std::string& prefix, const std::string& suffix,
                                 const std::vector<std::string>& entries) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(parent, ec)) {
        auto name = entry.path().filename().string();
        if (!isKeeperName(name, prefix, suffix) || !isPrivateDirectoryOfCaller(entry.path())) {
            continue;
        }
        KeeperPaths paths{entry.path()};
        FileDescriptor lock(::open(paths.lock().c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
        // Busy (starting, serving a claim, ending) or alive: not ours to touch.
        if (lock.get() < 0 || ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0 || connectIfServed(paths)) {
            continue;
        }
        ::unlink(paths.socket().c_str());
        for (const auto& inside : entries) {
            ::rmdir((paths.directory / inside).c_str());
        }
        ::unlink(paths.lock().c_str());
        ::rmdir(paths.directory.c_str());
    }
}

KeptMountClaim claimKeptMount(const KeeperPaths& paths, const std::string& argument, const std::vector<int>& sendFds,
                              uid_t keeperUid, const std::function<void()>& startKeeper, int callerAliveFd) {
    auto request = "MOUNT " + argument + "\n";
    ClaimWait wait(paths, callerAliveFd);
    // A keeper that is ending closes connections it has not served: start anew.
    for (int attempt = 0; attempt < 3; ++attempt) {
        FileDescriptor connection;
        {
            auto lock = lockKeeper(paths, wait);
            auto served = connectIfServed(paths);
            if (!served) {
                ::unlink(paths.socket().c_str());  // a dead keeper's
                startKeeper();
                served = connectToUnixSocket(paths.socket());
            }
            connection = std::move(*served);
        }
        checkPeer(connection.get(), keeperUid, paths.socket());
        sendMessage(connection.get(), request, sendFds);
        KeptMountClaim claim;
        auto reply = receiveLine(connection.get(), claim.descriptors, wait);
        if (reply.empty()) {
            continue;
        }
        if (reply.rfind("ERR ", 0) == 0) {
            throw Error(reply.substr(4));
        }
        claim.fresh = reply.rfind("OK fresh ", 0) == 0;
        if (!claim.fresh && reply.rfind("OK kept ", 0) != 0) {
            throw Error("unexpected answer from the image keeper at " + paths.socket().string() + ": " + reply);
        }
        claim.text = reply.substr(claim.fresh ? 9 : 8);
        claim.connection = std::move(connection);
        return claim;
    }
    throw Error("the image keeper at " + paths.socket().string() + " kept ending before it served this container");
}

}  // namespace sarus
