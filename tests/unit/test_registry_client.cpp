#include "registry/http_client.hpp"
#include "registry/registry_client.hpp"

#include <gtest/gtest.h>

#include <map>

using namespace sarus;

TEST(InsecureRegistries, OnlyListedRegistriesAreInsecure) {
    std::vector<std::string> list = {"registry.local:5000", "plain.example.org", "HTTP://Other:8080/"};
    EXPECT_TRUE(isInsecureRegistry("registry.local:5000", list));
    EXPECT_FALSE(isInsecureRegistry("registry.local:5001", list));  // the port was given
    EXPECT_FALSE(isInsecureRegistry("registry.local", list));
    EXPECT_TRUE(isInsecureRegistry("plain.example.org", list));
    EXPECT_TRUE(isInsecureRegistry("plain.example.org:5000", list));  // no port: every port
    EXPECT_TRUE(isInsecureRegistry("other:8080", list));
    EXPECT_FALSE(isInsecureRegistry("docker.io", list));
}

TEST(InsecureRegistries, LocalhostIsNotInsecureUnlessListed) {
    EXPECT_FALSE(isInsecureRegistry("localhost:5000", {}));
    EXPECT_FALSE(isInsecureRegistry("127.0.0.1:5000", {}));
    EXPECT_FALSE(isInsecureRegistry("127.0.0.1:5000", {"localhost:5000"}));
    EXPECT_TRUE(isInsecureRegistry("127.0.0.1:5000", {"127.0.0.1:5000"}));
    EXPECT_TRUE(isInsecureRegistry("localhost:5000", {"localhost"}));
}

TEST(RegistryApiHost, DockerHubIsServedByRegistry1) {
    EXPECT_EQ(registryApiHost("docker.io"), "registry-1.docker.io");
    EXPECT_EQ(registryApiHost("quay.io"), "quay.io");
    EXPECT_EQ(registryApiHost("127.0.0.1:5000"), "127.0.0.1:5000");
}

namespace {
std::function<std::optional<std::string>(const std::string&)> env(std::map<std::string, std::string> values) {
    return [values](const std::string& name) -> std::optional<std::string> {
        auto it = values.find(name);
        if (it == values.end()) {
            return std::nullopt;
        }
        return it->second;
    };
}
}  // namespace

TEST(Proxy, ChosenByScheme) {
    auto e = env({{"HTTP_PROXY", "http://p1:3128"}, {"https_proxy", "http://p2:3128"}});
    EXPECT_EQ(http::proxyFor("http://reg:5000/v2/", e), "http://p1:3128");
    EXPECT_EQ(http::proxyFor("https://reg/v2/", e), "http://p2:3128");
}

TEST(Proxy, LowerCaseFirstThenAllProxy) {
    auto e = env({{"http_proxy", "http://lower"}, {"HTTP_PROXY", "http://upper"}, {"ALL_PROXY", "http://all"}});
    EXPECT_EQ(http::proxyFor("http://reg/v2/", e), "http://lower");
    EXPECT_EQ(http::proxyFor("https://reg/v2/", e), "http://all");
    EXPECT_EQ(http::proxyFor("https://reg/v2/", env({})), "");
}

TEST(DebugOutput, AuthorizationHeadersAreRedacted) {
    EXPECT_EQ(http::redactHeader("Authorization: Bearer abc.def"), "Authorization: <redacted>");
    EXPECT_EQ(http::redactHeader("authorization: Basic dXNlcjpwYXNz"), "authorization: <redacted>");
    EXPECT_EQ(http::redactHeader("Proxy-Authorization: Basic x"), "Proxy-Authorization: <redacted>");
    EXPECT_EQ(http::redactHeader("Accept: */*"), "Accept: */*");
}

TEST(QueryEscape, EncodesReservedCharacters) {
    EXPECT_EQ(http::escape("repository:library/alpine:pull"), "repository%3Alibrary%2Falpine%3Apull");
    EXPECT_EQ(http::escape("a-b_c.d~e"), "a-b_c.d~e");
    EXPECT_EQ(http::escape("a b&c"), "a%20b%26c");
}
