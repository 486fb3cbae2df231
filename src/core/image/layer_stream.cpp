#include "image/layer_stream.hpp"

#include "common/cancellation.hpp"
#include "common/error.hpp"

#include <archive.h>

#include <cerrno>
#include <fcntl.h>
#include <algorithm>
#include <chrono>
#include <unistd.h>

namespace sarus {

namespace {
constexpr std::size_t readSize = 1 << 20;
// Following a download closely in tiny steps would cost a wake-up per few
// KiB: the reader waits for a useful amount unless the blob is complete.
constexpr std::size_t minimumRead = 256 << 10;
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

bool LayerStream::contentVerifiedBefore(const std::string& diffId) const {
    std::lock_guard lock(mutex_);
    return fd_.get() >= 0 && BlobCache::isContentMarkedVerified(fd_.get(), diffId);
}

void LayerStream::recordContentVerified(const std::string& diffId) const {
    std::lock_guard lock(mutex_);
    if (fd_.get() >= 0 && state_ == State::done) {
        BlobCache::markContentVerified(fd_.get(), diffId);
    }
}

std::string LayerStream::failure() const {
    std::lock_guard lock(mutex_);
    return state_ == State::failed ? error_ : "";
}

std::uint64_t LayerStream::waitForData(std::uint64_t atLeast) {
    std::unique_lock lock(mutex_);
    while (true) {
        if (state_ == State::failed) {
            throw Error(error_);
        }
        bool started = state_ != State::waiting;
        if (started && available_ >= offset_ + atLeast) {
            return available_ - offset_;
        }
        if (state_ == State::done) {
            return available_ - offset_;
        }
        // Woken by the producer; the timeout only serves Ctrl-C.
        changed_.wait_for(lock, std::chrono::milliseconds(100));
        lock.unlock();
        cancellation::throwIfRequested();
        lock.lock();
    }
}

std::size_t LayerStream::next(const char** data, std::size_t atLeast) {
    auto available = waitForData(std::min<std::uint64_t>(std::max(atLeast, minimumRead), readSize));
    if (available == 0) {
        return 0;
    }
    if (buffer_.empty()) {
        buffer_.resize(readSize);
    }
    auto want = static_cast<std::size_t>(std::min<std::uint64_t>(available, readSize));
    std::size_t got = 0;
    while (got < want) {
        ssize_t n = ::pread(fd_.get(), buffer_.data() + got, want - got, static_cast<off_t>(offset_ + got));
        if (n <= 0) {
            throw systemError("cannot read layer data", n < 0 ? errno : EIO);
        }
        got += static_cast<std::size_t>(n);
    }
    offset_ += got;
    *data = buffer_.data();
    return got;
}

long LayerStream::read(archive* reader, void* self, const void** buffer) {
    try {
        const char* data = nullptr;
        auto n = static_cast<LayerStream*>(self)->next(&data);
        *buffer = data;
        return static_cast<long>(n);
    } catch (const Error& e) {
        archive_set_error(reader, EIO, "%s", e.what());
        return -1;
    }
}

}  // namespace sarus
