#include "config/containers_policy.hpp"

#include "config/config.hpp"
#include "common/error.hpp"

#include <system_error>
#include <vector>

namespace fs = std::filesystem;
using nlohmann::json;

namespace sarus {

namespace {

// Most specific first, as containers-policy.json(5) orders docker scopes.
std::vector<std::string> dockerScopes(const ImageReference& reference) {
    std::vector<std::string> scopes;
    auto repository = reference.server + "/" + reference.repository;
    if (!reference.tag.empty()) {
        scopes.push_back(repository + ":" + reference.tag);
    }
    if (!reference.digest.empty()) {
        scopes.push_back(repository + "@" + reference.digest);
    }
    for (auto path = repository; path.find('/') != std::string::npos; path = path.substr(0, path.rfind('/'))) {
        scopes.push_back(path);
    }
    scopes.push_back(reference.server);
    // "*.example.com" matches every subdomain of example.com, with no port
    auto host = reference.server.substr(0, reference.server.find(':'));
    for (auto dot = host.find('.'); dot != std::string::npos; dot = host.find('.', dot + 1)) {
        scopes.push_back("*" + host.substr(dot));
    }
    scopes.push_back("");
    return scopes;
}

PolicyDecision evaluateRequirements(const json& requirements, const std::string& scope) {
    auto where = scope == "default" ? std::string("\"default\"") : "scope \"" + scope + "\"";
    if (!requirements.is_array() || requirements.empty()) {
        throw Error(where + " must be a non-empty list of requirements");
    }
    for (const auto& requirement : requirements) {
        auto type = requirement.is_object() ? requirement.value("type", "") : "";
        if (type == "insecureAcceptAnything") {
            continue;
        }
        if (type == "reject") {
            return {false, scope, "the policy rejects it (" + where + ")"};
        }
        if (type == "signedBy" || type == "sigstoreSigned") {
            return {false, scope,
                    where + " requires signatures (" + type + ") and sarus does not verify image signatures"};
        }
        throw Error(where + ": unknown requirement type '" + type + "'");
    }
    return {true, scope, ""};
}

// The requirements of the first of scopes (most specific first) that the
// policy names for transport, else its "default".
PolicyDecision evaluateForTransport(const json& policy, const std::string& transport,
                                    const std::vector<std::string>& scopes) {
    if (!policy.is_object() || !policy.contains("default")) {
        throw Error("a policy needs a \"default\" list of requirements");
    }
    if (policy.contains("transports") && policy["transports"].contains(transport)) {
        const auto& named = policy["transports"][transport];
        for (const auto& scope : scopes) {
            if (named.contains(scope)) {
                return evaluateRequirements(named[scope], scope);
            }
        }
    }
    return evaluateRequirements(policy["default"], "default");
}

}  // namespace

PolicyDecision evaluatePolicy(const json& policy, const ImageReference& reference) {
    return evaluateForTransport(policy, "docker", dockerScopes(reference));
}

PolicyDecision evaluateArchivePolicy(const json& policy) {
    return evaluateForTransport(policy, "docker-archive", {""});  // its only scope is the transport's own
}

namespace {

bool pathExists(const fs::path& path) {
    std::error_code ec;
    return fs::exists(path, ec);
}

template <typename Evaluate>
void checkAllowed(const Config& config, const std::string& home, const std::string& what, Evaluate evaluate) {
    auto file = applicablePolicyFile(config, home);
    auto policy = parseJsonFile(file);  // its errors name the file
    PolicyDecision decision;
    try {
        decision = evaluate(policy);
    } catch (const Error& e) {
        throw Error(file.string() + ": " + e.what());
    }
    if (!decision.accepted) {
        throw Error(what + " is not allowed by " + file.string() + ": " + decision.reason);
    }
}

}  // namespace

fs::path applicablePolicyFile(const Config& config, const std::string& home, const fs::path& systemPolicy) {
    fs::path sitePolicy;
    bool enforce = false;
    auto it = config.json().find("containersPolicy");
    if (it != config.json().end()) {
        sitePolicy = it->value("path", "");
        if (sitePolicy.empty()) {
            throw Error(config.file().string() + ": containersPolicy needs a \"path\"");
        }
        std::error_code ec;
        if (!fs::is_regular_file(sitePolicy, ec)) {
            throw Error("Custom containers policy file '" + sitePolicy.string() +
                        "' configured in sarus.json is not a regular file. Please contact your system administrator.");
        }
        enforce = it->value("enforce", false);
    }
    if (enforce) {
        return sitePolicy;
    }
    auto userPolicy = fs::path(home) / ".config" / "containers" / "policy.json";
    if (!home.empty() && pathExists(userPolicy)) {
        return userPolicy;
    }
    if (pathExists(systemPolicy)) {
        return systemPolicy;
    }
    if (!sitePolicy.empty()) {
        return sitePolicy;
    }
    throw Error("Failed to detect default containers policy files and no fallback policy file defined in "
                "sarus.json. Please contact your system administrator.");
}

void checkRegistriesDirectory(const Config& config) {
    auto it = config.json().find("containersRegistries.dPath");
    if (it == config.json().end() || !it->is_string()) {
        return;
    }
    std::error_code ec;
    if (!fs::is_directory(it->get<std::string>(), ec)) {
        throw Error("Custom containers registries.d path '" + it->get<std::string>() +
                    "' configured in sarus.json is not a directory. Please contact your system administrator.");
    }
}

void checkPullAllowed(const Config& config, const ImageReference& reference, const std::string& home) {
    checkRegistriesDirectory(config);
    checkAllowed(config, home, "pulling " + reference.normalized(),
                 [&](const json& policy) { return evaluatePolicy(policy, reference); });
}

void checkLoadAllowed(const Config& config, const fs::path& archive, const std::string& home) {
    checkRegistriesDirectory(config);
    checkAllowed(config, home, "loading " + archive.string(),
                 [](const json& policy) { return evaluateArchivePolicy(policy); });
}

}  // namespace sarus
