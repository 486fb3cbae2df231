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

// The configuration's rootfs.diff_ids: the digest of each layer as plain
// tar, in layer order. Empty when the configuration gives none; an entry
// that is not a string is empty (and matches no layer).
std::vector<std::string> layerDiffIds(const nlohmann::json& imageConfig);

}  // namespace sarus
