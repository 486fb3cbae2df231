#include "image/reference_grammar.hpp"

#include <gtest/gtest.h>

#include <random>
#include <regex>
#include <string>

namespace grammar = sarus::reference_grammar;

namespace {

// The patterns of distribution/reference (reference.go), which the hand
// matchers must agree with on every string.
const std::regex componentPattern("[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*");
const std::regex tagPattern("[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
const std::regex domainPattern(
    "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    "(?:\\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?");
const std::regex digestPattern("[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}");

// Short strings over an alphabet that holds every character class the
// patterns tell apart, so that random strings hit the edges often.
std::string randomText(std::mt19937& random, const std::string& alphabet, std::size_t maxLength) {
    std::uniform_int_distribution<std::size_t> length(0, maxLength);
    std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
    std::string text(length(random), ' ');
    for (auto& c : text) {
        c = alphabet[pick(random)];
    }
    return text;
}

}  // namespace

TEST(ReferenceGrammar, KnownCases) {
    EXPECT_TRUE(grammar::isPathComponent("library"));
    EXPECT_TRUE(grammar::isPathComponent("my__image-x.y--z_w"));
    EXPECT_FALSE(grammar::isPathComponent("My"));
    EXPECT_FALSE(grammar::isPathComponent("a___b"));
    EXPECT_FALSE(grammar::isPathComponent("a.-b"));
    EXPECT_FALSE(grammar::isPathComponent("-a"));
    EXPECT_FALSE(grammar::isPathComponent("a."));
    EXPECT_FALSE(grammar::isPathComponent(""));
    EXPECT_TRUE(grammar::isTag("latest"));
    EXPECT_TRUE(grammar::isTag("_x.Y-1"));
    EXPECT_TRUE(grammar::isTag(std::string(128, 'a')));
    EXPECT_FALSE(grammar::isTag(std::string(129, 'a')));
    EXPECT_FALSE(grammar::isTag(".x"));
    EXPECT_FALSE(grammar::isTag(""));
    EXPECT_TRUE(grammar::isDomain("127.0.0.1:5000"));
    EXPECT_TRUE(grammar::isDomain("registry-1.docker.io"));
    EXPECT_TRUE(grammar::isDomain("localhost"));
    EXPECT_FALSE(grammar::isDomain("a..b"));
    EXPECT_FALSE(grammar::isDomain("-a.b"));
    EXPECT_FALSE(grammar::isDomain("a:"));
    EXPECT_FALSE(grammar::isDomain("a:1:2"));
    EXPECT_FALSE(grammar::isDomain(":80"));
    EXPECT_TRUE(grammar::isDigest("sha256:" + std::string(64, 'a')));
    EXPECT_TRUE(grammar::isDigest("a+b.c_d-e:" + std::string(32, 'F')));
    EXPECT_FALSE(grammar::isDigest("sha256:" + std::string(31, 'a')));
    EXPECT_FALSE(grammar::isDigest("a++b:" + std::string(32, 'a')));
    EXPECT_FALSE(grammar::isDigest(std::string(40, 'a')));
}

TEST(ReferenceGrammar, AgreesWithTheRegularExpressionsOnRandomStrings) {
    std::mt19937 random(20261206);
    const std::string alphabet = "az09AZ._-_+:/@";
    for (int i = 0; i < 200000; ++i) {
        auto text = randomText(random, alphabet, 12);
        ASSERT_EQ(grammar::isPathComponent(text), std::regex_match(text, componentPattern)) << text;
        ASSERT_EQ(grammar::isTag(text), std::regex_match(text, tagPattern)) << text;
        ASSERT_EQ(grammar::isDomain(text), std::regex_match(text, domainPattern)) << text;
    }
    // digests need 32 hex digits after the colon: random algorithms, random tails
    const std::string hexAlphabet = "09afAFg:";
    for (int i = 0; i < 100000; ++i) {
        auto text = randomText(random, alphabet, 8) + randomText(random, hexAlphabet, 40);
        ASSERT_EQ(grammar::isDigest(text), std::regex_match(text, digestPattern)) << text;
    }
}
