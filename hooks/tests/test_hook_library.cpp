// Pure parts of the hooks: state reading, argument parsing with the engine's
// parsers, <FI_PROVIDER_PATH>, the timestamp line.
#include "container_state.hpp"
#include "hook_log.hpp"
#include "hook_main.hpp"
#include "common/error.hpp"
#include "ld_cache.hpp"
#include "mount_hook.hpp"
#include "timestamp_hook.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

class Bundle : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/sarus-hook-test-XXXXXX";
        dir = ::mkdtemp(pattern);
        fs::create_directories(dir / "rootfs");  // a bundle has its root
        std::ofstream(dir / "config.json") << R"({"root": {"path": "rootfs"},
            "process": {"args": ["/bin/sh"], "env": ["PATH=/bin", "FI_PROVIDER_PATH=/opt/prov"]},
            "annotations": {"from": "config"}})";
    }
    void TearDown() override { fs::remove_all(dir); }
    hook::ContainerState read(const std::string& annotations = "") {
        std::istringstream in(R"({"ociVersion": "1.0", "id": "x", "pid": 42, "bundle": ")" + dir.string() +
                              "\"" + annotations + "}");
        return hook::readContainerState(in);
    }
    fs::path dir;
};

}  // namespace

TEST_F(Bundle, ReadsStateAndBundleConfig) {
    auto state = read();
    EXPECT_EQ(state.pid, 42);
    EXPECT_EQ(state.rootfs, dir / "rootfs");
    EXPECT_EQ(state.args, std::vector<std::string>{"/bin/sh"});
    EXPECT_EQ(state.annotations.at("from"), "config");
    EXPECT_EQ(hook::containerEnv(state, "FI_PROVIDER_PATH"), "/opt/prov");
    EXPECT_EQ(hook::containerEnv(state, "MISSING"), "");
    EXPECT_EQ(read(R"(, "annotations": {"from": "state"})").annotations.at("from"), "state");
}

TEST_F(Bundle, ProcDirOfTheContainer) {
    EXPECT_EQ(hook::procDir(42), "/proc/42");
    EXPECT_EQ(hook::procDir(0), "/proc/self");  // crun's createContainer: the hook is inside
}

TEST_F(Bundle, BadStateIsAnError) {
    std::istringstream in("{");
    EXPECT_THROW(hook::readContainerState(in), sarus::Error);
    std::istringstream noBundle(R"({"pid": 1})");
    EXPECT_THROW(hook::readContainerState(noBundle), sarus::Error);
}

TEST_F(Bundle, FiProviderPathFromTheContainerEnvironmentElseUsrLib) {
    auto state = read();
    EXPECT_EQ(hook::fiProviderPath(state, ""), "/opt/prov");
    state.env = {"FI_PROVIDER_PATH="};
    EXPECT_EQ(hook::fiProviderPath(state, ""), "/usr/lib");
}

TEST_F(Bundle, FiProviderPathFromTheCacheFile) {
    auto state = read();
    state.env.clear();
    fs::create_directories(dir / "rootfs" / "etc");
    std::string cache("glibc-ld.so.cache1.1\0\0\0\0libz.so.1\0/usr/lib/libz.so.1\0libfabric.so.1\0"
                      "/usr/lib64/libfabric.so.1\0", 94);
    std::ofstream(dir / "rootfs" / "etc" / "ld.so.cache", std::ios::binary) << cache;
    EXPECT_EQ(hook::findLibraryInCacheFile(state.rootfs, "libfabric.so"), "/usr/lib64/libfabric.so.1");
    EXPECT_EQ(hook::fiProviderPath(state, ""), "/usr/lib64/libfabric");
    EXPECT_EQ(hook::findLibraryInCacheFile(state.rootfs, "libnone.so"), "");
}

TEST(MountHookArgs, SameFormatsAsSarusRun) {
    auto parsed = hook::parseMountHookArgs(
        {"--mount=type=bind,src=/a,dst=/b,readonly", "--mount", "type=bind,source=/c,target=<FI_PROVIDER_PATH>/x.so",
         "--device=/dev/null:/dev/n:r"},
        "/usr/lib64/libfabric");
    ASSERT_EQ(parsed.mounts.size(), 2u);
    EXPECT_EQ(parsed.mounts[0].destination, "/b");
    EXPECT_TRUE(parsed.mounts[0].readonly);
    EXPECT_EQ(parsed.mounts[1].destination, "/usr/lib64/libfabric/x.so");
    ASSERT_EQ(parsed.devices.size(), 1u);
    EXPECT_EQ(parsed.devices[0].destination, "/dev/n");
    EXPECT_EQ(parsed.devices[0].access, "r");
}

TEST(MountHookArgs, ErrorsAreTheParsers) {
    try {
        hook::parseMountHookArgs({"--mount=type=bind,src=/etc"}, "");
        FAIL();
    } catch (const sarus::Error& e) {
        EXPECT_NE(std::string(e.what()).find("Invalid mount request"), std::string::npos) << e.what();
    }
    EXPECT_THROW(hook::parseMountHookArgs({"--volume=/a:/b"}, ""), sarus::Error);
    EXPECT_THROW(hook::parseMountHookArgs({"--mount"}, ""), sarus::Error);
}

TEST(HookLog, SarusNumbersAndNamesSetTheLevel) {
    using hook::log::Level;
    ::unsetenv("HOOK_LOG_LEVEL");
    auto levelAfter = [](const std::string& value) {
        hook::log::setLevelFromAnnotations({{"com.hooks.logging.level", value}});
        for (auto level : {Level::debug, Level::info, Level::warn, Level::error}) {
            if (hook::log::enabled(level)) {
                return level;
            }
        }
        return Level::error;
    };
    // Sarus's LogLevel numbers, as its documentation tells users to set them
    EXPECT_EQ(levelAfter("0"), Level::debug);
    EXPECT_EQ(levelAfter("1"), Level::info);
    EXPECT_EQ(levelAfter("2"), Level::warn);
    EXPECT_EQ(levelAfter("3"), Level::error);
    EXPECT_EQ(levelAfter("4"), Level::error);
    EXPECT_EQ(levelAfter("debug"), Level::debug);
    EXPECT_EQ(levelAfter("WARN"), Level::warn);
    EXPECT_EQ(levelAfter("9"), Level::warn);  // not a level: unchanged
}

TEST(TimestampHook, LineFormat) {
    timespec t{1700000000, 1234};
    EXPECT_EQ(hook::timestampLine(t, "nid01", 77, "hello"),
              "[1700000000.000001234] [nid01-77] [hook] [INFO] Timestamp hook: hello\n");
}

TEST(HookLog, AFailingHookSaysWhatFailedInOneLineUnderItsSarusName) {
    ::unsetenv("HOOK_LOG_LEVEL");
    testing::internal::CaptureStderr();
    int status = hook::runHookMain("MPI hook", [] {
        throw sarus::Error("no MPI library in the container").within("replacing the MPI libraries");
    });
    auto text = testing::internal::GetCapturedStderr();
    EXPECT_EQ(status, 1);
    EXPECT_TRUE(std::regex_match(text, std::regex(R"(\[\d+\.\d{9}\] \[[^\]]+-\d+\] \[MPI hook\] \[ERROR\] )"
                                                  R"(replacing the MPI libraries: no MPI library in the container\n)")))
        << text;
}
