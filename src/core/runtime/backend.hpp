// The mode seam: everything above this interface (CLI, configuration, image
// store, container spec, config.json) is shared; a backend only turns a spec
// into namespaces, a root filesystem and a runtime call.
#pragma once

#include "runtime/container_spec.hpp"
#include "image/image_store.hpp"

#include <memory>

namespace sarus {

class Config;

class Backend {
public:
    virtual ~Backend() = default;
    // Runs the container to completion; returns its exit code (128+N when a
    // signal N ended it). Throws sarus::Error when it cannot be started.
    virtual int run(const ContainerSpec& spec, const StoredImage& image) = 0;
};

// Selected by "mode" in sarus.json.
std::unique_ptr<Backend> makeBackend(const Config& config);

}  // namespace sarus
