#include "image/layer_decoder.hpp"
#include "common/file_utils.hpp"

#include "common/error.hpp"
#include "common/sha256.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <random>
#include <unistd.h>
#include <zstd.h>

namespace fs = std::filesystem;

namespace {

struct Blobs : ::testing::Test {
    sarus::TempDirectory temp{"/var/tmp", "layer-decoder-test"};
    const fs::path dir = temp.path();
    std::string plain;
    void SetUp() override {
        std::mt19937 random(42);
        for (int i = 0; i < 3 << 20; ++i) {
            plain.push_back(static_cast<char>(i % 7 == 0 ? random() : 'a' + i % 26));
        }
        std::ofstream(dir / "plain", std::ios::binary) << plain;
        auto command = "gzip -c " + (dir / "plain").string() + " > " + (dir / "plain.gz").string();
        ASSERT_EQ(std::system(command.c_str()), 0);
    }

    // A stream over a file, complete (as a finished download is).
    std::unique_ptr<sarus::LayerStream> stream(const std::string& name, std::uint64_t cut = 0) {
        auto s = std::make_unique<sarus::LayerStream>();
        int fd = ::open((dir / name).c_str(), O_RDONLY | O_CLOEXEC);
        s->attach(fd);
        ::close(fd);
        s->advance(fs::file_size(dir / name) - cut);
        s->complete();
        return s;
    }

    static std::string drain(sarus::LayerDecoder& decoder, std::size_t layer) {
        std::string out;
        const char* data = nullptr;
        for (std::size_t n; (n = decoder.next(layer, &data)) > 0;) {
            out.append(data, n);
        }
        return out;
    }
};

}  // namespace

TEST_F(Blobs, GzipIsDecodedAndOtherLayersPassThroughInOrder) {
    auto gz = stream("plain.gz");
    auto raw = stream("plain");
    sarus::LayerDecoder decoder({gz.get(), raw.get()}, {}, 1 << 20);  // less than a layer: the thread waits
    EXPECT_EQ(drain(decoder, 0), plain);
    EXPECT_EQ(drain(decoder, 1), plain);
}

TEST_F(Blobs, ATruncatedLayerFailsItAndEveryLaterOne) {
    auto gz = stream("plain.gz", 1000);
    auto raw = stream("plain");
    sarus::LayerDecoder decoder({gz.get(), raw.get()}, {});
    EXPECT_THROW(drain(decoder, 0), sarus::Error);
    EXPECT_THROW(drain(decoder, 1), sarus::Error);
}

TEST_F(Blobs, AnAbandonedDecoderStopsWhileItWaitsForADownload) {
    auto gz = stream("plain.gz");
    sarus::LayerStream waiting;  // never attached: a download that has not started
    {
        sarus::LayerDecoder decoder({gz.get(), &waiting}, {}, 1 << 20);
        const char* data = nullptr;
        EXPECT_GT(decoder.next(0, &data), 0u);
    }  // must return, not hang (ctest's timeout would fail it)
}

TEST_F(Blobs, WhatTheFlattenerLeavesOfALayerDoesNotBlockTheNext) {
    auto first = stream("plain");
    auto second = stream("plain.gz");
    sarus::LayerDecoder decoder({first.get(), second.get()}, {}, 1 << 20);
    const char* data = nullptr;
    EXPECT_GT(decoder.next(0, &data), 0u);  // the rest of layer 0 is never read
    EXPECT_EQ(drain(decoder, 1), plain);
}

TEST_F(Blobs, EveryLayerIsCheckedAgainstItsDiffIdAndTheBlobStamped) {
    std::string compressed(ZSTD_compressBound(plain.size()), '\0');
    auto size = ZSTD_compress(compressed.data(), compressed.size(), plain.data(), plain.size(), 3);
    ASSERT_FALSE(ZSTD_isError(size));
    std::ofstream(dir / "plain.zst", std::ios::binary) << compressed.substr(0, size);
    auto gz = stream("plain.gz");
    auto zst = stream("plain.zst");
    auto raw = stream("plain");
    auto diffId = sarus::Sha256::of(plain);
    sarus::LayerDecoder decoder({gz.get(), zst.get(), raw.get()}, {diffId, diffId, diffId}, 1 << 20);
    for (std::size_t layer = 0; layer < 3; ++layer) {
        EXPECT_EQ(drain(decoder, layer), plain) << layer;  // zstd too comes out as plain tar
        EXPECT_NO_THROW(decoder.finishLayer(layer));
    }
    EXPECT_TRUE(gz->contentVerifiedBefore(diffId));
    EXPECT_FALSE(gz->contentVerifiedBefore(sarus::Sha256::of("other")));
}

TEST_F(Blobs, ALayerThatIsNotItsDiffIdFailsEvenWhenTheFlattenerStopsEarly) {
    auto gz = stream("plain.gz");
    auto raw = stream("plain");
    auto wrong = sarus::Sha256::of(plain + "x");
    sarus::LayerDecoder decoder({gz.get(), raw.get()}, {wrong, sarus::Sha256::of(plain)}, 1 << 20);
    const char* data = nullptr;
    EXPECT_GT(decoder.next(0, &data), 0u);  // as a tar reader that stops at the end marker
    try {
        decoder.finishLayer(0);
        FAIL() << "a layer that is not its diff id was accepted";
    } catch (const sarus::Error& e) {
        EXPECT_NE(std::string(e.what()).find("layer 1 does not match the image configuration"), std::string::npos)
            << e.what();
    }
    EXPECT_THROW(drain(decoder, 1), sarus::Error);
    EXPECT_FALSE(gz->contentVerifiedBefore(wrong));
}
