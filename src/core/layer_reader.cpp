#include "layer_reader.hpp"

#include "error.hpp"

#include <archive.h>

#include <cerrno>

namespace sarus {

namespace {
constexpr std::size_t outputSize = 1 << 20;
}

LayerReader::LayerReader(LayerStream& stream, const std::string& layerName)
    : stream_(stream), reader_(newLayerReader()) {
    if (archive_read_open(reader_.get(), this, nullptr, read, nullptr) != ARCHIVE_OK) {
        throw Error(layerName + ": " + archive_error_string(reader_.get()));
    }
}

long LayerReader::read(archive* reader, void* self, const void** buffer) {
    try {
        return static_cast<long>(static_cast<LayerReader*>(self)->produce(buffer));
    } catch (const Error& e) {
        archive_set_error(reader, EIO, "%s", e.what());
        return -1;
    }
}

std::size_t LayerReader::produce(const void** buffer) {
    const char* data = nullptr;
    if (!detected_) {
        detected_ = true;
        auto n = stream_.next(&data, 2);
        if (n == 0) {
            return 0;
        }
        if (!GzipDecoder::looksLikeGzip({data, n})) {
            *buffer = data;  // zstd or plain tar: libarchive detects it
            return n;
        }
        gzip_ = std::make_unique<GzipDecoder>();
        output_.resize(outputSize);
        gzip_->feed({data, n});
    }
    if (!gzip_) {
        auto n = stream_.next(&data);
        *buffer = data;
        return n;
    }
    while (true) {
        if (gzip_->needsInput()) {
            auto n = stream_.next(&data);
            if (n == 0) {
                if (!gzip_->finished()) {
                    throw Error("the gzip stream ends before its last block (truncated layer)");
                }
                return 0;
            }
            gzip_->feed({data, n});
        }
        auto produced = gzip_->decode(output_.data(), output_.size());
        if (produced > 0) {
            *buffer = output_.data();
            return produced;
        }
    }
}

}  // namespace sarus
