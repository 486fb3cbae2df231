#include "common/error.hpp"
#include "registry/registry_auth.hpp"

#include <gtest/gtest.h>

using namespace sarus;

TEST(WwwAuthenticate, ParsesADockerHubBearerChallenge) {
    auto challenges = parseWwwAuthenticate(
        R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull")");
    ASSERT_EQ(challenges.size(), 1u);
    EXPECT_EQ(challenges[0].scheme, "bearer");
    EXPECT_EQ(challenges[0].param("realm"), "https://auth.docker.io/token");
    EXPECT_EQ(challenges[0].param("service"), "registry.docker.io");
    EXPECT_EQ(challenges[0].param("scope"), "repository:library/alpine:pull");
}

TEST(WwwAuthenticate, ParsesBasicWithSpacesAndCaseInsensitiveNames) {
    auto challenges = parseWwwAuthenticate(R"(basic  Realm = "basic-realm")");
    ASSERT_EQ(challenges.size(), 1u);
    EXPECT_EQ(challenges[0].scheme, "basic");
    EXPECT_EQ(challenges[0].param("realm"), "basic-realm");
}

TEST(WwwAuthenticate, KeepsCommasAndEscapesInsideQuotedValues) {
    auto challenges = parseWwwAuthenticate(
        R"(Bearer realm="https://r/token?a=1,b=2",scope="repository:a/b:pull,push",error="say \"hi\"")");
    ASSERT_EQ(challenges.size(), 1u);
    EXPECT_EQ(challenges[0].param("realm"), "https://r/token?a=1,b=2");
    EXPECT_EQ(challenges[0].param("scope"), "repository:a/b:pull,push");
    EXPECT_EQ(challenges[0].param("error"), "say \"hi\"");
}

TEST(WwwAuthenticate, ParsesSeveralChallengesInOneHeader) {
    auto challenges = parseWwwAuthenticate(
        R"(Basic realm="x", Bearer realm="https://auth/token", service=reg)");
    ASSERT_EQ(challenges.size(), 2u);
    EXPECT_EQ(challenges[0].scheme, "basic");
    EXPECT_EQ(challenges[0].param("realm"), "x");
    EXPECT_EQ(challenges[1].scheme, "bearer");
    EXPECT_EQ(challenges[1].param("realm"), "https://auth/token");
    EXPECT_EQ(challenges[1].param("service"), "reg");  // unquoted token value
}

TEST(WwwAuthenticate, SurvivesGarbage) {
    EXPECT_TRUE(parseWwwAuthenticate("").empty());
    EXPECT_TRUE(parseWwwAuthenticate(" , ,").empty());
    auto c = parseWwwAuthenticate(R"(realm="orphan", Bearer realm="unterminated)");
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c[0].param("realm"), "unterminated");
    auto schemeOnly = parseWwwAuthenticate("Negotiate");
    ASSERT_EQ(schemeOnly.size(), 1u);
    EXPECT_EQ(schemeOnly[0].scheme, "negotiate");
    EXPECT_TRUE(schemeOnly[0].params.empty());
}

TEST(BasicAuthorization, EncodesUserAndPassword) {
    EXPECT_EQ(basicAuthorization(Credentials("user", "pass")), "Basic dXNlcjpwYXNz");
    EXPECT_EQ(basicAuthorization(Credentials("a", "p:w")), "Basic YTpwOnc=");
}

TEST(TokenAnswer, AcceptsTokenOrAccessToken) {
    EXPECT_EQ(tokenFromAnswer(R"({"token":"abc","expires_in":300})"), "abc");
    EXPECT_EQ(tokenFromAnswer(R"({"access_token":"xyz"})"), "xyz");
    EXPECT_EQ(tokenFromAnswer(R"({"token":"","access_token":"xyz"})"), "xyz");
    EXPECT_THROW(tokenFromAnswer(R"({"details":"no"})"), Error);
    EXPECT_THROW(tokenFromAnswer("not json"), Error);
}

TEST(RegistryAuth, StartsWithoutAnAuthorizationHeader) {
    RegistryAuth anonymous("reg", "repo", std::nullopt);
    EXPECT_EQ(anonymous.header(), "");
    EXPECT_FALSE(anonymous.hasCredentials());
    RegistryAuth user("reg", "repo", Credentials("me", "secret"));
    EXPECT_TRUE(user.hasCredentials());
    EXPECT_EQ(user.username(), "me");
    EXPECT_EQ(user.header(), "");  // credentials are sent only when challenged
}

TEST(RegistryAuth, BasicChallengeWithoutCredentialsAsksForLogin) {
    RegistryAuth anonymous("reg:5000", "repo", std::nullopt);
    http::Client client;
    try {
        anonymous.answerChallenge(client, R"(Basic realm="r")", "");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("--login"), std::string::npos) << e.what();
    }
}

TEST(RegistryAuth, BasicChallengeUsesCredentialsOnceThenReportsThemRefused) {
    RegistryAuth auth("reg:5000", "repo", Credentials("me", "secret"));
    http::Client client;
    auth.answerChallenge(client, R"(Basic realm="r")", "");
    EXPECT_EQ(auth.header(), "Authorization: Basic bWU6c2VjcmV0");
    try {
        auth.answerChallenge(client, R"(Basic realm="r")", auth.header());
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("refused the credentials of user 'me'"), std::string::npos)
            << e.what();
        EXPECT_EQ(std::string(e.what()).find("secret"), std::string::npos);
    }
}

TEST(RegistryAuth, AChallengeAnsweredByAnotherThreadIsNotAnsweredAgain) {
    RegistryAuth auth("reg", "repo", Credentials("me", "secret"));
    http::Client client;
    auth.answerChallenge(client, R"(Basic realm="r")", "");
    auto renewed = auth.header();
    // A thread that was refused with the old (empty) header: nothing to do.
    auth.answerChallenge(client, R"(Basic realm="r")", "");
    EXPECT_EQ(auth.header(), renewed);
}

TEST(RegistryAuth, CredentialsGoToAPlainHttpTokenServiceOnlyForAnInsecureRegistry) {
    http::Client client;
    RegistryAuth secure("reg", "repo", Credentials("me", "secret"));
    try {
        secure.answerChallenge(client, R"(Bearer realm="http://127.0.0.1:9/token",service="reg")", "");
        FAIL() << "credentials sent to a token service over plain HTTP";
    } catch (const sarus::Error& e) {
        EXPECT_NE(std::string(e.what()).find("names a token service over plain HTTP (http://127.0.0.1:9/token)"),
                  std::string::npos)
            << e.what();
        EXPECT_EQ(std::string(e.what()).find("secret"), std::string::npos);
    }
    // Listed as insecure, or anonymous: the request is made (and fails here:
    // nothing listens on port 9).
    RegistryAuth insecure("reg", "repo", Credentials("me", "secret"), true);
    try {
        insecure.answerChallenge(client, R"(Bearer realm="http://127.0.0.1:9/token")", "");
        FAIL() << "nothing listens on port 9";
    } catch (const sarus::Error& e) {
        EXPECT_NE(std::string(e.what()).find("cannot reach the token service"), std::string::npos) << e.what();
    }
    RegistryAuth anonymous("reg", "repo", std::nullopt);
    EXPECT_THROW(anonymous.answerChallenge(client, R"(Bearer realm="http://127.0.0.1:9/token")", ""), sarus::Error);
}
