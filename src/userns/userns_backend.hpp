#pragma once

#include "runtime/backend.hpp"
#include "config/config.hpp"

namespace sarus::userns {

// Unprivileged containers: user namespace, squashfuse_ll, overlayfs in the
// namespace or fuse-overlayfs, crun as root of that namespace.
class UsernsBackend : public Backend {
public:
    explicit UsernsBackend(const Config& config) : config_(config) {}
    int run(const ContainerSpec& spec, const StoredImage& image) override;

private:
    const Config& config_;
};

}  // namespace sarus::userns
