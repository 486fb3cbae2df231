#include "loop_keeper.hpp"

#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "common/log.hpp"
#include "common/name_hash.hpp"
#include "common/process.hpp"
#include "common/unix_socket.hpp"
#include "loop_device.hpp"
#include "runtime/mount_tree.hpp"

#include <cerrno>
#include <fcntl.h>
#include <map>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sarus::suid {

namespace fs = std::filesystem;

namespace {

struct KeptLoopMount {
    FileDescriptor image;  // the caller's open file: whether it still has a name
    struct stat identity;  // of that file when it was mounted
    FileDescriptor mount;  // detached; the loop device goes with its last user (LO_FLAGS_AUTOCLEAR)
};

class LoopSource : public MountSource {
public:
    Served mount(const std::string&, std::vector<FileDescriptor>& received) override {
        if (received.size() != 1) {
            throw Error("a kept mount request carries exactly one image file");
        }
        struct stat image {};
        if (::fstat(received[0].get(), &image) != 0 || !S_ISREG(image.st_mode)) {
            throw Error("a kept mount request must carry a regular image file");
        }
        for (const auto& [key, kept] : mounts_) {
            if (!outdated(key) && sameImageFile(kept.identity, image)) {
                return {key, false};
            }
        }
        KeptLoopMount kept{std::move(received[0]), image, FileDescriptor()};
        {
            LoopDevice loop(kept.image.get());
            kept.mount = newMount("squashfs", "source=" + loop.path() + ",ro",
                                  MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, "the image");
        }
        int key = nextKey_++;
        mounts_.emplace(key, std::move(kept));
        return {key, true};
    }

    std::string replyText(int) override { return "squashfs"; }

    std::vector<int> replyDescriptors(int key) override { return {mounts_.at(key).mount.get()}; }

    // A removed image, and one replaced by a new pull (a rename over it),
    // leaves the open file without a name; one rewritten in place is no
    // longer what the mount shows (its superblock and caches are the old).
    bool outdated(int key) override {
        const auto& kept = mounts_.at(key);
        struct stat st {};
        return ::fstat(kept.image.get(), &st) != 0 || st.st_nlink == 0 || !sameImageFile(st, kept.identity);
    }

    void release(int key) override { mounts_.erase(key); }

private:
    std::map<int, KeptLoopMount> mounts_;
    int nextKey_ = 0;
};

// The listener first, so that the socket serves once this returns; the
// keeper leaves the supervisor's process tree (a batch system that kills a
// job step's tree must not take other steps' mounts) and its session.
void startLoopKeeper(const KeeperPaths& paths, std::chrono::seconds idleTime) {
    log::debug("starting the image keeper in " + paths.directory.string());
    auto listener = listenOnUnixSocket(paths.socket());
    pid_t child = ::fork();
    if (child < 0) {
        throw systemError("cannot start the image keeper", errno);
    }
    if (child == 0) {
        if (::fork() != 0) {
            ::_exit(0);
        }
        detachAsKeeper({listener.get()}, "sarus image keeper " + paths.directory.string());
        KeeperOptions options{paths, idleTime, 0};
        LoopSource source;
        serveKeptMounts(source, std::move(listener), options);
    }
    waitForExit(child);
}

}  // namespace

KeeperPaths loopKeeperPaths(uid_t uid, const fs::path& configFile) {
    return {fs::path("/run/sarus") / (std::to_string(uid) + "-" + nameHash(configFile.string()))};
}

KeptMountClaim claimKeptLoopMount(const KeeperPaths& paths, std::chrono::seconds idleTime, int imageFd,
                                  int callerAliveFd) {
    ensurePrivateDirectory(paths.directory.parent_path(), "it holds the image keepers of sarus");
    auto claim =
        claimKeptMount(paths, "image", {imageFd}, 0, [&] { startLoopKeeper(paths, idleTime); }, callerAliveFd);
    if (claim.descriptors.size() != 1) {
        throw Error("the image keeper at " + paths.socket().string() + " sent no mount");
    }
    return claim;
}

}  // namespace sarus::suid
