// Decompresses the layers of a pull in a thread of its own, in layer order
// and ahead of the flattener. Gzip (nearly every registry layer) is the one
// step of a pull that cannot be spread over cores; here it overlaps with the
// flattener's tar parsing and squashfs writing of the same layer and, once
// a layer is decoded, runs on into the next. Zstd and plain tar pass through
// for libarchive. Decoded bytes waiting for the flattener are bounded.
#pragma once

#include "image/layer_stream.hpp"

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sarus {

class LayerDecoder {
public:
    explicit LayerDecoder(std::vector<LayerStream*> streams, std::size_t maxBuffered = std::size_t(16) << 20);
    // Stops the thread; a layer it still reads is abandoned (its stream fails).
    ~LayerDecoder();
    LayerDecoder(const LayerDecoder&) = delete;
    LayerDecoder& operator=(const LayerDecoder&) = delete;

    // The next decoded bytes of layer, valid until the next call; 0 at its
    // end. Throws sarus::Error when the layer's download or decoding failed.
    std::size_t next(std::size_t layer, const char** data);

private:
    struct Chunk {
        std::unique_ptr<char[]> bytes;
        std::size_t size = 0;
    };
    struct Layer {
        std::deque<Chunk> chunks;
        bool done = false;
        std::string error;
    };
    struct Stopped {};

    void run();
    void decode(std::size_t layer);
    void push(std::size_t layer, Chunk chunk);
    void finish(std::size_t layer, const std::string& error);

    std::vector<LayerStream*> streams_;
    std::size_t maxBuffered_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<Layer> layers_;
    std::size_t buffered_ = 0;
    std::size_t consumerLayer_ = 0;  // the layer the flattener reads now
    bool stop_ = false;
    bool finished_ = false;
    Chunk current_;  // consumer-only: the chunk handed out last
    std::thread thread_;
};

}  // namespace sarus
