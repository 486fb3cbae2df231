// A libarchive reader over a downloading layer, as LayerDecoder hands it
// out: gzip layers (nearly all of them) already decompressed with ISA-L
// instead of libarchive's zlib filter, which is several times slower; zstd
// and plain tar as they are, for libarchive.
#pragma once

#include "image/image_archive.hpp"
#include "image/layer_decoder.hpp"

#include <memory>

struct archive;

namespace sarus {

class LayerReader {
public:
    // Throws sarus::Error if libarchive cannot open the stream.
    LayerReader(LayerDecoder& decoder, std::size_t layer, const std::string& layerName);
    LayerReader(const LayerReader&) = delete;
    LayerReader& operator=(const LayerReader&) = delete;

    archive* get() const { return reader_.get(); }

private:
    static long read(archive* reader, void* self, const void** buffer);
    std::size_t produce(const void** buffer);

    LayerDecoder& decoder_;
    std::size_t layer_;
    std::unique_ptr<archive, ArchiveReaderDeleter> reader_;
};

}  // namespace sarus
