#include "config/containers_policy.hpp"

#include "config/config.hpp"
#include "common/error.hpp"

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

}  // namespace

PolicyDecision evaluatePolicy(const json& policy, const ImageReference& reference) {
    if (!policy.is_object() || !policy.contains("default")) {
        throw Error("a policy needs a \"default\" list of requirements");
    }
    if (policy.contains("transports") && policy["transports"].contains("docker")) {
        const auto& docker = policy["transports"]["docker"];
        for (const auto& scope : dockerScopes(reference)) {
            if (docker.contains(scope)) {
                return evaluateRequirements(docker[scope], scope);
            }
        }
    }
    return evaluateRequirements(policy["default"], "default");
}

std::optional<fs::path> applicablePolicyFile(const Config& config, const std::string& home) {
    auto it = config.json().find("containersPolicy");
    if (it == config.json().end()) {
        return std::nullopt;
    }
    fs::path sitePolicy = it->value("path", "");
    if (sitePolicy.empty()) {
        throw Error(config.file().string() + ": containersPolicy needs a \"path\"");
    }
    if (!it->value("enforce", false) && !home.empty()) {
        auto userPolicy = fs::path(home) / ".config" / "containers" / "policy.json";
        std::error_code ec;
        if (fs::exists(userPolicy, ec)) {
            return userPolicy;
        }
    }
    return sitePolicy;
}

void checkPullAllowed(const Config& config, const ImageReference& reference, const std::string& home) {
    auto file = applicablePolicyFile(config, home);
    if (!file) {
        return;
    }
    auto policy = parseJsonFile(*file);  // its errors name the file
    PolicyDecision decision;
    try {
        decision = evaluatePolicy(policy, reference);
    } catch (const Error& e) {
        throw Error(file->string() + ": " + e.what());
    }
    if (!decision.accepted) {
        throw Error("pulling " + reference.normalized() + " is not allowed by " + file->string() + ": " +
                    decision.reason);
    }
}

}  // namespace sarus
