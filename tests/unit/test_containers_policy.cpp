// The image trust policy: scope matching of containers-policy.json(5) for
// the docker transport and the requirements sarus can meet.
#include "config/config.hpp"
#include "config/containers_policy.hpp"
#include "common/error.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const json accept = json::array({{{"type", "insecureAcceptAnything"}}});
const json reject = json::array({{{"type", "reject"}}});

sarus::PolicyDecision decide(const json& docker, const std::string& reference, const json& fallback = accept) {
    json policy = {{"default", fallback}, {"transports", {{"docker", docker}}}};
    return sarus::evaluatePolicy(policy, sarus::ImageReference::parse(reference));
}

}  // namespace

TEST(ContainersPolicy, DefaultAppliesWithoutAMatchingScope) {
    EXPECT_TRUE(decide(json::object(), "alpine").accepted);
    auto decision = decide(json::object(), "alpine", reject);
    EXPECT_FALSE(decision.accepted);
    EXPECT_EQ(decision.scope, "default");
    EXPECT_EQ(decision.reason, "the policy rejects it (\"default\")");
}

TEST(ContainersPolicy, MostSpecificScopeWins) {
    json docker = {{"registry.example.com:5000", reject},
                   {"registry.example.com:5000/team", accept},
                   {"registry.example.com:5000/team/app:v1", reject}};
    EXPECT_EQ(decide(docker, "registry.example.com:5000/team/app:v1").scope, "registry.example.com:5000/team/app:v1");
    EXPECT_FALSE(decide(docker, "registry.example.com:5000/team/app:v1").accepted);
    EXPECT_EQ(decide(docker, "registry.example.com:5000/team/app:v2").scope, "registry.example.com:5000/team");
    EXPECT_TRUE(decide(docker, "registry.example.com:5000/team/sub/app").accepted);
    EXPECT_FALSE(decide(docker, "registry.example.com:5000/other/app").accepted);
    EXPECT_TRUE(decide(docker, "registry.example.com/other/app").accepted);  // another port is another registry
    // docker.io names are fully expanded
    EXPECT_FALSE(decide({{"docker.io/library/busybox", reject}}, "busybox").accepted);
}

TEST(ContainersPolicy, WildcardsTransportDefaultAndDigests) {
    json docker = {{"*.example.com", reject}, {"", accept}};
    EXPECT_EQ(decide(docker, "a.b.example.com/x/y").scope, "*.example.com");
    EXPECT_EQ(decide(docker, "example.com/x/y").scope, "");
    auto digest = "sha256:" + std::string(64, 'a');
    EXPECT_FALSE(decide({{"quay.io/x/y@" + digest, reject}}, "quay.io/x/y@" + digest).accepted);
}

TEST(ContainersPolicy, SignatureRequirementsAreRefusedSayingWhy) {
    json signedBy = json::array({{{"type", "signedBy"}, {"keyType", "GPGKeys"}, {"keyPath", "/k.gpg"}}});
    auto decision = decide({{"quay.io", signedBy}}, "quay.io/x/y");
    EXPECT_FALSE(decision.accepted);
    EXPECT_EQ(decision.reason,
              "scope \"quay.io\" requires signatures (signedBy) and sarus does not verify image signatures");
}

TEST(ContainersPolicy, MalformedPoliciesAreErrors) {
    auto ref = sarus::ImageReference::parse("alpine");
    EXPECT_THROW(sarus::evaluatePolicy(json::object(), ref), sarus::Error);
    EXPECT_THROW(sarus::evaluatePolicy({{"default", json::array()}}, ref), sarus::Error);
    EXPECT_THROW(sarus::evaluatePolicy({{"default", json::array({{{"type", "trustMe"}}})}}, ref), sarus::Error);
}
