// The image trust policy: scope matching of containers-policy.json(5) for
// the docker transport and the requirements sarus can meet.
#include "config/config.hpp"
#include "config/containers_policy.hpp"
#include "common/error.hpp"
#include "common/file_utils.hpp"

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

TEST(ContainersPolicy, ArchivesFollowTheDockerArchiveTransportOrTheDefault) {
    EXPECT_TRUE(sarus::evaluateArchivePolicy({{"default", accept}}).accepted);
    EXPECT_FALSE(sarus::evaluateArchivePolicy({{"default", reject}}).accepted);
    json transports = {{"docker-archive", {{"", accept}}}, {"docker", {{"", reject}}}};
    EXPECT_TRUE(sarus::evaluateArchivePolicy({{"default", reject}, {"transports", transports}}).accepted);
    transports = {{"docker-archive", {{"", reject}}}};
    EXPECT_FALSE(sarus::evaluateArchivePolicy({{"default", accept}, {"transports", transports}}).accepted);
}

namespace {

// The policy files Sarus 1.7 chooses between, in a scratch directory.
class PolicyFileChoice : public ::testing::Test {
protected:
    sarus::TempDirectory dir{fs::temp_directory_path(), "policy-test"};
    fs::path home() const { return dir.path() / "home"; }
    fs::path user() const { return home() / ".config" / "containers" / "policy.json"; }
    fs::path system() const { return dir.path() / "etc-policy.json"; }
    fs::path site() const { return dir.path() / "site-policy.json"; }

    static void touch(const fs::path& path) {
        fs::create_directories(path.parent_path());
        std::ofstream(path) << "{}";
    }

    fs::path choose(const std::string& containersPolicy) {
        auto file = dir.path() / "sarus.json";
        std::ofstream(file) << R"({"securityChecks": false, "OCIBundleDir": "/b", "rootfsFolder": "rootfs",
            "prefixDir": "/opt/sarus", "tempDir": "/tmp", "localRepositoryBaseDir": "/home",
            "ramFilesystemType": "tmpfs")"
                            << (containersPolicy.empty() ? "" : ", \"containersPolicy\": " + containersPolicy) << "}";
        auto config = sarus::Config::load(file, fs::path(SARUS_SOURCE_DIR) / "etc" / "sarus.schema.json");
        return sarus::applicablePolicyFile(config, home().string(), system());
    }
    std::string sitePolicy(bool enforce) const {
        return "{\"path\": \"" + site().string() + "\", \"enforce\": " + (enforce ? "true" : "false") + "}";
    }
};

}  // namespace

TEST_F(PolicyFileChoice, TheUsersThenTheSystemsThenTheSites) {
    touch(site());
    EXPECT_EQ(choose(sitePolicy(false)), site());
    touch(system());
    EXPECT_EQ(choose(sitePolicy(false)), system());
    EXPECT_EQ(choose(""), system());
    touch(user());
    EXPECT_EQ(choose(sitePolicy(false)), user());
    EXPECT_EQ(choose(sitePolicy(true)), site());
}

TEST_F(PolicyFileChoice, NoneAtAllOrASiteFileThatIsNoneAreErrors) {
    try {
        choose("");
        FAIL() << "no policy file was accepted";
    } catch (const sarus::Error& e) {
        EXPECT_STREQ(e.what(), "Failed to detect default containers policy files and no fallback policy file "
                               "defined in sarus.json. Please contact your system administrator.");
    }
    touch(system());
    EXPECT_THROW(choose(sitePolicy(false)), sarus::Error);  // the site's path names no file
}

TEST_F(PolicyFileChoice, ARegistriesDirectoryThatIsNoneIsAnError) {
    touch(site());
    auto file = dir.path() / "sarus.json";
    std::ofstream(file) << R"({"securityChecks": false, "OCIBundleDir": "/b", "rootfsFolder": "rootfs",
        "prefixDir": "/opt/sarus", "tempDir": "/tmp", "localRepositoryBaseDir": "/home", "ramFilesystemType": "tmpfs",
        "containersRegistries.dPath": ")" << site().string() << R"(", "containersPolicy": {"path": ")"
                        << site().string() << R"(", "enforce": true}})";
    auto config = sarus::Config::load(file, fs::path(SARUS_SOURCE_DIR) / "etc" / "sarus.schema.json");
    try {
        sarus::checkLoadAllowed(config, "/some/archive.tar", home().string());
        FAIL() << "a registries.d path naming a file was accepted";
    } catch (const sarus::Error& e) {
        EXPECT_NE(std::string(e.what()).find("Custom containers registries.d path '" + site().string() +
                                             "' configured in sarus.json is not a directory"),
                  std::string::npos)
            << e.what();
    }
}
