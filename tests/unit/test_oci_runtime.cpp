// sarus-oci-runtime: config.json (as Slurm rewrites it) -> `sarus run`, and
// the state records behind `state`, `kill` and `delete`.
#include "oci_runtime.hpp"
#include "common/file_utils.hpp"

#include "commands/commands.hpp"
#include "runtime/container_spec.hpp"
#include "image/image_metadata.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using json = nlohmann::json;
namespace fs = std::filesystem;
using sarus::oci::RuntimeError;

namespace {

const std::string sarusPath = "/opt/sarus/bin/sarus";

// What `sarus bundle` writes for load/library/busybox.
json bundleConfig() {
    return json::parse(R"({
        "ociVersion": "1.0.2",
        "process": {"terminal": false, "user": {"uid": 1000, "gid": 1000},
                    "args": ["/bin/sh", "-c", "echo hello from busybox"],
                    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "IMAGE_VAR=from-image"],
                    "cwd": "/"},
        "root": {"path": "rootfs", "readonly": true},
        "annotations": {"com.sarus.image": "load/library/busybox:latest", "com.sarus.repository": "local"}
    })");
}

// What Slurm 22.05 makes of it for `srun --container=B hostname` (as seen
// on the test cluster): the job's environment after the bundle's (PATH
// twice), without the task's variables (SLURM_PROCID...), the command, an
// absolute root.path, annotations kept.
json slurmConfig() {
    auto config = bundleConfig();
    config["process"]["args"] = {"/usr/bin/hostname"};
    config["process"]["env"] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                "IMAGE_VAR=from-image", "PATH=/opt/sarus/bin:/usr/bin", "SLURM_JOB_ID=42",
                                "SARUS_CONFIG_FILE=/var/tmp/x/sarus.json", "HOME=/home/alice"};
    config["root"]["path"] = "/home/alice/bundle/rootfs";
    config["mounts"] = json::array();
    return config;
}

sarus::oci::SarusInvocation translate(const json& config, const std::vector<std::string>& ownEnv = {}) {
    return sarus::oci::sarusInvocation(config, sarusPath, "node1.alice.42.0.1", ownEnv);
}

std::string errorOf(const json& config) {
    try {
        translate(config);
    } catch (const RuntimeError& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(OciRuntime, BundleAsMadeRunsTheImageCommand) {
    auto invocation = translate(bundleConfig());
    std::vector<std::string> expected = {sarusPath, "run", "--entrypoint=", "-n", "node1.alice.42.0.1", "-w", "/",
                                         "load/library/busybox:latest", "/bin/sh", "-c", "echo hello from busybox"};
    EXPECT_EQ(invocation.argv, expected);
}

// sarus bundle -> sarus-oci-runtime run -> sarus run: the container gets the
// command and working directory that `sarus run IMAGE` gives it.
TEST(OciRuntime, BundleRoundTripIsSarusRunOfTheImage) {
    sarus::ImageMetadata image;
    image.entrypoint = std::vector<std::string>{"/entry", "--flag"};
    image.cmd = std::vector<std::string>{"default-arg"};
    image.workingDir = "/srv/app/";
    image.env = {"PATH=/opt/bin:/bin", "A=1"};
    auto config = sarus::bundleConfig(image, "load/library/app:1", false, 1000, 1000);
    EXPECT_EQ(config["root"]["path"], "rootfs");
    EXPECT_EQ(config["process"]["env"], json({"PATH=/opt/bin:/bin", "A=1"}));
    auto argv = translate(config).argv;
    auto at = std::find(argv.begin(), argv.end(), "load/library/app:1");
    ASSERT_NE(at, argv.end());
    // what sarus run makes of `--entrypoint= -w CWD IMAGE ARGS...`
    sarus::RunOptions options;
    options.entrypoint = "";
    options.command.assign(at + 1, argv.end());
    options.workdir = *(std::find(argv.begin(), at, "-w") + 1);
    sarus::RunOptions plain;
    EXPECT_EQ(sarus::buildArgs(image, options), sarus::buildArgs(image, plain));
    EXPECT_EQ(sarus::buildWorkingDirectory(image, options), sarus::buildWorkingDirectory(image, plain));
    EXPECT_EQ(std::find(argv.begin(), at, "--centralized-repository"), at);
    config = sarus::bundleConfig(image, "load/library/app:1", true, 1000, 1000);
    argv = translate(config).argv;
    EXPECT_NE(std::find(argv.begin(), argv.end(), "--centralized-repository"), argv.end());
}

TEST(OciRuntime, SlurmsCommandAndEnvironment) {
    auto invocation = translate(slurmConfig(), {"PATH=/usr/bin", "HOME=/root", "LANG=C"});
    std::vector<std::string> expected = {sarusPath, "run", "--entrypoint=", "-n", "node1.alice.42.0.1", "-w", "/",
                                         "load/library/busybox:latest", "/usr/bin/hostname"};
    EXPECT_EQ(invocation.argv, expected);
    // process.env is sarus's environment, so the host environment of `sarus
    // run`: nothing of the runtime's own (slurmstepd's HOME=/root) leaks in.
    // Slurm 22.05 gives the job's PATH after the bundle's: kept as it is.
    EXPECT_EQ(invocation.env, slurmConfig()["process"]["env"].get<std::vector<std::string>>());
}

TEST(OciRuntime, ArgsAreTheWholeCommandLine) {
    // --entrypoint= drops the image's entrypoint: process.args is all there is.
    auto config = bundleConfig();
    config["process"]["args"] = {"-weird", "--looks-like-an-option", "arg with spaces", ""};
    auto argv = translate(config).argv;
    std::vector<std::string> tail(argv.end() - 5, argv.end());
    EXPECT_EQ(tail, (std::vector<std::string>{"load/library/busybox:latest", "-weird", "--looks-like-an-option",
                                              "arg with spaces", ""}));
    EXPECT_EQ(argv[2], "--entrypoint=");
}

TEST(OciRuntime, RewrittenCwd) {
    auto config = bundleConfig();
    config["process"]["cwd"] = "/tmp/work dir";
    auto argv = translate(config).argv;
    auto w = std::find(argv.begin(), argv.end(), "-w");
    ASSERT_NE(w, argv.end());
    EXPECT_EQ(*(w + 1), "/tmp/work dir");
    config["process"].erase("cwd");
    argv = translate(config).argv;
    EXPECT_EQ(std::find(argv.begin(), argv.end(), "-w"), argv.end());  // the image's WorkingDir then
}

TEST(OciRuntime, EnvironmentWithoutProcessEnvIsInherited) {
    auto config = bundleConfig();
    config["process"].erase("env");
    EXPECT_EQ(translate(config, {"A=1", "B=2"}).env, (std::vector<std::string>{"A=1", "B=2"}));
    config["process"]["env"] = json::array();
    EXPECT_TRUE(translate(config, {"A=1"}).env.empty());
}

// slurmstepd's own environment, as Slurm 22.05 runs RunTimeRun with it.
const std::vector<std::string> stepdEnv = {"HOME=/root", "LANG=C.UTF-8", "PATH=/usr/sbin:/usr/bin",
                                           "SLURMD_NODENAME=node1", "SLURM_CONF=/etc/slurm/slurm.conf",
                                           "SLURM_MPI_TYPE=none"};

TEST(OciRuntime, SarusAndSlurmVariablesOfTheRuntimeUnlessTheJobHasThem) {
    auto env = translate(bundleConfig(), {"HOME=/root", "SARUS_CONFIG_FILE=/mine.json", "OTHER=x"}).env;
    EXPECT_EQ(env, (std::vector<std::string>{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                             "IMAGE_VAR=from-image", "SARUS_CONFIG_FILE=/mine.json"}));
    env = translate(slurmConfig(), stepdEnv).env;
    auto expected = slurmConfig()["process"]["env"].get<std::vector<std::string>>();
    expected.insert(expected.end(), {"SLURMD_NODENAME=node1", "SLURM_CONF=/etc/slurm/slurm.conf",
                                     "SLURM_MPI_TYPE=none"});
    EXPECT_EQ(env, expected);  // the job's SARUS_CONFIG_FILE and HOME stay
}

TEST(OciRuntime, BindMountsOfABatchStep) {
    auto config = slurmConfig();
    config["process"]["args"] = {"/tmp/slurm/startup"};
    config["mounts"] = json::parse(R"([
        {"options": ["bind"], "destination": "/tmp/slurm/stdout", "type": "none", "source": "/home/alice/out"},
        {"options": ["bind", "ro"], "destination": "/tmp/slurm/startup", "type": "none",
         "source": "/var/spool/slurmd/job00008/slurm_script"},
        {"destination": "/proc", "type": "proc", "source": "proc"}])");
    auto argv = translate(config).argv;
    std::vector<std::string> tail(argv.end() - 4, argv.end());
    EXPECT_EQ(tail, (std::vector<std::string>{
                        "--mount=type=bind,source=/home/alice/out,destination=/tmp/slurm/stdout",
                        "--mount=type=bind,source=/var/spool/slurmd/job00008/slurm_script,"
                        "destination=/tmp/slurm/startup,readonly",
                        "load/library/busybox:latest", "/tmp/slurm/startup"}));
    config["mounts"][0]["source"] = "/home/alice/a,b";
    EXPECT_EQ(errorOf(config), "config.json: cannot pass the mount of /home/alice/a,b on /tmp/slurm/stdout "
                               "to sarus run: its paths hold a ','");
}

TEST(OciRuntime, MalformedEnvironmentEntriesAreDropped) {
    auto config = bundleConfig();
    config["process"]["env"] = {"A=1", "NOEQUALS", "=nameless", "B=", "C=x=y"};
    EXPECT_EQ(translate(config).env, (std::vector<std::string>{"A=1", "B=", "C=x=y"}));
}

TEST(OciRuntime, CentralizedRepositoryTerminalAndHookAnnotations) {
    auto config = bundleConfig();
    config["annotations"]["com.sarus.repository"] = "centralized";
    config["annotations"]["com.hooks.glibc.enabled"] = "true";
    config["annotations"]["org.example.other"] = "ignored";
    config["process"]["terminal"] = true;
    auto argv = translate(config).argv;
    auto image = std::find(argv.begin(), argv.end(), "load/library/busybox:latest");
    std::vector<std::string> options(argv.begin() + 2, image);
    EXPECT_NE(std::find(options.begin(), options.end(), "--centralized-repository"), options.end());
    EXPECT_NE(std::find(options.begin(), options.end(), "-t"), options.end());
    EXPECT_NE(std::find(options.begin(), options.end(), "--annotation=com.hooks.glibc.enabled=true"), options.end());
    for (const auto& option : options) {
        EXPECT_EQ(option.find("org.example"), std::string::npos);
    }
}

TEST(OciRuntime, RefusesWhatIsNotASarusBundle) {
    auto config = bundleConfig();
    config["annotations"].erase("com.sarus.image");
    EXPECT_EQ(errorOf(config),
              "config.json has no annotation com.sarus.image: make the bundle with 'sarus bundle IMAGE DIR'");
    config = bundleConfig();
    config["process"]["args"] = json::array();
    EXPECT_EQ(errorOf(config), "config.json: process.args is empty");
    config["process"]["args"] = {"ok", 3};
    EXPECT_EQ(errorOf(config), "config.json: process.args is not a list of strings");
    config = bundleConfig();
    config["process"]["env"] = "A=1";
    EXPECT_EQ(errorOf(config), "config.json: process.env is not a list of strings");
    EXPECT_EQ(errorOf(json::array()), "config.json is not a JSON object");
}

TEST(OciRuntime, ConfigValuesNeverBecomeOptionsOfSarus) {
    auto config = bundleConfig();
    config["annotations"]["com.sarus.image"] = "--mount=type=bind,source=/etc,destination=/x";
    EXPECT_EQ(errorOf(config), "config.json: annotation com.sarus.image "
                               "'--mount=type=bind,source=/etc,destination=/x' is no image reference");
    config = bundleConfig();
    config["annotations"]["com.hooks.a=b"] = "c";
    EXPECT_EQ(errorOf(config), "config.json: annotation key 'com.hooks.a=b' holds a '='");
}

TEST(OciRuntime, Ids) {
    EXPECT_NO_THROW(sarus::oci::checkId("node1.sarustest.17.0.0"));
    EXPECT_NO_THROW(sarus::oci::checkId("node1.sarustest.17.0.-1"));  // Slurm's query after a step
    EXPECT_NO_THROW(sarus::oci::checkId("node1.alice@ad.example.org.17.0.0"));  // sssd's qualified names
    auto argv = sarus::oci::sarusInvocation(bundleConfig(), sarusPath, "node1.alice@ad.17.0.0", {}).argv;
    auto name = std::find(argv.begin(), argv.end(), "-n");
    ASSERT_NE(name, argv.end());
    EXPECT_EQ(*(name + 1), "node1.alice_ad.17.0.0");  // a name `sarus run -n` takes
    for (const auto& bad : std::vector<std::string>{"", "../x", "a/b", ".hidden", "-x", "a b", std::string(129, 'a')}) {
        EXPECT_THROW(sarus::oci::checkId(bad), RuntimeError) << bad;
    }
}

TEST(OciRuntime, Signals) {
    EXPECT_EQ(sarus::oci::parseSignal("SIGTERM"), SIGTERM);
    EXPECT_EQ(sarus::oci::parseSignal("KILL"), SIGKILL);
    EXPECT_EQ(sarus::oci::parseSignal("9"), SIGKILL);
    EXPECT_EQ(sarus::oci::parseSignal("SIGUSR1"), SIGUSR1);
    EXPECT_THROW(sarus::oci::parseSignal("SIGNOPE"), RuntimeError);
    EXPECT_THROW(sarus::oci::parseSignal("0"), RuntimeError);
    EXPECT_THROW(sarus::oci::parseSignal("999"), RuntimeError);
}

class OciRuntimeState : public ::testing::Test {
protected:
    sarus::oci::StateDirectory mine(const fs::path& path) { return {path, ::geteuid()}; }
    static bool running(const std::optional<sarus::oci::StateRecord>& record, uid_t owner = ::geteuid()) {
        return record && sarus::oci::isRunning(*record, owner);
    }
    sarus::TempDirectory temp{fs::temp_directory_path(), "test-oci-runtime"};
    const fs::path base = temp.path();
};

TEST_F(OciRuntimeState, RunningWhileTheProcessLivesStoppedAfter) {
    auto states = mine(base / "state");
    pid_t child = ::fork();
    if (child == 0) {
        ::pause();
        _exit(0);
    }
    sarus::oci::StateRecord record{"c1", child, sarus::oci::processStartTime(child).value(), "/b", "load/library/x:1"};
    states.record(record);
    EXPECT_EQ(fs::status(base / "state").permissions(), fs::perms::owner_all);
    auto found = states.find("c1");
    ASSERT_TRUE(running(found));
    auto state = sarus::oci::stateDocument("c1", found, true);
    EXPECT_EQ(state["status"], "running");
    EXPECT_EQ(state["pid"], child);
    EXPECT_EQ(state["bundle"], "/b");
    EXPECT_EQ(state["annotations"]["com.sarus.image"], "load/library/x:1");
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    found = states.find("c1");
    EXPECT_FALSE(running(found));
    state = sarus::oci::stateDocument("c1", found, false);
    EXPECT_EQ(state["status"], "stopped");
    EXPECT_EQ(state["pid"], 0);
    states.removeStale();
    EXPECT_FALSE(states.find("c1"));
}

TEST_F(OciRuntimeState, AReusedPidIsNotTheContainer) {
    auto states = mine(base);
    sarus::oci::StateRecord record{"c2", ::getpid(), sarus::oci::processStartTime(::getpid()).value() + 1, "/b", ""};
    states.record(record);
    EXPECT_FALSE(running(states.find("c2")));
    record.startTime -= 1;
    EXPECT_TRUE(sarus::oci::isRunning(record, ::geteuid()));
}

TEST_F(OciRuntimeState, ARunningIdIsClaimedOnce) {
    auto states = mine(base);
    auto self = sarus::oci::processStartTime(::getpid()).value();
    states.claim({"c7", ::getpid(), self, "/b", ""});
    EXPECT_THROW(mine(base).claim({"c7", ::getpid(), self, "/other", ""}), RuntimeError);
    EXPECT_EQ(states.find("c7")->bundle, "/b");
    states.record({"c8", ::getpid(), self + 1, "/b", ""});  // names no live process
    states.claim({"c8", ::getpid(), self, "/new", ""});
    EXPECT_EQ(states.find("c8")->bundle, "/new");
}

// Claimants that each live on as the container's process, all at once: the
// record must name the one that won, or state and kill lose the container.
TEST_F(OciRuntimeState, ConcurrentClaimsOfOneIdHaveOneWinner) {
    constexpr int claimants = 8;
    for (int round = 0; round < 20; ++round) {
        auto id = "race" + std::to_string(round);
        int start[2], results[2];
        ASSERT_EQ(::pipe(start), 0);
        ASSERT_EQ(::pipe(results), 0);
        std::vector<pid_t> children;
        for (int i = 0; i < claimants; ++i) {
            pid_t child = ::fork();
            if (child == 0) {
                ::close(start[1]);
                char go;
                (void)!::read(start[0], &go, 1);
                char won = 'y';
                try {
                    mine(base).claim({id, ::getpid(), sarus::oci::processStartTime(::getpid()).value(), "/b", ""});
                } catch (const RuntimeError&) {
                    won = 'n';
                }
                (void)!::write(results[1], &won, 1);
                ::pause();  // the claimed container runs on
                _exit(0);
            }
            children.push_back(child);
        }
        ::close(start[0]);
        ::close(start[1]);  // all go
        ::close(results[1]);
        int winners = 0;
        for (int i = 0; i < claimants; ++i) {
            char won = 0;
            ASSERT_EQ(::read(results[0], &won, 1), 1);
            winners += won == 'y';
        }
        ::close(results[0]);
        auto recorded = mine(base).find(id);
        bool recordRuns = recorded && running(recorded);
        for (pid_t child : children) {
            ::kill(child, SIGKILL);
            ::waitpid(child, nullptr, 0);
        }
        ASSERT_EQ(winners, 1) << "round " << round;
        ASSERT_TRUE(recordRuns) << "round " << round;
    }
}

TEST_F(OciRuntimeState, AProcessOfAnotherUserIsNotTheirContainer) {
    // pid 1 is root's: a record of another user naming it is no container of theirs
    sarus::oci::StateRecord record{"c3", 1, sarus::oci::processStartTime(1).value(), "/b", ""};
    EXPECT_FALSE(sarus::oci::isRunning(record, 4000000000u));
}

TEST_F(OciRuntimeState, AnUnknownIdIsStopped) {
    auto states = mine(base / "never-made");
    auto record = states.find("node1.u.1.0.-1");
    EXPECT_EQ(sarus::oci::stateDocument("node1.u.1.0.-1", record, running(record)),
              json::parse(R"({"ociVersion": "1.0.2", "id": "node1.u.1.0.-1", "status": "stopped",
                              "pid": 0, "bundle": ""})"));
    EXPECT_FALSE(fs::exists(base / "never-made"));  // a query writes nothing
}

TEST_F(OciRuntimeState, RefusesADirectoryOthersCanUse) {
    ::chmod(base.c_str(), 0777);
    EXPECT_THROW(mine(base).record({"c4", ::getpid(), 0, "/b", ""}), RuntimeError);
}

TEST_F(OciRuntimeState, GarbageIsNoContainer) {
    std::ofstream(base / "c5.json") << "{not json";
    EXPECT_FALSE(mine(base).find("c5"));
    std::ofstream(base / "c6.json") << R"({"id": "other", "pid": 1, "startTime": 1})";
    EXPECT_FALSE(mine(base).find("c6"));
}

// Root's own containers (root submits the job) have fallbacks named
// /tmp/sarus-oci-0.*, a name any user may take in /tmp.
TEST(OciRuntimeStateDirectory, RootRemovesNoFallbackOfAnotherUser) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "needs root (root's fallbacks, chown)";
    }
    fs::path planted = "/tmp/sarus-oci-0.unit-" + std::to_string(::getpid());
    ASSERT_EQ(::mkdir(planted.c_str(), 0700), 0);
    ASSERT_EQ(::chown(planted.c_str(), 4000000000u, 4000000000u), 0);
    sarus::oci::StateDirectory::ofUser(0).removeStale();
    bool kept = fs::exists(planted);
    fs::remove(planted);
    EXPECT_TRUE(kept) << "root removed a directory another user made";
}

// As root, Slurm 22.05 asks about a user's container (--user %u): only what
// that user wrote, in a directory of theirs, counts.
TEST_F(OciRuntimeState, RootReadsOnlyWhatTheUserWrote) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "needs root (chown)";
    }
    const uid_t user = 4000000000u;
    std::ofstream(base / "c7.json") << R"({"id": "c7", "pid": 1, "startTime": 1})";
    sarus::oci::StateDirectory theirs(base, user);
    EXPECT_FALSE(theirs.find("c7"));  // directory and file are root's
    ASSERT_EQ(::chown(base.c_str(), user, user), 0);
    EXPECT_FALSE(theirs.find("c7"));  // the file is still root's
    theirs.remove("c7");
    EXPECT_TRUE(fs::exists(base / "c7.json"));
    ASSERT_EQ(::chown((base / "c7.json").c_str(), user, user), 0);
    ASSERT_TRUE(theirs.find("c7"));
    EXPECT_FALSE(running(theirs.find("c7"), user));
    theirs.remove("c7");
    EXPECT_FALSE(fs::exists(base / "c7.json"));
}

TEST(OciRuntimeStateDirectory, DefaultPathIsPerUser) {
    auto path = sarus::oci::StateDirectory::defaultPath(::geteuid()).string();
    auto uid = std::to_string(::geteuid());
    EXPECT_TRUE(path == "/run/user/" + uid + "/sarus-oci" || path == "/tmp/sarus-oci-" + uid) << path;
    EXPECT_EQ(sarus::oci::StateDirectory::defaultPath(4000000000u).string(), "/tmp/sarus-oci-4000000000");
}
