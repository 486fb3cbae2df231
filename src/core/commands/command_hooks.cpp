// `sarus hooks [--mpi]`: the hook files of hooksDir as sarus reads them at
// `sarus run`, so an admin can check what a container would get.
#include "commands.hpp"

#include "config.hpp"
#include "hooks_config.hpp"
#include "text_table.hpp"

namespace sarus {

namespace {

std::string joined(const nlohmann::json& list) {
    std::string text;
    for (const auto& item : list) {
        text += (text.empty() ? "" : ",") + item.get<std::string>();
    }
    return text;
}

}  // namespace

int commandHooks(const Config& config, bool mpiOnly) {
    std::vector<std::vector<std::string>> rows = {{"NAME", "PATH", "STAGES", "CONDITIONS"}};
    for (const auto& file : configuredHookFiles(config)) {
        if (mpiOnly && !isMpiHook(file)) {
            continue;
        }
        rows.push_back({file.name, file.json["hook"]["path"].get<std::string>(), joined(file.json["stages"]),
                        file.json["when"].dump()});
    }
    printTable(rows);
    return 0;
}

}  // namespace sarus
