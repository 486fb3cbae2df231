// The image trust policy of `sarus pull` and `sarus load`: a
// containers-policy.json(5) file, chosen as Sarus 1.7 chooses the one it
// gives skopeo (the user's, the system's, "containersPolicy": {"path",
// "enforce"}).
// sarus verifies no signatures, so only the policy requirements that need
// none can be met: insecureAcceptAnything accepts, reject rejects, and a
// requirement of signatures (signedBy, sigstoreSigned) rejects with a
// message saying so, never passes silently.
#pragma once

#include "image/image_reference.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
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

// The same for a docker archive (`sarus load`): the docker-archive
// transport knows no scope but its "" one, else "default" applies.
PolicyDecision evaluateArchivePolicy(const nlohmann::json& policy);

// Which policy file applies: containersPolicy's path when enforce is true;
// otherwise the user's ~/.config/containers/policy.json, else systemPolicy,
// when one exists; else containersPolicy's path. Throws sarus::Error when
// there is none, or when containersPolicy's path is not a regular file.
std::filesystem::path applicablePolicyFile(const Config& config, const std::string& home,
                                           const std::filesystem::path& systemPolicy = "/etc/containers/policy.json");

// Throw sarus::Error naming the policy file and scope unless the policy
// that applies accepts the reference, or the archive; and when sarus.json's
// containersRegistries.dPath is not a directory, as Sarus 1.7 does (sarus
// verifies no signatures, so it reads nothing there).
void checkPullAllowed(const Config& config, const ImageReference& reference, const std::string& home);
void checkLoadAllowed(const Config& config, const std::filesystem::path& archive, const std::string& home);

}  // namespace sarus
