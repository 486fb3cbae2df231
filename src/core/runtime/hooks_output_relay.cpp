#include "runtime/hooks_output_relay.hpp"

#include "common/error.hpp"
#include "common/write_all.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

namespace sarus {

HooksOutputRelay::HooksOutputRelay(const std::filesystem::path& bundleDir)
    : stdout_(open(bundleDir / "hooks.stdout", STDOUT_FILENO)),
      stderr_(open(bundleDir / "hooks.stderr", STDERR_FILENO)) {}

HooksOutputRelay::Stream HooksOutputRelay::open(const std::filesystem::path& path, int target) {
    if (::mkfifo(path.c_str(), 0600) != 0) {
        throw systemError("cannot make " + path.string() + " for the hooks' output", errno);
    }
    Stream stream;
    stream.path = path;
    stream.target = target;
    // The read end first: opening a FIFO for writing waits for a reader.
    stream.reading = FileDescriptor(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    stream.holding = FileDescriptor(::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    if (stream.reading.get() < 0 || stream.holding.get() < 0) {
        throw systemError("cannot open " + path.string() + " for the hooks' output", errno);
    }
    return stream;
}

void HooksOutputRelay::watch(std::vector<pollfd>& watched) const {
    for (const Stream* stream : {&stdout_, &stderr_}) {
        if (stream->reading.get() >= 0) {
            watched.push_back({stream->reading.get(), POLLIN, 0});
        }
    }
}

void HooksOutputRelay::serve(const std::vector<pollfd>& watched) {
    for (const auto& polled : watched) {
        for (Stream* stream : {&stdout_, &stderr_}) {
            if (polled.fd == stream->reading.get() && polled.fd >= 0 && (polled.revents & (POLLIN | POLLHUP))) {
                copyAvailable(*stream);
            }
        }
    }
}

void HooksOutputRelay::drain() {
    for (Stream* stream : {&stdout_, &stderr_}) {
        stream->holding = FileDescriptor();
        if (stream->reading.get() >= 0) {
            copyAvailable(*stream);
            stream->reading = FileDescriptor();
        }
    }
}

namespace {

// With `sarus run -t` the caller's terminal is in raw mode while the
// container runs: it would not return the carriage at each new line.
bool rawTerminal(int fd) {
    termios settings {};
    return ::tcgetattr(fd, &settings) == 0 && !(settings.c_oflag & OPOST);
}

// A hook's output is not worth waiting for: a non-blocking target that
// takes nothing loses it.
bool writeOrDrop(int fd, const char* data, std::size_t size) {
    return writeAll(fd, data, size, [] { return false; });
}

bool writeLines(int fd, const char* data, std::size_t size, bool raw) {
    if (!raw) {
        return writeOrDrop(fd, data, size);
    }
    for (const char* end = data + size; data < end;) {
        const char* newline = static_cast<const char*>(std::memchr(data, '\n', static_cast<std::size_t>(end - data)));
        const char* stop = newline ? newline : end;
        if (!writeOrDrop(fd, data, static_cast<std::size_t>(stop - data)) || (newline && !writeOrDrop(fd, "\r\n", 2))) {
            return false;
        }
        data = newline ? newline + 1 : end;
    }
    return true;
}

}  // namespace

void HooksOutputRelay::copyAvailable(Stream& stream) {
    char buffer[16384];
    bool raw = rawTerminal(stream.target);
    for (;;) {
        ssize_t n = ::read(stream.reading.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;  // nothing more for now (EAGAIN), or every writer is gone
        }
        if (!writeLines(stream.target, buffer, static_cast<std::size_t>(n), raw)) {
            return;  // sarus's own output is gone: the hooks' output goes with it
        }
    }
}

}  // namespace sarus
