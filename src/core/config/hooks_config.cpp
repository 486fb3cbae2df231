#include "config/hooks_config.hpp"

#include "config/config.hpp"
#include "common/error.hpp"
#include "common/log.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <regex>
#include <unistd.h>

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace sarus {

namespace {

const char* const stages[] = {"prestart", "createRuntime", "createContainer",
                              "startContainer", "poststart", "poststop"};

// oci-hooks(5) patterns are regular expressions; we require them to match the
// whole string so that "^...$" and "..." mean the same (no accidental prefix match).
// libstdc++'s default matcher backtracks: a pattern such as "(a*)*b" takes
// exponential time, and a hook file would hang every sarus run. Its
// polynomial matcher cannot, and refuses back-references, which oci-hooks
// patterns (Go's regexp) do not have either.
// libstdc++ reads a back-reference number or a repetition count into an
// int with no bound (signed overflow, undefined behaviour); a hook pattern
// never needs more than a few digits there.
void refuseOversizedNumbers(const std::string& pattern, const std::string& what) {
    constexpr std::size_t maxDigits = 5;
    auto digitsFrom = [&](std::size_t at) {
        std::size_t end = at;
        while (end < pattern.size() && std::isdigit(static_cast<unsigned char>(pattern[end]))) {
            ++end;
        }
        return end - at;
    };
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        std::size_t digits = 0;
        if (pattern[i] == '\\') {
            digits = digitsFrom(i + 1);
            ++i;  // the escaped character, which may be a backslash
        } else if (pattern[i] == '{') {
            digits = digitsFrom(i + 1);
            auto comma = i + 1 + digits;
            if (comma < pattern.size() && pattern[comma] == ',') {
                digits = std::max(digits, digitsFrom(comma + 1));
            }
        }
        if (digits > maxDigits) {
            throw Error("invalid regular expression '" + pattern + "' in " + what +
                        ": a back-reference or repetition count of more than " + std::to_string(maxDigits) +
                        " digits");
        }
    }
}

}  // namespace

std::regex compileHookPattern(const std::string& pattern, const std::string& what) {
    refuseOversizedNumbers(pattern, what);
    try {
        return std::regex(pattern, std::regex::ECMAScript | std::regex_constants::__polynomial);
    } catch (const std::regex_error& e) {
        throw Error("invalid regular expression '" + pattern + "' in " + what + ": " + e.what());
    }
}

namespace {

bool fullMatch(const std::string& text, const std::string& pattern, const std::string& what) {
    return std::regex_match(text, compileHookPattern(pattern, what));
}

bool annotationsMatch(const json& conditions, const ContainerSpec& spec) {
    for (const auto& condition : conditions.items()) {
        const auto& keyPattern = condition.key();
        auto valuePattern = condition.value().get<std::string>();
        auto matches = [&](const auto& annotation) {
            return fullMatch(annotation.first, keyPattern, "when.annotations") &&
                   fullMatch(annotation.second, valuePattern, "when.annotations");
        };
        if (std::none_of(spec.selectingAnnotations.begin(), spec.selectingAnnotations.end(), matches)) {
            return false;
        }
    }
    return true;
}

bool commandsMatch(const json& patterns, const ContainerSpec& spec) {
    if (spec.args.empty()) {
        return false;
    }
    for (const auto& pattern : patterns) {
        if (fullMatch(spec.args[0], pattern.get<std::string>(), "when.commands")) {
            return true;
        }
    }
    return false;
}

// NAME=VALUE entries with one entry per name, the last one given: a hook
// reads the first of duplicates with getenv, Sarus's hooks got the last.
json lastOfEachVariable(const json& env) {
    std::vector<std::string> entries;
    for (const auto& item : env) {
        auto entry = item.get<std::string>();
        auto name = entry.substr(0, entry.find('='));
        entries.erase(std::remove_if(entries.begin(), entries.end(),
                                     [&](const std::string& e) { return e.substr(0, e.find('=')) == name; }),
                      entries.end());
        entries.push_back(entry);
    }
    return entries;
}

json runtimeEntry(const json& hook) {
    json entry = {{"path", hook.at("path")}};
    for (const char* key : {"args", "env", "timeout"}) {
        if (hook.contains(key)) {
            entry[key] = hook[key];
        }
    }
    if (entry.contains("env")) {
        entry["env"] = lastOfEachVariable(entry["env"]);
    }
    return entry;
}

}  // namespace

std::vector<HookFile> loadHookFiles(const fs::path& hooksDir, const fs::path& schemaFile) {
    std::vector<fs::path> paths;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(hooksDir, ec)) {
        if (entry.path().extension() == ".json") {
            paths.push_back(entry.path());
        }
    }
    if (ec && ec != std::errc::no_such_file_or_directory) {
        throw Error("cannot read hooksDir '" + hooksDir.string() + "': " + ec.message());
    }
    std::sort(paths.begin(), paths.end());
    std::vector<HookFile> files;
    for (const auto& path : paths) {
        auto what = "hook configuration file " + path.string();
        json document;
        try {
            document = parseJsonFile(path);
        } catch (Error& e) {
            throw Error(what + ": " + e.what());
        }
        validateAgainstSchema(document, schemaFile, what);
        files.push_back({path.filename().string(), std::move(document)});
    }
    return files;
}

bool hookApplies(const json& when, const ContainerSpec& spec) {
    if (when.contains("always") && !when["always"].get<bool>()) {
        return false;
    }
    if (when.contains("hasBindMounts")) {
        bool has = !spec.userMounts.empty() || !spec.siteMounts.empty();
        if (when["hasBindMounts"].get<bool>() != has) {
            return false;
        }
    }
    if (when.contains("annotations") && !annotationsMatch(when["annotations"], spec)) {
        return false;
    }
    if (when.contains("commands") && !commandsMatch(when["commands"], spec)) {
        return false;
    }
    return true;
}

json selectHooks(const ContainerSpec& spec, const std::vector<HookFile>& files, const json& legacyOciHooks) {
    json hooks = json::object();
    for (const auto& file : files) {
        bool applies = withContext("in hook configuration file " + file.name,
                                   [&] { return hookApplies(file.json.at("when"), spec); });
        if (!applies) {
            continue;
        }
        for (const auto& stage : file.json.at("stages")) {
            hooks[stage.get<std::string>()].push_back(runtimeEntry(file.json.at("hook")));
        }
    }
    if (legacyOciHooks.is_object()) {
        for (const char* stage : stages) {
            if (legacyOciHooks.contains(stage)) {
                for (const auto& entry : legacyOciHooks[stage]) {
                    hooks[stage].push_back(entry);
                }
            }
        }
    }
    return hooks;
}

std::vector<HookFile> configuredHookFiles(const Config& config) {
    auto hooksDir = config.stringOr("hooksDir", "");
    if (hooksDir.empty()) {
        return {};
    }
    return loadHookFiles(hooksDir, Config::installPrefix() / "etc" / "hook.schema.json");
}

namespace {

bool someConditionNames(const std::string& key, const std::vector<HookFile>& files) {
    for (const auto& file : files) {
        const auto& when = file.json.at("when");
        if (!when.contains("annotations")) {
            continue;
        }
        for (const auto& condition : when["annotations"].items()) {
            if (fullMatch(key, condition.key(), "when.annotations of " + file.name)) {
                return true;
            }
        }
    }
    return false;
}

}  // namespace

std::vector<std::string> unheededAnnotations(const std::vector<std::string>& requested,
                                             const std::vector<HookFile>& files) {
    std::vector<std::string> unheeded;
    for (const auto& key : requested) {
        // com.hooks.ssh.port is read by the hook that com.hooks.ssh.enabled
        // selects: it counts when that one is requested and heeded.
        auto enabled = key.substr(0, key.rfind('.')) + ".enabled";
        bool heeded = someConditionNames(key, files) ||
                      (key != enabled && std::find(requested.begin(), requested.end(), enabled) != requested.end() &&
                       someConditionNames(enabled, files));
        if (!heeded) {
            unheeded.push_back(key);
        }
    }
    return unheeded;
}

json configuredHooks(const Config& config, const ContainerSpec& spec) {
    auto legacy = config.json().contains("OCIHooks") ? config.json()["OCIHooks"] : json::object();
    auto files = configuredHookFiles(config);
    auto hooksDir = config.stringOr("hooksDir", "");
    // A missing program would only show as the runtime's failure to start a hook.
    for (const auto& file : files) {
        auto program = file.json.at("hook").at("path").get<std::string>();
        if (hookApplies(file.json.at("when"), spec) && ::access(program.c_str(), X_OK) != 0) {
            throw systemError("hook configuration file " + (fs::path(hooksDir) / file.name).string() +
                                  ": cannot run its program " + program,
                              errno);
        }
    }
    for (const auto& key : unheededAnnotations(spec.requestedHookAnnotations, files)) {
        log::warn("no hook" + (hooksDir.empty() ? std::string(" is configured") : " in " + hooksDir) +
                  " acts on " + key + ": it changes nothing in the container");
    }
    return selectHooks(spec, files, legacy);
}

std::optional<std::string> mpiTypeOf(const HookFile& file) {
    const auto& when = file.json.at("when");
    if (!when.contains("annotations")) {
        return std::nullopt;
    }
    bool enabled = false;
    std::string type;
    for (const auto& item : when["annotations"].items()) {
        auto what = "when.annotations of " + file.name;
        const auto& valuePattern = item.value().get<std::string>();
        if (fullMatch("com.hooks.mpi.enabled", item.key(), what) && fullMatch("true", valuePattern, what)) {
            enabled = true;
        }
        if (fullMatch("com.hooks.mpi.type", item.key(), what)) {
            type = valuePattern;
        }
    }
    return enabled ? std::optional<std::string>(type) : std::nullopt;
}

}  // namespace sarus
