#include "commands.hpp"

#include "runtime/container_registry.hpp"
#include "cli/text_table.hpp"

#include <algorithm>
#include <cstdio>

namespace sarus {

int commandPs() {
    auto containers = ContainerRegistry::forCaller().list();
    std::vector<std::vector<std::string>> rows = {{"NAME", "PID", "IMAGE", "CREATED", "COMMAND"}};
    for (const auto& c : containers) {
        rows.push_back({c.name, std::to_string(c.pid), c.image, c.created, c.command});
    }
    printTable(rows);
    return 0;
}

int commandKill(const std::string& name) {
    ContainerRegistry::forCaller().stop(name, std::chrono::milliseconds(500));
    return 0;
}

}  // namespace sarus
