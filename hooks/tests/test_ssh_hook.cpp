#include "ssh_daemon.hpp"
#include "ssh_keys.hpp"

#include "common/error.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

namespace ssh = hook::ssh;

namespace {

const std::string passwd =
    "root:x:0:0:root:/root:/bin/bash\n"
    "alice:x:1001:1001:Alice:/home/alice:/bin/zsh\n"
    "bob:x:1002:1002::/nonexistent:/usr/sbin/nologin\n";

struct Environment {
    Environment(std::initializer_list<std::pair<const std::string, std::string>> values) : values_(values) {
        for (const auto& [name, value] : values_) {
            ::setenv(name.c_str(), value.c_str(), 1);
        }
    }
    ~Environment() {
        for (const auto& [name, value] : values_) {
            ::unsetenv(name.c_str());
        }
    }
    Environment(const Environment&) = delete;
    Environment& operator=(const Environment&) = delete;
    std::map<std::string, std::string> values_;
};

}  // namespace

TEST(SshHook, HomeDirectoryComesFromTheContainersPasswd) {
    EXPECT_EQ(ssh::homeDirectory(passwd, 1001), "/home/alice");
    EXPECT_EQ(ssh::homeDirectory(passwd, 1002), "/nonexistent");
    EXPECT_EQ(ssh::homeDirectory(passwd, 1003), "");
}

TEST(SshHook, OnlyTheUsersMissingShellBecomesBinSh) {
    auto patched = ssh::withExistingShell(passwd, 1001, [](const std::string& shell) { return shell != "/bin/zsh"; });
    EXPECT_NE(patched.find("alice:x:1001:1001:Alice:/home/alice:/bin/sh\n"), std::string::npos) << patched;
    EXPECT_NE(patched.find("root:x:0:0:root:/root:/bin/bash\n"), std::string::npos);
    EXPECT_EQ(ssh::withExistingShell(passwd, 1001, [](const std::string&) { return true; }), passwd);
}

TEST(SshHook, EnvironmentScriptQuotesEveryValue) {
    auto script = ssh::environmentScript({"A=plain", "B=it's $HOME", "NOEQUALS", "=nameless"});
    EXPECT_EQ(script, "#!/bin/sh\nexport A='plain'\nexport B='it'\\''s $HOME'\n");
}

TEST(SshHook, EnvironmentScriptSkipsNamesAShellCannotExport) {
    auto script = ssh::environmentScript({"a;touch /x;b=1", "1X=2", "OK_1=3", "with space=4", "_u=5"});
    EXPECT_EQ(script, "#!/bin/sh\nexport OK_1='3'\nexport _u='5'\n");
}

TEST(SshHook, PublicKeyLineOfDropbearkeyOutput) {
    EXPECT_EQ(ssh::publicKeyLine("Public key portion is:\necdsa-sha2-nistp256 AAAA user@host\nFingerprint: x\n"),
              "ecdsa-sha2-nistp256 AAAA user@host");
    EXPECT_THROW(ssh::publicKeyLine("Failed reading 'x'\n"), sarus::Error);
}

TEST(SshHook, PortFromTheAnnotationThenTheHookEnvironmentThenTheDefault) {
    Environment env{{"DROPBEAR_DIR", "/opt/sarus/dropbear"}};
    EXPECT_EQ(ssh::daemonSettings({}).port, 15263);
    {
        Environment older{{"SERVER_PORT", "2222"}};
        EXPECT_EQ(ssh::daemonSettings({}).port, 2222);
        Environment newer{{"SERVER_PORT_DEFAULT", "3333"}};
        EXPECT_EQ(ssh::daemonSettings({}).port, 3333);
        EXPECT_EQ(ssh::daemonSettings({{"com.hooks.ssh.port", "4444"}}).port, 4444);
    }
    EXPECT_THROW(ssh::daemonSettings({{"com.hooks.ssh.port", "70000"}}), sarus::Error);
    EXPECT_THROW(ssh::daemonSettings({{"com.hooks.ssh.port", "22x"}}), sarus::Error);
}

TEST(SshHook, SettingsFromTheHookEnvironmentAndAnnotations) {
    Environment env{{"DROPBEAR_DIR", "/opt/sarus/dropbear"}, {"OVERLAY_MOUNT_HOME_SSH", "False"},
                     {"JOIN_NAMESPACES", "FALSE"}};
    auto settings = ssh::daemonSettings({{"com.hooks.ssh.pidfile_container", "/run/db.pid"},
                                         {"com.hooks.ssh.pidfile_host", "/home/a/db.pid"},
                                         {"com.hooks.ssh.authorize_ssh_key", "/home/a/.ssh/k.pub"}});
    EXPECT_EQ(settings.dropbear, "/opt/sarus/dropbear");
    EXPECT_FALSE(settings.overlayHomeSsh);
    EXPECT_FALSE(settings.joinNamespaces);
    EXPECT_EQ(settings.pidfileInContainer, "/run/db.pid");
    EXPECT_EQ(settings.pidfileOnHost, "/home/a/db.pid");
    EXPECT_EQ(settings.keyToAuthorize, "/home/a/.ssh/k.pub");
    EXPECT_THROW(ssh::daemonSettings({{"com.hooks.ssh.pidfile_container", "relative.pid"}}), sarus::Error);
    EXPECT_EQ(ssh::daemonSettings({}).pidfileInContainer, "/opt/oci-hooks/ssh/dropbear/dropbear.pid");
}
