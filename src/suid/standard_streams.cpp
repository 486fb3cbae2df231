#include "standard_streams.hpp"

#include "common/error.hpp"
#include "common/process.hpp"
#include "runtime/mount_tree.hpp"

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <grp.h>
#include <linux/magic.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

namespace sarus::suid {

namespace {

// One stream copied from one descriptor to another, through a buffer, so
// that a full pipe on one stream never stops the others.
struct Flow {
    int from = -1;
    int to = -1;
    char buffer[65536];
    ssize_t length = 0;
    ssize_t offset = 0;
    bool open() const { return from >= 0 || length > offset; }
};

void closeFlow(Flow& flow) {
    if (flow.from >= 0) {
        ::close(flow.from);
    }
    if (flow.to >= 0) {
        ::close(flow.to);
    }
    flow.from = flow.to = -1;
    flow.length = flow.offset = 0;
}

void readInto(Flow& flow, bool keepSourceOpen) {
    ssize_t n = ::read(flow.from, flow.buffer, sizeof flow.buffer);
    if (n > 0) {
        flow.length = n;
        flow.offset = 0;
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        if (!keepSourceOpen) {
            ::close(flow.from);
        }
        flow.from = -1;
        if (flow.length <= flow.offset) {
            closeFlow(flow);
        }
    }
}

void writeFrom(Flow& flow) {
    ssize_t n = ::write(flow.to, flow.buffer + flow.offset, static_cast<size_t>(flow.length - flow.offset));
    if (n > 0) {
        flow.offset += n;
        if (flow.offset == flow.length) {
            flow.length = flow.offset = 0;
            if (flow.from < 0) {
                closeFlow(flow);
            }
        }
    } else if (errno != EINTR && errno != EAGAIN) {
        closeFlow(flow);  // the reader is gone
    }
}

// The caller's input the container did not read goes back where it was
// read from: `while read line; do sarus run ...; done < list` loses no line
// to the relay's read-ahead, as with input crun gets itself. Only a
// seekable input (a file) can take it back.
void giveBackUnreadInput(int input, const Flow& flow, int pipeReadEnd) {
    int inPipe = 0;
    if (::ioctl(pipeReadEnd, FIONREAD, &inPipe) != 0) {
        inPipe = 0;
    }
    off_t unread = static_cast<off_t>(flow.length - flow.offset) + inPipe;
    if (unread > 0) {
        ::lseek(input, -unread, SEEK_CUR);
    }
}

// Copies until the container is done (the sandbox closes `done`) and its
// output streams have ended. The input pipe's read end stays open here too,
// to tell how much of the input the container left unread. System calls
// only: the sandbox may have threads.
[[noreturn]] void relay(Flow (&flows)[3], int done, int input, int pipeReadEnd) {
    for (;;) {
        if (done < 0 && !flows[1].open() && !flows[2].open()) {
            ::_exit(0);
        }
        pollfd watched[4];
        for (int i = 0; i < 3; ++i) {
            Flow& flow = flows[i];
            bool pending = flow.length > flow.offset;
            watched[i] = {!flow.open() ? -1 : pending ? flow.to : flow.from,
                          static_cast<short>(pending ? POLLOUT : POLLIN), 0};
        }
        watched[3] = {done, POLLIN, 0};
        if (::poll(watched, 4, -1) < 0 && errno != EINTR) {
            ::_exit(1);
        }
        if (done >= 0 && watched[3].revents != 0) {
            if (input >= 0) {
                giveBackUnreadInput(input, flows[0], pipeReadEnd);
            }
            closeFlow(flows[0]);
            done = -1;
            continue;
        }
        for (int i = 0; i < 3; ++i) {
            if (watched[i].fd < 0 || watched[i].revents == 0) {
                continue;
            }
            if (flows[i].length > flows[i].offset) {
                writeFrom(flows[i]);
            } else {
                readInto(flows[i], i == 0);
            }
        }
    }
}

bool isNullDevice(int fd) {
    struct stat st {};
    return ::fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3);
}

// Output to /dev/null (a benchmark's, a batch script's) needs no copy: a
// null node of our own, on a tmpfs mounted nowhere, is as good, and the
// runtime may chown it.
FileDescriptor privateNullDevice() {
    auto tmpfs = newTmpfs("mode=700", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, "a private /dev/null");
    if (::mknodat(tmpfs.get(), "null", S_IFCHR | 0666, makedev(1, 3)) != 0) {
        throw systemError("cannot make a private /dev/null", errno);
    }
    FileDescriptor null(::openat(tmpfs.get(), "null", O_WRONLY | O_NOFOLLOW | O_CLOEXEC));
    if (null.get() < 0) {
        throw systemError("cannot open a private /dev/null", errno);
    }
    return null;
}

}  // namespace

bool runtimeMayChown(int fd, uid_t uid, gid_t gid) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        return errno == EBADF;  // closed: nothing to give away; anything else is not looked at
    }
    if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) {
        // an anonymous pipe's or socket's inode is nobody's file (a named
        // FIFO is one)
        struct statfs fs {};
        if (::fstatfs(fd, &fs) == 0 && (fs.f_type == PIPEFS_MAGIC || fs.f_type == SOCKFS_MAGIC)) {
            return true;
        }
    }
    return st.st_uid == uid && st.st_gid == gid;
}

StandardStreamRelay::StandardStreamRelay(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, bool terminal) {
    static Flow flows[3];  // the relay's: a child of a process that may have threads allocates nothing
    bool any = false;
    for (int stream = 0; stream < 3; ++stream) {
        flows[stream] = Flow();
        if (runtimeMayChown(stream, uid, gid)) {
            continue;
        }
        bool input = stream == 0;
        if (!input && isNullDevice(stream)) {
            runtimeEnds_[stream] = privateNullDevice();
            continue;
        }
        int ends[2];
        makePipe(ends);
        if (input && (terminal || isNullDevice(stream))) {
            // what reading /dev/null gives, without a relay
            runtimeEnds_[stream] = FileDescriptor(ends[0]);
            ::close(ends[1]);
            continue;
        }
        runtimeEnds_[stream] = FileDescriptor(input ? ends[0] : ends[1]);
        flows[stream].from = input ? stream : ends[0];
        flows[stream].to = input ? ends[1] : stream;
        if (input) {
            ::fcntl(ends[1], F_SETFL, O_NONBLOCK);  // a container that reads no input holds up no output
        }
        any = true;
    }
    if (!any) {
        return;
    }
    int input = flows[0].from;
    int pipeReadEnd = input >= 0 ? ::fcntl(runtimeEnds_[0].get(), F_DUPFD_CLOEXEC, 3) : -1;
    int done[2];
    makePipe(done);
    std::vector<int> relayed = {done[0], pipeReadEnd};
    for (const auto& flow : flows) {
        for (int fd : {flow.from, flow.to}) {
            if (fd >= 0) {
                relayed.push_back(fd);
            }
        }
    }
    pid_t sandbox = ::getpid();
    relay_ = ::fork();
    if (relay_ < 0) {
        int err = errno;
        ::close(done[0]);
        ::close(done[1]);
        throw systemError("cannot start the relay of the standard streams", err);
    }
    if (relay_ == 0) {
        // nothing of root's stays open once this process is the caller's
        closeDescriptorsExcept(relayed.data(), relayed.size());
        ::signal(SIGPIPE, SIG_IGN);
        // not traceable by the caller, whatever fs.suid_dumpable says
        if (!becomeUntraceably(uid, gid, groups.data(), groups.size())) {
            ::_exit(1);
        }
        // after the identity change, which clears the parent-death signal
        if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != sandbox) {
            ::_exit(1);
        }
        relay(flows, done[0], input, pipeReadEnd);
    }
    ::close(done[0]);
    done_ = FileDescriptor(done[1]);
    if (pipeReadEnd >= 0) {
        ::close(pipeReadEnd);
    }
    for (int stream = 0; stream < 3; ++stream) {
        if (runtimeEnds_[stream].get() >= 0) {
            ::close(stream == 0 ? flows[stream].to : flows[stream].from);
        }
    }
}

void StandardStreamRelay::finish() {
    for (auto& end : runtimeEnds_) {
        end.reset();
    }
    done_.reset();  // the container is done: the relay gives back unread input
    if (relay_ <= 0) {
        return;
    }
    ::waitpid(relay_, nullptr, 0);
    relay_ = -1;
}

StandardStreamRelay::~StandardStreamRelay() { finish(); }

}  // namespace sarus::suid
