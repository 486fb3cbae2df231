#pragma once
// The container's terminal (sarus run -t), relayed by the sandbox.
//
// crun hands the master end of the container's pseudo-terminal over through
// --console-socket, and the sandbox copies between it and sarus's own
// standard streams. Relaying it here, rather than in the runtime, lets the
// sandbox see Ctrl-C and Ctrl-\ typed for a first process that would ignore
// them: the terminal sends SIGINT or SIGQUIT to its foreground group, and
// the kernel drops it for PID 1 of a PID namespace unless PID 1 handles it.
// Such a process is ended as the signal would end any other one (see
// runtime_signals.hpp).

#include "common/file_descriptor.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <termios.h>
#include <vector>

struct pollfd;

namespace sarus {

class TerminalRelay {
public:
    // Listens on socketPath (a path in the bundle) for the runtime's terminal.
    explicit TerminalRelay(std::filesystem::path socketPath);
    ~TerminalRelay();  // gives the caller's terminal its settings back
    TerminalRelay(const TerminalRelay&) = delete;
    TerminalRelay& operator=(const TerminalRelay&) = delete;

    std::string runtimeOption() const { return "--console-socket=" + socketPath_.string(); }

    // The descriptors to poll, appended to watched.
    void watch(std::vector<pollfd>& watched) const;
    // Does what the polled descriptors are ready for; returns the signal
    // (SIGINT, SIGQUIT) the typed input made the terminal send, or 0.
    int serve(const std::vector<pollfd>& watched);
    // The caller's terminal changed size (SIGWINCH).
    void resize();
    // After the runtime has ended: copies what the container left to read.
    void drain();

    // The process group in the container's terminal foreground, or -1.
    pid_t foregroundGroup() const;

private:
    void takeTerminal();
    bool copyOutput();  // false at the end of the output
    int signalTyped(const char* input, std::size_t size) const;

    std::filesystem::path socketPath_;
    FileDescriptor listening_;
    FileDescriptor master_;
    bool inputOpen_ = true;
    bool outputOpen_ = true;
    std::optional<termios> callerSettings_;
};

}  // namespace sarus
