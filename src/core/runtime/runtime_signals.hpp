#pragma once
// Signals sarus relays to the running OCI runtime, which passes them on to
// the container's first process.

#include <string>
#include <sys/types.h>

namespace sarus {

class EntrypointPrefetch;
class HooksOutputRelay;
class TerminalRelay;

// Forwards forwardedSignals to the runtime until it exits and returns its
// exit code (as waitForExit does).
//
// The container's first process is PID 1 of its PID namespace, and the
// kernel drops any signal to it that it has no handler for: `sleep`, or a
// rank that installs none, would outlive a SIGTERM or SIGHUP to sarus.
// Sarus 1.7 runs containers in the host's PID namespace, where the signal
// ends them. So a relayed signal that ends a process by default, and that
// the first process neither handles nor ignores, ends it with SIGKILL
// instead, and the exit code is the one the signal would have given
// (128 + its number).
//
// With a terminal relay (sarus run -t with crun), the sandbox also copies
// the container's terminal, and treats Ctrl-C and Ctrl-\ typed for such a
// first process in the same way. With a hooks output relay, it copies what
// the hooks print as they print it. With a read-ahead helper, it reaps the
// helper as soon as it is done.
//
// In the host's PID namespace no kernel ends the container's other processes
// with its first one: runc kills them through the container's cgroup, crun
// without a cgroup manager waits for them (it is their subreaper). Given
// the file where the runtime writes the first process's pid (--pid-file),
// once that process has ended they are killed here: the runtime's children
// in another session than its own (crun starts the container in a session
// of its own), which spares the hooks it runs. Given callerAliveFd (a pipe
// whose other end sarus holds), the end of sarus (kill -9) kills the runtime
// too, and its orphans come to this subreaper and are killed with the rest:
// nothing else, no PID namespace or cgroup, would end them.
int waitRelayingSignals(pid_t runtime, TerminalRelay* terminal = nullptr, HooksOutputRelay* hooksOutput = nullptr,
                        EntrypointPrefetch* prefetch = nullptr, const std::string& firstProcessPidFile = "",
                        int callerAliveFd = -1);

// True when pid is PID 1 of its PID namespace and neither handles nor
// ignores sig (from /proc/PID/status): the kernel drops sig for it.
bool droppedAsNamespaceInit(pid_t pid, int sig);

}  // namespace sarus
