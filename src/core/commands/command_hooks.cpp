// `sarus hooks [--mpi]`: the hook files of hooksDir as sarus reads them at
// `sarus run`, in Sarus's tables (NAME is the file name without ".json").
#include "commands.hpp"

#include "config/config.hpp"
#include "config/hooks_config.hpp"
#include "cli/text_table.hpp"

#include <algorithm>
#include <filesystem>
#include <regex>

namespace sarus {

namespace {

std::string joined(const nlohmann::json& list) {
    std::string text;
    for (const auto& item : list) {
        text += (text.empty() ? "" : ",") + item.get<std::string>();
    }
    return text;
}

std::string hookName(const HookFile& file) { return std::filesystem::path(file.name).stem().string(); }

// "^mpich$ (default)" when defaultMPIType is the type this hook accepts.
std::string mpiTypeColumn(const std::string& pattern, const std::string& defaultType) {
    bool isDefault = false;
    try {
        isDefault = !defaultType.empty() && std::regex_match(defaultType, compileHookPattern(pattern, "mpi type"));
    } catch (const std::exception&) {  // an invalid pattern, or one too complex to match
    }
    return pattern + (isDefault ? " (default)" : "");
}

}  // namespace

int commandHooks(const Config& config, bool mpiOnly) {
    auto defaultType = config.stringOr("defaultMPIType", "");
    std::vector<std::vector<std::string>> rows;
    rows.push_back(mpiOnly ? std::vector<std::string>{"NAME", "MPI TYPE"}
                           : std::vector<std::string>{"NAME", "PATH", "STAGES"});
    std::size_t longestName = 0;  // of every hook: Sarus sizes the NAME column of --mpi by them all
    for (const auto& file : configuredHookFiles(config)) {
        longestName = std::max(longestName, hookName(file).size());
        if (!mpiOnly) {
            rows.push_back({hookName(file), file.json["hook"]["path"].get<std::string>(), joined(file.json["stages"])});
        } else if (auto type = mpiTypeOf(file)) {
            rows.push_back({hookName(file), mpiTypeColumn(*type, defaultType)});
        }
    }
    printTable(rows, 13, {longestName + 3});
    return 0;
}

}  // namespace sarus
