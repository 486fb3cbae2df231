// Decompresses the layers of a pull in a thread of its own, in layer order
// and ahead of the flattener. Gzip (nearly every registry layer) is the one
// step of a pull that cannot be spread over cores; here it overlaps with the
// flattener's tar parsing and squashfs writing of the same layer and, once
// a layer is decoded, runs on into the next. Every layer comes out as plain
// tar (gzip, zstd or plain in), hashed on the way and checked against the
// diff id its image configuration gives, as Sarus 1.7's umoci checks it.
// Decoded bytes waiting for the flattener are bounded.
#pragma once

#include "image/layer_stream.hpp"

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace sarus {

class LayerDecoder {
public:
    // diffIds: one per stream, or none (nothing to check); an empty one is
    // not checked.
    LayerDecoder(std::vector<LayerStream*> streams, std::vector<std::string> diffIds,
                 std::size_t maxBuffered = std::size_t(16) << 20);
    // Stops the thread; a layer it still reads is abandoned (its stream fails).
    ~LayerDecoder();
    LayerDecoder(const LayerDecoder&) = delete;
    LayerDecoder& operator=(const LayerDecoder&) = delete;

    // The next decoded bytes of layer, valid until the next call; 0 at its
    // end. Throws sarus::Error when the layer's download or decoding failed.
    std::size_t next(std::size_t layer, const char** data);
    // The flattener is done with layer (the tar reader stops at the end
    // marker): what it left is dropped, and the layer's end awaited, so that
    // the checks at its end (the blob's digest, gzip's trailer, the diff id)
    // count. Throws sarus::Error when one failed.
    void finishLayer(std::size_t layer);

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

    class ContentCheck;

    void moveConsumerTo(std::size_t layer);  // with mutex_ held
    void run();
    void decode(std::size_t layer);
    void decodeGzip(std::size_t layer, std::string_view first, ContentCheck& check);
    void decodeZstd(std::size_t layer, std::string_view first, ContentCheck& check);
    void passThrough(std::size_t layer, std::string_view first, ContentCheck& check);
    void emit(std::size_t layer, Chunk chunk, ContentCheck& check);
    void push(std::size_t layer, Chunk chunk);
    void finish(std::size_t layer, const std::string& error);

    std::vector<LayerStream*> streams_;
    std::vector<std::string> diffIds_;
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
