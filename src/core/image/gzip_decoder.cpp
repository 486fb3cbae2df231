#include "image/gzip_decoder.hpp"

#include "common/error.hpp"

#include <isa-l/igzip_lib.h>

#include <string>

namespace sarus {

namespace {

std::string describe(int status) {
    switch (status) {
    case ISAL_INVALID_BLOCK: return "invalid deflate block";
    case ISAL_INVALID_SYMBOL: return "invalid deflate symbol";
    case ISAL_INVALID_LOOKBACK: return "invalid back-reference";
    case ISAL_INVALID_WRAPPER: return "invalid gzip header";
    case ISAL_UNSUPPORTED_METHOD: return "unsupported compression method";
    case ISAL_INCORRECT_CHECKSUM: return "wrong CRC-32 (corrupt data)";
    default: return "error " + std::to_string(status);
    }
}

}  // namespace

struct GzipDecoder::Impl {
    inflate_state state{};
    bool memberDone = false;  // a member ended; another may follow
    void start() {
        isal_inflate_init(&state);
        state.crc_flag = ISAL_GZIP;
        memberDone = false;
    }
};

GzipDecoder::GzipDecoder() : impl_(std::make_unique<Impl>()) { impl_->start(); }

GzipDecoder::~GzipDecoder() = default;

bool GzipDecoder::looksLikeGzip(std::string_view firstBytes) {
    return firstBytes.size() >= 2 && static_cast<unsigned char>(firstBytes[0]) == 0x1f &&
           static_cast<unsigned char>(firstBytes[1]) == 0x8b;
}

void GzipDecoder::feed(std::string_view input) {
    impl_->state.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(input.data()));
    impl_->state.avail_in = static_cast<uint32_t>(input.size());
}

bool GzipDecoder::needsInput() const { return impl_->state.avail_in == 0; }

bool GzipDecoder::finished() const { return impl_->memberDone && impl_->state.avail_in == 0; }

std::size_t GzipDecoder::decode(char* output, std::size_t capacity) {
    auto& s = impl_->state;
    if (impl_->memberDone) {
        if (s.avail_in == 0) {
            return 0;
        }
        // Bytes after a member: another member, or padding that gzip -d
        // ignores too (tar writers pad with zeros).
        // (A header split across feeds is parsed by igzip as it streams.)
        bool magic = s.next_in[0] == 0x1f && (s.avail_in < 2 || s.next_in[1] == 0x8b);
        if (!magic) {
            s.avail_in = 0;
            return 0;
        }
        auto* next = s.next_in;
        auto avail = s.avail_in;
        impl_->start();
        s.next_in = next;
        s.avail_in = avail;
    }
    s.next_out = reinterpret_cast<uint8_t*>(output);
    s.avail_out = static_cast<uint32_t>(capacity);
    int status = isal_inflate(&s);
    if (status < 0) {
        throw Error("cannot decompress gzip data: " + describe(status));
    }
    if (s.block_state == ISAL_BLOCK_FINISH) {
        impl_->memberDone = true;
    }
    return capacity - s.avail_out;
}

}  // namespace sarus
