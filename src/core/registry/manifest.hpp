// Registry manifests (OCI image manifest and index, Docker schema 2 manifest
// and manifest list) parsed into one shape, and the choice of the image that
// fits this machine in an index. Pure: no I/O, unit-tested.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sarus::manifest {

namespace media {
inline const std::string ociManifest = "application/vnd.oci.image.manifest.v1+json";
inline const std::string ociIndex = "application/vnd.oci.image.index.v1+json";
inline const std::string dockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
inline const std::string dockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
inline const std::string dockerSchema1 = "application/vnd.docker.distribution.manifest.v1+json";
inline const std::string dockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws";
}  // namespace media

// The value of the Accept header of manifest requests, best first.
std::string acceptHeader();

struct Platform {
    std::string os;
    std::string architecture;
    std::string variant;

    // This machine, in OCI terms (uname's x86_64 is amd64, aarch64 arm64...).
    static Platform host();
    // Canonical spelling: lower case, architecture aliases resolved, default
    // variants dropped (arm64/v8 is arm64, amd64/v1 is amd64).
    Platform normalized() const;
    std::string toString() const;  // "linux/arm/v7"
};

struct Descriptor {
    std::string mediaType;
    std::string digest;
    std::int64_t size = -1;
    std::optional<Platform> platform;  // index entries only
};

enum class Kind { image, index };

struct Manifest {
    Kind kind = Kind::image;
    std::string mediaType;
    Descriptor config;                  // image
    std::vector<Descriptor> layers;     // image
    std::vector<Descriptor> manifests;  // index
};

// Parses a manifest body; contentType is the response's Content-Type (its
// parameters are ignored). The media type is taken from the document and
// must agree with a specific Content-Type. Throws sarus::Error saying what is
// wrong (schema 1, unknown type, missing fields, a bad digest...).
Manifest parse(const std::string& body, const std::string& contentType);

// The entry of an index that runs on `wanted`, or nothing. An exact variant
// is preferred; otherwise the newest compatible one (arm/v6 on an arm/v7
// host). Entries without a platform or for another OS are never chosen.
std::optional<Descriptor> selectPlatform(const std::vector<Descriptor>& manifests,
                                         const Platform& wanted);

// Layer media types the flattener can read (tar, gzip, zstd).
bool isSupportedLayerType(const std::string& mediaType);

// "sha256:<64 lowercase hex>"; other algorithms are refused because blobs are
// verified with SHA-256.
bool isValidDigest(const std::string& digest);

}  // namespace sarus::manifest
