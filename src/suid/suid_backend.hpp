#pragma once

#include "runtime/backend.hpp"
#include "config/config.hpp"

namespace sarus::suid {

// The classic Sarus path: a root-owned SUID sarus loop-mounts the image,
// uses kernel overlayfs and runs runc/crun as root, acting as the caller for
// everything the caller controls.
class SuidBackend : public Backend {
public:
    explicit SuidBackend(const Config& config) : config_(config) {}
    int run(const ContainerSpec& spec, const StoredImage& image) override;

private:
    const Config& config_;
};

}  // namespace sarus::suid
