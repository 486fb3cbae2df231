// The subset of an OCI image configuration that `sarus run` needs, stored
// beside the squashfs as <tag>.meta.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sarus {

struct ImageMetadata {
    std::optional<std::vector<std::string>> cmd;
    std::optional<std::vector<std::string>> entrypoint;
    std::string workingDir;
    std::vector<std::string> env;  // "NAME=VALUE", in image order
    std::map<std::string, std::string> labels;

    // From an OCI/Docker image configuration document (its "config" object).
    static ImageMetadata fromImageConfig(const nlohmann::json& imageConfig);
    static ImageMetadata fromJson(const nlohmann::json& meta);
    nlohmann::json toJson() const;
};

}  // namespace sarus
