#include "ssh_daemon.hpp"

#include "common/error.hpp"
#include "common/file_descriptor.hpp"
#include "hook_log.hpp"
#include "hook_main.hpp"
#include "runtime/mount_tree.hpp"
#include "mounts.hpp"
#include "common/process.hpp"
#include "namespaces.hpp"
#include "runtime/root_directory.hpp"
#include "ssh_keys.hpp"
#include "user_hook_dir.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <dirent.h>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <grp.h>
#include <sched.h>
#include <sstream>
#include <strings.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace hook::ssh {

namespace {

using sarus::FileDescriptor;

bool isFalse(const std::string& value) {
    return ::strcasecmp(value.c_str(), "false") == 0;
}

int portNumber(const std::string& value, const std::string& source) {
    try {
        size_t used = 0;
        int port = std::stoi(value, &used);
        if (used == value.size() && port > 0 && port < 65536) {
            return port;
        }
    } catch (const std::exception&) {
    }
    throw sarus::Error(source + "='" + value + "' is not a TCP port number");
}

std::string annotation(const std::map<std::string, std::string>& annotations, const std::string& key) {
    auto found = annotations.find(key);
    return found == annotations.end() ? "" : found->second;
}

std::vector<std::string> passwdFields(const std::string& line) {
    std::vector<std::string> fields;
    std::stringstream in(line);
    for (std::string field; std::getline(in, field, ':');) {
        fields.push_back(field);
    }
    if (!line.empty() && line.back() == ':') {
        fields.emplace_back();
    }
    return fields;
}

std::string readHostFile(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        throw sarus::systemError("cannot read " + file.string(), errno);
    }
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Reads a file as whoever this process is now, never following a symlink at
// the last component.
std::string readFileAt(int directory, const std::string& name) {
    FileDescriptor fd(::openat(directory, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat st {};
    if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        throw sarus::systemError("cannot read " + name, fd.get() < 0 ? errno : EINVAL);
    }
    std::string content;
    char buffer[8192];
    for (ssize_t n; (n = ::read(fd.get(), buffer, sizeof buffer)) > 0;) {
        content.append(buffer, static_cast<size_t>(n));
    }
    return content;
}

void writeFileAt(int directory, const std::string& name, const std::string& content, mode_t mode) {
    ::unlinkat(directory, name.c_str(), 0);
    FileDescriptor fd(::openat(directory, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (fd.get() < 0 || ::write(fd.get(), content.data(), content.size()) != static_cast<ssize_t>(content.size()) ||
        ::fchmod(fd.get(), mode) != 0) {
        throw sarus::systemError("cannot write " + name + " in the container's ~/.ssh", errno);
    }
}

// Runs work in a child that is the user on the host (becomeUserOnHost);
// throws if it fails. The child reports its own error.
void runAsUser(const ContainerState& state, const std::string& what, const std::function<void()>& work) {
    pid_t child = ::fork();
    if (child < 0) {
        throw sarus::systemError("cannot fork to " + what, errno);
    }
    if (child == 0) {
        try {
            becomeUserOnHost(state);
            work();
            ::_exit(0);
        } catch (const std::exception& e) {
            log::error("cannot " + what + ": " + e.what());
        }
        ::_exit(1);
    }
    if (sarus::waitForExit(child) != 0) {
        throw sarus::Error("cannot " + what);
    }
}

sarus::Owner containerUser(const ContainerState& state) {
    auto user = hostUserSeenHere(state);
    return {user.uid, user.gid};
}

std::string parentOf(const std::string& path) {
    auto parent = fs::path(path).parent_path().string();
    return parent.empty() ? "/" : parent;
}

// The daemon's child failed before Dropbear ran (Dropbear's own failures,
// such as a port in use, exit 1).
constexpr int daemonSetupFailed = 126;

class SshSetup {
public:
    SshSetup(const ContainerState& state, DaemonSettings settings)
        : state_(state),
          settings_(std::move(settings)),
          root_(openContainerRootfs(state)),
          user_(containerUser(state)) {
        rootPolicy_ = {{::geteuid(), ::getegid()}, {state.uid, state.gid}, std::nullopt};
        userPolicy_ = {user_, {state.uid, state.gid}, std::nullopt};
    }

    void run() {
        auto keys = userHookDirectory("ssh/keys", state_);
        home_ = homeOfUser();
        copyDropbear();
        auto sshDirectory = prepareHomeSsh();
        installKeys(keys, sshDirectory);
        writeLoginEnvironment();
        patchShell();
        startDaemon();
        copyPidfileToHost();
        log::info("Successfully activated SSH in container");
    }

private:
    std::string homeOfUser() const {
        auto home = homeDirectory(root_.readFile("/etc/passwd"), state_.uid);
        if (home.empty() || home == "/nonexistent") {
            throw sarus::Error("found invalid home directory in container's /etc/passwd for user " +
                               std::to_string(state_.uid) + ": \"" + home + "\"");
        }
        return home;
    }

    // Root copies the installation's binaries (root-owned, checked) into the
    // container's own filesystem; the directory becomes the user's so the
    // daemon can write its pidfile there.
    void copyDropbear() const {
        std::string bin = std::string(dropbearInContainer) + "/bin";
        for (const char* program : {"dropbear", "dbclient"}) {
            root_.writeFile(bin + "/" + program, readHostFile(settings_.dropbear / "bin" / program), 0755,
                            rootPolicy_);
        }
        auto client = fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "libexec/sarus/ssh";
        root_.writeFile("/usr/bin/ssh", readHostFile(client), 0755, rootPolicy_);
        root_.writeFile(std::string(dropbearInContainer) + "/port", std::to_string(settings_.port) + "\n", 0644,
                        rootPolicy_);
        auto directory = root_.open(dropbearInContainer, O_PATH | O_DIRECTORY);
        // An image's symlink there (to / or /dev, say) must not make the
        // user the owner of that directory; a symlinked /opt is fine.
        auto resolved = root_.containerPathOf(directory.get());
        if (!resolved.ends_with("/oci-hooks/ssh/dropbear")) {
            throw sarus::Error(std::string(dropbearInContainer) + " in the container leads to " + resolved +
                               ": not a directory of the SSH hook's own");
        }
        if (root_.onRootMount(directory.get()) &&
            ::fchownat(directory.get(), "", user_.uid, user_.gid, AT_EMPTY_PATH) != 0) {
            throw sarus::systemError("cannot give " + std::string(dropbearInContainer) + " to the user", errno);
        }
        root_.ensureDirectory(parentOf(settings_.pidfileInContainer), userPolicy_);
    }

    // ~/.ssh exists and belongs to the user; with the overlay setting (the
    // default) a private tmpfs over it starts as a copy of its files, so
    // nothing written for the container reaches a home bind-mounted from
    // the host. Returns a descriptor of the directory to fill.
    FileDescriptor prepareHomeSsh() {
        root_.ensureDirectory(parentOf(home_), rootPolicy_);
        auto sshPath = home_ + "/.ssh";
        auto existing = root_.ensureDirectory(sshPath, userPolicy_);
        // An image's ~/.ssh may lead anywhere in the container, such as onto
        // /proc, which a tmpfs of the user's would then cover for the runtime.
        sarus::checkNotRuntimeMountPoint(root_.containerPathOf(existing.get()), sshPath);
        if (!settings_.overlayHomeSsh) {
            log::info("OVERLAY_MOUNT_HOME_SSH=false: writing the keys into the container's " + sshPath);
            return existing;
        }
        previous_ = FileDescriptor(::openat(existing.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        try {
            auto tmpfs = sarus::newTmpfs("mode=0700,size=4m,uid=" + std::to_string(user_.uid) +
                                             ",gid=" + std::to_string(user_.gid),
                                         MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                                         "a private ~/.ssh");
            sarus::attachMountTree(tmpfs.get(), existing.get(), "a private " + sshPath);
        } catch (const sarus::Error& e) {
            if (!isRootless()) {
                throw;
            }
            // A rootless engine may give its hooks no right to mount. The
            // keys then go into the container's own ~/.ssh, never into one
            // mounted from the host, whose authorized_keys they would replace.
            if (!root_.onRootMount(existing.get())) {
                throw sarus::Error("rootless: cannot mount a private " + sshPath + " (" + e.what() +
                                   "), and it is mounted from outside the container (a host home?), "
                                   "whose keys would be overwritten: give the container a home of its own");
            }
            log::warn(std::string("rootless: no private ~/.ssh (") + e.what() +
                      "): the keys are written into the container's " + sshPath);
            previous_.reset();
            return existing;
        }
        return root_.open(sshPath, O_PATH | O_DIRECTORY);
    }

    void installKeys(const fs::path& keys, const FileDescriptor& sshDirectory) const {
        int previous = previous_.get();
        int target = sshDirectory.get();
        runAsUser(state_, "install the SSH keys in the container", [&] {
            if (previous >= 0) {
                copyRegularFiles(previous, target);
            }
            FileDescriptor keysDirectory(::open(keys.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
            if (keysDirectory.get() < 0) {
                throw sarus::systemError("cannot open " + keys.string(), errno);
            }
            writeFileAt(target, hostKeyFile, readFileAt(keysDirectory.get(), hostKeyFile), 0600);
            writeFileAt(target, clientKeyFile, readFileAt(keysDirectory.get(), clientKeyFile), 0600);
            auto authorized = readFileAt(keysDirectory.get(), authorizedKeysFile);
            if (!settings_.keyToAuthorize.empty()) {
                log::info("Adding key " + settings_.keyToAuthorize + " to authorized_keys");
                authorized += readFileAt(AT_FDCWD, settings_.keyToAuthorize);
            }
            writeFileAt(target, authorizedKeysFile, authorized, 0644);
        });
    }

    static void copyRegularFiles(int from, int to) {
        FileDescriptor listing(::openat(from, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        DIR* directory = listing.get() < 0 ? nullptr : ::fdopendir(::dup(listing.get()));
        if (directory == nullptr) {
            return;
        }
        while (auto* entry = ::readdir(directory)) {
            std::string name = entry->d_name;
            try {
                writeFileAt(to, name, readFileAt(from, name), 0600);
            } catch (const sarus::Error&) {
                // not a regular file, or not readable by the user: not copied
            }
        }
        ::closedir(directory);
    }

    // Login shells of ssh sessions get the container's environment back.
    void writeLoginEnvironment() const {
        root_.writeFile(std::string(dropbearInContainer) + "/environment", environmentScript(state_.env), 0644,
                        rootPolicy_);
        root_.writeFile("/etc/profile.d/ssh-hook.sh",
                        "#!/bin/sh\nif [ \"$SSH_CONNECTION\" ]; then\n    . " + std::string(dropbearInContainer) +
                            "/environment\nfi\n",
                        0644, rootPolicy_);
    }

    void patchShell() const {
        auto passwd = root_.readFile("/etc/passwd");
        auto patched = withExistingShell(passwd, state_.uid, [this](const std::string& shell) {
            return root_.openIfExists(shell, O_PATH).has_value();
        });
        if (patched != passwd) {
            log::info("the user's shell is not in the container: /bin/sh serves the SSH sessions");
            root_.writeFile("/etc/passwd", patched, 0644, rootPolicy_);
        }
    }

    void startDaemon() const {
        if (settings_.joinNamespaces && !enterPidNamespace(state_.pid)) {
            log::warn("the SSH daemon runs outside the container's PID namespace and does not end with the "
                      "container: kill it with the pid in " + settings_.pidfileInContainer);
        }
        // No -s: the installation's Dropbear has no password logins at all.
        std::vector<std::string> argv{std::string(dropbearInContainer) + "/bin/dropbear",
                                      "-r", home_ + "/.ssh/" + hostKeyFile,
                                      "-p", std::to_string(settings_.port),
                                      "-P", settings_.pidfileInContainer};
        bool verbose = log::enabled(log::Level::debug);
        if (verbose) {
            argv.insert(argv.begin() + 1, "-E");
        }
        pid_t child = ::fork();
        if (child < 0) {
            throw sarus::systemError("cannot fork the SSH daemon", errno);
        }
        if (child == 0) {
            execDaemon(argv, verbose);
        }
        int status = sarus::waitForExit(child);
        if (status == daemonSetupFailed) {
            throw sarus::Error("the SSH daemon was not started: its set-up in the container failed (the error above)");
        }
        if (status != 0) {
            throw sarus::Error("the SSH daemon did not start on port " + std::to_string(settings_.port) +
                               " (is the port in use?)" + (verbose ? "" : "; --debug shows its messages"));
        }
        log::info("SSH daemon listening on port " + std::to_string(settings_.port));
    }

    // The child: into the container's user namespace (single-id maps keep
    // the user's id there), chroot into the rootfs, become the user, exec.
    [[noreturn]] void execDaemon(const std::vector<std::string>& argv, bool verbose) const {
        // the daemon's stderr is /dev/null unless debugging; a failure before
        // it runs is still said
        int errors = ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        try {
            // Its network too: an engine may give the container its own.
            bool inNetwork = joinNamespaceOf(state_.pid, "net", CLONE_NEWNET);
            if (!joinNamespaceOf(state_.pid, "user", CLONE_NEWUSER)) {
                log::warn("the SSH daemon is not in the container's user namespace");
            }
            if (!inNetwork && !joinNamespaceOf(state_.pid, "net", CLONE_NEWNET)) {
                log::warn("the SSH daemon is not in the container's network namespace");
            }
            FileDescriptor null(::open("/dev/null", O_RDWR | O_CLOEXEC));
            if (::fchdir(root_.fd()) != 0 || ::chroot(".") != 0 || ::chdir("/") != 0) {
                throw sarus::systemError("cannot enter the container's root", errno);
            }
            becomeContainerUser(state_);
            // A daemon starts with no signal blocked or ignored, whatever its
            // runtime had: Dropbear reaps its sessions on SIGCHLD.
            sigset_t none;
            sigemptyset(&none);
            ::sigprocmask(SIG_SETMASK, &none, nullptr);
            for (int signal = 1; signal < NSIG; ++signal) {
                ::signal(signal, SIG_DFL);
            }
            ::dup2(null.get(), STDIN_FILENO);
            ::dup2(null.get(), STDOUT_FILENO);
            if (!verbose) {
                ::dup2(null.get(), STDERR_FILENO);
            }
            std::vector<char*> args;
            for (const auto& arg : argv) {
                args.push_back(const_cast<char*>(arg.c_str()));
            }
            args.push_back(nullptr);
            char path[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
            char* env[] = {path, nullptr};
            ::execve(args[0], args.data(), env);
            throw sarus::systemError("cannot execute " + argv[0] + " in the container", errno);
        } catch (const std::exception& e) {
            if (errors >= 0) {
                ::dup2(errors, STDERR_FILENO);
            }
            log::error(e.what());
        }
        ::_exit(daemonSetupFailed);
    }

    // Whether this process is (now) in pid's namespace of that type.
    bool joinNamespaceOf(pid_t pid, const char* type, int nstype) const {
        if (pid <= 0 || !settings_.joinNamespaces) {
            return true;
        }
        struct stat mine {}, theirs {};
        auto path = "/proc/" + std::to_string(pid) + "/ns/" + type;
        if (::stat(("/proc/self/ns/" + std::string(type)).c_str(), &mine) != 0 ||
            ::stat(path.c_str(), &theirs) != 0 || (mine.st_ino == theirs.st_ino && mine.st_dev == theirs.st_dev)) {
            return true;
        }
        FileDescriptor ns(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (ns.get() < 0 || ::setns(ns.get(), nstype) != 0) {
            log::debug("cannot join " + path + " yet: " + std::strerror(errno));
            return false;
        }
        return true;
    }

    // The daemon writes its pidfile after it has gone to the background.
    std::string daemonPid() const {
        std::string pid;
        for (int attempt = 0; attempt < 200 && pid.empty(); ++attempt) {
            pid = root_.readFile(settings_.pidfileInContainer);
            if (pid.empty()) {
                ::usleep(10'000);
            }
        }
        if (pid.find_first_not_of("0123456789\n") != std::string::npos) {
            throw sarus::Error(settings_.pidfileInContainer + " in the container is not a pidfile");
        }
        return pid;
    }

    void copyPidfileToHost() const {
        if (settings_.pidfileOnHost.empty()) {
            return;
        }
        auto target = settings_.pidfileOnHost;
        // Both ends are the user's (annotations): the pidfile is read as the
        // user too, or a bind mount of a host directory would let root copy
        // out a file only root may read.
        runAsUser(state_, "copy the SSH daemon's pidfile to " + target, [&] {
            auto pid = daemonPid();
            FileDescriptor fd(::open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
            if (fd.get() < 0 || ::write(fd.get(), pid.data(), pid.size()) != static_cast<ssize_t>(pid.size())) {
                throw sarus::systemError("cannot write " + target, errno);
            }
        });
    }

    const ContainerState& state_;
    DaemonSettings settings_;
    sarus::RootDirectory root_;
    sarus::Owner user_;
    sarus::CreationPolicy rootPolicy_;
    sarus::CreationPolicy userPolicy_;
    std::string home_;
    FileDescriptor previous_;
};

}  // namespace

DaemonSettings daemonSettings(const std::map<std::string, std::string>& annotations) {
    DaemonSettings settings;
    settings.dropbear = dropbearDirectory();
    auto port = environmentVariable("SERVER_PORT_DEFAULT");
    auto source = std::string("SERVER_PORT_DEFAULT");
    if (port.empty()) {
        port = environmentVariable("SERVER_PORT");
        source = "SERVER_PORT";
    }
    if (!port.empty()) {
        settings.port = portNumber(port, source);
    }
    if (auto custom = annotation(annotations, "com.hooks.ssh.port"); !custom.empty()) {
        settings.port = portNumber(custom, "com.hooks.ssh.port");
    }
    settings.overlayHomeSsh = !isFalse(environmentVariable("OVERLAY_MOUNT_HOME_SSH"));
    settings.joinNamespaces = !isFalse(environmentVariable("JOIN_NAMESPACES"));
    if (auto pidfile = annotation(annotations, "com.hooks.ssh.pidfile_container"); !pidfile.empty()) {
        if (pidfile.front() != '/') {
            throw sarus::Error("com.hooks.ssh.pidfile_container='" + pidfile + "' is not an absolute path");
        }
        settings.pidfileInContainer = pidfile;
    }
    settings.pidfileOnHost = annotation(annotations, "com.hooks.ssh.pidfile_host");
    settings.keyToAuthorize = annotation(annotations, "com.hooks.ssh.authorize_ssh_key");
    return settings;
}

std::string homeDirectory(const std::string& passwd, uid_t uid) {
    std::stringstream in(passwd);
    for (std::string line; std::getline(in, line);) {
        auto fields = passwdFields(line);
        if (fields.size() >= 7 && fields[2] == std::to_string(uid)) {
            return fields[5];
        }
    }
    return "";
}

std::string withExistingShell(const std::string& passwd, uid_t uid,
                              const std::function<bool(const std::string&)>& shellExists) {
    std::stringstream in(passwd);
    std::string result;
    for (std::string line; std::getline(in, line);) {
        auto fields = passwdFields(line);
        if (fields.size() >= 7 && fields[2] == std::to_string(uid) && !fields[6].empty() && !shellExists(fields[6])) {
            line = line.substr(0, line.rfind(':') + 1) + "/bin/sh";
        }
        result += line + "\n";
    }
    if (!passwd.empty() && passwd.back() != '\n') {
        result.pop_back();
    }
    return result;
}

namespace {

bool isShellName(const std::string& name) {
    auto letter = [](char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; };
    return !name.empty() && letter(name[0]) &&
           std::all_of(name.begin(), name.end(),
                       [&](char c) { return letter(c) || std::isdigit(static_cast<unsigned char>(c)); });
}

}  // namespace

std::string environmentScript(const std::vector<std::string>& env) {
    std::string script = "#!/bin/sh\n";
    for (const auto& entry : env) {
        auto equals = entry.find('=');
        if (equals == std::string::npos || !isShellName(entry.substr(0, equals))) {
            continue;  // a shell cannot export it: it would run as a command
        }
        std::string quoted;
        for (char c : entry.substr(equals + 1)) {
            quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
        }
        script += "export " + entry.substr(0, equals) + "='" + quoted + "'\n";
    }
    return script;
}

void startSshDaemon(const ContainerState& state) {
    if (annotation(state.annotations, "com.hooks.ssh.enabled") != "true") {
        log::info("com.hooks.ssh.enabled is not true: no SSH daemon");
        return;
    }
    auto settings = daemonSettings(state.annotations);
    if (settings.joinNamespaces) {
        enterMountNamespace(state.pid);
    } else {
        log::info("JOIN_NAMESPACES=false: working in the hook's own namespaces");
    }
    SshSetup(state, std::move(settings)).run();
}

}  // namespace hook::ssh
