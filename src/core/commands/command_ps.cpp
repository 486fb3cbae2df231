#include "commands.hpp"

#include "runtime/container_registry.hpp"
#include "cli/text_table.hpp"
#include "config/identity.hpp"

#include <algorithm>
#include <cstdio>

namespace sarus {

int commandPs() {
    // Sarus shows runc's `list` of the caller's containers: the same columns.
    auto owner = Identity::ofCaller().userName;
    std::vector<std::vector<std::string>> rows = {{"ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"}};
    for (const auto& c : ContainerRegistry::forCaller().list()) {
        rows.push_back({c.name, std::to_string(c.pid), "running", c.bundle, c.created, owner});
    }
    printTable(rows, 12);
    return 0;
}

int commandKill(const std::string& name) {
    ContainerRegistry::forCaller().stop(name, std::chrono::milliseconds(500));
    return 0;
}

}  // namespace sarus
