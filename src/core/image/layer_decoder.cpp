#include "image/layer_decoder.hpp"

#include "common/error.hpp"
#include "image/gzip_decoder.hpp"

#include <algorithm>

namespace sarus {

namespace {
constexpr std::size_t chunkSize = 1 << 20;
}

LayerDecoder::LayerDecoder(std::vector<LayerStream*> streams, std::size_t maxBuffered)
    : streams_(std::move(streams)), maxBuffered_(maxBuffered), layers_(streams_.size()) {
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

std::size_t LayerDecoder::next(std::size_t layer, const char** data) {
    std::unique_lock lock(mutex_);
    // The flattener moved on: what it left of earlier layers (the tar's
    // padding after its end marker) must not hold buffer space, now or later.
    if (layer > consumerLayer_) {
        consumerLayer_ = layer;
        changed_.notify_all();
    }
    for (std::size_t earlier = 0; earlier < layer; ++earlier) {
        for (const auto& chunk : layers_[earlier].chunks) {
            buffered_ -= chunk.size;
        }
        layers_[earlier].chunks.clear();
    }
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
    auto n = stream.next(&data, 2);
    if (n == 0) {
        return;
    }
    if (!GzipDecoder::looksLikeGzip({data, n})) {
        do {  // zstd or plain tar: libarchive reads it as it is
            Chunk chunk{std::make_unique_for_overwrite<char[]>(n), n};
            std::copy(data, data + n, chunk.bytes.get());
            push(layer, std::move(chunk));
        } while ((n = stream.next(&data)) > 0);
        return;
    }
    GzipDecoder gzip;
    gzip.feed({data, n});
    for (;;) {
        if (gzip.needsInput()) {
            n = stream.next(&data);
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
            push(layer, std::move(chunk));
        }
    }
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
