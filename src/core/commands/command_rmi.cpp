#include "commands.hpp"

#include "config/config.hpp"
#include "image/image_store.hpp"

#include <cstdio>

namespace sarus {

int commandRmi(const Config& config, const RmiOptions& options) {
    auto reference = ImageReference::parseArgument(options.reference, "rmi");
    auto store = options.centralizedRepository ? ImageStore::centralized(config)
                                               : ImageStore::local(config);
    auto removed = store.remove(reference);
    std::printf("removed image %s\n", removed.reference.normalized().c_str());
    return 0;
}

}  // namespace sarus
