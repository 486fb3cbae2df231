#include "runtime/sandbox.hpp"

#include "common/error.hpp"
#include "common/file_descriptor.hpp"
#include "common/file_utils.hpp"
#include "common/log.hpp"
#include "common/process.hpp"
#include "common/setup_clock.hpp"
#include "config/config.hpp"
#include "runtime/path_in_root.hpp"
#include "jobs/pmi_descriptor.hpp"
#include "runtime/runtime_messages.hpp"
#include "runtime/runtime_signals.hpp"
#include "runtime/hooks_output_relay.hpp"
#include "runtime/terminal_relay.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace sarus {

namespace fs = std::filesystem;

namespace {

void sendStatus(int fd, const std::string& message) {
    std::size_t done = 0;
    while (done < message.size()) {
        auto n = ::write(fd, message.data() + done, message.size() - done);
        if (n <= 0) {
            return;
        }
        done += static_cast<std::size_t>(n);
    }
}

std::string readOrEmpty(const std::string& path) {
    try {
        return readFile(path);
    } catch (const Error&) {
        return "";
    }
}

void makeDirectory(const fs::path& path) {
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
        throw systemError("cannot create " + path.string(), errno);
    }
}

std::string prepareMountPoint(const fs::path& rootfs, const std::string& source, const std::string& destination,
                              uid_t uid, gid_t gid) {
    auto resolved = resolveInRoot(rootfs, destination);
    if (resolved == "/") {
        throw Error("mount destination '" + destination + "' resolves to the container's root");
    }
    struct stat existing {};
    if (::lstat((rootfs.string() + resolved).c_str(), &existing) == 0) {
        return resolved;
    }
    struct stat st {};
    bool directory = ::stat(source.c_str(), &st) != 0 || S_ISDIR(st.st_mode);
    if (directory) {
        createDirectoryInRoot(rootfs, resolved, uid, gid);
    } else {
        writeFileInRoot(rootfs, resolved, "", 0644, uid, gid);
    }
    return resolved;
}

}  // namespace

SandboxChannels makeSandboxChannels() {
    SandboxChannels channels;
    makePipe(channels.go);
    makePipe(channels.status);
    return channels;
}

pid_t cloneSandbox(unsigned long namespaceFlags, const std::string& what) {
    std::fflush(stdout);
    std::fflush(stderr);
    auto pid = static_cast<pid_t>(::syscall(SYS_clone, namespaceFlags | SIGCHLD, nullptr, nullptr, nullptr, 0));
    if (pid < 0) {
        throw systemError(what, errno);
    }
    return pid;
}

const std::vector<std::string> helperEnvironment = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};

void rearmParentDeathSignal(int parentAliveFd) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    struct pollfd check {parentAliveFd, POLLIN, 0};
    if (::poll(&check, 1, 0) > 0 && (check.revents & (POLLHUP | POLLIN))) {
        _exit(1);
    }
}

int runReporting(int statusFd, const std::function<int()>& body) {
    try {
        return body();
    } catch (const Error& e) {
        sendStatus(statusFd, e.what());
    } catch (const std::exception& e) {
        sendStatus(statusFd, std::string("unexpected error in the container sandbox: ") + e.what());
    }
    return 1;
}

void runSandboxChild(SandboxChannels& channels, const std::function<int(int)>& body) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    // The bundle is the engine's own layout, read by the container's user
    // and the runtime: its modes must not depend on the caller's umask.
    ::umask(022);
    ::close(channels.go[1]);
    ::close(channels.status[0]);
    char go = 0;
    if (::read(channels.go[0], &go, 1) != 1 || go != 'g') {
        _exit(1);  // sarus failed to prepare us, or died
    }
    // Until the runtime runs there is nothing to forward to: a signal ends
    // the sandbox, and with it (PID 1, PDEATHSIG) every helper and mount.
    struct sigaction quit {};
    quit.sa_handler = [](int signal) { _exit(128 + signal); };
    for (int s : {SARUS_ENDING_SIGNALS}) {
        ::sigaction(s, &quit, nullptr);
    }
    int code = runReporting(channels.status[1], [&] { return body(channels.go[0]); });
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(code);
}

namespace {

// Whether pid ended within timeoutMs (-1: waits for as long as it takes).
bool waitUntilExited(int pidfd, int timeoutMs) {
    struct pollfd exited {pidfd, POLLIN, 0};
    for (;;) {
        int n = ::poll(&exited, 1, timeoutMs);
        if (n > 0 || (n < 0 && errno != EINTR)) {
            return n > 0;
        }
        if (n == 0) {
            return false;
        }
    }
}

// Waits for the sandbox. With -t, a hang-up of the terminal (a closed ssh
// session, a killed terminal window) ends the container: SIGHUP first, then
// endNow. A container's PID 1 ignores SIGHUP unless it handles it, and the
// runtime would copy from a dead terminal forever. With endWithProcessFd,
// the end of that process ends the container at once.
void waitWatching(pid_t sandbox, const Supervision& supervision) {
    FileDescriptor pidfd(static_cast<int>(::syscall(SYS_pidfd_open, sandbox, 0)));
    if (pidfd.get() < 0) {
        return;
    }
    for (;;) {
        struct pollfd watched[3] = {{pidfd.get(), POLLIN, 0},
                                    {supervision.endWithProcessFd, POLLIN, 0},
                                    {supervision.watchTerminal ? STDIN_FILENO : -1, 0, 0}};
        int n = ::poll(watched, 3, -1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 || (watched[0].revents & POLLIN)) {
            return;
        }
        if (watched[1].revents & POLLIN) {
            log::debug("the process the container ends with has ended: ending the container");
            if (supervision.endNow) {
                supervision.endNow();
            }
            return;
        }
        if (watched[2].revents & (POLLHUP | POLLERR | POLLNVAL)) {
            log::debug("the terminal hung up: ending the container");
            ::kill(sandbox, SIGHUP);
            if (!waitUntilExited(pidfd.get(), 1000) && supervision.endNow) {
                supervision.endNow();
            }
            return;
        }
    }
}

}  // namespace

int superviseSandbox(pid_t sandbox, SandboxChannels& channels, const std::function<void()>& beforeGo,
                     const Supervision& supervision) {
    ::close(channels.go[0]);
    ::close(channels.status[1]);
    try {
        beforeGo();
    } catch (...) {
        ::kill(sandbox, SIGKILL);
        waitForExit(sandbox);
        throw;
    }
    forwardSignalsTo(sandbox);
    if (::write(channels.go[1], "g", 1) != 1) {
        throw systemError("cannot start the container sandbox", errno);
    }
    // go[1] stays open while we live: the sandbox sees it close if we die.
    if (supervision.watchTerminal || supervision.endWithProcessFd >= 0) {
        waitWatching(sandbox, supervision);
    }
    int code = waitForExit(sandbox);
    log::debug("sandbox gone: its mounts and helpers with it");
    if (channels.go[1] >= 0) {
        ::close(channels.go[1]);
    }
    auto failure = readToEnd(channels.status[0]);
    ::close(channels.status[0]);
    if (!failure.empty()) {
        throw Error(failure);
    }
    return code;
}

void mountOrThrow(const std::string& source, const std::string& target, const std::string& type,
                  unsigned long flags, const std::string& data) {
    if (::mount(source.c_str(), target.c_str(), type.empty() ? nullptr : type.c_str(), flags,
                data.empty() ? nullptr : data.c_str()) != 0) {
        throw systemError("cannot mount " + (type.empty() ? source : type) + " on " + target, errno);
    }
}

void prepareBundleDirectory(const fs::path& bundleDir, const std::string& ramFilesystemType, bool mountProc) {
    mountOrThrow("none", "/", "", MS_REC | MS_PRIVATE, "");
    if (mountProc) {
        // The runtime finds its processes through /proc: it must show our PID namespace.
        mountOrThrow("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "");
    }
    mountOrThrow("sarus-bundle", bundleDir, ramFilesystemType, MS_NOSUID | MS_NODEV, "mode=0755");
    for (const char* dir : {"lower", "upper", "work", "rootfs", "state", "devices"}) {
        makeDirectory(bundleDir / dir);
    }
}

HostFiles HostFiles::read(const Identity& identity) {
    auto etc = Config::installPrefix() / "etc";
    return {readOrEmpty("/etc/hosts"),
            readOrEmpty("/etc/resolv.conf"),
            sarus::callerGroups(identity),
            readOrEmpty(etc / "passwd"),
            readOrEmpty(etc / "group"),
            readOrEmpty(etc / "container" / "nsswitch.conf")};
}

void makeSystemDirectoriesReal(const RootDirectory& root, const CreationPolicy& policy) {
    for (const char* directory : {"/dev", "/proc", "/sys"}) {
        root.replaceWithDirectory(directory, policy);
    }
}

void provideEtcFiles(const fs::path& rootfs, const Identity& identity, const HostFiles& files, uid_t owner,
                     gid_t group) {
    // the user's, as in Sarus: job scripts add to /etc/hosts
    writeFileInRoot(rootfs, "/etc/hosts", files.hosts, 0644, owner, group);
    writeFileInRoot(rootfs, "/etc/resolv.conf", files.resolvConf, 0644, owner, group);
    writeFileInRoot(rootfs, "/etc/passwd",
                    mergePasswd(readFileInRoot(rootfs, "/etc/passwd"), identity, files.passwdDatabase), 0644, owner,
                    group);
    writeFileInRoot(rootfs, "/etc/group",
                    mergeGroup(readFileInRoot(rootfs, "/etc/group"), identity, files.callerGroups, files.groupDatabase),
                    0644, owner, group);
    // lookups go to the files above, whatever services the image's names
    if (!files.nsswitchConf.empty()) {
        writeFileInRoot(rootfs, "/etc/nsswitch.conf", files.nsswitchConf, 0644, owner, group);
    }
}

void prepareMountPoints(ContainerSpec& spec, const fs::path& rootfs, const UserMountRestrictions& rules, uid_t owner,
                        gid_t group) {
    for (auto& mount : spec.userMounts) {
        mount.destination = prepareMountPoint(rootfs, mount.source, mount.destination, owner, group);
        if (!mount.launcher) {
            checkUserMountDestination(mount.destination, rules, mount.request);
        }
    }
    for (auto& mount : spec.siteMounts) {
        mount.destination = prepareMountPoint(rootfs, mount.source, mount.destination, owner, group);
    }
    for (auto& device : spec.devices) {
        device.destination = resolveInRoot(rootfs, device.destination);
    }
}

void writeBundleConfig(const fs::path& bundleDir, const ContainerSpec& spec, const OciConfigOptions& options) {
    auto withHooksOutput = options;
    withHooksOutput.hooksStdout = (bundleDir / "hooks.stdout").string();
    withHooksOutput.hooksStderr = (bundleDir / "hooks.stderr").string();
    auto config = generateOciConfig(spec, withHooksOutput);
    std::ofstream out(bundleDir / "config.json");
    out << config.dump();
    if (!out) {
        throw Error("cannot write " + (bundleDir / "config.json").string());
    }
}

// crun and runc protect themselves against a container overwriting their
// binary (CVE-2019-5736) by re-executing from a sealed copy, a second exec
// that costs 3-4 ms of every start. They skip it when their binary already
// sits on a read-only mount and _LIBCONTAINER_CLONED_BINARY is set: a
// read-only bind of the runtime onto itself, in the sandbox's own mount
// namespace, gives the same protection without the copy.
void protectRuntimeBinary(const std::string& runtime, SpawnOptions& options) {
    if (::mount(runtime.c_str(), runtime.c_str(), nullptr, MS_BIND, nullptr) != 0) {
        log::debug("runtime binary not protected by a read-only bind (" + std::string(std::strerror(errno)) +
                   "): it copies itself");
        return;
    }
    if (::mount(nullptr, runtime.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
                nullptr) != 0) {
        log::debug("runtime binary bind could not be made read-only (" + std::string(std::strerror(errno)) +
                   "): it copies itself");
        ::umount2(runtime.c_str(), MNT_DETACH);
        return;
    }
    if (!options.env) {
        options.env = currentEnvironment();
    }
    options.env->push_back("_LIBCONTAINER_CLONED_BINARY=1");
}

namespace {

// In the host's PID namespace, what is left of a container whose runtime
// is gone (killed): the sandbox's children in another session.
void endOrphanedContainerProcesses() {
    for (int round = 0; round < 100; ++round) {
        auto killed = killChildrenInOtherSessions(::getpid());
        if (killed.empty()) {
            return;
        }
        for (pid_t orphan : killed) {
            ::waitpid(orphan, nullptr, 0);  // its own children come here in turn
        }
    }
    log::warn("processes of the container kept starting while it was ended");
}

}  // namespace

int runRuntime(const std::vector<std::string>& runtimeWithGlobalOptions, const fs::path& bundleDir,
               const ContainerSpec& spec, SpawnOptions options, EntrypointPrefetch* prefetch, int callerAliveFd) {
    auto runtimeLog = bundleDir / "runtime.log";
    auto argv = runtimeWithGlobalOptions;
    for (const auto& argument : {std::string("--root"), (bundleDir / "state").string(), std::string("--log"),
                                 runtimeLog.string(), std::string("run"), std::string("--bundle"), bundleDir.string()}) {
        argv.push_back(argument);
    }
    for (const auto& option : preserveFdsArguments(spec)) {
        argv.push_back(option);
    }
    // runc ends the rest of a container in the host's PID namespace with its
    // first process, through the container's cgroup; for crun the sandbox does
    bool endTheRest = spec.pidHost && fs::path(argv[0]).filename() == "crun";
    auto pidFile = bundleDir / "container.pid";
    if (endTheRest) {
        argv.push_back("--pid-file");
        argv.push_back(pidFile.string());
        // what a runtime killed before its container leaves comes here
        ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    }
    int watchedCaller = -1;
    if (endTheRest && callerAliveFd >= 0) {
        // Dying with sarus would leave the container's processes running:
        // the sandbox ends them first (a pipe that hangs up tells it).
        ::prctl(PR_SET_PDEATHSIG, 0);
        watchedCaller = callerAliveFd;
    }
    std::unique_ptr<TerminalRelay> terminal;
    if (spec.tty && fs::path(argv[0]).filename() == "crun") {  // runc takes a console socket only when detached
        terminal = std::make_unique<TerminalRelay>(bundleDir / "terminal.sock");
        argv.push_back(terminal->runtimeOption());
    }
    argv.push_back(spec.name);
    options.passFds = spec.passFds;
    HooksOutputRelay hooksOutput(bundleDir);  // the FIFOs writeBundleConfig named
    if (options.executableFd < 0) {
        protectRuntimeBinary(argv[0], options);
    }
    log::verbose(setup_clock::secondsMessage("Successfully set up container in", setup_clock::secondsSinceSetupBegin()));
    auto pid = spawn(argv, options);
    int code = waitRelayingSignals(pid, terminal.get(), &hooksOutput, prefetch, endTheRest ? pidFile.string() : "",
                                   watchedCaller);
    if (endTheRest) {
        endOrphanedContainerProcesses();
    }
    terminal.reset();
    log::debug("sandbox: " + argv[0] + " exited with " + std::to_string(code));
    if (code != 0) {
        auto failure = runtimeFailure(runtimeLog);
        if (!failure.explanation.empty()) {
            throw Error(failure.explanation);
        }
        if (!failure.sarusLine.empty()) {
            std::fprintf(stderr, "%s\n", failure.sarusLine.c_str());
        }
        if (failure.exitCode != 0) {
            code = failure.exitCode;
        }
    }
    return code;
}

}  // namespace sarus
