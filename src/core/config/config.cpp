#include "config/config.hpp"

#include "common/decimal.hpp"
#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "common/log.hpp"

#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <set>
#include <sstream>
#include <sys/auxv.h>
#include <unistd.h>

namespace sarus {

namespace fs = std::filesystem;

nlohmann::json parseJsonFile(const fs::path& path) {
    auto text = readFile(path);
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        std::string what = e.what();
        // Drop nlohmann's "[json.exception.parse_error.101] " tag: users need the position.
        if (auto pos = what.find("] "); pos != std::string::npos) {
            what = what.substr(pos + 2);
        }
        throw Error(path.string() + ": invalid JSON: " + what);
    }
}

namespace {

std::string describeContext(const std::vector<std::string>& context) {
    std::string key;
    for (const auto& part : context) {
        if (part == "<root>") {
            continue;
        }
        // valijson writes "[name]" for properties and "[3]" for array items.
        auto inner = part.size() > 2 && part.front() == '[' ? part.substr(1, part.size() - 2) : part;
        if (isDecimalNumber(inner)) {
            key += "[" + inner + "]";
        } else {
            key += (key.empty() ? "" : ".") + inner;
        }
    }
    return key;
}

}  // namespace

void validateAgainstSchema(const nlohmann::json& document, const fs::path& schemaFile,
                           const std::string& what) {
    auto schemaJson = parseJsonFile(schemaFile);
    valijson::Schema schema;
    valijson::SchemaParser parser;
    valijson::adapters::NlohmannJsonAdapter schemaAdapter(schemaJson);
    try {
        parser.populateSchema(schemaAdapter, schema);
    } catch (const std::exception& e) {
        throw Error(schemaFile.string() + ": invalid schema: " + e.what());
    }
    valijson::Validator validator;
    valijson::ValidationResults results;
    valijson::adapters::NlohmannJsonAdapter target(document);
    if (validator.validate(schema, target, &results)) {
        return;
    }
    // The deepest error names the offending key; outer ones only repeat
    // "failed to validate against the schema of property X".
    valijson::ValidationResults::Error error, deepest;
    while (results.popError(error)) {
        if (error.context.size() > deepest.context.size() || deepest.description.empty()) {
            deepest = error;
        }
    }
    auto key = describeContext(deepest.context);
    throw Error(what + ": " + (key.empty() ? std::string("document") : "key '" + key + "'") +
                ": " + deepest.description);
}

Config Config::load(const fs::path& configFile, const fs::path& schemaFile) {
    Config config;
    config.file_ = configFile;
    config.json_ = withContext("loading configuration", [&] { return parseJsonFile(configFile); });
    validateAgainstSchema(config.json_, schemaFile, configFile.string());
    return config;
}

fs::path Config::installPrefix() {
    std::error_code ec;
    auto exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec) {
        throw Error("cannot find the sarus installation: /proc/self/exe: " + ec.message());
    }
    // bin/sarus, or libexec/sarus/sarus-import
    auto dir = exe.parent_path();
    if (dir.filename() == "sarus" && dir.parent_path().filename() == "libexec") {
        return dir.parent_path().parent_path();
    }
    return dir.parent_path();
}

fs::path Config::defaultConfigFile() {
    // AT_SECURE is set by the kernel for every set-user-ID exec, and stays
    // true after sarus switched its effective ids to the caller's.
    bool elevated = ::getauxval(AT_SECURE) != 0;
    if (const char* override = std::getenv("SARUS_CONFIG_FILE"); override && !elevated) {
        return override;
    }
    return installPrefix() / "etc" / "sarus.json";
}

Mode Config::mode() const {
    return stringOr("mode", "userns") == "suid" ? Mode::suid : Mode::userns;
}

std::string Config::stringOr(const std::string& key, const std::string& fallback) const {
    auto it = json_.find(key);
    return it != json_.end() && it->is_string() ? it->get<std::string>() : fallback;
}

fs::path Config::prefixDir() const { return stringOr("prefixDir", installPrefix().string()); }
fs::path Config::tempDir() const { return stringOr("tempDir", "/tmp"); }
fs::path Config::localRepositoryBaseDir() const { return stringOr("localRepositoryBaseDir", "/home"); }
std::string Config::localRepositoryFolder() const { return stringOr("localRepositoryFolder", ".sarus"); }
fs::path Config::centralizedRepositoryDir() const { return stringOr("centralizedRepositoryDir", ""); }

namespace {

// mksquashfs's "-b 128K", "-b 65536".
std::uint32_t blockSizeOf(const std::string& text) {
    char* end = nullptr;
    unsigned long long value = std::strtoull(text.c_str(), &end, 10);
    std::string suffix = end ? end : "";
    if (suffix == "K" || suffix == "k") {
        value <<= 10;
    } else if (suffix == "M" || suffix == "m") {
        value <<= 20;
    } else if (!suffix.empty()) {
        value = 0;
    }
    bool powerOfTwo = value >= 4096 && value <= (1u << 20) && (value & (value - 1)) == 0;
    if (!powerOfTwo) {
        throw Error("mksquashfsOptions: '-b " + text + "' is not a block size of 4K to 1M, a power of two");
    }
    return static_cast<std::uint32_t>(value);
}

// The options of a Sarus 1.7 sarus.json for its mksquashfs, which this
// engine does not run: what they choose of the image's format is applied
// (-comp, -b, -Xcompression-level, -processors), the rest means nothing here.
void applyMksquashfsOptions(const std::string& text, SquashfsOptions& options) {
    std::istringstream in(text);
    std::vector<std::string> words{std::istream_iterator<std::string>(in), std::istream_iterator<std::string>()};
    auto valueAfter = [&](std::size_t& i) -> const std::string& {
        if (i + 1 >= words.size()) {
            throw Error("mksquashfsOptions: '" + words[i] + "' needs a value");
        }
        return words[++i];
    };
    for (std::size_t i = 0; i < words.size(); ++i) {
        const auto& word = words[i];
        if (word == "-comp") {
            const auto& name = valueAfter(i);
            static const std::set<std::string> known = {"gzip", "lzo", "lz4", "xz", "zstd", "lzma"};
            if (known.count(name) == 0) {
                throw Error("mksquashfsOptions: unknown compressor '" + name + "'");
            }
            options.compressor = name;
            options.level = 0;  // the compressor's own default, as mksquashfs
        } else if (word == "-b") {
            options.blockSize = blockSizeOf(valueAfter(i));
        } else if (word == "-Xcompression-level") {
            options.level = static_cast<int>(std::clamp(std::strtol(valueAfter(i).c_str(), nullptr, 10), 0L, 22L));
        } else if (word == "-processors") {
            options.workers =
                static_cast<unsigned>(std::clamp(std::strtol(valueAfter(i).c_str(), nullptr, 10), 1L, 1024L));
        } else {
            log::verbose("mksquashfsOptions: '" + word + "' has no counterpart in this engine's image writer");
        }
    }
}

}  // namespace

SquashfsOptions Config::squashfsOptions() const {
    SquashfsOptions options;
    options.owner = ImageOwner::ofCaller();
    auto it = json_.find("squashfs");
    if (it != json_.end()) {
        options.compressor = it->value("compression", options.compressor);
        options.level = it->value("level", options.level);
        options.blockSize = it->value("blockSize", options.blockSize);
    } else if (auto legacy = json_.find("mksquashfsOptions"); legacy != json_.end() && legacy->is_string()) {
        applyMksquashfsOptions(legacy->get<std::string>(), options);
    }
    return options;
}

int Config::metadataLockTimeoutMs() const {
    auto it = json_.find("repositoryMetadataLockTimings");
    return it != json_.end() ? it->value("timeoutMs", 60000) : 60000;
}

int Config::metadataLockWarningMs() const {
    auto it = json_.find("repositoryMetadataLockTimings");
    return it != json_.end() ? it->value("warningMs", 10000) : 10000;
}

std::vector<std::string> Config::insecureRegistries() const {
    auto it = json_.find("insecureRegistries");
    return it != json_.end() ? it->get<std::vector<std::string>>() : std::vector<std::string>{};
}

}  // namespace sarus
