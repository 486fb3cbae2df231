// A libarchive reader over a downloading layer. Gzip layers (nearly all of
// them) are decompressed here with ISA-L instead of libarchive's zlib filter,
// which is several times slower; zstd and plain tar go to libarchive as they
// are.
#pragma once

#include "gzip_decoder.hpp"
#include "image_archive.hpp"
#include "layer_stream.hpp"

#include <memory>
#include <vector>

struct archive;

namespace sarus {

class LayerReader {
public:
    // Throws sarus::Error if libarchive cannot open the stream.
    LayerReader(LayerStream& stream, const std::string& layerName);
    LayerReader(const LayerReader&) = delete;
    LayerReader& operator=(const LayerReader&) = delete;

    archive* get() const { return reader_.get(); }

private:
    static long read(archive* reader, void* self, const void** buffer);
    std::size_t produce(const void** buffer);

    LayerStream& stream_;
    bool detected_ = false;
    std::unique_ptr<GzipDecoder> gzip_;
    std::vector<char> output_;
    std::unique_ptr<archive, ArchiveReaderDeleter> reader_;
};

}  // namespace sarus
