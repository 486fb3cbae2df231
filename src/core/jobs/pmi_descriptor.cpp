#include "jobs/pmi_descriptor.hpp"

#include "common/log.hpp"

#include <charconv>
#include <fcntl.h>

namespace sarus {

namespace {

const std::string pmiFdPrefix = "PMI_FD=";

}  // namespace

bool isOpenDescriptor(int fd) {
    return fd >= 0 && ::fcntl(fd, F_GETFD) != -1;
}

void passPmiDescriptor(ContainerSpec& spec, const std::function<bool(int)>& isOpen) {
    for (auto& entry : spec.env) {
        if (entry.rfind(pmiFdPrefix, 0) != 0) {
            continue;
        }
        auto value = entry.substr(pmiFdPrefix.size());
        int fd = -1;
        auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), fd);
        if (error != std::errc() || end != value.data() + value.size() || fd < 0 || !isOpen(fd)) {
            log::warn("PMI_FD=" + value + " is not an open descriptor: it is not passed to the container");
            return;
        }
        // the runtime preserves descriptors from 3 on, in order
        int inContainer = 3 + static_cast<int>(spec.passFds.size());
        spec.passFds.push_back(fd);
        entry = pmiFdPrefix + std::to_string(inContainer);
        log::debug("PMI_FD " + std::to_string(fd) + " passed to the container as " + std::to_string(inContainer));
        return;
    }
}

std::vector<std::string> preserveFdsArguments(const ContainerSpec& spec) {
    if (spec.passFds.empty()) {
        return {};
    }
    return {"--preserve-fds=" + std::to_string(spec.passFds.size())};
}

}  // namespace sarus
