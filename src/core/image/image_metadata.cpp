#include "image/image_metadata.hpp"

#include "common/error.hpp"

namespace sarus {

namespace {

std::optional<std::vector<std::string>> stringListOrNull(const nlohmann::json& object,
                                                         const char* key) {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) {
        return std::nullopt;
    }
    if (!it->is_array()) {
        throw Error(std::string("image configuration: '") + key + "' is not a list of strings");
    }
    return it->get<std::vector<std::string>>();
}

}  // namespace

ImageMetadata ImageMetadata::fromImageConfig(const nlohmann::json& imageConfig) {
    ImageMetadata meta;
    if (!imageConfig.is_object()) {
        throw Error("image configuration is not a JSON object");
    }
    auto it = imageConfig.find("config");
    if (it == imageConfig.end() || it->is_null()) {
        return meta;
    }
    try {
        const auto& config = *it;
        meta.cmd = stringListOrNull(config, "Cmd");
        meta.entrypoint = stringListOrNull(config, "Entrypoint");
        if (auto wd = config.find("WorkingDir"); wd != config.end() && wd->is_string()) {
            meta.workingDir = wd->get<std::string>();
        }
        if (auto env = stringListOrNull(config, "Env")) {
            meta.env = *env;
        }
        if (auto labels = config.find("Labels"); labels != config.end() && labels->is_object()) {
            meta.labels = labels->get<std::map<std::string, std::string>>();
        }
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("image configuration has an unexpected type: ") + e.what());
    }
    return meta;
}

ImageMetadata ImageMetadata::fromJson(const nlohmann::json& json) {
    // The .meta file lives in the user's repository: any content is possible.
    if (!json.is_object()) {
        throw Error("image metadata is not a JSON object");
    }
    ImageMetadata meta;
    try {
        meta.cmd = stringListOrNull(json, "Cmd");
        meta.entrypoint = stringListOrNull(json, "Entrypoint");
        meta.workingDir = json.value("WorkingDir", "");
        meta.env = json.value("Env", std::vector<std::string>{});
        meta.labels = json.value("Labels", std::map<std::string, std::string>{});
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("image metadata has an unexpected type: ") + e.what());
    }
    return meta;
}

nlohmann::json ImageMetadata::toJson() const {
    nlohmann::json json;
    json["Cmd"] = cmd ? nlohmann::json(*cmd) : nlohmann::json(nullptr);
    json["Entrypoint"] = entrypoint ? nlohmann::json(*entrypoint) : nlohmann::json(nullptr);
    json["WorkingDir"] = workingDir;
    json["Env"] = env;
    json["Labels"] = labels;
    return json;
}

std::vector<std::string> layerDiffIds(const nlohmann::json& imageConfig) {
    std::vector<std::string> ids;
    if (!imageConfig.is_object() || !imageConfig.contains("rootfs") || !imageConfig["rootfs"].is_object()) {
        return ids;
    }
    const auto& rootfs = imageConfig["rootfs"];
    if (!rootfs.contains("diff_ids") || !rootfs["diff_ids"].is_array()) {
        return ids;
    }
    for (const auto& id : rootfs["diff_ids"]) {
        ids.push_back(id.is_string() ? id.get<std::string>() : "");
    }
    return ids;
}

}  // namespace sarus
