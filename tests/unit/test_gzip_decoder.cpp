#include "common/error.hpp"
#include "image/gzip_decoder.hpp"

#include <isa-l/igzip_lib.h>

#include <gtest/gtest.h>

#include <string>

using sarus::GzipDecoder;

namespace {

// Level-0 gzip from ISA-L itself (a generic header and trailer).
std::string gzip(const std::string& data) {
    std::string out(data.size() * 2 + 1024, '\0');
    isal_zstream stream;
    isal_deflate_init(&stream);
    stream.gzip_flag = IGZIP_GZIP;
    stream.end_of_stream = 1;
    stream.flush = NO_FLUSH;
    stream.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(data.data()));
    stream.avail_in = static_cast<uint32_t>(data.size());
    stream.next_out = reinterpret_cast<uint8_t*>(out.data());
    stream.avail_out = static_cast<uint32_t>(out.size());
    EXPECT_EQ(isal_deflate(&stream), COMP_OK);
    EXPECT_EQ(stream.internal_state.state, ZSTATE_END);
    out.resize(stream.total_out);
    return out;
}

std::string sample(std::size_t size) {
    std::string s;
    for (std::size_t i = 0; s.size() < size; ++i) {
        s += "line " + std::to_string(i * 7919 % 10007) + " of a layer\n";
    }
    s.resize(size);
    return s;
}

// Feeds `compressed` in chunks of `chunk` bytes and decodes into a small
// buffer, as LayerReader does with a growing download.
std::string decodeAll(const std::string& compressed, std::size_t chunk, bool* finished = nullptr) {
    GzipDecoder decoder;
    std::string out;
    char buffer[4096];
    std::size_t offset = 0;
    while (true) {
        if (decoder.needsInput()) {
            if (offset >= compressed.size()) {
                break;
            }
            auto n = std::min(chunk, compressed.size() - offset);
            decoder.feed(std::string_view(compressed).substr(offset, n));
            offset += n;
        }
        auto produced = decoder.decode(buffer, sizeof buffer);
        out.append(buffer, produced);
    }
    if (finished != nullptr) {
        *finished = decoder.finished();
    }
    return out;
}

}  // namespace

TEST(GzipDecoder, RecognisesTheMagic) {
    EXPECT_TRUE(GzipDecoder::looksLikeGzip("\x1f\x8b\x08"));
    EXPECT_FALSE(GzipDecoder::looksLikeGzip("\x28\xb5\x2f\xfd"));  // zstd
    EXPECT_FALSE(GzipDecoder::looksLikeGzip("bin/"));              // plain tar
    EXPECT_FALSE(GzipDecoder::looksLikeGzip("\x1f"));
}

TEST(GzipDecoder, DecodesWhateverTheChunking) {
    auto data = sample(300000);
    auto compressed = gzip(data);
    for (std::size_t chunk : {1ul, 7ul, 4096ul, 65536ul, compressed.size()}) {
        bool finished = false;
        EXPECT_EQ(decodeAll(compressed, chunk, &finished), data) << chunk;
        EXPECT_TRUE(finished) << chunk;
    }
}

TEST(GzipDecoder, DecodesConcatenatedMembersAndIgnoresZeroPadding) {
    auto a = sample(5000), b = sample(7000);
    bool finished = false;
    for (std::size_t chunk : {1ul, 1000ul, 100000ul}) {
        EXPECT_EQ(decodeAll(gzip(a) + gzip(b) + std::string(512, '\0'), chunk, &finished), a + b) << chunk;
        EXPECT_TRUE(finished);
    }
}

TEST(GzipDecoder, ATruncatedStreamIsNotFinished) {
    auto compressed = gzip(sample(100000));
    bool finished = true;
    decodeAll(compressed.substr(0, compressed.size() / 2), 4096, &finished);
    EXPECT_FALSE(finished);
}

TEST(GzipDecoder, CorruptDataOrChecksumIsAnError) {
    auto compressed = gzip(sample(50000));
    auto badCrc = compressed;
    badCrc[badCrc.size() - 6] ^= 0x55;  // inside the CRC-32 of the trailer
    EXPECT_THROW(decodeAll(badCrc, 4096), sarus::Error);
    auto badHeader = compressed;
    badHeader[2] = 0x07;  // compression method other than deflate
    EXPECT_THROW(decodeAll(badHeader, 4096), sarus::Error);
}
