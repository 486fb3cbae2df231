#include "commands.hpp"

#include "runtime/container_registry.hpp"
#include "cli/text_table.hpp"
#include "config/identity.hpp"
#include "common/process.hpp"

#include <algorithm>
#include <cstdio>
#include <vector>

namespace sarus {

namespace {

// The container's first process, as runc's list shows it: the OCI
// runtime's child below the `sarus run` process. The sarus process itself
// while there is none (not started yet, or a rank that joined a shared
// container, whose process the container's agent started).
pid_t containerProcessOf(pid_t sarus) {
    std::vector<pid_t> queue{sarus};
    for (std::size_t next = 0; next < queue.size() && queue.size() < 256; ++next) {
        auto status = readProcessStatus(queue[next]);
        bool runtime = status && (status->name == "crun" || status->name == "runc");
        for (pid_t child : childrenOf(queue[next])) {
            if (runtime) {
                return child;
            }
            queue.push_back(child);
        }
    }
    return sarus;
}

}  // namespace

int commandPs() {
    // Sarus shows runc's `list` of the caller's containers: the same columns.
    auto owner = Identity::ofCaller().userName;
    std::vector<std::vector<std::string>> rows = {{"ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"}};
    for (const auto& c : ContainerRegistry::forCaller().list()) {
        rows.push_back({c.name, std::to_string(containerProcessOf(c.pid)), "running", c.bundle, c.created, owner});
    }
    printTable(rows, 12);
    return 0;
}

int commandKill(const std::string& name) {
    ContainerRegistry::forCaller().stop(name, std::chrono::milliseconds(500));
    return 0;
}

}  // namespace sarus
