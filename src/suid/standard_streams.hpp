// The standard streams the runtime gets in suid mode. crun and runc give the
// container's user its standard streams: they fchown fds 0-2 to
// process.user. Run as root with the caller's own streams, that handed the
// caller whatever was open there: `sarus run IMAGE true < /etc/passwd` made
// /etc/passwd the caller's. The runtime now gets a stream of the caller's
// only where that chown changes nothing (the caller's file with the
// caller's group) or reaches only a pipe or socket inode; in place of
// anything else it gets a pipe, and a process with the caller's ids copies
// between that pipe and the caller's stream.
#pragma once

#include "common/file_descriptor.hpp"

#include <array>
#include <sys/types.h>
#include <vector>

namespace sarus::suid {

// Whether a runtime may chown fd to uid:gid without giving anything away.
bool runtimeMayChown(int fd, uid_t uid, gid_t gid);

class StandardStreamRelay {
public:
    // With a terminal (-t) the container's input comes from the sandbox's
    // terminal relay: nothing else may read the caller's terminal, and the
    // runtime gets no input.
    StandardStreamRelay(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, bool terminal);
    ~StandardStreamRelay();
    StandardStreamRelay(const StandardStreamRelay&) = delete;
    StandardStreamRelay& operator=(const StandardStreamRelay&) = delete;

    // What the runtime gets as stream 0, 1 or 2 (SpawnOptions): -1 for the
    // caller's own.
    int runtimeFd(int stream) const { return runtimeEnds_[stream].get(); }

    // Once the runtime has exited: the output is copied to its end, the
    // copy of the input stops, and input the container left unread goes
    // back to a seekable source (a file), as if crun had read it itself.
    void finish();

private:
    std::array<FileDescriptor, 3> runtimeEnds_;
    FileDescriptor done_;  // closed once the container is done
    pid_t relay_ = -1;
};

}  // namespace sarus::suid
