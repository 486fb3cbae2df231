// Kept image mounts, the part both modes share: a keeper process serves
// mounts of images on a socket, counts the containers that use each one
// (a container's claim is its open connection), releases a mount after an
// idle time without containers or as soon as its image file was removed or
// replaced, and ends with its last mount. How an image is mounted, and what
// a client gets to use it, is the mode's (userns: squashfuse_ll in the
// keeper's namespaces; suid: a loop device and a detached squashfs mount).
//
// Protocol: a client sends "MOUNT <argument>\n", with descriptors as
// SCM_RIGHTS if the mode needs them, and gets "OK fresh|kept <text>\n" plus
// descriptors, or "ERR <message>\n". fresh: mounted for this request, so its
// caches are cold.
#pragma once

#include "common/file_descriptor.hpp"

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <sys/stat.h>
#include <sys/types.h>
#include <vector>

namespace sarus {

struct KeeperPaths {
    std::filesystem::path directory;  // private to the keeper's owner
    std::filesystem::path socket() const { return directory / "keeper.sock"; }
    std::filesystem::path lock() const { return directory / "lock"; }
};

// Whether two stats are of the same image file, unchanged: a pull or load
// that replaces an image writes a new file (a new inode).
bool sameImageFile(const struct stat& a, const struct stat& b);

class MountSource {
public:
    virtual ~MountSource() = default;
    struct Served {
        int key;
        bool fresh;
    };
    // The mount serving a request: an existing one of the same image, or a
    // new one. Throws sarus::Error.
    virtual Served mount(const std::string& argument, std::vector<FileDescriptor>& received) = 0;
    // What the client gets with "OK fresh|kept ".
    virtual std::string replyText(int key) = 0;
    virtual std::vector<int> replyDescriptors(int key) = 0;
    // Whether the mount can serve no more containers (its image file is
    // gone or replaced, its helper died).
    virtual bool outdated(int key) = 0;
    virtual void release(int key) = 0;
    // Called once, after the last release, before the keeper's directory goes.
    virtual void finish() {}
};

struct KeeperOptions {
    KeeperPaths paths;
    std::chrono::seconds idleTime{60};
    uid_t clientUid = 0;  // in the keeper's user namespace; other users' connections are closed unanswered
    // Idle mounts beyond this many go at once, the one idle longest first:
    // each holds a loop device (suid) or a squashfuse_ll (userns), which a
    // user touching many images would otherwise pile up for idleTime.
    std::size_t idleMountLimit = 8;
};

// Serves until the last mount is released and no client is connected,
// then removes its socket, lock and directory and exits; never returns.
// SIGTERM releases everything at once.
[[noreturn]] void serveKeptMounts(MountSource& source, FileDescriptor listener, const KeeperOptions& options);

// Detaches the calling child process from its caller (a new session,
// /dev/null as stdio, only keep left open) and names it in ps.
void detachAsKeeper(const std::vector<int>& keep, const std::string& title);

struct KeptMountClaim {
    FileDescriptor connection;  // held while the container runs
    bool fresh = false;
    std::string text;
    std::vector<FileDescriptor> descriptors;
};

// Removes the directories of the caller's keepers in parent named
// prefix...suffix that no keeper serves any more (Slurm SIGKILLs a step's
// keeper with the step, which cannot remove its own): their socket, the
// empty directories `entries` in them, their lock. One that is locked or
// answers is left alone.
void removeDeadKeeperDirectories(const std::filesystem::path& parent, const std::string& prefix,
                                 const std::string& suffix, const std::vector<std::string>& entries);

// Connects to the keeper of paths (calling startKeeper under the lock when
// none listens, which must return once the socket serves), sends the
// request and returns the keeper's answer. The keeper must run as
// keeperUid. Throws sarus::Error with the keeper's message, and when the
// keeper has not answered within 120 s or callerAliveFd (when given) turns
// readable: the caller is gone.
KeptMountClaim claimKeptMount(const KeeperPaths& paths, const std::string& argument, const std::vector<int>& sendFds,
                              uid_t keeperUid, const std::function<void()>& startKeeper, int callerAliveFd = -1);

}  // namespace sarus
