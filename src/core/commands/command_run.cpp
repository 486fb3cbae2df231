#include "commands.hpp"

#include "backend.hpp"
#include "config.hpp"
#include "container_spec.hpp"
#include "error.hpp"
#include "identity.hpp"
#include "image_store.hpp"
#include "log.hpp"

#include <unistd.h>

extern char** environ;

namespace sarus {

namespace {

std::vector<std::string> hostEnvironment() {
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) {
        env.emplace_back(*e);
    }
    return env;
}

}  // namespace

int commandRun(const Config& config, const RunOptions& options) {
    auto reference = ImageReference::parse(options.image);
    auto store = options.centralizedRepository ? ImageStore::centralized(config) : ImageStore::local(config);
    auto image = store.find(reference);
    if (!image) {
        throw Error("image " + reference.normalized() + " not found in " + store.directory().string() +
                    " (see 'sarus images'; pull or load it first)");
    }
    auto metadata = withContext("reading " + image->metadataFile.string(), [&] {
        return ImageMetadata::fromJson(parseJsonFile(image->metadataFile));
    });
    auto spec = buildContainerSpec(config, metadata, options, hostEnvironment(), Identity::ofCaller());
    log::verbose("running " + reference.normalized() + " from " + image->imageFile.string());
    return makeBackend(config)->run(spec, *image);
}

}  // namespace sarus
