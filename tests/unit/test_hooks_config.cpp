#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "config/hooks_config.hpp"
#include "runtime/oci_config.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <unistd.h>

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

sarus::ContainerSpec spec() {
    sarus::ContainerSpec s;
    s.args = {"/bin/sh", "-c", "true"};
    s.annotations = {{"com.hooks.mpi.enabled", "true"}, {"com.hooks.mpi.type", "mpich"}};
    s.selectingAnnotations = s.annotations;
    return s;
}

sarus::HookFile hook(const std::string& name, const json& when, const json& stages = {"createContainer"}) {
    return {name, json{{"version", "1.0.0"},
                       {"hook", {{"path", "/bin/" + name}, {"args", {name, "x"}}, {"env", {"A=1"}}}},
                       {"when", when},
                       {"stages", stages}}};
}

bool applies(const json& when, const sarus::ContainerSpec& s = spec()) { return sarus::hookApplies(when, s); }

}  // namespace

TEST(HooksConfig, Always) {
    EXPECT_TRUE(applies({{"always", true}}));
    EXPECT_FALSE(applies({{"always", false}}));
}

TEST(HooksConfig, AnnotationsFullMatchKeyAndValue) {
    EXPECT_TRUE(applies({{"annotations", {{"^com.hooks.mpi.enabled$", "^true$"}}}}));
    EXPECT_TRUE(applies({{"annotations", {{"com.hooks.mpi.enabled", "true"}}}}));
    EXPECT_TRUE(applies({{"annotations", {{"com\\.hooks\\.mpi\\..*", "mpich"}}}}));
    EXPECT_FALSE(applies({{"annotations", {{"com.hooks.mpi", "true"}}}}));       // not a prefix match
    EXPECT_FALSE(applies({{"annotations", {{"com.hooks.mpi.enabled", "tru"}}}}));
    EXPECT_FALSE(applies({{"annotations", {{"com.hooks.mpi.enabled", "true"}, {"com.hooks.mpi.type", "libfabric"}}}}));
}

TEST(HooksConfig, Commands) {
    EXPECT_TRUE(applies({{"commands", {"/usr/bin/env", "/bin/s."}}}));
    EXPECT_FALSE(applies({{"commands", {"sh"}}}));
    EXPECT_TRUE(applies({{"commands", {".*/sh"}}}));
}

TEST(HooksConfig, HasBindMounts) {
    auto s = spec();
    EXPECT_FALSE(applies({{"hasBindMounts", true}}, s));
    EXPECT_TRUE(applies({{"hasBindMounts", false}}, s));
    s.userMounts.push_back({"/a", "/b", false});
    EXPECT_TRUE(applies({{"hasBindMounts", true}}, s));
    s.userMounts.clear();
    s.siteMounts.push_back({"/a", "/b", false});
    EXPECT_TRUE(applies({{"hasBindMounts", true}}, s));
}

TEST(HooksConfig, ConditionsAreAnded) {
    EXPECT_FALSE(applies({{"always", true}, {"commands", {"/bin/bash"}}}));
    EXPECT_TRUE(applies({{"always", true}, {"commands", {"/bin/sh"}}, {"annotations", {{".*type", "mpich"}}}}));
}

TEST(HooksConfig, PatternsThatWouldBacktrackExponentiallyStillGiveTheirAnswer) {
    // With a backtracking matcher each of these takes 2^40 steps and never ends.
    auto s = spec();
    s.selectingAnnotations["com.hooks.x"] = std::string(40, 'a');
    EXPECT_FALSE(applies({{"annotations", {{"com.hooks.x", "(a*)*b"}}}}, s));
    EXPECT_FALSE(applies({{"annotations", {{"com.hooks.x", "(a|a)*b"}}}}, s));
    EXPECT_TRUE(applies({{"annotations", {{"com.hooks.x", "(a|a)*"}}}}, s));
    // what the fuzzer found: a quantifier on quantifiers
    EXPECT_FALSE(applies({{"annotations", {{"^com.hooks.mpi.enabled*******************:nn0$", "^true$"}}}}));
}

TEST(HooksConfig, BackReferencesAreRefusedAsOciHooksPatternsHaveNone) {
    try {
        sarus::selectHooks(spec(), {hook("backref.json", {{"commands", {"(/bin)\\1"}}})}, json::object());
        FAIL();
    } catch (const sarus::Error& e) {
        EXPECT_NE(std::string(e.what()).find("invalid regular expression"), std::string::npos) << e.what();
    }
}

TEST(HooksConfig, NumbersTooLargeForTheRegexCompilerAreRefused) {
    // what the fuzzer found: libstdc++ overflows an int reading these
    for (const char* pattern : {"^com\\11111111111111111111.test$", "a{11111111111111111111}", "a{1,99999999999}"}) {
        try {
            sarus::selectHooks(spec(), {hook("big.json", {{"commands", {pattern}}})}, json::object());
            ADD_FAILURE() << pattern;
        } catch (const sarus::Error& e) {
            EXPECT_NE(std::string(e.what()).find("more than 5 digits"), std::string::npos) << e.what();
        }
    }
    // an escaped backslash before digits, and counts of a few digits, are fine
    EXPECT_TRUE(applies({{"commands", {"/bin/s(h){1,12000}"}}}));
    EXPECT_FALSE(applies({{"commands", {"\\\\123456789"}}}));
}

TEST(HooksConfig, InvalidRegexNamesTheFile) {
    try {
        sarus::selectHooks(spec(), {hook("bad.json", {{"commands", {"("}}})}, json::object());
        FAIL();
    } catch (const sarus::Error& e) {
        EXPECT_NE(std::string(e.what()).find("("), std::string::npos);
        ASSERT_FALSE(e.contexts().empty());
        EXPECT_NE(e.contexts()[0].find("bad.json"), std::string::npos);
    }
}

TEST(HooksConfig, SelectsInOrderPerStageThenLegacy) {
    std::vector<sarus::HookFile> files = {
        hook("a", {{"always", true}}, {"createContainer", "poststop"}),
        hook("b", {{"commands", {"/nope"}}}),
        hook("c", {{"always", true}}),
    };
    json legacy = {{"createContainer", {{{"path", "/legacy"}}}}, {"prestart", {{{"path", "/pre"}}}}};
    auto hooks = sarus::selectHooks(spec(), files, legacy);
    ASSERT_EQ(hooks["createContainer"].size(), 3u);
    EXPECT_EQ(hooks["createContainer"][0]["path"], "/bin/a");
    EXPECT_EQ(hooks["createContainer"][0]["args"], json({"a", "x"}));
    EXPECT_EQ(hooks["createContainer"][0]["env"], json({"A=1"}));
    EXPECT_EQ(hooks["createContainer"][1]["path"], "/bin/c");
    EXPECT_EQ(hooks["createContainer"][2]["path"], "/legacy");
    EXPECT_EQ(hooks["poststop"].size(), 1u);
    EXPECT_EQ(hooks["prestart"][0]["path"], "/pre");
    EXPECT_TRUE(sarus::selectHooks(spec(), {}, json::object()).empty());
}

TEST(HooksConfig, MpiHooks) {
    EXPECT_TRUE(sarus::mpiTypeOf(hook("m", {{"annotations", {{"^com.hooks.mpi.enabled$", "^true$"}}}})).has_value());
    EXPECT_EQ(sarus::mpiTypeOf(hook("t", {{"always", true}})), std::nullopt);
    // Sarus's rule: the condition must accept com.hooks.mpi.enabled=true itself
    EXPECT_EQ(sarus::mpiTypeOf(hook("n", {{"annotations", {{"^com.hooks.mpi.enabled$", "^false$"}}}})), std::nullopt);
    EXPECT_EQ(sarus::mpiTypeOf(hook("o", {{"annotations", {{"^com.hooks.mpi.type$", "^mpich$"}}}})), std::nullopt);
}

TEST(HooksConfig, MpiTypeIsTheValuePatternOfTheTypeCondition) {
    auto typed = hook("m", {{"annotations", {{"^com.hooks.mpi.enabled$", "^true$"}, {"^com.hooks.mpi.type$", "^mpich$"}}}});
    EXPECT_EQ(sarus::mpiTypeOf(typed), std::optional<std::string>("^mpich$"));
    EXPECT_EQ(sarus::mpiTypeOf(hook("m", {{"annotations", {{"com.hooks.mpi.enabled", "true"}}}})),
              std::optional<std::string>(""));
    EXPECT_EQ(sarus::mpiTypeOf(hook("t", {{"always", true}})), std::nullopt);
}

TEST(HooksConfig, AnnotationsNoHookActsOn) {
    std::vector<sarus::HookFile> files = {hook("m", {{"annotations", {{"^com.hooks.mpi.enabled$", "^true$"}}}}),
                                          hook("t", {{"always", true}})};
    EXPECT_EQ(sarus::unheededAnnotations({"com.hooks.mpi.enabled", "com.hooks.ssh.enabled"}, files),
              std::vector<std::string>{"com.hooks.ssh.enabled"});
    EXPECT_TRUE(sarus::unheededAnnotations({}, files).empty());
}

TEST(HooksConfig, ASettingOfAHookFamilyCountsWhileItsHookIsEnabled) {
    std::vector<sarus::HookFile> files = {hook("s", {{"annotations", {{"^com.hooks.ssh.enabled$", "^true$"}}}})};
    EXPECT_TRUE(sarus::unheededAnnotations({"com.hooks.ssh.enabled", "com.hooks.ssh.port"}, files).empty());
    EXPECT_EQ(sarus::unheededAnnotations({"com.hooks.ssh.port"}, files),
              std::vector<std::string>{"com.hooks.ssh.port"});
    EXPECT_EQ(sarus::unheededAnnotations({"com.hooks.mpi.enabled", "com.hooks.mpi.type"}, files),
              (std::vector<std::string>{"com.hooks.mpi.enabled", "com.hooks.mpi.type"}));
}

TEST(HooksConfig, TheLastOfDuplicateVariablesWins) {
    auto file = hook("h", {{"always", true}});
    file.json["hook"]["env"] = {"A=1", "B=2", "A=3"};
    auto hooks = sarus::selectHooks(spec(), {file}, json::object());
    EXPECT_EQ(hooks["createContainer"][0]["env"], json({"B=2", "A=3"}));
}

class HookFiles : public ::testing::Test {
protected:
    void write(const std::string& name, const std::string& text) { std::ofstream(dir / name) << text; }
    fs::path schema() const { return fs::path(SARUS_SOURCE_DIR) / "etc" / "hook.schema.json"; }
    sarus::TempDirectory temp{fs::temp_directory_path(), "sarus-hooks-test"};
    const fs::path dir = temp.path();
};

TEST_F(HookFiles, LoadedInFileNameOrder) {
    write("20-b.json", hook("b", {{"always", true}}).json.dump());
    write("10-a.json", hook("a", {{"always", true}}).json.dump());
    write("README", "not a hook");
    auto files = sarus::loadHookFiles(dir, schema());
    ASSERT_EQ(files.size(), 2u);
    EXPECT_EQ(files[0].name, "10-a.json");
    EXPECT_EQ(files[1].name, "20-b.json");
}

TEST_F(HookFiles, MissingDirectoryGivesNoHooks) {
    EXPECT_TRUE(sarus::loadHookFiles(dir / "missing", schema()).empty());
}

TEST_F(HookFiles, BadFilesNameTheFile) {
    write("bad.json", R"({"version": "1.0.0", "hook": {"path": "relative"}, "when": {"always": true},
                          "stages": ["createContainer"]})");
    try {
        sarus::loadHookFiles(dir, schema());
        FAIL();
    } catch (const sarus::Error& e) {
        EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos) << e.what();
    }
    fs::remove(dir / "bad.json");
    write("broken.json", "{");
    try {
        sarus::loadHookFiles(dir, schema());
        FAIL();
    } catch (const sarus::Error& e) {
        EXPECT_NE(std::string(e.what()).find("broken.json"), std::string::npos) << e.what();
    }
}

TEST_F(HookFiles, TemplatesAreValidOnceThePrefixIsFilledIn) {
    auto templates = fs::path(SARUS_SOURCE_DIR) / "etc" / "templates" / "hooks.d";
    for (const auto& entry : fs::directory_iterator(templates)) {
        std::ifstream in(entry.path());
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        for (auto at = text.find("@PREFIX@"); at != std::string::npos; at = text.find("@PREFIX@")) {
            text.replace(at, 8, "/opt/sarus");
        }
        write(entry.path().filename(), text);
    }
    auto files = sarus::loadHookFiles(dir, schema());
    ASSERT_EQ(files.size(), 7u);  // in file-name order
    EXPECT_EQ(files[0].json["hook"]["path"], "/opt/sarus/bin/amdgpu_hook");
    EXPECT_EQ(files[1].json["hook"]["path"], "/opt/sarus/bin/glibc_hook");
    EXPECT_EQ(files[2].json["hook"]["path"], "/opt/sarus/bin/mount_hook");
    EXPECT_EQ(files[3].json["hook"]["path"], "/opt/sarus/bin/mpi_hook");
    EXPECT_EQ(files[4].json["hook"]["path"], "/opt/sarus/bin/slurm_global_sync_hook");
    EXPECT_EQ(files[5].json["hook"]["path"], "/opt/sarus/bin/ssh_hook");
    EXPECT_EQ(files[6].json["hook"]["path"], "/opt/sarus/bin/timestamp_hook");
}

TEST(HooksInOciConfig, WrittenWithTheirOutputFileAndNeverTheUsers) {
    auto s = spec();
    s.annotations["run.oci.hooks.stderr"] = "/etc/shadow";
    sarus::OciConfigOptions options;
    options.hooksStdout = "/bundle/hooks.stdout";
    options.hooksStderr = "/bundle/hooks.stderr";
    auto none = sarus::generateOciConfig(s, options);
    EXPECT_FALSE(none.contains("hooks"));
    EXPECT_FALSE(none["annotations"].contains("run.oci.hooks.stderr"));
    options.hooks = sarus::selectHooks(s, {hook("a", {{"always", true}})}, json::object());
    auto config = sarus::generateOciConfig(s, options);
    EXPECT_EQ(config["hooks"]["createContainer"][0]["path"], "/bin/a");
    EXPECT_EQ(config["annotations"]["run.oci.hooks.stderr"], "/bundle/hooks.stderr");
    EXPECT_EQ(config["annotations"]["run.oci.hooks.stdout"], "/bundle/hooks.stdout");
}

TEST(HooksConfig, ImageLabelsChooseNoHookWhateverThePatternMatches) {
    // A label "com.hooks.mpi-enabled" matches the unescaped dot of
    // ^com.hooks.mpi.enabled$: labels are annotations, not choices.
    auto s = spec();
    s.annotations["com.hooks.slurm-global-sync-enabled"] = "true";
    s.selectingAnnotations.clear();
    EXPECT_FALSE(applies({{"annotations", {{"^com.hooks.slurm-global-sync.enabled$", "^true$"}}}}, s));
    EXPECT_FALSE(applies({{"annotations", {{"^com.hooks.mpi.enabled$", "^true$"}}}}, s));
}
