// The block cache of squashfuse_preload.so, linked before libzstd, zlib and
// liblz4 as LD_PRELOAD puts it: the decompression calls below are the
// cache's, and reach the real libraries through it.
#include <gtest/gtest.h>
#include <lz4.h>
#include <zlib.h>
#include <zstd.h>

#include <cstdint>
#include <random>
#include <vector>

extern "C" void sarus_block_cache_counts(uint64_t* hits, uint64_t* misses);

namespace {

using Bytes = std::vector<unsigned char>;

struct Counts {
    uint64_t hits = 0, misses = 0;
};

Counts counts() {
    Counts c;
    sarus_block_cache_counts(&c.hits, &c.misses);
    return c;
}

// Random bytes do not compress: zstd stores them as they are, which lets a
// test change one byte of a compressed block.
Bytes randomBytes(size_t size, unsigned seed) {
    std::mt19937 generator(seed);
    Bytes bytes(size);
    for (auto& byte : bytes) {
        byte = static_cast<unsigned char>(generator());
    }
    return bytes;
}

Bytes zstdCompressed(const Bytes& data) {
    Bytes out(ZSTD_compressBound(data.size()));
    size_t size = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3);
    EXPECT_FALSE(ZSTD_isError(size));
    out.resize(size);
    return out;
}

Bytes zstdDecompressed(const Bytes& compressed, size_t capacity = 131072) {
    Bytes out(capacity);
    size_t size = ZSTD_decompress(out.data(), out.size(), compressed.data(), compressed.size());
    EXPECT_FALSE(ZSTD_isError(size));
    out.resize(ZSTD_isError(size) ? 0 : size);
    return out;
}

TEST(SquashfuseBlockCache, ARepeatedBlockIsServedFromTheCacheWithTheSameBytes) {
    auto data = randomBytes(100000, 1);
    auto compressed = zstdCompressed(data);
    auto before = counts();
    EXPECT_EQ(zstdDecompressed(compressed), data);
    EXPECT_EQ(zstdDecompressed(compressed), data);
    auto after = counts();
    EXPECT_EQ(after.misses - before.misses, 1u);
    EXPECT_EQ(after.hits - before.hits, 1u);
}

TEST(SquashfuseBlockCache, BlocksThatDifferInOneByteAreNeverConfused) {
    // The cheap fingerprint samples a few bytes; byte 1 of the data is not
    // among them, so both blocks have the same fingerprint and only the full
    // comparison tells them apart.
    auto data = randomBytes(8000, 2);
    auto compressed = zstdCompressed(data);
    auto changed = data;
    changed[1] ^= 0xff;
    auto changedCompressed = zstdCompressed(changed);
    ASSERT_EQ(compressed.size(), changedCompressed.size());
    EXPECT_EQ(zstdDecompressed(compressed), data);
    EXPECT_EQ(zstdDecompressed(changedCompressed), changed);
    EXPECT_EQ(zstdDecompressed(compressed), data);
}

TEST(SquashfuseBlockCache, AnErrorIsPassedOnAndNotKept) {
    Bytes garbage(500, 0x42);
    Bytes out(131072);
    EXPECT_TRUE(ZSTD_isError(ZSTD_decompress(out.data(), out.size(), garbage.data(), garbage.size())));
    EXPECT_TRUE(ZSTD_isError(ZSTD_decompress(out.data(), out.size(), garbage.data(), garbage.size())));
}

TEST(SquashfuseBlockCache, AResultLargerThanTheCallersBufferIsNotCopiedIntoIt) {
    auto data = randomBytes(6000, 3);
    auto compressed = zstdCompressed(data);
    EXPECT_EQ(zstdDecompressed(compressed, 8192), data);
    Bytes small(4096);
    EXPECT_TRUE(ZSTD_isError(ZSTD_decompress(small.data(), small.size(), compressed.data(), compressed.size())));
}

TEST(SquashfuseBlockCache, GzipAndLz4BlocksAreCachedToo) {
    auto data = randomBytes(50000, 4);
    data.resize(100000, 'x');
    Bytes gzipBlock(compressBound(data.size()));
    uLongf gzipSize = gzipBlock.size();
    ASSERT_EQ(compress2(gzipBlock.data(), &gzipSize, data.data(), data.size(), 6), Z_OK);
    gzipBlock.resize(gzipSize);
    Bytes lz4Block(LZ4_compressBound(static_cast<int>(data.size())));
    int lz4Size = LZ4_compress_default(reinterpret_cast<const char*>(data.data()),
                                       reinterpret_cast<char*>(lz4Block.data()), static_cast<int>(data.size()),
                                       static_cast<int>(lz4Block.size()));
    ASSERT_GT(lz4Size, 0);
    lz4Block.resize(lz4Size);

    auto before = counts();
    for (int round = 0; round < 2; ++round) {
        Bytes out(131072);
        uLongf outSize = out.size();
        ASSERT_EQ(uncompress(out.data(), &outSize, gzipBlock.data(), gzipBlock.size()), Z_OK);
        out.resize(outSize);
        EXPECT_EQ(out, data);
        Bytes lz4Out(131072);
        int size = LZ4_decompress_safe(reinterpret_cast<const char*>(lz4Block.data()),
                                       reinterpret_cast<char*>(lz4Out.data()), static_cast<int>(lz4Block.size()),
                                       static_cast<int>(lz4Out.size()));
        ASSERT_GT(size, 0);
        lz4Out.resize(size);
        EXPECT_EQ(lz4Out, data);
    }
    auto after = counts();
    EXPECT_EQ(after.misses - before.misses, 2u);
    EXPECT_EQ(after.hits - before.hits, 2u);
}

}  // namespace
