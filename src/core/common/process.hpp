// Child processes for helpers (FUSE daemons, the OCI runtime). Every helper
// gets PR_SET_PDEATHSIG so that it dies with its parent even when the parent
// is killed with SIGKILL: nothing outlives a sarus run.
#pragma once

#include "common/file_descriptor.hpp"
#include "common/forwarded_signals.h"

#include <csignal>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace sarus {

struct SpawnOptions {
    std::optional<uid_t> uid;                // switch ids before exec
    std::optional<gid_t> gid;
    std::vector<int> ambientCapabilities;    // kept across exec for a non-root uid
    std::optional<std::vector<std::string>> env;  // default: inherit
    int stdinFd = -1;                        // -1: inherit
    int stdoutFd = -1;
    int stderrFd = -1;
    std::vector<int> keepFds;                // other fds that stay open
    std::vector<int> passFds;                // become 3, 4, ... in the child (at most maxPassedDescriptors)
    // When >= 0, the program executed (execveat): argv[0] names it only. A
    // descriptor opened earlier cannot be redirected by a later mount.
    int executableFd = -1;
    // Runs in the child before the ids change and exec (e.g. to set up its
    // namespaces): async-signal-safe work only. Returns nullptr, or what it
    // could not do (with errno set), which ends the child.
    std::function<const char*()> prepareChild;
};

constexpr std::size_t maxPassedDescriptors = 16;

// fork + exec; throws sarus::Error if the fork fails. Exec failures make the
// child exit with 127 after printing why.
pid_t spawn(const std::vector<std::string>& argv, const SpawnOptions& options = {});

// Waits for pid; returns its exit code, or 128+N if a signal N killed it.
int waitForExit(pid_t pid);

// A child process that is waited for when this object dies, so that no
// zombie outlives its owner.
class ReapedChild {
public:
    explicit ReapedChild(pid_t pid = -1) : pid_(pid) {}
    ~ReapedChild();
    ReapedChild(ReapedChild&& other) noexcept : pid_(other.pid_) { other.pid_ = -1; }
    ReapedChild& operator=(ReapedChild&& other) noexcept;
    ReapedChild(const ReapedChild&) = delete;
    ReapedChild& operator=(const ReapedChild&) = delete;

private:
    pid_t pid_;
};

// For a process that outlives its caller (a reaper, an image keeper): a
// session of its own, / as working directory, umask 022, /dev/null as
// stdin, stdout and stderr, and every other descriptor closed but those
// listed.
void detachFromCaller(const std::vector<int>& keep);

// Takes uid, gid and the supplementary groups for good and becomes
// untraceable (PR_SET_DUMPABLE 0), with no moment in between when the user
// could trace it: a change of effective ids makes a process dumpable as
// fs.suid_dumpable says (1: by its user), so root stays the saved uid,
// which no user may trace, until the process is not dumpable. For a process
// root forks to act as the caller. Allocation-free; false on failure.
bool becomeUntraceably(uid_t uid, gid_t gid, const gid_t* groups, std::size_t groupCount);

// Closes every descriptor >= 3 except those listed. The first form
// allocates nothing (it sorts keep in place): for a child between fork and
// exec, or one that never execs.
void closeDescriptorsExcept(int* keep, std::size_t count);
void closeDescriptorsExcept(std::vector<int> keep);

// What a container gets of the signals sarus receives (forwarded_signals.h).
inline constexpr int forwardedSignals[] = {SARUS_ENDING_SIGNALS, SARUS_OTHER_FORWARDED_SIGNALS};
// The same as a set, for sigprocmask and signalfd.
sigset_t forwardedSignalSet();

// Forwards forwardedSignals to the process pid names now (through a pidfd:
// after it is reaped they reach nobody, whoever gets its pid).
void forwardSignalsTo(pid_t pid);

// Runs argv to completion; its stdout is returned, its stderr inherited.
struct CommandOutput {
    int exitCode;  // as waitForExit
    std::string output;
};
CommandOutput runCapturingOutput(const std::vector<std::string>& argv, SpawnOptions options = {});

// This process's environment, as NAME=VALUE entries.
std::vector<std::string> currentEnvironment();

// NAME=VALUE entries by name: an entry without '=' is a name with an empty
// value, and the first entry of a name counts.
std::map<std::string, std::string> environmentMap(const std::vector<std::string>& env);

// The value of name in a map of settings, or fallback when it has none.
std::string valueOr(const std::map<std::string, std::string>& settings, const std::string& name,
                    const std::string& fallback = "");

// The first DIR/name of the ':'-separated pathVariable that accept() turns
// into a non-empty path (a name with a '/' is returned as it is).
std::string searchPath(const std::string& name, const std::string& pathVariable,
                       const std::function<std::string(const std::string&)>& accept);

// The first executable NAME in the ':'-separated directories of pathVariable
// (a name with a '/' is returned as it is); "" when there is none.
std::string findInPath(const std::string& name, const std::string& pathVariable);

// Creates a pipe with O_CLOEXEC on both ends.
void makePipe(int fds[2]);

// Everything readable from fd until EOF (every writer of a pipe gone); a
// read error ends it as EOF does.
std::string readToEnd(int fd);

// The text of /proc/PID/NAME, "" (or what was read before it ended) when
// the process is gone. An ifstream would throw here: libstdc++ turns the
// ESRCH of a process that ends mid-read into an exception.
std::string readProcessFile(pid_t pid, const std::string& name);

// From /proc/PID/stat: a process's name (comm), its parent, and its start
// time in clock ticks after boot, which with the pid names it for good.
struct ProcessStatus {
    std::string name;
    pid_t parent = 0;
    std::string startTime;
};
std::optional<ProcessStatus> readProcessStatus(pid_t pid);
// Its start time alone, "" when pid is gone.
std::string processStartTime(pid_t pid);
// pid is alive (or a zombie) and parent's child.
bool isChildOf(pid_t pid, pid_t parent);

// This node's name (gethostname), "" when it cannot be read: what names a
// node's own files and processes in a directory nodes may share.
std::string hostName();

// The children of pid's main thread (/proc/PID/task/PID/children), oldest
// first; none when pid is gone.
std::vector<pid_t> childrenOf(pid_t pid);

// A pidfd of pid (-1 when it is gone), and a signal through it: the pidfd
// keeps naming that process after it ends, whatever process gets its pid.
FileDescriptor pinProcess(pid_t pid);
bool signalPinned(const FileDescriptor& pinned, int sig);

// Sends sig to pid only if stillTheTarget(pid) holds once a pidfd holds the
// process: a pid read from /proc or cgroup.procs names whatever process got
// it since, and a plain kill() as root would hit that one. Checked after
// the pidfd is open, a pid reused before is refused; reused after, the
// pidfd still names the old process, which is gone (false either way).
bool signalPinnedProcess(pid_t pid, int sig, const std::function<bool(pid_t)>& stillTheTarget);

// The children of parent in another session than parent's own (the
// processes of a container, which its runtime starts in a session of their
// own, not the hooks it runs), and a SIGKILL to each of them that is still
// such a child when signalled.
std::vector<pid_t> childrenInOtherSessions(pid_t parent);
std::vector<pid_t> killChildrenInOtherSessions(pid_t parent);

}  // namespace sarus
