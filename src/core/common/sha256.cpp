#include "common/sha256.hpp"

#include "common/error.hpp"

#include <openssl/evp.h>

namespace sarus {

struct Sha256::Impl {
    EVP_MD_CTX* context = EVP_MD_CTX_new();
    ~Impl() { EVP_MD_CTX_free(context); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
    if (impl_->context == nullptr || EVP_DigestInit_ex(impl_->context, EVP_sha256(), nullptr) != 1) {
        throw Error("cannot initialise SHA-256");
    }
}

Sha256::~Sha256() = default;

void Sha256::update(const void* data, std::size_t size) {
    EVP_DigestUpdate(impl_->context, data, size);
}

std::string Sha256::digest() {
    unsigned char hash[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(impl_->context, hash, &length);
    static const char* hex = "0123456789abcdef";
    std::string out = "sha256:";
    for (unsigned int i = 0; i < length; ++i) {
        out += hex[hash[i] >> 4];
        out += hex[hash[i] & 0xf];
    }
    return out;
}

std::string Sha256::of(const std::string& data) {
    Sha256 hash;
    hash.update(data.data(), data.size());
    return hash.digest();
}

}  // namespace sarus
