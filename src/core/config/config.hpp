// sarus.json, validated against sarus.schema.json. The raw document is kept so
// that later features read their keys where they need them; the accessors
// below give the defaults in one place.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "image/layer_flattener.hpp"

namespace sarus {

enum class Mode { userns, suid };

class Config {
public:
    // Reads and validates; throws sarus::Error naming the file, the key and
    // the violated rule.
    static Config load(const std::filesystem::path& configFile,
                       const std::filesystem::path& schemaFile);

    // <prefix>/etc/sarus.json next to the running binary, or SARUS_CONFIG_FILE
    // when set and the process is not running with elevated privileges (a
    // SUID binary must never let the caller choose its configuration).
    static std::filesystem::path defaultConfigFile();
    static std::filesystem::path installPrefix();

    const nlohmann::json& json() const { return json_; }
    const std::filesystem::path& file() const { return file_; }

    Mode mode() const;
    std::filesystem::path prefixDir() const;
    std::filesystem::path tempDir() const;
    std::filesystem::path localRepositoryBaseDir() const;
    std::string localRepositoryFolder() const;
    std::filesystem::path centralizedRepositoryDir() const;  // empty if not configured
    // For images this process imports: they belong to its real user, as in Sarus.
    SquashfsOptions squashfsOptions() const;
    int metadataLockTimeoutMs() const;
    int metadataLockWarningMs() const;
    std::vector<std::string> insecureRegistries() const;

    std::string stringOr(const std::string& key, const std::string& fallback) const;

private:
    nlohmann::json json_;
    std::filesystem::path file_;
};

// Validates a JSON document against a JSON schema file; throws sarus::Error
// whose message starts with `what` (e.g. the file name). Shared with hook
// configuration files.
void validateAgainstSchema(const nlohmann::json& document, const std::filesystem::path& schemaFile,
                           const std::string& what);

nlohmann::json parseJsonFile(const std::filesystem::path& path);

}  // namespace sarus
