#include "runtime/terminal_relay.hpp"

#include "common/error.hpp"
#include "common/write_all.hpp"
#include "common/unix_socket.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace sarus {

namespace {

void setNonBlocking(int fd) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0) {
        ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    }
}

}  // namespace

TerminalRelay::TerminalRelay(fs::path socketPath)
    : socketPath_(std::move(socketPath)), listening_(listenOnUnixSocket(socketPath_)) {}

TerminalRelay::~TerminalRelay() {
    if (callerSettings_) {
        ::tcsetattr(STDIN_FILENO, TCSANOW, &*callerSettings_);
    }
    if (listening_.get() >= 0) {
        ::unlink(socketPath_.c_str());
    }
}

void TerminalRelay::watch(std::vector<pollfd>& watched) const {
    if (listening_.get() >= 0) {
        watched.push_back({listening_.get(), POLLIN, 0});
    }
    if (master_.get() >= 0) {
        watched.push_back({inputOpen_ ? STDIN_FILENO : -1, POLLIN, 0});
        watched.push_back({outputOpen_ ? master_.get() : -1, POLLIN, 0});
    }
}

int TerminalRelay::serve(const std::vector<pollfd>& watched) {
    int typed = 0;
    for (const auto& entry : watched) {
        if (!entry.revents || entry.fd < 0) {
            continue;
        }
        if (entry.fd == listening_.get()) {
            takeTerminal();
        } else if (entry.fd == STDIN_FILENO && master_.get() >= 0) {
            char buffer[4096];
            ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
            if (n > 0) {
                // The terminal sends the signal while it takes the input.
                // A container that does not read its input while its output
                // piles up would otherwise wait for us as we wait for it.
                inputOpen_ = writeAll(master_.get(), buffer, static_cast<std::size_t>(n), [this] {
                    pollfd writable{master_.get(), POLLOUT, 0};
                    ::poll(&writable, 1, 100);
                    drain();
                    return true;
                });
                typed = typed ? typed : signalTyped(buffer, static_cast<std::size_t>(n));
            } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                inputOpen_ = false;
            }
        } else if (entry.fd == master_.get()) {
            outputOpen_ = copyOutput();
        }
    }
    return typed;
}

void TerminalRelay::takeTerminal() {
    FileDescriptor connection(::accept4(listening_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (connection.get() < 0) {
        return;
    }
    char byte;
    std::vector<FileDescriptor> sent;
    receiveWithDescriptors(connection.get(), &byte, 1, sent);
    listening_.reset();
    ::unlink(socketPath_.c_str());
    if (sent.empty()) {
        return;
    }
    master_ = std::move(sent.front());
    // Output is read as it comes; input is written as typed, which the
    // container's terminal takes as long as its reader keeps up.
    setNonBlocking(master_.get());
    termios settings{};
    if (::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &settings) == 0) {
        callerSettings_ = settings;
        ::cfmakeraw(&settings);
        ::tcsetattr(STDIN_FILENO, TCSANOW, &settings);
    }
    resize();
}

void TerminalRelay::resize() {
    winsize size{};
    if (master_.get() >= 0 &&
        (::ioctl(STDIN_FILENO, TIOCGWINSZ, &size) == 0 || ::ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0)) {
        ::ioctl(master_.get(), TIOCSWINSZ, &size);
    }
}

bool TerminalRelay::copyOutput() {
    char buffer[16384];
    for (;;) {
        ssize_t n = ::read(master_.get(), buffer, sizeof buffer);
        if (n > 0) {
            writeAll(STDOUT_FILENO, buffer, static_cast<std::size_t>(n), [] { return true; });
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        return n < 0 && errno == EAGAIN;  // EIO: every process closed the terminal
    }
}

void TerminalRelay::drain() {
    if (master_.get() >= 0 && outputOpen_) {
        outputOpen_ = copyOutput();
    }
}

pid_t TerminalRelay::foregroundGroup() const {
    return master_.get() >= 0 ? ::tcgetpgrp(master_.get()) : -1;
}

// Which signal the container's terminal sent for this input, given its
// settings (a program may turn signals off or choose other characters).
int TerminalRelay::signalTyped(const char* input, std::size_t size) const {
    termios settings{};
    if (::tcgetattr(master_.get(), &settings) != 0 || !(settings.c_lflag & ISIG)) {
        return 0;
    }
    for (std::size_t i = 0; i < size; ++i) {
        auto c = static_cast<cc_t>(input[i]);
        if (c == _POSIX_VDISABLE) {
            continue;
        }
        if (c == settings.c_cc[VINTR]) {
            return SIGINT;
        }
        if (c == settings.c_cc[VQUIT]) {
            return SIGQUIT;
        }
    }
    return 0;
}

}  // namespace sarus
