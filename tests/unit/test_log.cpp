#include "common/log.hpp"
#include "common/log_line.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <regex>
#include <string>
#include <unistd.h>

namespace {

std::string hostname() {
    char name[256] = {};
    ::gethostname(name, sizeof name - 1);
    return name;
}

// What the lines written by body reach stderr as.
template <typename Body>
std::string stderrOf(Body body) {
    std::fflush(stderr);
    int pipeFds[2];
    EXPECT_EQ(::pipe(pipeFds), 0);
    int saved = ::dup(STDERR_FILENO);
    ::dup2(pipeFds[1], STDERR_FILENO);
    ::close(pipeFds[1]);
    body();
    std::fflush(stderr);
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    std::string text;
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(pipeFds[0], buffer, sizeof buffer)) > 0) {
        text.append(buffer, n);
    }
    ::close(pipeFds[0]);
    return text;
}

}  // namespace

TEST(SarusLogLine, HasSarussFieldsInSarussOrder) {
    auto line = sarus::log::sarusLogLine("MPI hook", "WARN", "older than the host's");
    std::smatch parts;
    ASSERT_TRUE(std::regex_match(line, parts, std::regex(R"(\[(\d+)\.(\d{9})\] \[(.+)-(\d+)\] \[MPI hook\] \[WARN\] older than the host's\n)")))
        << line;
    EXPECT_EQ(parts[3].str(), hostname());
    EXPECT_EQ(parts[4].str(), std::to_string(::getpid()));
}

TEST(SarusLogLine, TimeIsMonotonic) {
    timespec now {};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    auto line = sarus::log::sarusLogLine("CLI", "DEBUG", "x");
    long long seconds = std::stoll(line.substr(1));
    EXPECT_GE(seconds, now.tv_sec);
    EXPECT_LE(seconds, now.tv_sec + 1);
}

TEST(Log, SubsystemIsThePartOfSarusTheCallerBelongsTo) {
    using sarus::log::subsystemOf;
    EXPECT_STREQ(subsystemOf("/src/sarus/src/core/commands/command_run.cpp"), "CLI");
    EXPECT_STREQ(subsystemOf("/src/sarus/src/core/config/config.cpp"), "Config");
    EXPECT_STREQ(subsystemOf("/src/sarus/src/core/image/image_store.cpp"), "ImageStore");
    EXPECT_STREQ(subsystemOf("/src/sarus/src/core/registry/registry_client.cpp"), "Registry");
    EXPECT_STREQ(subsystemOf("/src/sarus/src/core/runtime/sandbox.cpp"), "Runtime");
    EXPECT_STREQ(subsystemOf("/src/sarus/src/suid/suid_sandbox.cpp"), "Runtime");
    EXPECT_STREQ(subsystemOf("/src/sarus/src/userns/kept_image.cpp"), "Runtime");
    // a checkout under a directory named like a part of sarus
    EXPECT_STREQ(subsystemOf("/home/u/image/sarus/src/core/commands/command_run.cpp"), "CLI");
}

TEST(Log, LevelsAreSarussAndOnlyTheChosenOnesShow) {
    sarus::log::setLevel(sarus::log::Level::verbose);
    auto text = stderrOf([] {
        sarus::log::warn("w");
        sarus::log::verbose("v");
        sarus::log::debug("d");
    });
    std::regex expected(R"(\[\d+\.\d{9}\] \[[^\]]+-\d+\] \[CLI\] \[WARN\] w\n)"
                        R"(\[\d+\.\d{9}\] \[[^\]]+-\d+\] \[CLI\] \[INFO\] v\n)");
    EXPECT_TRUE(std::regex_match(text, expected)) << text;

    sarus::log::setLevel(sarus::log::Level::info);
    text = stderrOf([] {
        sarus::log::verbose("v");
        sarus::log::debug("d");
    });
    EXPECT_EQ(text, "");

    sarus::log::setLevel(sarus::log::Level::debug);
    text = stderrOf([] { sarus::log::debug("d"); });
    EXPECT_NE(text.find("] [CLI] [DEBUG] d\n"), std::string::npos) << text;
}

TEST(PrintableText, EscapesControlCharactersButNewlineAndTab) {
    EXPECT_EQ(sarus::log::printableText("a\x1b[2Jb\x07\x7f\tc\nd"), "a\\x1b[2Jb\\x07\\x7f\tc\nd");
    EXPECT_EQ(sarus::log::printableText("caf\xc3\xa9"), "caf\xc3\xa9");
}
