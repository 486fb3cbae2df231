#include "registry/registries_conf.hpp"

#include "common/error.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using sarus::matchingEntry;
using sarus::parseRegistriesConf;

TEST(RegistriesConf, Version2TablesGiveInsecureAndBlockedRegistries) {
    auto conf = parseRegistriesConf(R"(
unqualified-search-registries = ["docker.io"]

[[registry]]
location = "mirror.site:5000"
insecure = true

[[registry]]
prefix = "docker.io/badorg"
location = "docker.io/badorg"
blocked = true

[[registry]]
location = "quay.io"
)", "test.conf");
    EXPECT_EQ(conf.insecure, (std::vector<std::string>{"mirror.site:5000"}));
    EXPECT_EQ(conf.blocked, (std::vector<std::string>{"docker.io/badorg"}));
}

TEST(RegistriesConf, Version1ListsAreRead) {
    auto conf = parseRegistriesConf(R"(
[registries.search]
registries = ["docker.io"]
[registries.insecure]
registries = ["localhost:5000", "10.0.0.1"]
[registries.block]
registries = ["evil.example.com"]
)", "v1.conf");
    EXPECT_EQ(conf.insecure, (std::vector<std::string>{"localhost:5000", "10.0.0.1"}));
    EXPECT_EQ(conf.blocked, (std::vector<std::string>{"evil.example.com"}));
}

TEST(RegistriesConf, AMalformedFileIsOneLineNamingIt) {
    try {
        parseRegistriesConf("[[registry]\nlocation = ", "/etc/containers/registries.conf");
        FAIL() << "no error";
    } catch (const sarus::Error& e) {
        std::string message = e.what();
        EXPECT_EQ(message.rfind("/etc/containers/registries.conf: ", 0), 0u) << message;
        EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
    EXPECT_THROW(parseRegistriesConf("[[registry]]\ninsecure = true\n", "x.conf"), sarus::Error);
}

TEST(RegistriesConf, EntriesCoverARegistryAPathOrADomain) {
    std::vector<std::string> entries{"docker.io/badorg", "*.internal", "mirror:5000"};
    EXPECT_EQ(matchingEntry(entries, "docker.io", "badorg/tool"), "docker.io/badorg");
    EXPECT_EQ(matchingEntry(entries, "docker.io", "badorg"), "docker.io/badorg");
    EXPECT_EQ(matchingEntry(entries, "docker.io", "badorganisation/tool"), "");
    EXPECT_EQ(matchingEntry(entries, "registry.internal", "any/image"), "*.internal");
    EXPECT_EQ(matchingEntry(entries, "internal", "any/image"), "");
    EXPECT_EQ(matchingEntry(entries, "mirror:5000", "a"), "mirror:5000");
    EXPECT_EQ(matchingEntry(entries, "mirror", "a"), "");
}

TEST(RegistriesConf, TheUsersFileReplacesTheSystemsAndDropInsAdd) {
    auto home = std::filesystem::temp_directory_path() / ("registries-conf-" + std::to_string(::getpid()));
    std::filesystem::create_directories(home / ".config/containers/registries.conf.d");
    std::ofstream(home / ".config/containers/registries.conf") << "[[registry]]\nlocation = \"a:1\"\ninsecure = true\n";
    std::ofstream(home / ".config/containers/registries.conf.d/50-b.conf")
        << "[[registry]]\nlocation = \"b:2\"\nblocked = true\n";
    auto conf = sarus::readRegistriesConf({}, home);
    EXPECT_EQ(conf.insecure, (std::vector<std::string>{"a:1"}));
    EXPECT_EQ(conf.blocked, (std::vector<std::string>{"b:2"}));
    EXPECT_EQ(conf.files.size(), 2u);
    auto chosen = sarus::readRegistriesConf({{"CONTAINERS_REGISTRIES_CONF", (home / "none.conf").string()}}, home);
    EXPECT_TRUE(chosen.insecure.empty());
    std::filesystem::remove_all(home);
}
