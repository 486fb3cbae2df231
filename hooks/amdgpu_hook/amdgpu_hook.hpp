// amdgpu_hook: gives the container the host's ROCm devices. /dev/kfd is the
// compute interface shared by every AMD GPU; each GPU also has a DRM card
// node and a render node under /dev/dri, and ROCm opens both.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace hook {

struct AmdGpu {
    std::string card;    // e.g. /dev/dri/card1
    std::string render;  // e.g. /dev/dri/renderD129
};

// The AMD GPUs under driDir in the order ROCm numbers them (by card number).
// A card is paired with its render node through driDir/by-path, where both
// are linked as pci-<address>-card and pci-<address>-render; without by-path,
// DRM's own numbering pairs cardN with renderD<128+N>. A card whose driver
// sysDrmDir/cardN/device/driver is known and is not amdgpu (a BMC's VGA, say)
// is left out.
std::vector<AmdGpu> discoverAmdGpus(const std::filesystem::path& driDir,
                                    const std::filesystem::path& sysDrmDir);

// ROCR_VISIBLE_DEVICES ("0,2") applied to the discovered GPUs: all of them
// when unset. An index beyond the GPUs present is an error naming it; an id
// that is not an index (a "GPU-<uuid>") selects all GPUs, with a warning,
// and leaves the choice to ROCm inside the container.
std::vector<AmdGpu> selectVisibleGpus(const std::vector<AmdGpu>& gpus,
                                      const std::optional<std::string>& visibleDevices);

// The whole hook; returns the exit status.
int runAmdGpuHook();

}  // namespace hook
