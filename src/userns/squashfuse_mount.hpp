// The image's squashfs, mounted in the sandbox's user namespace by sarus
// itself on an open /dev/fuse and served by squashfuse_ll, which gets the
// connection as /dev/fd/3 and needs no privilege (nor a mount of its own).
#pragma once

#include <filesystem>
#include <string>
#include <sys/types.h>

namespace sarus::userns {

struct SquashfuseMount {
    std::string daemonPath;  // squashfuse_ll, or squashfuse
    std::filesystem::path image;
    std::filesystem::path mountpoint;
    uid_t uid;  // the daemon's ids inside the namespace (the caller's: it reads the repository)
    gid_t gid;
    // squashfuse_preload.so, loaded into the daemon; empty: without it
    std::filesystem::path preload;
    // When >= 0, the daemon reads this open image file (as /dev/fd/4), so
    // the image is the one its caller checked, whatever the path names now.
    int imageFd = -1;
};

// Where sarus installs squashfuse_preload.so (see squashfuse_preload.c).
std::filesystem::path installedSquashfusePreload();

// Returns the daemon's pid once it serves the mount; the daemon dies with
// the calling process (PR_SET_PDEATHSIG). Throws sarus::Error naming the
// daemon and the image when it fails.
pid_t mountSquashfs(const SquashfuseMount& mount);

}  // namespace sarus::userns
