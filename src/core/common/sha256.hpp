#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace sarus {

// Incremental SHA-256 (OpenSSL), used to verify blobs while they stream.
class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    void update(const void* data, std::size_t size);
    // "sha256:<64 hex>"; the object cannot be updated afterwards.
    std::string digest();
    static std::string of(const std::string& data);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sarus
