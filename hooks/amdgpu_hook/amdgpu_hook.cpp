#include "amdgpu_hook.hpp"

#include "container_state.hpp"
#include "common/error.hpp"
#include "hook_log.hpp"
#include "hook_main.hpp"
#include "mounts.hpp"
#include "namespaces.hpp"

#include <algorithm>
#include <iostream>
#include <map>
#include <sstream>

namespace fs = std::filesystem;

namespace hook {

namespace {

const std::string kfdDevice = "/dev/kfd";
const std::string driDirectory = "/dev/dri";
const std::string sysDrmDirectory = "/sys/class/drm";
const unsigned firstRenderMinor = 128;  // DRM: renderD<128+N> serves cardN

// "card12" -> 12; nullopt for anything else (card0-VGA-1 connectors, by-path, ...).
std::optional<unsigned> nodeNumber(const std::string& name, const std::string& prefix) {
    if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size() ||
        name.find_first_not_of("0123456789", prefix.size()) != std::string::npos) {
        return std::nullopt;
    }
    return static_cast<unsigned>(std::stoul(name.substr(prefix.size())));
}

// The card's kernel driver when sysfs names one, "" when unknown.
std::string cardDriver(const fs::path& sysDrmDir, const std::string& card) {
    std::error_code ec;
    auto driver = fs::read_symlink(sysDrmDir / card / "device" / "driver", ec);
    return ec ? "" : driver.filename().string();
}

// card name -> render name, from by-path's pci-<address>-card/-render links.
std::map<std::string, std::string> renderNodesByPath(const fs::path& driDir) {
    std::map<std::string, std::string> cardOfAddress, renderOfAddress;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(driDir / "by-path", ec)) {
        auto name = entry.path().filename().string();
        auto target = fs::read_symlink(entry.path(), ec).filename().string();
        if (ec) {
            continue;
        }
        auto dash = name.rfind('-');
        if (dash == std::string::npos) {
            continue;
        }
        auto address = name.substr(0, dash);
        auto kind = name.substr(dash + 1);
        if (kind == "card") {
            cardOfAddress[address] = target;
        } else if (kind == "render") {
            renderOfAddress[address] = target;
        }
    }
    std::map<std::string, std::string> renderOfCard;
    for (const auto& [address, card] : cardOfAddress) {
        if (auto render = renderOfAddress.find(address); render != renderOfAddress.end()) {
            renderOfCard[card] = render->second;
        }
    }
    return renderOfCard;
}

bool isIndex(const std::string& id) {
    return !id.empty() && id.find_first_not_of("0123456789") == std::string::npos;
}

std::vector<std::string> splitCommaList(const std::string& list) {
    std::vector<std::string> items;
    std::stringstream in(list);
    for (std::string item; std::getline(in, item, ',');) {
        item.erase(0, item.find_first_not_of(" \t"));
        item.erase(item.find_last_not_of(" \t") + 1);
        if (!item.empty()) {
            items.push_back(item);
        }
    }
    return items;
}

}  // namespace

std::vector<AmdGpu> discoverAmdGpus(const fs::path& driDir, const fs::path& sysDrmDir) {
    std::vector<std::pair<unsigned, std::string>> cards;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(driDir, ec)) {
        auto name = entry.path().filename().string();
        if (auto number = nodeNumber(name, "card")) {
            cards.emplace_back(*number, name);
        }
    }
    std::sort(cards.begin(), cards.end());
    auto byPath = renderNodesByPath(driDir);
    std::vector<AmdGpu> gpus;
    for (const auto& [number, card] : cards) {
        auto driver = cardDriver(sysDrmDir, card);
        if (!driver.empty() && driver != "amdgpu") {
            log::debug((driDir / card).string() + " left out: its driver is " + driver + ", not amdgpu");
            continue;
        }
        auto found = byPath.find(card);
        auto render = found != byPath.end() ? found->second : "renderD" + std::to_string(firstRenderMinor + number);
        if (!fs::exists(driDir / render, ec)) {
            log::warn((driDir / card).string() + " left out: no render node " + (driDir / render).string());
            continue;
        }
        gpus.push_back({(driDir / card).string(), (driDir / render).string()});
    }
    return gpus;
}

std::vector<AmdGpu> selectVisibleGpus(const std::vector<AmdGpu>& gpus,
                                      const std::optional<std::string>& visibleDevices) {
    if (!visibleDevices) {
        return gpus;
    }
    auto ids = splitCommaList(*visibleDevices);
    if (!std::all_of(ids.begin(), ids.end(), isIndex)) {
        log::warn("ROCR_VISIBLE_DEVICES='" + *visibleDevices +
                  "' names GPUs by something other than an index: all GPUs mounted, ROCm selects among them");
        return gpus;
    }
    std::vector<AmdGpu> selected;
    for (const auto& id : ids) {
        auto index = std::stoul(id);
        if (index >= gpus.size()) {
            throw sarus::Error("ROCR_VISIBLE_DEVICES='" + *visibleDevices + "': there is no GPU " + id + " (" +
                               std::to_string(gpus.size()) + " AMD GPUs under " + driDirectory + ")");
        }
        selected.push_back(gpus[index]);
    }
    return selected;
}

int runAmdGpuHook() {
    return runHookMain("AMD GPU hook", [] {
        auto state = readContainerState(std::cin);
        log::setLevelFromAnnotations(state.annotations);
        std::error_code ec;
        if (!fs::exists(kfdDevice, ec)) {
            log::info("no " + kfdDevice + " on this host: no AMD GPU to give the container");
            return;
        }
        bool rootless = isRootless();
        auto gpus = selectVisibleGpus(discoverAmdGpus(driDirectory, sysDrmDirectory),
                                      containerEnvIfSet(state, "ROCR_VISIBLE_DEVICES"));
        requireMountPrivileges(state, "amdgpu_hook");
        enterMountNamespace(state.pid);
        // ROCm still numbers GPUs from the host's kfd topology in /sys, so
        // ROCR_VISIBLE_DEVICES keeps its host meaning and is left as it is.
        deviceMount(state, {kfdDevice, kfdDevice, "rw"}, rootless);
        for (const auto& gpu : gpus) {
            deviceMount(state, {gpu.card, gpu.card, "rw"}, rootless);
            deviceMount(state, {gpu.render, gpu.render, "rw"}, rootless);
        }
        log::info(std::to_string(gpus.size()) + " AMD GPU(s) given to the container");
    });
}

}  // namespace hook
