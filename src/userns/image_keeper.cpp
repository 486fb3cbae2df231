#include "image_keeper.hpp"

#include "common/error.hpp"
#include "common/process.hpp"
#include "common/unix_socket.hpp"

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <map>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace sarus::userns {

namespace fs = std::filesystem;

namespace {

struct KeptMount {
    fs::path image;
    struct stat identity {};  // of the image file when it was mounted
    fs::path mountpoint;
    pid_t daemon = -1;
};

class SquashfuseSource : public MountSource {
public:
    explicit SquashfuseSource(const KeeperSettings& settings)
        : settings_(settings), userNamespace_(::open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC)),
          mountNamespace_(::open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC)) {}

    Served mount(const std::string& argument, std::vector<FileDescriptor>&) override {
        fs::path image = argument;
        FileDescriptor file(::open(image.c_str(), O_RDONLY | O_CLOEXEC));
        struct stat st {};
        if (file.get() < 0 || ::fstat(file.get(), &st) != 0) {
            throw systemError("cannot open the image " + image.string(), errno);
        }
        // A mount whose squashfuse_ll died (OOM killer) answers nothing: the
        // containers that hold it keep it until they end; new ones get a new one.
        for (auto& [key, mount] : mounts_) {
            if (mount.image == image && sameImageFile(mount.identity, st) && daemonAlive(mount)) {
                return {key, false};
            }
        }
        int key = nextKey_++;
        KeptMount mount{image, st, settings_.mountsDir() / std::to_string(key)};
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
        return {key, true};
    }

    std::string replyText(int key) override { return mounts_.at(key).mountpoint.string(); }

    std::vector<int> replyDescriptors(int) override { return {userNamespace_.get(), mountNamespace_.get()}; }

    bool outdated(int key) override {
        auto& mount = mounts_.at(key);
        struct stat st {};
        return !daemonAlive(mount) || ::stat(mount.image.c_str(), &st) != 0 || !sameImageFile(st, mount.identity);
    }

    void release(int key) override {
        auto& mount = mounts_.at(key);
        ::umount2(mount.mountpoint.c_str(), MNT_DETACH);
        if (mount.daemon > 0) {
            ::kill(mount.daemon, SIGKILL);
            waitForExit(mount.daemon);
        }
        ::rmdir(mount.mountpoint.c_str());
        mounts_.erase(key);
    }

    void finish() override {
        ::umount2(settings_.mountsDir().c_str(), MNT_DETACH);
        ::rmdir(settings_.mountsDir().c_str());
    }

private:
    static bool daemonAlive(KeptMount& mount) {
        if (mount.daemon > 0 && ::waitpid(mount.daemon, nullptr, WNOHANG) == mount.daemon) {
            mount.daemon = -1;
        }
        return mount.daemon > 0;
    }

    const KeeperSettings& settings_;
    FileDescriptor userNamespace_;
    FileDescriptor mountNamespace_;
    std::map<int, KeptMount> mounts_;
    int nextKey_ = 0;
};

}  // namespace

FileDescriptor prepareKeeper(const KeeperSettings& settings) {
    // Unmounts on the host reach the keeper's copy of the host's mounts, so
    // it never keeps a file system of the host busy.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) {
        throw systemError("cannot make the image keeper's mounts follow the host's", errno);
    }
    auto mounts = settings.mountsDir();
    if (::mkdir(mounts.c_str(), 0700) != 0 && errno != EEXIST) {
        throw systemError("cannot create " + mounts.string(), errno);
    }
    if (::mount("tmpfs", mounts.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") != 0) {
        throw systemError("cannot mount a tmpfs on " + mounts.string(), errno);
    }
    return listenOnUnixSocket(settings.options.paths.socket());
}

void serveAsKeeper(const KeeperSettings& settings, FileDescriptor listener) {
    SquashfuseSource source(settings);
    serveKeptMounts(source, std::move(listener), settings.options);
}

}  // namespace sarus::userns
