// Gzip decompression with ISA-L's igzip, three to four times faster than
// zlib on x86-64. Decompressing layers is the one step of a pull that cannot
// be spread over cores (a gzip stream is sequential), so its speed bounds
// the whole pull. Handles concatenated members like gzip -d does.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

namespace sarus {

class GzipDecoder {
public:
    GzipDecoder();
    ~GzipDecoder();
    GzipDecoder(const GzipDecoder&) = delete;
    GzipDecoder& operator=(const GzipDecoder&) = delete;

    static bool looksLikeGzip(std::string_view firstBytes);

    // Gives the decoder more compressed bytes; they must stay valid until
    // needsInput() is true again.
    void feed(std::string_view input);
    bool needsInput() const;
    // Decodes into output; returns the number of bytes written (0 when it
    // needs input or the stream is finished). Throws sarus::Error on corrupt
    // data or a wrong checksum.
    std::size_t decode(char* output, std::size_t capacity);
    // True once a complete member ended and no further member started.
    bool finished() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sarus
