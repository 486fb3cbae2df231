#include "config/config.hpp"
#include "runtime/container_spec.hpp"
#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "jobs/pmi_descriptor.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <optional>

// GCC 12 reports a false -Wmaybe-uninitialized inside std::optional<std::string>
// when RunOptions::entrypoint is set in a test body.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace fs = std::filesystem;
using json = nlohmann::json;
using Strings = std::vector<std::string>;

namespace {

std::string errorOf(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const sarus::Error& e) {
        return e.what();
    }
    return "";
}

Strings env(const Strings& host, const Strings& image = {}, const json& config = json(),
            const Strings& cli = {}, bool init = false) {
    return sarus::buildEnvironment(host, image, config, cli, init);
}

sarus::ImageMetadata image(std::optional<Strings> entrypoint, std::optional<Strings> cmd) {
    sarus::ImageMetadata meta;
    meta.entrypoint = std::move(entrypoint);
    meta.cmd = std::move(cmd);
    return meta;
}

}  // namespace

// ---------------------------------------------------------------- environment

TEST(BuildEnvironment, HostEnvironmentIsPassedInOrder) {
    EXPECT_EQ(env({"A=1", "B=2", "C="}), (Strings{"A=1", "B=2", "C="}));
}

TEST(BuildEnvironment, ValueMayContainEqualSigns) {
    EXPECT_EQ(env({"OPTS=a=b=c"}), (Strings{"OPTS=a=b=c"}));
}

TEST(BuildEnvironment, ImageEnvOverridesHostKeepingPosition) {
    EXPECT_EQ(env({"A=host", "B=host"}, {"B=image", "C=image"}),
              (Strings{"A=host", "B=image", "C=image"}));
}

TEST(BuildEnvironment, ConfigSetObjectFormOverridesImage) {
    EXPECT_EQ(env({"A=host"}, {"B=image"}, json::parse(R"({"set": {"B": "cfg", "D": "new"}})")),
              (Strings{"A=host", "B=cfg", "D=new"}));
}

TEST(BuildEnvironment, ConfigSetListOfSingleEntryObjectsForm) {
    EXPECT_EQ(env({}, {"B=image"}, json::parse(R"({"set": [{"B": "cfg"}, {"E": "5"}]})")),
              (Strings{"B=cfg", "E=5"}));
}

TEST(BuildEnvironment, ConfigPrependToExistingValue) {
    EXPECT_EQ(env({"PATH=/usr/bin"}, {}, json::parse(R"({"prepend": {"PATH": "/opt/bin"}})")),
              (Strings{"PATH=/opt/bin:/usr/bin"}));
}

TEST(BuildEnvironment, ConfigPrependToMissingOrEmptyValueHasNoColon) {
    EXPECT_EQ(env({"E="}, {}, json::parse(R"({"prepend": [{"E": "/x"}, {"M": "/y"}]})")),
              (Strings{"E=/x", "M=/y"}));
}

TEST(BuildEnvironment, ConfigAppendToExistingValue) {
    EXPECT_EQ(env({}, {"LD_LIBRARY_PATH=/lib"}, json::parse(R"({"append": [{"LD_LIBRARY_PATH": "/opt/lib"}]})")),
              (Strings{"LD_LIBRARY_PATH=/lib:/opt/lib"}));
}

TEST(BuildEnvironment, ConfigAppendToMissingValueHasNoColon) {
    EXPECT_EQ(env({}, {}, json::parse(R"({"append": {"M": "/y"}})")), (Strings{"M=/y"}));
}

TEST(BuildEnvironment, ConfigSetThenPrependThenAppend) {
    auto config = json::parse(R"({"set": {"P": "mid"}, "prepend": {"P": "first"}, "append": {"P": "last"}})");
    EXPECT_EQ(env({"P=host"}, {}, config), (Strings{"P=first:mid:last"}));
}

TEST(BuildEnvironment, ConfigUnsetRemovesHostAndImageVariables) {
    auto config = json::parse(R"({"unset": ["A", "B", "NOT_THERE"]})");
    EXPECT_EQ(env({"A=1", "K=2"}, {"B=3"}, config), (Strings{"K=2"}));
}

TEST(BuildEnvironment, ConfigUnsetAppliesAfterSet) {
    auto config = json::parse(R"({"set": {"A": "1"}, "unset": ["A"]})");
    EXPECT_EQ(env({}, {}, config), Strings{});
}

TEST(BuildEnvironment, NullOrNonObjectConfigEnvironmentIsIgnored) {
    EXPECT_EQ(env({"A=1"}, {}, json()), (Strings{"A=1"}));
    EXPECT_EQ(env({"A=1"}, {}, json::array({"x"})), (Strings{"A=1"}));
}

const std::string allCapabilities = "NVIDIA_DRIVER_CAPABILITIES=all";

TEST(BuildEnvironment, CudaDevicesFromHostBecomeNvidiaDevicesAndAreRenumbered) {
    EXPECT_EQ(env({"CUDA_VISIBLE_DEVICES=1,3"}),
              (Strings{"CUDA_VISIBLE_DEVICES=0,1", "NVIDIA_VISIBLE_DEVICES=1,3", allCapabilities}));
}

TEST(BuildEnvironment, CudaDevicesRenumberingKeepsHostOrder) {
    EXPECT_EQ(env({"CUDA_VISIBLE_DEVICES=3,1,2"}),
              (Strings{"CUDA_VISIBLE_DEVICES=2,0,1", "NVIDIA_VISIBLE_DEVICES=3,1,2", allCapabilities}));
}

TEST(BuildEnvironment, CudaDevicesNumericOrderNotLexical) {
    EXPECT_EQ(env({"CUDA_VISIBLE_DEVICES=10,2"}),
              (Strings{"CUDA_VISIBLE_DEVICES=1,0", "NVIDIA_VISIBLE_DEVICES=10,2", allCapabilities}));
}

TEST(BuildEnvironment, AnImagesDriverCapabilitiesAreKeptWithGpus) {
    EXPECT_EQ(env({"CUDA_VISIBLE_DEVICES=0"}, {"NVIDIA_DRIVER_CAPABILITIES=compute,utility"}),
              (Strings{"CUDA_VISIBLE_DEVICES=0", "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
                       "NVIDIA_VISIBLE_DEVICES=0"}));
}

// As Sarus: without GPUs from the host, nothing of an image may ask the
// NVIDIA hook for GPUs (a legacy image's CUDA_VERSION asks for them all).
TEST(BuildEnvironment, NoHostCudaDevicesRemovesWhatWouldAskForGpus) {
    EXPECT_EQ(env({"A=1"}, {"NVIDIA_VISIBLE_DEVICES=all", "CUDA_VERSION=11.0", "CUDA_VISIBLE_DEVICES=0",
                            "NVIDIA_DRIVER_CAPABILITIES=compute", "B=2"}),
              (Strings{"A=1", "B=2"}));
}

TEST(BuildEnvironment, EmptyHostCudaDevicesRemovesNvidiaDevices) {
    EXPECT_EQ(env({"CUDA_VISIBLE_DEVICES="}, {"NVIDIA_VISIBLE_DEVICES=all"}), (Strings{}));
}

TEST(BuildEnvironment, NoDevFilesRemovesNvidiaDevices) {
    EXPECT_EQ(env({"CUDA_VISIBLE_DEVICES=NoDevFiles"}, {"NVIDIA_VISIBLE_DEVICES=all"}), (Strings{}));
}

TEST(BuildEnvironment, HostCudaDevicesOverrideImageNvidiaDevices) {
    EXPECT_EQ(env({"CUDA_VISIBLE_DEVICES=0"}, {"NVIDIA_VISIBLE_DEVICES=all"}),
              (Strings{"CUDA_VISIBLE_DEVICES=0", "NVIDIA_VISIBLE_DEVICES=0", allCapabilities}));
}

TEST(BuildEnvironment, TheSitesEnvironmentComesAfterTheGpuRewriting) {
    auto config = json::parse(R"({"set": {"NVIDIA_DRIVER_CAPABILITIES": "compute"}})");
    EXPECT_EQ(env({"CUDA_VISIBLE_DEVICES=0"}, {}, config),
              (Strings{"CUDA_VISIBLE_DEVICES=0", "NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_DRIVER_CAPABILITIES=compute"}));
}

TEST(BuildEnvironment, WhatGlibcKeepsFromSetUserIdProgramsIsNotPassed) {
    EXPECT_EQ(env({"LD_PRELOAD=/x.so", "A=1", "LD_LIBRARY_PATH=/lib", "TMPDIR=/scratch", "MALLOC_CHECK_=3",
                   "LD_BIND_NOW=1"}),
              (Strings{"A=1", "LD_BIND_NOW=1"}));
    // asked for by name, or set by the image or the site, they are
    EXPECT_EQ(env({"TMPDIR=/scratch"}, {"LD_LIBRARY_PATH=/image"}, json(), {"TMPDIR"}),
              (Strings{"LD_LIBRARY_PATH=/image", "TMPDIR=/scratch"}));
}

TEST(BuildEnvironment, AnImagesPmixVariablesAreNotApplied) {
    EXPECT_EQ(env({"PMIX_SERVER_URI=host"}, {"PMIX_SERVER_URI=image", "PMIX_MCA_x=1", "A=1"}),
              (Strings{"PMIX_SERVER_URI=host", "A=1"}));
}

TEST(BuildEnvironment, InitMakesTiniASubreaper) {
    EXPECT_EQ(env({"A=1"}, {}, json(), {}, true), (Strings{"A=1", "TINI_SUBREAPER=1"}));
    EXPECT_EQ(env({"A=1"}), (Strings{"A=1"}));
}

TEST(BuildEnvironment, CliNameValueOverridesEverything) {
    auto config = json::parse(R"({"set": {"A": "cfg"}})");
    EXPECT_EQ(env({"A=host"}, {"A=image"}, config, {"A=cli", "Z=26"}), (Strings{"A=cli", "Z=26"}));
}

TEST(BuildEnvironment, CliNameValueMayBeEmpty) {
    EXPECT_EQ(env({"A=host"}, {}, json(), {"A="}), (Strings{"A="}));
}

TEST(BuildEnvironment, CliNameValueOverridesCudaRewriting) {
    EXPECT_EQ(env({"CUDA_VISIBLE_DEVICES=4"}, {}, json(), {"CUDA_VISIBLE_DEVICES=7"}),
              (Strings{"CUDA_VISIBLE_DEVICES=7", "NVIDIA_VISIBLE_DEVICES=4", allCapabilities}));
}

TEST(BuildEnvironment, CliNameAloneTakesTheHostValue) {
    // The image overrode X; -e X brings the host's value back.
    EXPECT_EQ(env({"X=host"}, {"X=image"}, json(), {"X"}), (Strings{"X=host"}));
}

TEST(BuildEnvironment, CliNameAloneNotOnHostSetsNothing) {
    EXPECT_EQ(env({"A=1"}, {}, json(), {"MISSING"}), (Strings{"A=1"}));
}

TEST(BuildEnvironment, CliNameAloneRestoresAnUnsetVariable) {
    auto config = json::parse(R"({"unset": ["X"]})");
    EXPECT_EQ(env({"X=host"}, {}, config, {"X"}), (Strings{"X=host"}));
}

TEST(BuildEnvironment, EmptyCliEntryIsRejected) {
    EXPECT_EQ(errorOf([] { env({}, {}, json(), {""}); }),
              "Invalid environment variable requested from CLI: empty option value");
}

TEST(BuildEnvironment, CliEntryWithoutNameIsRejected) {
    EXPECT_EQ(errorOf([] { env({}, {}, json(), {"=value"}); }),
              "Error parsing environment variable requested from CLI '=value': Failed to parse key-value pair "
              "'=value': key is empty");
}

// ---------------------------------------------------------------- args

TEST(BuildArgs, EntrypointThenCmd) {
    sarus::RunOptions options;
    EXPECT_EQ(sarus::buildArgs(image(Strings{"/ep", "-x"}, Strings{"a", "b"}), options),
              (Strings{"/ep", "-x", "a", "b"}));
}

TEST(BuildArgs, CmdAloneWithoutEntrypoint) {
    sarus::RunOptions options;
    EXPECT_EQ(sarus::buildArgs(image(std::nullopt, Strings{"bash"}), options), (Strings{"bash"}));
}

TEST(BuildArgs, CommandReplacesCmdButKeepsEntrypoint) {
    sarus::RunOptions options;
    options.command = {"echo", "hi"};
    EXPECT_EQ(sarus::buildArgs(image(Strings{"/ep"}, Strings{"default"}), options),
              (Strings{"/ep", "echo", "hi"}));
}

TEST(BuildArgs, CommandWithoutEntrypoint) {
    sarus::RunOptions options;
    options.command = {"ls", "-l"};
    EXPECT_EQ(sarus::buildArgs(image(std::nullopt, Strings{"default"}), options), (Strings{"ls", "-l"}));
}

TEST(BuildArgs, EntrypointOptionReplacesEntrypointAndDiscardsCmd) {
    sarus::RunOptions options;
    options.entrypoint.emplace("/bin/sh -c");
    EXPECT_EQ(sarus::buildArgs(image(Strings{"/ep"}, Strings{"default"}), options),
              (Strings{"/bin/sh", "-c"}));
}

TEST(BuildArgs, EntrypointOptionSplitsAtRunsOfSpacesWithoutEmptyArguments) {
    // Sarus splits at each space and passes the empty words on (parity.md)
    sarus::RunOptions options;
    options.entrypoint.emplace(" python3  -u ");
    EXPECT_EQ(sarus::buildArgs(image(std::nullopt, std::nullopt), options), (Strings{"python3", "-u"}));
}

TEST(BuildArgs, EntrypointOptionWithCommand) {
    sarus::RunOptions options;
    options.entrypoint.emplace("env");
    options.command = {"-i", "X=1"};
    EXPECT_EQ(sarus::buildArgs(image(Strings{"/ep"}, Strings{"default"}), options),
              (Strings{"env", "-i", "X=1"}));
}

TEST(BuildArgs, EmptyEntrypointOptionRunsTheCommandAlone) {
    sarus::RunOptions options;
    options.entrypoint.emplace("");
    options.command = {"true"};
    EXPECT_EQ(sarus::buildArgs(image(Strings{"/ep"}, Strings{"default"}), options), (Strings{"true"}));
}

TEST(BuildArgs, EmptyEntrypointOptionWithoutCommandIsAnError) {
    sarus::RunOptions options;
    options.entrypoint.emplace("");
    auto meta = image(Strings{"/ep"}, Strings{"default"});
    try {
        sarus::buildArgs(meta, options);
        FAIL() << "no error";
    } catch (const sarus::Error& e) {
        EXPECT_EQ(std::string(e.what()),
                  "no command to run: the image has no entrypoint or default command, and none was given");
    }
}

TEST(BuildArgs, NothingToRunIsAnError) {
    sarus::RunOptions options;
    EXPECT_THROW(sarus::buildArgs(image(std::nullopt, std::nullopt), options), sarus::Error);
    EXPECT_THROW(sarus::buildArgs(image(Strings{}, Strings{}), options), sarus::Error);
}

// ---------------------------------------------------------------- working directory

TEST(BuildWorkingDirectory, OptionWinsAndIsNormalised) {
    sarus::ImageMetadata meta;
    meta.workingDir = "/image";
    sarus::RunOptions options;
    options.workdir = "/work//dir/./sub/..";
    EXPECT_EQ(sarus::buildWorkingDirectory(meta, options), "/work/dir");
}

TEST(BuildWorkingDirectory, RelativeOptionIsAnError) {
    sarus::RunOptions options;
    options.workdir = "rel/dir";
    EXPECT_EQ(errorOf([&] { sarus::buildWorkingDirectory({}, options); }),
              "invalid --workdir 'rel/dir': not an absolute path");
}

TEST(BuildWorkingDirectory, ImageWorkingDirWhenNoOption) {
    sarus::ImageMetadata meta;
    meta.workingDir = "/srv/app/";
    EXPECT_EQ(sarus::buildWorkingDirectory(meta, {}), "/srv/app");
}

TEST(BuildWorkingDirectory, RootByDefaultOrForRelativeImageWorkingDir) {
    sarus::ImageMetadata meta;
    EXPECT_EQ(sarus::buildWorkingDirectory(meta, {}), "/");
    meta.workingDir = "relative";
    EXPECT_EQ(sarus::buildWorkingDirectory(meta, {}), "/");
}

TEST(BuildWorkingDirectory, NoneInProcOrSys) {
    sarus::RunOptions options;
    options.workdir = "/proc/1/root/etc";
    EXPECT_EQ(errorOf([&] { sarus::buildWorkingDirectory({}, options); }),
              "invalid --workdir '/proc/1/root/etc': /proc/1/root/etc is in /proc, which the runtime mounts over it");
    options.workdir = "/tmp/../sys";
    EXPECT_EQ(errorOf([&] { sarus::buildWorkingDirectory({}, options); }),
              "invalid --workdir '/tmp/../sys': /sys is in /sys, which the runtime mounts over it");
    sarus::ImageMetadata meta;
    meta.workingDir = "/proc/self/cwd";
    EXPECT_EQ(errorOf([&] { sarus::buildWorkingDirectory(meta, {}); }),
              "invalid image WorkingDir '/proc/self/cwd': /proc/self/cwd is in /proc, which the runtime mounts over it");
    options.workdir = "/process";  // a name that only starts like it
    EXPECT_EQ(sarus::buildWorkingDirectory({}, options), "/process");
}

// ---------------------------------------------------------------- annotations

TEST(RequestedHookAnnotations, FlagsAndCliHookKeysButNotLoggingOrOthers) {
    sarus::RunOptions options;
    options.mpi = true;
    options.ssh = true;
    options.annotations = {"com.hooks.x.enabled=1", "com.hooks.logging.level=debug", "other=1",
                           "com.hooks.mpi.enabled=true"};
    EXPECT_EQ(sarus::requestedHookAnnotations(options),
              (std::vector<std::string>{"com.hooks.mpi.enabled", "com.hooks.ssh.enabled", "com.hooks.x.enabled"}));
}

TEST(BuildAnnotations, ImageLabelsAreTheBase) {
    sarus::ImageMetadata meta;
    meta.labels = {{"org.label", "v"}};
    EXPECT_EQ(sarus::buildAnnotations(meta, {}, "mpich"),
              (std::map<std::string, std::string>{{"org.label", "v"}}));
}

TEST(BuildAnnotations, MpiEnablesMpiAndGlibcHooksWithDefaultType) {
    sarus::RunOptions options;
    options.mpi = true;
    EXPECT_EQ(sarus::buildAnnotations({}, options, "mpich"),
              (std::map<std::string, std::string>{{"com.hooks.mpi.enabled", "true"},
                                                  {"com.hooks.glibc.enabled", "true"},
                                                  {"com.hooks.mpi.type", "mpich"}}));
}

TEST(BuildAnnotations, MpiWithoutDefaultTypeSetsNoType) {
    sarus::RunOptions options;
    options.mpi = true;
    auto annotations = sarus::buildAnnotations({}, options, "");
    EXPECT_EQ(annotations.count("com.hooks.mpi.type"), 0u);
    EXPECT_EQ(annotations.at("com.hooks.mpi.enabled"), "true");
}

TEST(BuildAnnotations, MpiTypeImpliesMpiAndOverridesDefault) {
    sarus::RunOptions options;
    options.mpiType = "pmix";
    auto annotations = sarus::buildAnnotations({}, options, "mpich");
    EXPECT_EQ(annotations.at("com.hooks.mpi.enabled"), "true");
    EXPECT_EQ(annotations.at("com.hooks.mpi.type"), "pmix");
}

TEST(BuildAnnotations, GlibcAlone) {
    sarus::RunOptions options;
    options.glibc = true;
    EXPECT_EQ(sarus::buildAnnotations({}, options, "mpich"),
              (std::map<std::string, std::string>{{"com.hooks.glibc.enabled", "true"}}));
}

TEST(BuildAnnotations, SshEnablesSshAndSlurmGlobalSync) {
    sarus::RunOptions options;
    options.ssh = true;
    EXPECT_EQ(sarus::buildAnnotations({}, options, ""),
              (std::map<std::string, std::string>{{"com.hooks.ssh.enabled", "true"},
                                                  {"com.hooks.slurm-global-sync.enabled", "true"}}));
}

TEST(BuildAnnotations, ImageLabelsSwitchNoHookOnAndSetNoSshOrSyncKey) {
    sarus::ImageMetadata meta;
    meta.labels = {{"com.hooks.ssh.enabled", "true"},
                   {"com.hooks.ssh.authorize_ssh_key", "/home/u/.ssh/id_ed25519"},
                   {"com.hooks.ssh.pidfile_host", "/home/u/.bashrc"},
                   {"com.hooks.slurm-global-sync.enabled", "true"},
                   {"com.hooks.mpi.enabled", "true"},
                   {"com.hooks.site.enabled", "true"},
                   {"com.hooks.mpi.type", "mpich"},
                   {"com.hooks.test.label", "kept"},
                   {"org.example.enabled", "true"}};
    EXPECT_EQ(sarus::buildAnnotations(meta, {}, ""),
              (std::map<std::string, std::string>{{"com.hooks.mpi.type", "mpich"},
                                                  {"com.hooks.test.label", "kept"},
                                                  {"org.example.enabled", "true"}}));
}

TEST(BuildAnnotations, EngineAnnotationsOverrideImageLabels) {
    sarus::ImageMetadata meta;
    meta.labels = {{"com.hooks.mpi.type", "label"}};
    sarus::RunOptions options;
    options.mpi = true;
    auto annotations = sarus::buildAnnotations(meta, options, "mpich");
    EXPECT_EQ(annotations.at("com.hooks.mpi.enabled"), "true");
    EXPECT_EQ(annotations.at("com.hooks.mpi.type"), "mpich");
}

TEST(BuildAnnotations, CliAnnotationOverridesEngineAndLabels) {
    sarus::ImageMetadata meta;
    meta.labels = {{"x", "label"}};
    sarus::RunOptions options;
    options.mpi = true;
    options.annotations = {"com.hooks.mpi.type=openmpi", "x=cli", "empty=", "eq=a=b"};
    auto annotations = sarus::buildAnnotations(meta, options, "mpich");
    EXPECT_EQ(annotations.at("com.hooks.mpi.type"), "openmpi");
    EXPECT_EQ(annotations.at("x"), "cli");
    EXPECT_EQ(annotations.at("empty"), "");
    EXPECT_EQ(annotations.at("eq"), "a=b");
    EXPECT_EQ(annotations.size(), 6u);
}

TEST(BuildAnnotations, AnnotationWithoutEqualSignIsAnError) {
    sarus::RunOptions options;
    options.annotations = {"novalue"};
    EXPECT_EQ(errorOf([&] { sarus::buildAnnotations({}, options, ""); }),
              "Error parsing annotation from CLI 'novalue': Failed to parse key-value pair 'novalue': "
              "expected KEY=VALUE");
}

TEST(BuildAnnotations, AnnotationWithoutKeyIsAnError) {
    sarus::RunOptions options;
    options.annotations = {"=v"};
    EXPECT_EQ(errorOf([&] { sarus::buildAnnotations({}, options, ""); }),
              "Error parsing annotation from CLI '=v': Failed to parse key-value pair '=v': key is empty");
}

// ---------------------------------------------------------------- sarus.json mounts and devices

TEST(UserMountRestrictions, ReadFromConfig) {
    auto rules = sarus::userMountRestrictions(json::parse(
        R"({"userMounts": {"notAllowedPrefixesOfPath": ["/etc", "/var"], "notAllowedPaths": ["/opt"]}})"));
    EXPECT_EQ(rules.notAllowedPrefixesOfPath, (Strings{"/etc", "/var"}));
    EXPECT_EQ(rules.notAllowedPaths, (Strings{"/opt"}));
}

TEST(UserMountRestrictions, EmptyWhenAbsent) {
    auto rules = sarus::userMountRestrictions(json::parse(R"({"userMounts": {}})"));
    EXPECT_TRUE(rules.notAllowedPrefixesOfPath.empty());
    EXPECT_TRUE(rules.notAllowedPaths.empty());
    rules = sarus::userMountRestrictions(json::object());
    EXPECT_TRUE(rules.notAllowedPrefixesOfPath.empty());
    EXPECT_TRUE(rules.notAllowedPaths.empty());
}

TEST(SiteMounts, ReadWithNormalisedDestinationAndReadonlyFlag) {
    auto mounts = sarus::siteMounts(json::parse(R"({"siteMounts": [
        {"type": "bind", "source": "/home", "destination": "/home/", "flags": {}},
        {"source": "/scratch", "destination": "/x//y/../s", "flags": {"readonly": ""}},
        {"source": "/apps", "destination": "/apps"}]})"));
    ASSERT_EQ(mounts.size(), 3u);
    EXPECT_EQ(mounts[0].source, "/home");
    EXPECT_EQ(mounts[0].destination, "/home");
    EXPECT_FALSE(mounts[0].readonly);
    EXPECT_EQ(mounts[1].source, "/scratch");
    EXPECT_EQ(mounts[1].destination, "/x/s");
    EXPECT_TRUE(mounts[1].readonly);
    EXPECT_EQ(mounts[2].destination, "/apps");
    EXPECT_FALSE(mounts[2].readonly);
}

TEST(SiteMounts, NoneWhenAbsent) { EXPECT_TRUE(sarus::siteMounts(json::object()).empty()); }

TEST(SiteDevices, DestinationDefaultsToSourceAndAccessToRwm) {
    auto devices = sarus::siteDevices(json::parse(R"({"siteDevices": [
        {"source": "/dev/fuse", "access": "rw"},
        {"source": "/dev/nvidia0", "destination": "/dev/gpu0/"}]})"));
    ASSERT_EQ(devices.size(), 2u);
    EXPECT_EQ(devices[0].source, "/dev/fuse");
    EXPECT_EQ(devices[0].destination, "/dev/fuse");
    EXPECT_EQ(devices[0].access, "rw");
    EXPECT_EQ(devices[1].source, "/dev/nvidia0");
    EXPECT_EQ(devices[1].destination, "/dev/gpu0");
    EXPECT_EQ(devices[1].access, "rwm");
}

TEST(SiteDevices, NoneWhenAbsent) { EXPECT_TRUE(sarus::siteDevices(json::object()).empty()); }

// ---------------------------------------------------------------- whole spec

namespace {

const fs::path schema = fs::path(SARUS_SOURCE_DIR) / "etc" / "sarus.schema.json";

class ContainerSpecTest : public ::testing::Test {
protected:
    sarus::TempDirectory dir{fs::temp_directory_path(), "container-spec-test"};

    sarus::Config config(const std::string& extraKeys) {
        auto path = dir.path() / "sarus.json";
        std::ofstream(path) << R"({
            "securityChecks": false, "OCIBundleDir": "/var/sarus/OCIBundleDir", "rootfsFolder": "rootfs",
            "prefixDir": "/opt/sarus", "tempDir": "/tmp", "localRepositoryBaseDir": "/home",
            "ramFilesystemType": "tmpfs")"
                            << extraKeys << "}";
        return sarus::Config::load(path, schema);
    }
};

sarus::Identity alice() {
    sarus::Identity id;
    id.uid = 1000;
    id.gid = 1001;
    id.userName = "alice";
    id.home = "/home/alice";
    id.shell = "/bin/bash";
    return id;
}

}  // namespace

TEST_F(ContainerSpecTest, CombinesAllRules) {
    auto cfg = config(R"(,
        "defaultMPIType": "mpich",
        "environment": {"set": {"SITE": "1"}, "unset": ["SECRET"]},
        "siteMounts": [{"type": "bind", "source": "/scratch", "destination": "/scratch", "flags": {}}],
        "siteDevices": [{"source": "/dev/fuse", "access": "rw"}],
        "userMounts": {"notAllowedPrefixesOfPath": ["/etc"], "notAllowedPaths": ["/opt"]})");
    sarus::ImageMetadata meta;
    meta.entrypoint = Strings{"/ep"};
    meta.cmd = Strings{"default"};
    meta.workingDir = "/app";
    meta.env = {"IMG=1"};
    meta.labels = {{"l", "v"}};
    sarus::RunOptions options;
    options.command = {"run", "me"};
    options.env = {"CLI=2"};
    options.mpi = true;
    options.mounts = {"type=bind,src=/data,dst=/data/,readonly"};
    options.devices = {"/dev/null:/dev/mynull:r"};
    options.tty = true;
    options.init = true;
    options.pid = "host";
    options.name = "job1";

    auto spec = sarus::buildContainerSpec(cfg, meta, options, {"HOME=/home/alice", "SECRET=x"}, alice());
    EXPECT_EQ(spec.args, (Strings{"/ep", "run", "me"}));
    EXPECT_EQ(spec.cwd, "/app");
    EXPECT_EQ(spec.env, (Strings{"HOME=/home/alice", "IMG=1", "TINI_SUBREAPER=1", "SITE=1", "CLI=2"}));
    EXPECT_EQ(spec.annotations.at("com.hooks.mpi.type"), "mpich");
    EXPECT_EQ(spec.annotations.at("l"), "v");
    EXPECT_EQ(spec.selectingAnnotations.count("l"), 0u) << "a label chooses no hook";
    EXPECT_EQ(spec.selectingAnnotations.at("com.hooks.mpi.enabled"), "true");
    ASSERT_EQ(spec.siteMounts.size(), 1u);
    EXPECT_EQ(spec.siteMounts[0].source, "/scratch");
    ASSERT_EQ(spec.userMounts.size(), 1u);
    EXPECT_EQ(spec.userMounts[0].source, "/data");
    EXPECT_EQ(spec.userMounts[0].destination, "/data");
    EXPECT_TRUE(spec.userMounts[0].readonly);
    ASSERT_EQ(spec.devices.size(), 2u);
    EXPECT_EQ(spec.devices[0].source, "/dev/fuse");
    EXPECT_EQ(spec.devices[0].access, "rw");
    EXPECT_EQ(spec.devices[1].source, "/dev/null");
    EXPECT_EQ(spec.devices[1].destination, "/dev/mynull");
    EXPECT_EQ(spec.devices[1].access, "r");
    EXPECT_TRUE(spec.tty);
    EXPECT_TRUE(spec.init);
    EXPECT_TRUE(spec.pidHost);
    EXPECT_EQ(spec.name, "job1");
    EXPECT_EQ(spec.identity.uid, 1000u);
    EXPECT_EQ(spec.identity.userName, "alice");
}

TEST_F(ContainerSpecTest, PrivatePidByDefault) {
    auto cfg = config("");
    sarus::RunOptions options;
    options.command = {"true"};
    auto spec = sarus::buildContainerSpec(cfg, {}, options, {}, alice());
    EXPECT_FALSE(spec.pidHost);
    EXPECT_FALSE(spec.tty);
    EXPECT_FALSE(spec.init);
    EXPECT_EQ(spec.cwd, "/");
    EXPECT_TRUE(spec.devices.empty());
    EXPECT_TRUE(spec.siteMounts.empty());
    EXPECT_TRUE(spec.annotations.empty());
}

TEST_F(ContainerSpecTest, UserMountUnderForbiddenPrefixIsRefused) {
    auto cfg = config(R"(, "userMounts": {"notAllowedPrefixesOfPath": ["/etc"]})");
    sarus::RunOptions options;
    options.command = {"true"};
    options.mounts = {"type=bind,src=/tmp,dst=/etc/ssh"};
    auto error = errorOf([&] { sarus::buildContainerSpec(cfg, {}, options, {}, alice()); });
    EXPECT_EQ(error, "Invalid mount request 'type=bind,src=/tmp,dst=/etc/ssh': "
                     "destination cannot be a subdirectory of '/etc'");
}

TEST_F(ContainerSpecTest, ForbiddenPathIsCheckedAfterNormalisation) {
    auto cfg = config(R"(, "userMounts": {"notAllowedPaths": ["/opt"]})");
    sarus::RunOptions options;
    options.command = {"true"};
    options.mounts = {"type=bind,src=/tmp,dst=/opt/x/.."};
    auto error = errorOf([&] { sarus::buildContainerSpec(cfg, {}, options, {}, alice()); });
    EXPECT_EQ(error, "Invalid mount request 'type=bind,src=/tmp,dst=/opt/x/..': '/opt' is not allowed as mount destination");
}

TEST_F(ContainerSpecTest, SiteMountsAreNotSubjectToUserRestrictions) {
    auto cfg = config(R"(,
        "siteMounts": [{"type": "bind", "source": "/etc/site", "destination": "/etc/site"}],
        "userMounts": {"notAllowedPrefixesOfPath": ["/etc"]})");
    sarus::RunOptions options;
    options.command = {"true"};
    auto spec = sarus::buildContainerSpec(cfg, {}, options, {}, alice());
    ASSERT_EQ(spec.siteMounts.size(), 1u);
    EXPECT_EQ(spec.siteMounts[0].destination, "/etc/site");
}

TEST(PmiDescriptor, PassedAsThreeWithPmiFdRewritten) {
    sarus::ContainerSpec spec;
    spec.env = {"PATH=/bin", "PMI_FD=6", "PMI_RANK=0"};
    sarus::passPmiDescriptor(spec, [](int fd) { return fd == 6; });
    EXPECT_EQ(spec.passFds, std::vector<int>{6});
    EXPECT_EQ(spec.env[1], "PMI_FD=3");
    EXPECT_EQ(sarus::preserveFdsArguments(spec), std::vector<std::string>{"--preserve-fds=1"});
}

TEST(PmiDescriptor, InvalidOrClosedIsLeftAlone) {
    for (std::string value : {"6", "x", "-1", "6x", ""}) {
        sarus::ContainerSpec spec;
        spec.env = {"PMI_FD=" + value};
        sarus::passPmiDescriptor(spec, [](int) { return false; });
        EXPECT_TRUE(spec.passFds.empty()) << value;
        EXPECT_EQ(spec.env[0], "PMI_FD=" + value);
        EXPECT_TRUE(sarus::preserveFdsArguments(spec).empty());
    }
    sarus::ContainerSpec none;
    sarus::passPmiDescriptor(none);
    EXPECT_TRUE(none.passFds.empty());
}
