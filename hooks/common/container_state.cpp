#include "container_state.hpp"

#include "common/error.hpp"

#include <fstream>

using json = nlohmann::json;

namespace hook {

namespace {

json parse(std::istream& in, const std::string& what) {
    try {
        return json::parse(in);
    } catch (const json::exception& e) {
        throw sarus::Error("cannot parse " + what + ": " + e.what());
    }
}

std::map<std::string, std::string> annotationsOf(const json& document) {
    std::map<std::string, std::string> annotations;
    if (document.contains("annotations") && document["annotations"].is_object()) {
        for (const auto& [key, value] : document["annotations"].items()) {
            annotations[key] = value.get<std::string>();
        }
    }
    return annotations;
}

void readBundleConfig(ContainerState& state) {
    auto file = state.bundle / "config.json";
    std::ifstream in(file);
    if (!in) {
        throw sarus::Error("cannot open " + file.string());
    }
    auto config = parse(in, file.string());
    std::filesystem::path root = config.at("root").at("path").get<std::string>();
    state.rootfs = root.is_absolute() ? root : state.bundle / root;
    const auto& process = config.value("process", json::object());
    state.env = process.value("env", std::vector<std::string>{});
    state.args = process.value("args", std::vector<std::string>{});
    const auto& user = process.value("user", json::object());
    state.uid = user.value("uid", 0u);
    state.gid = user.value("gid", 0u);
    state.additionalGids = user.value("additionalGids", std::vector<gid_t>{});
    if (state.annotations.empty()) {
        state.annotations = annotationsOf(config);
    }
}

}  // namespace

ContainerState readContainerState(std::istream& stateJson) {
    auto document = parse(stateJson, "the OCI state on stdin");
    ContainerState state;
    try {
        state.pid = document.value("pid", 0);
        state.bundle = document.at("bundle").get<std::string>();
    } catch (const json::exception& e) {
        throw sarus::Error("bad OCI state on stdin: " + std::string(e.what()));
    }
    state.annotations = annotationsOf(document);
    try {
        readBundleConfig(state);
    } catch (const json::exception& e) {
        throw sarus::Error("bad bundle config.json: " + std::string(e.what()));
    }
    return state;
}

std::string procDir(pid_t pid) {
    return pid > 0 ? "/proc/" + std::to_string(pid) : "/proc/self";
}

std::optional<std::string> containerEnvIfSet(const ContainerState& state, const std::string& name) {
    auto prefix = name + "=";
    for (const auto& entry : state.env) {
        if (entry.rfind(prefix, 0) == 0) {
            return entry.substr(prefix.size());
        }
    }
    return std::nullopt;
}

std::string containerEnv(const ContainerState& state, const std::string& name) {
    return containerEnvIfSet(state, name).value_or("");
}

}  // namespace hook
