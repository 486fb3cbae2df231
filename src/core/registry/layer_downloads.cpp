#include "registry/layer_downloads.hpp"

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/sha256.hpp"

#include <algorithm>
#include <cerrno>
#include <unistd.h>

namespace sarus {

namespace {

void writeAt(int fd, std::string_view data, std::uint64_t offset, const std::string& what) {
    while (!data.empty()) {
        ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw systemError("cannot write " + what, errno);
        }
        data.remove_prefix(static_cast<std::size_t>(n));
        offset += static_cast<std::uint64_t>(n);
    }
}

std::string hashFile(int fd, std::uint64_t size) {
    Sha256 hash;
    std::vector<char> buffer(1 << 20);
    std::uint64_t offset = 0;
    while (offset < size) {
        ssize_t n = ::pread(fd, buffer.data(), buffer.size(), static_cast<off_t>(offset));
        if (n <= 0) {
            throw systemError("cannot read a cached blob", n < 0 ? errno : EIO);
        }
        hash.update(buffer.data(), static_cast<std::size_t>(n));
        offset += static_cast<std::uint64_t>(n);
    }
    return hash.digest();
}

}  // namespace

LayerDownloads::LayerDownloads(RegistryClient& registry, const BlobCache& cache,
                               std::vector<manifest::Descriptor> layers, unsigned parallelism,
                               PullProgress& progress)
    : registry_(registry),
      cache_(cache),
      layers_(std::move(layers)),
      progress_(progress),
      trustedStamp_(std::make_unique<std::atomic<bool>[]>(layers_.size())) {
    for (std::size_t i = 0; i < layers_.size(); ++i) {
        streams_.push_back(std::make_unique<LayerStream>());
    }
    auto threads = std::clamp<std::size_t>(parallelism, 1, std::max<std::size_t>(layers_.size(), 1));
    try {
        for (std::size_t i = 0; i < threads; ++i) {
            threads_.emplace_back([this] { work(); });
        }
    } catch (...) {
        stop_ = true;
        for (auto& t : threads_) {
            t.join();
        }
        throw;
    }
}

LayerDownloads::~LayerDownloads() {
    stop_ = true;
    for (auto& t : threads_) {
        t.join();
    }
}

std::string LayerDownloads::firstFailure() const {
    std::lock_guard lock(failureMutex_);
    return firstFailure_;
}

void LayerDownloads::failAll(const std::string& message) {
    {
        std::lock_guard lock(failureMutex_);
        if (firstFailure_.empty()) {
            firstFailure_ = message;
        }
    }
    stop_ = true;
    for (auto& stream : streams_) {
        stream->fail(message);
    }
}

void LayerDownloads::work() {
    std::unique_ptr<http::Client> client;
    while (!stop_) {
        auto layer = next_++;
        if (layer >= layers_.size()) {
            return;
        }
        try {
            if (!client) {
                client = registry_.newClient();
            }
            fetch(*client, layer);
        } catch (const Error& e) {
            if (!stop_) {
                failAll(e.what());
            }
        } catch (const std::exception& e) {
            failAll(std::string("unexpected error while downloading ") + layers_[layer].digest + ": " + e.what());
        }
    }
}

void LayerDownloads::fetch(http::Client& client, std::size_t layer) {
    if (!useCached(layer)) {
        download(client, layer);
    }
}

bool LayerDownloads::cachedBlobIsDamaged(std::size_t layer) const {
    if (!trustedStamp_[layer]) {
        return false;
    }
    const auto& d = layers_[layer];
    auto fd = cache_.open(d.digest, static_cast<std::uint64_t>(d.size));
    return !fd || hashFile(fd->get(), static_cast<std::uint64_t>(d.size)) != d.digest;
}

bool LayerDownloads::useCached(std::size_t layer) {
    const auto& d = layers_[layer];
    auto fd = cache_.open(d.digest, static_cast<std::uint64_t>(d.size));
    if (!fd) {
        return false;
    }
    // A blob stamped when its digest was checked and unchanged since is used
    // as it is; any other is hashed first, and a damaged one is replaced by a
    // fresh download instead of failing the pull.
    if (BlobCache::isMarkedVerified(fd->get(), d.digest)) {
        log::debug("cached blob " + d.digest + " unchanged since its digest was checked: not hashed again");
        trustedStamp_[layer] = true;
    } else {
        auto actual = hashFile(fd->get(), static_cast<std::uint64_t>(d.size));
        if (actual != d.digest) {
            log::warn("cached blob " + cache_.pathOf(d.digest).string() + " is corrupt (digest " + actual +
                      "): downloading it again");
            cache_.remove(d.digest);
            return false;
        }
        BlobCache::markVerified(fd->get(), d.digest);
    }
    auto& stream = *streams_[layer];
    stream.attach(fd->get());
    stream.advance(static_cast<std::uint64_t>(d.size));
    stream.complete();
    progress_.cached(layer);
    return true;
}

void LayerDownloads::download(http::Client& client, std::size_t layer) {
    const auto& d = layers_[layer];
    const auto size = static_cast<std::uint64_t>(d.size);
    auto file = cache_.create(d.digest);
    auto& stream = *streams_[layer];
    stream.attach(file->fd());
    progress_.downloading(layer);
    Sha256 hash;
    std::uint64_t written = 0;
    auto what = "blob " + d.digest + " to " + cache_.directory().string();
    registry_.streamBlob(client, d.digest, 0, [&](std::string_view data) {
        if (stop_) {
            throw Error("download of " + d.digest + " abandoned");
        }
        if (written + data.size() > size) {
            throw Error("blob " + d.digest + " from registry " + registry_.server() +
                        " is larger than the " + std::to_string(size) + " bytes its manifest gives");
        }
        hash.update(data.data(), data.size());
        writeAt(file->fd(), data, written, what);
        written += data.size();
        stream.advance(written);
        progress_.bytes(layer, written);
    }, &stop_);
    if (written != size) {
        throw Error("blob " + d.digest + " from registry " + registry_.server() + " ended after " +
                    std::to_string(written) + " of " + std::to_string(size) + " bytes");
    }
    auto actual = hash.digest();
    if (actual != d.digest) {
        // The unnamed file is dropped: a bad blob never enters the cache.
        throw Error("blob " + d.digest + " from registry " + registry_.server() +
                    " is corrupt: its content has digest " + actual + " (the blob was not kept)");
    }
    BlobCache::markVerified(file->fd(), d.digest);
    cache_.publish(*file, d.digest);
    stream.complete();
    progress_.downloaded(layer);
}

}  // namespace sarus
