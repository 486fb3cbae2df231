// An image's configuration (from an archive or a registry) and the .meta file
// sarus stores from it, then the container spec built from them.
#include "runtime/container_spec.hpp"
#include "fuzz_common.hpp"
#include "image/image_metadata.hpp"

namespace {

void useMetadata(const sarus::ImageMetadata& metadata) {
    sarus::RunOptions options;
    fuzz::refusalsAllowed([&] { sarus::buildArgs(metadata, options); });
    sarus::buildWorkingDirectory(metadata, options);
    sarus::buildEnvironment({"PATH=/usr/bin"}, metadata.env, nlohmann::json(), {});
    sarus::buildAnnotations(metadata, options, "mpich");
    auto again = sarus::ImageMetadata::fromJson(metadata.toJson());
    if (again.toJson() != metadata.toJson()) {
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    nlohmann::json document;
    try {
        document = nlohmann::json::parse(fuzz::text(data, size));
    } catch (const nlohmann::json::exception&) {
        return 0;
    }
    fuzz::refusalsAllowed([&] { useMetadata(sarus::ImageMetadata::fromImageConfig(document)); });
    fuzz::refusalsAllowed([&] { useMetadata(sarus::ImageMetadata::fromJson(document)); });
    return 0;
}
