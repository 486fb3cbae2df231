#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "runtime/oci_config.hpp"
#include "config/security_profiles.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/sysmacros.h>

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

sarus::ContainerSpec spec() {
    sarus::ContainerSpec s;
    s.args = {"/bin/echo", "hi"};
    s.env = {"PATH=/usr/bin", "A=1"};
    s.cwd = "/work";
    s.identity.uid = 1000;
    s.identity.gid = 1001;
    s.identity.supplementaryGids = {1001, 2000};
    s.identity.userName = "alice";
    return s;
}

sarus::OciConfigOptions rootful() { return {}; }

sarus::OciConfigOptions rootless() {
    sarus::OciConfigOptions o;
    o.rootless = true;
    return o;
}

const json* findMount(const json& config, const std::string& destination) {
    for (const auto& m : config["mounts"]) {
        if (m["destination"] == destination) {
            return &m;
        }
    }
    return nullptr;
}

std::vector<std::string> namespaceTypes(const json& config) {
    std::vector<std::string> types;
    for (const auto& ns : config["linux"]["namespaces"]) {
        types.push_back(ns["type"]);
    }
    return types;
}

}  // namespace

TEST(OciConfig, VersionRootAndProcessBasics) {
    auto config = sarus::generateOciConfig(spec(), rootful());
    EXPECT_EQ(config["ociVersion"], "1.0.2");
    EXPECT_EQ(config["root"], json({{"path", "rootfs"}, {"readonly", false}}));
    const auto& p = config["process"];
    EXPECT_EQ(p["args"], json({"/bin/echo", "hi"}));
    EXPECT_EQ(p["env"], json({"PATH=/usr/bin", "A=1"}));
    EXPECT_EQ(p["cwd"], "/work");
    EXPECT_EQ(p["terminal"], false);
    EXPECT_EQ(p["user"]["uid"], 1000);
    EXPECT_EQ(p["user"]["gid"], 1001);
}

TEST(OciConfig, RootfsOptionIsUsed) {
    auto options = rootful();
    options.rootfs = "/abs/rootfs";
    EXPECT_EQ(sarus::generateOciConfig(spec(), options)["root"]["path"], "/abs/rootfs");
}

TEST(OciConfig, TerminalFollowsTty) {
    auto s = spec();
    s.tty = true;
    EXPECT_EQ(sarus::generateOciConfig(s, rootful())["process"]["terminal"], true);
}

TEST(OciConfig, NoCapabilitiesAndNoNewPrivileges) {
    auto config = sarus::generateOciConfig(spec(), rootful());
    const auto& caps = config["process"]["capabilities"];
    ASSERT_EQ(caps.size(), 5u);
    for (const char* set : {"bounding", "effective", "inheritable", "permitted", "ambient"}) {
        EXPECT_EQ(caps[set], json::array()) << set;
    }
    EXPECT_EQ(config["process"]["noNewPrivileges"], true);
}

TEST(OciConfig, AdditionalGidsOnlyWhenNotRootless) {
    EXPECT_EQ(sarus::generateOciConfig(spec(), rootful())["process"]["user"]["additionalGids"],
              json({1001, 2000}));
    EXPECT_FALSE(sarus::generateOciConfig(spec(), rootless())["process"]["user"].contains("additionalGids"));
}

TEST(OciConfig, InitPrefixesArgsAndBindsInitReadonly) {
    auto s = spec();
    s.init = true;
    auto options = rootful();
    options.initPath = "/opt/sarus/bin/tini-static";
    auto config = sarus::generateOciConfig(s, options);
    EXPECT_EQ(config["process"]["args"], json({"/dev/init", "--", "/bin/echo", "hi"}));
    const auto* init = findMount(config, "/dev/init");
    ASSERT_NE(init, nullptr);
    EXPECT_EQ(*init, json({{"destination", "/dev/init"}, {"type", "bind"}, {"source", "/opt/sarus/bin/tini-static"},
                           {"options", {"rbind", "nosuid", "nodev", "rprivate", "ro"}}}));
}

TEST(OciConfig, NoInitMountWithoutInit) {
    auto options = rootful();
    options.initPath = "/opt/sarus/bin/tini-static";
    auto config = sarus::generateOciConfig(spec(), options);
    EXPECT_EQ(findMount(config, "/dev/init"), nullptr);
    EXPECT_EQ(config["process"]["args"][0], "/bin/echo");
}

TEST(OciConfig, SystemMountsNotRootless) {
    auto config = sarus::generateOciConfig(spec(), rootful());
    ASSERT_GE(config["mounts"].size(), 5u);
    EXPECT_EQ(config["mounts"][0], json({{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"},
                                         {"options", {"nosuid", "noexec", "nodev"}}}));
    EXPECT_EQ(config["mounts"][1]["destination"], "/dev");
    EXPECT_EQ(config["mounts"][1]["type"], "tmpfs");
    EXPECT_EQ(config["mounts"][2], json({{"destination", "/dev/pts"}, {"type", "devpts"}, {"source", "devpts"},
                                         {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666",
                                                      "mode=0620", "gid=5"}}}));
    // the host's: MPI ranks in separate containers share memory through it
    EXPECT_EQ(config["mounts"][3], json({{"destination", "/dev/shm"}, {"type", "bind"}, {"source", "/dev/shm"},
                                         {"options", {"rbind", "nosuid", "nodev", "rprivate"}}}));
    // as Sarus: the message queues of the IPC namespace it shares with the host
    EXPECT_EQ(config["mounts"][4], json({{"destination", "/dev/mqueue"}, {"type", "mqueue"}, {"source", "mqueue"},
                                         {"options", {"nosuid", "noexec", "nodev"}}}));
    EXPECT_EQ(config["mounts"][5], json({{"destination", "/sys"}, {"type", "sysfs"}, {"source", "sysfs"},
                                         {"options", {"nosuid", "noexec", "nodev", "ro"}}}));
    EXPECT_EQ(config["mounts"].size(), 6u);
}

TEST(OciConfig, SystemMountsRootless) {
    auto config = sarus::generateOciConfig(spec(), rootless());
    EXPECT_EQ(config["mounts"].size(), 5u);
    EXPECT_EQ((*findMount(config, "/dev/pts"))["options"],
              json({"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}));
    EXPECT_EQ(*findMount(config, "/sys"), json({{"destination", "/sys"}, {"type", "bind"}, {"source", "/sys"},
                                                {"options", {"rbind", "nosuid", "noexec", "nodev", "ro", "rprivate"}}}));
    EXPECT_EQ((*findMount(config, "/proc"))["type"], "proc");
    EXPECT_EQ(findMount(config, "/dev/mqueue"), nullptr);
}

TEST(OciConfig, RootlessGetsTheHostsMessageQueuesWhereTheHostHasThem) {
    auto options = rootless();
    options.hostMqueue = true;
    auto config = sarus::generateOciConfig(spec(), options);
    EXPECT_EQ(*findMount(config, "/dev/mqueue"),
              json({{"destination", "/dev/mqueue"}, {"type", "bind"}, {"source", "/dev/mqueue"},
                    {"options", {"rbind", "nosuid", "noexec", "nodev", "rprivate"}}}));
}

TEST(OciConfig, KernelInterfacesAreMaskedOrReadOnlyAsInSarus) {
    for (const auto& options : {rootful(), rootless()}) {
        auto config = sarus::generateOciConfig(spec(), options);
        EXPECT_EQ(config["linux"]["maskedPaths"],
                  json({"/proc/kcore", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                        "/proc/sched_debug", "/sys/firmware", "/proc/scsi"}));
        EXPECT_EQ(config["linux"]["readonlyPaths"],
                  json({"/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}));
    }
}

TEST(OciConfig, PidNamespaceByDefault) {
    auto config = sarus::generateOciConfig(spec(), rootful());
    EXPECT_EQ(namespaceTypes(config), (std::vector<std::string>{"mount", "pid"}));
}

TEST(OciConfig, PidHostOmitsPidNamespace) {
    auto s = spec();
    s.pidHost = true;
    auto config = sarus::generateOciConfig(s, rootful());
    EXPECT_EQ(namespaceTypes(config), (std::vector<std::string>{"mount"}));
    EXPECT_EQ((*findMount(config, "/proc"))["type"], "proc");
}

TEST(OciConfig, PidHostRootlessBindsHostProc) {
    auto s = spec();
    s.pidHost = true;
    auto config = sarus::generateOciConfig(s, rootless());
    EXPECT_EQ(namespaceTypes(config), (std::vector<std::string>{"mount"}));
    EXPECT_EQ(*findMount(config, "/proc"), json({{"destination", "/proc"}, {"type", "bind"}, {"source", "/proc"},
                                                 {"options", {"rbind", "nosuid", "nodev", "rprivate"}}}));
}

TEST(OciConfig, SiteThenUserMountsAfterSystemMounts) {
    auto s = spec();
    s.siteMounts = {{"/scratch", "/scratch", false}};
    s.userMounts = {{"/home/alice/data", "/data", true}};
    auto config = sarus::generateOciConfig(s, rootful());
    ASSERT_EQ(config["mounts"].size(), 8u);
    EXPECT_EQ(config["mounts"][6], json({{"destination", "/scratch"}, {"type", "bind"}, {"source", "/scratch"},
                                         {"options", {"rbind", "nosuid", "nodev", "rprivate"}}}));
    EXPECT_EQ(config["mounts"][7], json({{"destination", "/data"}, {"type", "bind"}, {"source", "/home/alice/data"},
                                         {"options", {"rbind", "nosuid", "nodev", "rprivate", "ro"}}}));
}

TEST(OciConfig, NoDevicesMeansDenyAllWhenNotRootless) {
    auto config = sarus::generateOciConfig(spec(), rootful());
    EXPECT_EQ(config["linux"]["devices"], json::array());
    EXPECT_EQ(config["linux"]["resources"]["devices"], json::parse(R"([{"allow": false, "access": "rwm"}])"));
}

TEST(OciConfig, DeviceCreatedAndAllowedWhenNotRootless) {
    struct stat st {};
    ASSERT_EQ(::stat("/dev/null", &st), 0);
    auto s = spec();
    s.devices = {{"/dev/null", "/dev/mynull", "rw"}};
    auto config = sarus::generateOciConfig(s, rootful());
    json expectedDevice = {{"path", "/dev/mynull"}, {"type", "c"}, {"major", major(st.st_rdev)},
                           {"minor", minor(st.st_rdev)}, {"fileMode", st.st_mode & 0777},
                           {"uid", st.st_uid}, {"gid", st.st_gid}};
    EXPECT_EQ(major(st.st_rdev), 1u);
    EXPECT_EQ(minor(st.st_rdev), 3u);
    EXPECT_EQ(config["linux"]["devices"], json::array({expectedDevice}));
    EXPECT_EQ(config["linux"]["resources"]["devices"],
              json::parse(R"([{"allow": false, "access": "rwm"},
                              {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}])"));
    EXPECT_EQ(findMount(config, "/dev/mynull"), nullptr);
}

TEST(OciConfig, MissingDeviceIsAnError) {
    auto s = spec();
    s.devices = {{"/dev/does-not-exist-sarus", "/dev/x", "rwm"}};
    EXPECT_THROW(sarus::generateOciConfig(s, rootful()), sarus::Error);
}

TEST(OciConfig, NonDeviceFileIsAnError) {
    auto s = spec();
    s.devices = {{"/etc/hostname", "/dev/x", "rwm"}};
    try {
        sarus::generateOciConfig(s, rootful());
        FAIL() << "no error";
    } catch (const sarus::Error& e) {
        EXPECT_EQ(std::string(e.what()), "Source path \"/etc/hostname\" is not a device file");
    }
}

TEST(OciConfig, DevicesAreBindMountedWhenRootless) {
    auto s = spec();
    s.devices = {{"/dev/does-not-need-to-exist", "/dev/fuse", "rw"}};
    auto config = sarus::generateOciConfig(s, rootless());
    EXPECT_EQ(*findMount(config, "/dev/fuse"), json({{"destination", "/dev/fuse"}, {"type", "bind"},
                                                     {"source", "/dev/does-not-need-to-exist"},
                                                     {"options", {"rbind", "nosuid", "rprivate"}}}));
    EXPECT_FALSE(config["linux"].contains("devices"));
    EXPECT_FALSE(config["linux"].contains("resources"));
}

TEST(OciConfig, WithoutItsOwnMountNamespaceUnlessItMakesAUserNamespace) {
    auto options = rootless();
    options.mountNamespace = false;
    EXPECT_EQ(namespaceTypes(sarus::generateOciConfig(spec(), options)), (std::vector<std::string>{"pid"}));
    options.uidMappings = {{1000, 0, 1}};
    options.gidMappings = {{1001, 0, 1}};
    EXPECT_EQ(namespaceTypes(sarus::generateOciConfig(spec(), options)),
              (std::vector<std::string>{"mount", "pid", "user"}));
}

TEST(OciConfig, SandboxMountsLeaveOnlyProcSysPtsAndMqueueToTheRuntime) {
    auto s = spec();
    s.init = true;
    s.siteMounts = {{"/scratch", "/scratch", false}};
    s.userMounts = {{"/home/alice/data", "/data", true}};
    s.devices = {{"/dev/null", "/dev/mynull", "rw"}};
    auto options = rootful();
    options.sandboxMounts = true;
    options.initPath = "/opt/sarus/bin/tini-static";
    auto config = sarus::generateOciConfig(s, options);
    std::vector<std::string> destinations;
    for (const auto& mount : config["mounts"]) {
        destinations.push_back(mount["destination"]);
    }
    EXPECT_EQ(destinations, (std::vector<std::string>{"/proc", "/dev/pts", "/dev/mqueue", "/sys"}));
    EXPECT_EQ(config["linux"]["devices"], json::array());
    // still whitelisted, for a runtime that manages the devices cgroup (runc)
    EXPECT_EQ(config["linux"]["resources"]["devices"].size(), 2u);
    EXPECT_EQ(config["process"]["args"][0], "/dev/init");
}

TEST(OciConfig, WorkdirHelperEntersTheWorkingDirectory) {
    auto s = spec();
    s.cwd = "/home/alice/work";
    s.args = {"make", "-j"};
    auto options = rootful();
    options.workdirHelper = "/dev/.sarus-workdir";
    auto config = sarus::generateOciConfig(s, options);
    EXPECT_EQ(config["process"]["cwd"], "/");
    EXPECT_EQ(config["process"]["args"], json({"/dev/.sarus-workdir", "/home/alice/work", "make", "-j"}));
}

TEST(OciConfig, NoUserNamespaceWithoutMappings) {
    auto config = sarus::generateOciConfig(spec(), rootless());
    EXPECT_EQ(namespaceTypes(config), (std::vector<std::string>{"mount", "pid"}));
    EXPECT_FALSE(config["linux"].contains("uidMappings"));
    EXPECT_FALSE(config["linux"].contains("gidMappings"));
}

TEST(OciConfig, NestedUserNamespaceWithMappings) {
    auto options = rootless();
    options.uidMappings = {{1000, 0, 1}};
    options.gidMappings = {{1001, 0, 1}};
    auto config = sarus::generateOciConfig(spec(), options);
    EXPECT_EQ(namespaceTypes(config), (std::vector<std::string>{"mount", "pid", "user"}));
    EXPECT_EQ(config["linux"]["uidMappings"], json::parse(R"([{"containerID": 1000, "hostID": 0, "size": 1}])"));
    EXPECT_EQ(config["linux"]["gidMappings"], json::parse(R"([{"containerID": 1001, "hostID": 0, "size": 1}])"));
}

TEST(OciConfig, AnnotationsFromSpec) {
    auto s = spec();
    s.annotations = {{"com.hooks.mpi.enabled", "true"}};
    EXPECT_EQ(sarus::generateOciConfig(s, rootful())["annotations"], json({{"com.hooks.mpi.enabled", "true"}}));
}

TEST(OciConfig, RootlessKeepsOriginalGroups) {
    auto s = spec();
    s.annotations = {{"com.hooks.a", "b"}};
    EXPECT_EQ(sarus::generateOciConfig(s, rootless())["annotations"],
              json({{"com.hooks.a", "b"}, {"run.oci.keep_original_groups", "1"}}));
}

// crun and runc act on these as root; their values come from the user or the image.
TEST(OciConfig, OnlyHookAnnotationsReachTheRuntime) {
    auto s = spec();
    s.annotations = {{"com.hooks.mpi.enabled", "true"},
                     {"run.oci.seccomp.plugins", "/home/u/evil.so"},
                     {"run.oci.pidfd_receiver", "/home/u/socket"},
                     {"run.oci.delegate-cgroup", "x"},
                     {"run.oci.hooks.stderr", "/etc/passwd"},
                     {"run.oci.keep_original_groups", "1"},
                     {"org.criu.config", "/home/u/criu.conf"},
                     {"org.systemd.property.ExecStopPost", "x"},
                     {"module.wasm.image/variant", "compat"},
                     {"io.kubernetes.cri.container-type", "sandbox"},
                     {"org.opencontainers.image.title", "t"},
                     {"com.hooksx", "y"}};
    for (const auto& options : {rootful(), rootless()}) {
        auto annotations = sarus::generateOciConfig(s, options)["annotations"];
        EXPECT_EQ(annotations.value("com.hooks.mpi.enabled", ""), "true");
        for (const auto& [key, value] : s.annotations) {
            if (key != "com.hooks.mpi.enabled" && !(options.rootless && key == "run.oci.keep_original_groups")) {
                EXPECT_FALSE(annotations.contains(key)) << key;
            }
        }
    }
    EXPECT_EQ(sarus::generateOciConfig(s, rootless())["annotations"]["run.oci.keep_original_groups"], "1");
}

TEST(OciConfig, EmptyAnnotationsIsAnObject) {
    EXPECT_EQ(sarus::generateOciConfig(spec(), rootful())["annotations"], json::object());
}

TEST(OciConfig, HooksOnlyWhenGiven) {
    EXPECT_FALSE(sarus::generateOciConfig(spec(), rootful()).contains("hooks"));
    auto options = rootful();
    options.hooks = json::parse(R"({"prestart": [{"path": "/opt/hook", "args": ["hook"]}]})");
    EXPECT_EQ(sarus::generateOciConfig(spec(), options)["hooks"], options.hooks);
}

TEST(SecurityProfiles, SeccompFileCheckedAndCopied) {
    sarus::TempDirectory temp{fs::temp_directory_path(), "sarus-seccomp-test"};
    const fs::path& dir = temp.path();
    std::ofstream(dir / "good.json") << R"({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["chdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]})";
    std::ofstream(dir / "no-default.json") << R"({"syscalls": []})";
    std::ofstream(dir / "bad-rule.json") << R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "x"}]})";
    std::ofstream(dir / "broken.json") << "{";
    auto profile = sarus::readSeccompProfile(dir / "good.json");
    sarus::SecurityProfiles profiles;
    profiles.seccomp = profile;
    profiles.apparmorProfile = "sarus-default";
    profiles.selinuxLabel = "system_u:system_r:container_t:s0";
    profiles.selinuxMountLabel = "system_u:object_r:container_file_t:s0";
    json config = {{"process", json::object()}, {"linux", json::object()}};
    sarus::applySecurityProfiles(config, profiles);
    EXPECT_EQ(config["linux"]["seccomp"]["syscalls"][0]["names"][0], "chdir");
    EXPECT_EQ(config["process"]["apparmorProfile"], "sarus-default");
    EXPECT_EQ(config["process"]["selinuxLabel"], "system_u:system_r:container_t:s0");
    EXPECT_EQ(config["linux"]["mountLabel"], "system_u:object_r:container_file_t:s0");
    for (const char* name : {"no-default.json", "bad-rule.json", "broken.json"}) {
        try {
            sarus::readSeccompProfile(dir / name);
            ADD_FAILURE() << name << " accepted";
        } catch (const sarus::Error& e) {
            EXPECT_NE(std::string(e.what()).find(std::string(name)), std::string::npos) << e.what();
        }
    }
    json untouched = {{"process", json::object()}, {"linux", json::object()}};
    sarus::applySecurityProfiles(untouched, sarus::SecurityProfiles{});
    EXPECT_FALSE(untouched["linux"].contains("seccomp"));
    EXPECT_FALSE(untouched["process"].contains("apparmorProfile"));
}

TEST(SecurityProfiles, AppArmorProfileMustBeLoaded) {
    sarus::TempDirectory temp{fs::temp_directory_path(), "sarus-apparmor-test"};
    const fs::path& dir = temp.path();
    std::ofstream(dir / "profiles") << "sarus-default (enforce)\nother (complain)\n";
    EXPECT_TRUE(sarus::apparmorProfileLoaded("sarus-default", dir / "profiles"));
    EXPECT_FALSE(sarus::apparmorProfileLoaded("sarus", dir / "profiles"));
    EXPECT_THROW(sarus::apparmorProfileLoaded("x", dir / "missing"), sarus::Error);
}
