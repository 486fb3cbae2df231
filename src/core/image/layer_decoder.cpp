#include "image/layer_decoder.hpp"

#include "common/error.hpp"
#include "common/sha256.hpp"
#include "image/gzip_decoder.hpp"
#include "image/image_archive.hpp"

#include <archive.h>

#include <algorithm>

namespace sarus {

namespace {
constexpr std::size_t chunkSize = 1 << 20;

bool looksLikeZstd(std::string_view first) {
    return first.size() >= 4 && static_cast<unsigned char>(first[0]) == 0x28 &&
           static_cast<unsigned char>(first[1]) == 0xb5 && static_cast<unsigned char>(first[2]) == 0x2f &&
           static_cast<unsigned char>(first[3]) == 0xfd;
}
}  // namespace

// Hashes a layer's decoded bytes unless there is no diff id to compare, or
// the cached blob bears the stamp of an earlier pull that compared it.
class LayerDecoder::ContentCheck {
public:
    ContentCheck(std::size_t layer, std::string diffId, LayerStream& stream)
        : layer_(layer), diffId_(std::move(diffId)), stream_(stream),
          needed_(!diffId_.empty() && !stream.contentVerifiedBefore(diffId_)) {}
    void update(const char* data, std::size_t size) {
        if (needed_) {
            hash_.update(data, size);
        }
    }
    void finish() {
        if (!needed_) {
            return;
        }
        auto actual = hash_.digest();
        if (actual != diffId_) {
            throw Error("layer " + std::to_string(layer_ + 1) + " does not match the image configuration: " +
                        "its content has digest " + actual + ", rootfs.diff_ids gives " + diffId_);
        }
        stream_.recordContentVerified(diffId_);
    }

private:
    std::size_t layer_;
    std::string diffId_;
    LayerStream& stream_;
    bool needed_;
    Sha256 hash_;
};

LayerDecoder::LayerDecoder(std::vector<LayerStream*> streams, std::vector<std::string> diffIds,
                           std::size_t maxBuffered)
    : streams_(std::move(streams)), diffIds_(std::move(diffIds)), maxBuffered_(maxBuffered),
      layers_(streams_.size()) {
    diffIds_.resize(streams_.size());
    thread_ = std::thread([this] { run(); });
}

LayerDecoder::~LayerDecoder() {
    bool abandoned;
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
        abandoned = !finished_;
    }
    changed_.notify_all();
    if (abandoned) {
        // Wakes the thread if it waits for a download that nobody needs now.
        for (auto* stream : streams_) {
            stream->fail("pull abandoned");
        }
    }
    thread_.join();
}

// The flattener moved on to layer: what it left of earlier layers (the tar's
// padding after its end marker) must not hold buffer space, now or later.
void LayerDecoder::moveConsumerTo(std::size_t layer) {
    bool changed = layer > consumerLayer_;
    consumerLayer_ = std::max(consumerLayer_, layer);
    for (std::size_t earlier = 0; earlier < layer; ++earlier) {
        for (const auto& chunk : layers_[earlier].chunks) {
            buffered_ -= chunk.size;
            changed = true;
        }
        layers_[earlier].chunks.clear();
    }
    if (changed) {
        changed_.notify_all();  // the decoding thread may wait for either
    }
}

std::size_t LayerDecoder::next(std::size_t layer, const char** data) {
    std::unique_lock lock(mutex_);
    moveConsumerTo(layer);
    auto& l = layers_.at(layer);
    changed_.wait(lock, [&] { return !l.chunks.empty() || l.done; });
    if (l.chunks.empty()) {
        if (!l.error.empty()) {
            throw Error(l.error);
        }
        return 0;
    }
    current_ = std::move(l.chunks.front());
    l.chunks.pop_front();
    buffered_ -= current_.size;
    lock.unlock();
    changed_.notify_all();
    *data = current_.bytes.get();
    return current_.size;
}

void LayerDecoder::finishLayer(std::size_t layer) {
    std::unique_lock lock(mutex_);
    moveConsumerTo(layer + 1);
    auto& l = layers_.at(layer);
    changed_.wait(lock, [&] { return l.done; });
    if (!l.error.empty()) {
        throw Error(l.error);
    }
}

void LayerDecoder::run() {
    std::size_t layer = 0;
    try {
        for (; layer < streams_.size(); ++layer) {
            decode(layer);
            finish(layer, "");
        }
    } catch (const Stopped&) {
    } catch (const std::exception& e) {
        // One bad layer ends the pull: every layer still to come fails too.
        for (; layer < streams_.size(); ++layer) {
            finish(layer, e.what());
        }
    }
    std::lock_guard lock(mutex_);
    finished_ = true;
}

void LayerDecoder::decode(std::size_t layer) {
    auto& stream = *streams_[layer];
    const char* data = nullptr;
    auto n = stream.next(&data, 4);
    ContentCheck check(layer, diffIds_[layer], stream);
    std::string_view first(data, n);
    if (n == 0) {
        // nothing to decode; an empty blob still has a digest to compare
    } else if (GzipDecoder::looksLikeGzip(first)) {
        decodeGzip(layer, first, check);
    } else if (looksLikeZstd(first)) {
        decodeZstd(layer, first, check);
    } else {
        passThrough(layer, first, check);
    }
    check.finish();
}

void LayerDecoder::decodeGzip(std::size_t layer, std::string_view first, ContentCheck& check) {
    auto& stream = *streams_[layer];
    GzipDecoder gzip;
    gzip.feed(first);
    for (;;) {
        if (gzip.needsInput()) {
            const char* data = nullptr;
            auto n = stream.next(&data);
            if (n == 0) {
                if (!gzip.finished()) {
                    throw Error("the gzip stream ends before its last block (truncated layer)");
                }
                return;
            }
            gzip.feed({data, n});
        }
        Chunk chunk{std::make_unique_for_overwrite<char[]>(chunkSize), 0};
        chunk.size = gzip.decode(chunk.bytes.get(), chunkSize);
        if (chunk.size > 0) {
            emit(layer, std::move(chunk), check);
        }
    }
}

namespace {

// libarchive's read callback over a layer stream whose first bytes were
// already taken to recognise its compression.
struct ResumedStream {
    LayerStream& stream;
    std::string_view first;

    static la_ssize_t read(archive* reader, void* self, const void** buffer) {
        auto* resumed = static_cast<ResumedStream*>(self);
        if (!resumed->first.empty()) {
            *buffer = resumed->first.data();
            auto n = resumed->first.size();
            resumed->first = {};
            return static_cast<la_ssize_t>(n);
        }
        return LayerStream::read(reader, &resumed->stream, buffer);
    }
};

}  // namespace

// libarchive's zstd filter, read as one "raw" entry: the flattener then
// parses plain tar, and the decoding overlaps with it as gzip's does.
void LayerDecoder::decodeZstd(std::size_t layer, std::string_view first, ContentCheck& check) {
    ResumedStream source{*streams_[layer], first};
    std::unique_ptr<archive, ArchiveReaderDeleter> reader(archive_read_new());
    archive_read_support_filter_zstd(reader.get());
    archive_read_support_format_raw(reader.get());
    archive_entry* entry = nullptr;
    if (archive_read_open(reader.get(), &source, nullptr, ResumedStream::read, nullptr) != ARCHIVE_OK ||
        archive_read_next_header(reader.get(), &entry) != ARCHIVE_OK) {
        throw Error(std::string("cannot decode the zstd layer: ") + archive_error_string(reader.get()));
    }
    for (;;) {
        Chunk chunk{std::make_unique_for_overwrite<char[]>(chunkSize), 0};
        auto n = archive_read_data(reader.get(), chunk.bytes.get(), chunkSize);
        if (n < 0) {
            throw Error(std::string("cannot decode the zstd layer: ") + archive_error_string(reader.get()));
        }
        if (n == 0) {
            return;
        }
        chunk.size = static_cast<std::size_t>(n);
        emit(layer, std::move(chunk), check);
    }
}

void LayerDecoder::passThrough(std::size_t layer, std::string_view first, ContentCheck& check) {
    auto& stream = *streams_[layer];
    const char* data = first.data();
    auto n = first.size();
    do {
        Chunk chunk{std::make_unique_for_overwrite<char[]>(n), n};
        std::copy(data, data + n, chunk.bytes.get());
        emit(layer, std::move(chunk), check);
    } while ((n = stream.next(&data)) > 0);
}

void LayerDecoder::emit(std::size_t layer, Chunk chunk, ContentCheck& check) {
    check.update(chunk.bytes.get(), chunk.size);
    push(layer, std::move(chunk));
}

void LayerDecoder::push(std::size_t layer, Chunk chunk) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return stop_ || buffered_ < maxBuffered_ || layer < consumerLayer_; });
    if (stop_) {
        throw Stopped{};
    }
    if (layer < consumerLayer_) {
        return;  // decoded on to check the blob to its end; nobody reads it
    }
    buffered_ += chunk.size;
    layers_[layer].chunks.push_back(std::move(chunk));
    lock.unlock();
    changed_.notify_all();
}

void LayerDecoder::finish(std::size_t layer, const std::string& error) {
    {
        std::lock_guard lock(mutex_);
        layers_[layer].done = true;
        layers_[layer].error = error;
    }
    changed_.notify_all();
}

}  // namespace sarus
