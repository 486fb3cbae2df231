// The sandbox process both backends use: cloned into new namespaces, it
// prepares the OCI bundle and runs the runtime, and is PID 1 of its PID
// namespace (unless --pid host) so that everything it starts dies with it.
// This file holds the protocol between sarus and the sandbox and the bundle
// steps that do not depend on the mode.
#pragma once

#include "runtime/container_spec.hpp"
#include "runtime/mount_options.hpp"
#include "runtime/oci_config.hpp"
#include "common/process.hpp"
#include "runtime/root_directory.hpp"
#include "runtime/rootfs_files.hpp"

#include <filesystem>
#include <functional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace sarus {

class EntrypointPrefetch;

// --- the sandbox process ----------------------------------------------------

struct SandboxChannels {
    int go[2] = {-1, -1};      // sarus -> sandbox: "g" to start; EOF when sarus died
    int status[2] = {-1, -1};  // sandbox -> sarus: an error message, if any
};

SandboxChannels makeSandboxChannels();

// clone(2) without a new stack: like fork(2), but creates the namespaces at
// once, so the child is PID 1 of its PID namespace when CLONE_NEWPID is given.
// Throws sarus::Error with `what` when the kernel refuses.
pid_t cloneSandbox(unsigned long namespaceFlags, const std::string& what);

// In the child: waits for "g", runs body(parentAliveFd), reports an Error
// text through the status pipe and exits with body's result. Never returns.
[[noreturn]] void runSandboxChild(SandboxChannels& channels, const std::function<int(int)>& body);

// Runs body; an Error it throws becomes a message on statusFd and code 1.
int runReporting(int statusFd, const std::function<int()>& body);

struct Supervision {
    // -t: when the terminal hangs up, the container gets SIGHUP, and is
    // ended by endNow if it is still there a second later.
    bool watchTerminal = false;
    // When >= 0, a pidfd: when that process ends, so does the container
    // (endNow), as when sarus itself is killed.
    int endWithProcessFd = -1;
    std::function<void()> endNow;
};

// In sarus: calls beforeGo (e.g. writes id maps), starts the sandbox,
// forwards signals to it and waits. Returns the sandbox's exit code or
// throws the error it reported.
int superviseSandbox(pid_t sandbox, SandboxChannels& channels, const std::function<void()>& beforeGo,
                     const Supervision& supervision = {});

// A credential change clears PR_SET_PDEATHSIG: re-arm it, and exit if sarus
// died in between (its end of the go pipe is then closed).
void rearmParentDeathSignal(int parentAliveFd);

// The whole environment of the helpers and the runtime the sandbox starts:
// a fixed PATH and nothing of the caller's.
extern const std::vector<std::string> helperEnvironment;

// --- bundle steps shared by the backends ----------------------------------------

void mountOrThrow(const std::string& source, const std::string& target, const std::string& type,
                  unsigned long flags, const std::string& data);

// Makes / private (nothing propagates back to the host), mounts procfs for
// a new PID namespace if asked, and a tmpfs/ramfs on bundleDir with the
// lower, upper, work, rootfs and state directories.
void prepareBundleDirectory(const std::filesystem::path& bundleDir, const std::string& ramFilesystemType,
                            bool mountProc);

struct HostFiles {
    std::string hosts;
    std::string resolvConf;
    std::vector<GroupEntry> callerGroups;
    // What configure_installation.sh cached in <prefix>/etc (as Sarus's
    // installation does); empty when missing.
    std::string passwdDatabase;
    std::string groupDatabase;
    std::string nsswitchConf;  // <prefix>/etc/container/nsswitch.conf
    static HostFiles read(const Identity& identity);
};

// /dev, /proc and /sys of the rootfs become real directories: an image may
// have planted symlinks there, and a runtime opens "dev" from the rootfs fd
// with a plain openat, which follows an absolute symlink on the host.
void makeSystemDirectoriesReal(const RootDirectory& root, const CreationPolicy& policy);

// /etc/hosts, /etc/resolv.conf, /etc/passwd, /etc/group and (when the
// installation has one) /etc/nsswitch.conf of the container.
void provideEtcFiles(const std::filesystem::path& rootfs, const Identity& identity, const HostFiles& files,
                     uid_t owner, gid_t group);

// Resolves every mount destination inside the rootfs (image symlinks are
// followed there, never on the host), checks user mounts against userMounts
// again, and creates the mount points. Rewrites the destinations in spec.
void prepareMountPoints(ContainerSpec& spec, const std::filesystem::path& rootfs, const UserMountRestrictions& rules,
                        uid_t owner, gid_t group);

void writeBundleConfig(const std::filesystem::path& bundleDir, const ContainerSpec& spec,
                       const OciConfigOptions& options);

// crun and runc skip their self-copy (see sandbox.cpp) when their binary is
// on a read-only mount: binds runtime read-only onto itself in the sandbox's
// mount namespace and says so in options.env.
void protectRuntimeBinary(const std::string& runtime, SpawnOptions& options);

// Runs "<runtime> [global options] --root BUNDLE/state --log
// BUNDLE/runtime.log run --bundle BUNDLE [--preserve-fds=N] NAME" with
// spec.passFds as descriptors 3..., forwards signals to it, waits, and turns
// its confusing failures into messages.
// prefetch: the read-ahead helper, reaped as soon as it is done.
// callerAliveFd (userns mode, where no cgroup holds the container): with
// --pid=host and crun, the sandbox outlives sarus to end the container's
// processes itself when sarus ends (see waitRelayingSignals).
int runRuntime(const std::vector<std::string>& runtimeWithGlobalOptions, const std::filesystem::path& bundleDir,
               const ContainerSpec& spec, SpawnOptions options, EntrypointPrefetch* prefetch = nullptr,
               int callerAliveFd = -1);

}  // namespace sarus
