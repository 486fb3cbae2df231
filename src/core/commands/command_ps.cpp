#include "commands.hpp"

#include "container_registry.hpp"

#include <algorithm>
#include <cstdio>

namespace sarus {

int commandPs() {
    auto containers = ContainerRegistry::forCaller().list();
    std::vector<std::vector<std::string>> rows = {{"NAME", "PID", "IMAGE", "CREATED", "COMMAND"}};
    for (const auto& c : containers) {
        rows.push_back({c.name, std::to_string(c.pid), c.image, c.created, c.command});
    }
    std::vector<std::size_t> widths(rows[0].size(), 0);
    for (const auto& row : rows) {
        for (std::size_t i = 0; i < row.size(); ++i) {
            widths[i] = std::max(widths[i], row[i].size());
        }
    }
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += row[i] + (i + 1 < row.size() ? std::string(widths[i] - row[i].size() + 3, ' ') : "");
        }
        std::printf("%s\n", line.c_str());
    }
    return 0;
}

int commandKill(const std::string& name) {
    ContainerRegistry::forCaller().stop(name, 3);
    return 0;
}

}  // namespace sarus
