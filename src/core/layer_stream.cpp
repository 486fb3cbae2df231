#include "layer_stream.hpp"

#include "cancellation.hpp"
#include "error.hpp"

#include <archive.h>

#include <cerrno>
#include <fcntl.h>
#include <chrono>
#include <unistd.h>

namespace sarus {

namespace {
constexpr std::size_t readSize = 1 << 20;
}

void LayerStream::attach(int fd) {
    int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) {
        throw systemError("cannot duplicate a file descriptor", errno);
    }
    std::lock_guard lock(mutex_);
    fd_ = FileDescriptor(copy);
    state_ = State::streaming;
    changed_.notify_all();
}

void LayerStream::advance(std::uint64_t available) {
    std::lock_guard lock(mutex_);
    available_ = available;
    changed_.notify_all();
}

void LayerStream::complete() {
    std::lock_guard lock(mutex_);
    state_ = State::done;
    changed_.notify_all();
}

void LayerStream::fail(const std::string& message) {
    std::lock_guard lock(mutex_);
    if (state_ != State::failed) {
        error_ = message;
        state_ = State::failed;
    }
    changed_.notify_all();
}

std::string LayerStream::failure() const {
    std::lock_guard lock(mutex_);
    return state_ == State::failed ? error_ : "";
}

std::uint64_t LayerStream::waitForData() {
    std::unique_lock lock(mutex_);
    while (true) {
        if (state_ == State::failed) {
            throw Error(error_);
        }
        if (state_ != State::waiting && available_ > offset_) {
            return available_ - offset_;
        }
        if (state_ == State::done) {
            return 0;
        }
        // Woken by the producer; the timeout only serves Ctrl-C.
        changed_.wait_for(lock, std::chrono::milliseconds(100));
        lock.unlock();
        cancellation::throwIfRequested();
        lock.lock();
    }
}

long LayerStream::read(archive* reader, void* self, const void** buffer) {
    auto* stream = static_cast<LayerStream*>(self);
    try {
        auto available = stream->waitForData();
        if (available == 0) {
            return 0;
        }
        if (stream->buffer_.empty()) {
            stream->buffer_.resize(readSize);
        }
        auto want = static_cast<std::size_t>(std::min<std::uint64_t>(available, readSize));
        ssize_t n = ::pread(stream->fd_.get(), stream->buffer_.data(), want,
                            static_cast<off_t>(stream->offset_));
        if (n <= 0) {
            throw systemError("cannot read layer data", n < 0 ? errno : EIO);
        }
        stream->offset_ += static_cast<std::uint64_t>(n);
        *buffer = stream->buffer_.data();
        return n;
    } catch (const Error& e) {
        archive_set_error(reader, EIO, "%s", e.what());
        return -1;
    }
}

void LayerStream::waitUntilDone() {
    std::unique_lock lock(mutex_);
    while (state_ != State::done) {
        if (state_ == State::failed) {
            throw Error(error_);
        }
        changed_.wait_for(lock, std::chrono::milliseconds(100));
        lock.unlock();
        cancellation::throwIfRequested();
        lock.lock();
    }
}

}  // namespace sarus
