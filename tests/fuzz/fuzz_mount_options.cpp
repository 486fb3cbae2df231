// --mount and --device strings, and the userMounts rules applied to them.
#include "fuzz_common.hpp"
#include "runtime/mount_options.hpp"

#include <cstdlib>

namespace {

void checkNormalized(const std::string& path) {
    if (path.empty() || path[0] != '/' || path.find("//") != std::string::npos ||
        path.find("/./") != std::string::npos || path.find("/../") != std::string::npos ||
        (path.size() > 1 && path.back() == '/')) {
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto input = fuzz::text(data, size);
    sarus::UserMountRestrictions rules{{"/etc", "/var", "/opt/sarus"}, {"/opt"}};
    fuzz::refusalsAllowed([&] {
        auto mount = sarus::parseMount(input);
        checkNormalized(mount.destination);
        if (mount.destination == "/") {
            std::abort();
        }
        sarus::checkUserMountDestination(mount.destination, rules, mount.request);
        if (sarus::isSameOrBelow(mount.destination, "/etc")) {
            std::abort();  // the rule above must have refused it
        }
    });
    fuzz::refusalsAllowed([&] {
        auto device = sarus::parseDevice(input);
        checkNormalized(device.destination);
        if (device.access.empty() || device.access.find_first_not_of("rwm") != std::string::npos) {
            std::abort();
        }
    });
    checkNormalized(sarus::normalizeAbsolutePath("/" + input));
    return 0;
}
