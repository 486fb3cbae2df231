#include "config/config.hpp"
#include "common/error.hpp"
#include "common/file_utils.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace fs = std::filesystem;

namespace {

const fs::path schema = fs::path(SARUS_SOURCE_DIR) / "etc" / "sarus.schema.json";

class ConfigTest : public ::testing::Test {
protected:
    sarus::TempDirectory dir{fs::temp_directory_path(), "config-test"};

    fs::path write(const std::string& content) {
        auto path = dir.path() / "sarus.json";
        std::ofstream(path) << content;
        return path;
    }

    std::string errorOf(const std::string& content) {
        try {
            sarus::Config::load(write(content), schema);
        } catch (const sarus::Error& e) {
            return e.what();
        }
        return "";
    }
};

const char* minimal = R"({
    "securityChecks": false, "OCIBundleDir": "/var/sarus/OCIBundleDir", "rootfsFolder": "rootfs",
    "prefixDir": "/opt/sarus", "tempDir": "/tmp", "localRepositoryBaseDir": "/home",
    "ramFilesystemType": "tmpfs" })";

// minimal with more keys ("KEY": VALUE, ...).
std::string withMinimal(const std::string& keys) {
    std::string text = minimal;
    return text.substr(0, text.rfind('}')) + ", " + keys + "}";
}

// The example configuration of the Sarus documentation, unchanged.
const char* sarusDocumentationExample = R"({
    "securityChecks": true,
    "OCIBundleDir": "/var/sarus/OCIBundleDir",
    "rootfsFolder": "rootfs",
    "prefixDir": "/opt/sarus",
    "tempDir": "/tmp",
    "localRepositoryBaseDir": "/home",
    "centralizedRepositoryDir": "/var/sarus/centralized_repository",
    "mksquashfsPath": "/usr/sbin/mksquashfs",
    "runcPath": "/usr/local/sbin/runc.amd64",
    "ramFilesystemType": "tmpfs",
    "siteMounts": [ { "type": "bind", "source": "/home", "destination": "/home", "flags": {} } ],
    "environment": {
        "set": [ {"VAR_TO_SET_IN_CONTAINER": "value"} ],
        "prepend": [ {"VAR_WITH_LIST_OF_PATHS_IN_CONTAINER": "/path/to/prepend"} ],
        "append": [ {"VAR_WITH_LIST_OF_PATHS_IN_CONTAINER": "/path/to/append"} ],
        "unset": [ "VAR_TO_UNSET_IN_CONTAINER_0", "VAR_TO_UNSET_IN_CONTAINER_1" ]
    },
    "userMounts": { "notAllowedPrefixesOfPath": [ "/etc", "/var", "/opt/sarus" ], "notAllowedPaths": [ "/opt" ] },
    "OCIHooks": { "prestart": [ { "path": "/opt/sarus/bin/mpi_hook",
        "env": [ "LDCONFIG_PATH=/sbin/ldconfig", "MPI_LIBS=/usr/lib64/libmpi.so.12.0.5", "MPI_DEPENDENCY_LIBS=", "BIND_MOUNTS=" ] } ] }
})";

// Keys Sarus 1.7 added after the documented example.
const char* sarus17Keys = R"({
    "securityChecks": true, "OCIBundleDir": "/var/sarus/OCIBundleDir", "rootfsFolder": "rootfs",
    "prefixDir": "/opt/sarus", "hooksDir": "/opt/sarus/etc/hooks.d", "tempDir": "/tmp",
    "localRepositoryBaseDir": "/home", "mksquashfsPath": "/usr/bin/mksquashfs",
    "mksquashfsOptions": "-comp gzip -Xcompression-level 6", "initPath": "/opt/sarus/bin/tini-static-amd64",
    "runcPath": "/opt/sarus/bin/runc.amd64", "ramFilesystemType": "tmpfs",
    "siteDevices": [ {"source": "/dev/fuse", "access": "rw"} ],
    "environment": { "set": {"A": "1"}, "prepend": {"PATH": "/x"}, "append": {"PATH": "/y"}, "unset": ["B"] },
    "seccompProfile": "/opt/sarus/etc/seccomp/default.json", "apparmorProfile": "sarus-default",
    "selinuxLabel": "system_u:system_r:svirt_sandbox_process_t:s0:c124,c675",
    "selinuxMountLabel": "system_u:object_r:svirt_sandbox_file_t:s0:c715,c811",
    "containersPolicy": {"path": "/opt/sarus/etc/policy.json", "enforce": false},
    "defaultMPIType": "mpich", "enablePMIxv3Support": false,
    "repositoryMetadataLockTimings": {"timeoutMs": 60000, "warningMs": 10000}
})";

}  // namespace

TEST_F(ConfigTest, AcceptsMinimalConfiguration) {
    auto config = sarus::Config::load(write(minimal), schema);
    EXPECT_EQ(config.mode(), sarus::Mode::userns);
    EXPECT_EQ(config.localRepositoryBaseDir(), "/home");
    EXPECT_EQ(config.localRepositoryFolder(), ".sarus");
    EXPECT_EQ(config.centralizedRepositoryDir(), "");
    EXPECT_EQ(config.squashfsOptions().compressor, "zstd");
    EXPECT_EQ(config.squashfsOptions().level, 3);
    EXPECT_EQ(config.metadataLockTimeoutMs(), 60000);
}

TEST_F(ConfigTest, AcceptsTheSarusDocumentationExampleUnchanged) {
    auto config = sarus::Config::load(write(sarusDocumentationExample), schema);
    EXPECT_EQ(config.centralizedRepositoryDir(), "/var/sarus/centralized_repository");
}

TEST_F(ConfigTest, AcceptsSarus17Keys) {
    auto config = sarus::Config::load(write(sarus17Keys), schema);
    EXPECT_EQ(config.metadataLockWarningMs(), 10000);
}

TEST_F(ConfigTest, ShippedTemplatesAreValid) {
    for (const char* name : {"sarus.userns.json", "sarus.suid.json"}) {
        auto text = sarus::readFile(fs::path(SARUS_SOURCE_DIR) / "etc" / "templates" / name);
        for (auto pos = text.find("@PREFIX@"); pos != std::string::npos; pos = text.find("@PREFIX@")) {
            text.replace(pos, 8, "/opt/sarus");
        }
        auto config = sarus::Config::load(write(text), schema);
        EXPECT_EQ(config.mode(), std::string(name) == "sarus.suid.json" ? sarus::Mode::suid
                                                                       : sarus::Mode::userns);
    }
}

TEST_F(ConfigTest, NewKeysAreRead) {
    auto config = sarus::Config::load(write(R"({
        "mode": "suid", "securityChecks": false, "OCIBundleDir": "/b", "rootfsFolder": "rootfs",
        "prefixDir": "/p", "tempDir": "/tmp", "localRepositoryBaseDir": "/home", "ramFilesystemType": "ramfs",
        "insecureRegistries": ["localhost:5000"], "squashfs": {"compression": "gzip", "level": 9, "blockSize": 65536}
    })"), schema);
    EXPECT_EQ(config.mode(), sarus::Mode::suid);
    EXPECT_EQ(config.insecureRegistries(), std::vector<std::string>{"localhost:5000"});
    EXPECT_EQ(config.squashfsOptions().compressor, "gzip");
    EXPECT_EQ(config.squashfsOptions().level, 9);
    EXPECT_EQ(config.squashfsOptions().blockSize, 65536u);
}

TEST_F(ConfigTest, Sarus17MksquashfsOptionsChooseTheImageFormat) {
    auto config = sarus::Config::load(write(sarus17Keys), schema);  // "-comp gzip -Xcompression-level 6"
    EXPECT_EQ(config.squashfsOptions().compressor, "gzip");
    EXPECT_EQ(config.squashfsOptions().level, 6);
    EXPECT_EQ(config.squashfsOptions().blockSize, 131072u);
    auto other = sarus::Config::load(write(withMinimal(R"("mksquashfsOptions": "-comp lz4 -b 64K -processors 2 -no-xattrs")")),
                                     schema);
    EXPECT_EQ(other.squashfsOptions().compressor, "lz4");
    EXPECT_EQ(other.squashfsOptions().level, 0);  // lz4's own default
    EXPECT_EQ(other.squashfsOptions().blockSize, 65536u);
    EXPECT_EQ(other.squashfsOptions().workers, 2u);
}

TEST_F(ConfigTest, SquashfsKeyWinsOverMksquashfsOptions) {
    auto config = sarus::Config::load(
        write(withMinimal(R"("mksquashfsOptions": "-comp gzip", "squashfs": {"compression": "xz"})")), schema);
    EXPECT_EQ(config.squashfsOptions().compressor, "xz");
}

TEST_F(ConfigTest, BadMksquashfsOptionsAreNamed) {
    auto bad = [&](const char* options) {
        auto config = sarus::Config::load(write(withMinimal(std::string(R"("mksquashfsOptions": ")") + options + "\"")),
                                          schema);
        try {
            config.squashfsOptions();
        } catch (const sarus::Error& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    EXPECT_EQ(bad("-comp brotli"), "mksquashfsOptions: unknown compressor 'brotli'");
    EXPECT_EQ(bad("-b 1000"), "mksquashfsOptions: '-b 1000' is not a block size of 4K to 1M, a power of two");
    EXPECT_EQ(bad("-comp"), "mksquashfsOptions: '-comp' needs a value");
}

TEST_F(ConfigTest, SchemaViolationNamesKeyAndRule) {
    auto missing = errorOf(R"({"securityChecks": true})");
    EXPECT_NE(missing.find("sarus.json"), std::string::npos) << missing;
    EXPECT_NE(missing.find("required"), std::string::npos) << missing;

    std::string wrongType = minimal;
    wrongType.replace(wrongType.find("false"), 5, "\"yes\"");
    auto typeError = errorOf(wrongType);
    EXPECT_NE(typeError.find("key 'securityChecks'"), std::string::npos) << typeError;
    EXPECT_NE(typeError.find("type"), std::string::npos) << typeError;

    std::string badMode = minimal;
    badMode.insert(1, R"("mode": "rootful",)");
    auto modeError = errorOf(badMode);
    EXPECT_NE(modeError.find("key 'mode'"), std::string::npos) << modeError;

    std::string relative = minimal;
    relative.replace(relative.find("/var/sarus/OCIBundleDir"), 23, "relative/dir");
    auto pathError = errorOf(relative);
    EXPECT_NE(pathError.find("key 'OCIBundleDir'"), std::string::npos) << pathError;

    std::string badMount = minimal;
    badMount.insert(1, R"("siteMounts": [{"source": "/a", "destination": 3}],)");
    auto mountError = errorOf(badMount);
    EXPECT_NE(mountError.find("siteMounts[0].destination"), std::string::npos) << mountError;

    // as Sarus 1.7's mount parser: the type is required, readonly the only flag
    for (const char* entry : {R"({"source": "/a", "destination": "/b"})",
                              R"({"type": "bind", "source": "/a", "destination": "/b",
                                  "flags": {"bind-propagation": "slave"}})"}) {
        std::string mount = minimal;
        mount.insert(1, std::string(R"("siteMounts": [)") + entry + "],");
        auto error = errorOf(mount);
        EXPECT_NE(error.find("siteMounts[0]"), std::string::npos) << entry << ": " << error;
    }
}

TEST_F(ConfigTest, MalformedJsonNamesFileAndPosition) {
    auto error = errorOf("{\n  \"securityChecks\": true,\n  oops\n}");
    EXPECT_NE(error.find("sarus.json: invalid JSON"), std::string::npos) << error;
    EXPECT_NE(error.find("line 3"), std::string::npos) << error;
}

TEST_F(ConfigTest, MissingFileIsAnError) {
    EXPECT_THROW(sarus::Config::load(dir.path() / "absent.json", schema), sarus::Error);
}
