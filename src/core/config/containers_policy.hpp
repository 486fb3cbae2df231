// The image trust policy of `sarus pull`: a containers-policy.json(5) file,
// chosen as Sarus 1.7 does with "containersPolicy": {"path", "enforce"}.
// sarus verifies no signatures, so only the policy requirements that need
// none can be met: insecureAcceptAnything accepts, reject rejects, and a
// requirement of signatures (signedBy, sigstoreSigned) rejects with a
// message saying so, never passes silently.
#pragma once

#include "image/image_reference.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>

namespace sarus {

class Config;

struct PolicyDecision {
    bool accepted = false;
    std::string scope;   // the policy scope that decided ("default" for the global default)
    std::string reason;  // why it was rejected
};

// Evaluates the requirements of the most specific scope of the "docker"
// transport that matches server/repository[:tag|@digest] (the reference
// itself, the repository, its parent namespaces, the registry, a
// "*.domain" wildcard, the transport's "" scope), else "default".
// Throws sarus::Error for a malformed policy document.
PolicyDecision evaluatePolicy(const nlohmann::json& policy, const ImageReference& reference);

// Which policy file applies: none without containersPolicy; its path when
// enforce is true; otherwise the user's ~/.config/containers/policy.json
// when it exists, else the path.
std::optional<std::filesystem::path> applicablePolicyFile(const Config& config, const std::string& home);

// Throws sarus::Error naming the policy file and scope unless the policy
// that applies accepts the reference.
void checkPullAllowed(const Config& config, const ImageReference& reference, const std::string& home);

}  // namespace sarus
