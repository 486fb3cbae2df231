// start-ssh-daemon: a createRuntime hook that starts Dropbear inside a
// container run with --ssh (annotation com.hooks.ssh.enabled=true) and puts an
// `ssh` there that reaches the daemons of the job's other containers.
//
// Privilege split (the hook runs as root in a SUID installation): root only
// joins namespaces, creates and mounts inside the rootfs through descriptors,
// and copies the installation's Dropbear. Everything that reads or writes a
// path the user controls (the keys under the user's hook directory, a key to
// authorize, the container's ~/.ssh, a pidfile on the host) happens in a
// child that has become the user; the daemon runs as the user, chrooted into
// the rootfs and inside the container's PID namespace, so it ends with it.
#pragma once

#include "container_state.hpp"

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <sys/types.h>
#include <vector>

namespace hook::ssh {

inline const char* const dropbearInContainer = "/opt/oci-hooks/ssh/dropbear";
constexpr int defaultPort = 15263;

struct DaemonSettings {
    std::filesystem::path dropbear;  // the installation's Dropbear (bin/dropbear, bin/dbclient)
    int port = defaultPort;
    bool overlayHomeSsh = true;      // a private ~/.ssh: the user's own is never modified
    bool joinNamespaces = true;
    std::string pidfileInContainer = std::string(dropbearInContainer) + "/dropbear.pid";
    std::string pidfileOnHost;       // "" for none
    std::string keyToAuthorize;      // a public key file on the host, "" for none
};

// From the hook's environment (DROPBEAR_DIR, SERVER_PORT_DEFAULT or the
// older SERVER_PORT, OVERLAY_MOUNT_HOME_SSH, JOIN_NAMESPACES) and the
// container's com.hooks.ssh.* annotations (port, pidfile_container,
// pidfile_host, authorize_ssh_key).
DaemonSettings daemonSettings(const std::map<std::string, std::string>& annotations);

// The home directory of uid in passwd(5) content, "" when absent.
std::string homeDirectory(const std::string& passwd, uid_t uid);

// passwd content with uid's shell replaced by /bin/sh when shellExists says
// it is missing (Dropbear runs commands through the user's shell).
std::string withExistingShell(const std::string& passwd, uid_t uid,
                              const std::function<bool(const std::string&)>& shellExists);

// A shell script exporting env (NAME=VALUE entries), for login shells.
std::string environmentScript(const std::vector<std::string>& env);

void startSshDaemon(const ContainerState& state);

}  // namespace hook::ssh
