// Registry manifests and indexes, as a registry (or a man in the middle of
// an insecure registry) may send them, with each Content-Type.
#include "fuzz_common.hpp"
#include "registry/manifest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace m = sarus::manifest;
    auto body = fuzz::text(data, size);
    for (const auto& type : {m::media::ociManifest, m::media::ociIndex, m::media::dockerManifest,
                             m::media::dockerList, std::string("application/json"), std::string("")}) {
        fuzz::refusalsAllowed([&] {
            auto manifest = m::parse(body, type);
            for (const auto& layer : manifest.layers) {
                if (!m::isValidDigest(layer.digest)) {
                    std::abort();  // parse must refuse a bad digest
                }
            }
            m::selectPlatform(manifest.manifests, m::Platform::host());
        });
    }
    return 0;
}
