#include "common/process.hpp"

#include "common/error.hpp"
#include "common/file_descriptor.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <sstream>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace sarus {

namespace {

// A pidfd, not a pid: once the target is reaped its pid may name any
// process, and a signal that arrives then (the supervisor forwards as root)
// must reach nobody.
std::atomic<int> forwardTarget{-1};

void forwardSignal(int signal) {
    int target = forwardTarget.load();
    if (target >= 0) {
        ::syscall(SYS_pidfd_send_signal, target, signal, nullptr, 0);
    }
}

[[noreturn]] void childFail(const char* what, const std::string& program) {
    int err = errno;
    std::fprintf(stderr, "sarus: cannot %s %s: %s\n", what, program.c_str(), std::strerror(err));
    _exit(127);
}

void raiseAmbient(const std::vector<int>& caps) {
    if (caps.empty()) {
        return;
    }
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (syscall(SYS_capget, &header, data) != 0) {
        childFail("read capabilities for", "helper");
    }
    for (int cap : caps) {
        data[cap / 32].inheritable |= 1u << (cap % 32);
    }
    if (syscall(SYS_capset, &header, data) != 0) {
        childFail("set inheritable capabilities for", "helper");
    }
    for (int cap : caps) {
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) {
            childFail("raise ambient capability for", "helper");
        }
    }
}

}  // namespace

void makePipe(int fds[2]) {
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        throw systemError("cannot create a pipe", errno);
    }
}

// Every descriptor >= 3 not kept is closed, whatever fails: this is what
// keeps the caller's descriptors from root and root's from the container.
void closeDescriptorsExcept(int* keep, std::size_t count) {
    std::sort(keep, keep + count);
    unsigned first = 3;
    bool closed = true;
    for (std::size_t i = 0; i < count; ++i) {
        if (keep[i] < 3) {
            continue;
        }
        auto fd = static_cast<unsigned>(keep[i]);
        if (fd > first) {
            closed = closed && ::close_range(first, fd - 1, 0) == 0;
        }
        first = std::max(first, fd + 1);
    }
    closed = closed && ::close_range(first, ~0U, 0) == 0;
    if (closed) {
        return;
    }
    // Without close_range (a kernel before 5.9): each possible descriptor.
    struct rlimit limit {};
    long last = ::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY
                    ? static_cast<long>(limit.rlim_cur)
                    : 1L << 20;
    for (long fd = 3; fd < last; ++fd) {
        if (!std::binary_search(keep, keep + count, static_cast<int>(fd))) {
            ::close(static_cast<int>(fd));
        }
    }
}

void closeDescriptorsExcept(std::vector<int> keep) {
    closeDescriptorsExcept(keep.data(), keep.size());
}

std::string readToEnd(int fd) {
    std::string text;
    char buffer[4096];
    for (;;) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return text;
        }
        text.append(buffer, static_cast<std::size_t>(n));
    }
}

std::string readProcessFile(pid_t pid, const std::string& name) {
    auto path = "/proc/" + std::to_string(pid) + "/" + name;
    FileDescriptor file(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    return file.get() < 0 ? std::string() : readToEnd(file.get());
}

std::optional<ProcessStatus> readProcessStatus(pid_t pid) {
    auto content = readProcessFile(pid, "stat");
    // "PID (NAME) STATE PPID ...": NAME may hold anything, so fields count from the last ')'.
    auto open = content.find('(');
    auto close = content.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close < open) {
        return std::nullopt;
    }
    ProcessStatus status;
    status.name = content.substr(open + 1, close - open - 1);
    std::istringstream fields(content.substr(close + 1));
    std::string field;
    for (int i = 3; i <= 22 && fields >> field; ++i) {
        if (i == 4) {
            status.parent = static_cast<pid_t>(std::strtol(field.c_str(), nullptr, 10));
        } else if (i == 22) {
            status.startTime = field;
            return status;
        }
    }
    return std::nullopt;
}

std::string hostName() {
    char name[HOST_NAME_MAX + 1] = {};
    return ::gethostname(name, sizeof name - 1) == 0 ? std::string(name) : std::string();
}

std::string processStartTime(pid_t pid) {
    auto status = readProcessStatus(pid);
    return status ? status->startTime : "";
}

bool isChildOf(pid_t pid, pid_t parent) {
    auto status = readProcessStatus(pid);
    return status && status->parent == parent;
}

std::vector<pid_t> childrenOf(pid_t pid) {
    std::istringstream list(readProcessFile(pid, "task/" + std::to_string(pid) + "/children"));
    std::vector<pid_t> children;
    for (pid_t child; list >> child;) {
        children.push_back(child);
    }
    return children;
}

FileDescriptor pinProcess(pid_t pid) {
    return FileDescriptor(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

bool signalPinned(const FileDescriptor& pinned, int sig) {
    return pinned.get() >= 0 && ::syscall(SYS_pidfd_send_signal, pinned.get(), sig, nullptr, 0) == 0;
}

bool signalPinnedProcess(pid_t pid, int sig, const std::function<bool(pid_t)>& stillTheTarget) {
    auto pinned = pinProcess(pid);
    return pinned.get() >= 0 && stillTheTarget(pid) && signalPinned(pinned, sig);
}

namespace {

bool inOtherSessionThan(pid_t child, pid_t parentSession) {
    pid_t theirs = ::getsid(child);
    return theirs >= 0 && theirs != parentSession;
}

}  // namespace

std::vector<pid_t> childrenInOtherSessions(pid_t parent) {
    std::vector<pid_t> found;
    pid_t own = ::getsid(parent);
    if (own < 0) {
        return found;
    }
    for (pid_t child : childrenOf(parent)) {
        if (inOtherSessionThan(child, own)) {
            found.push_back(child);
        }
    }
    return found;
}

std::vector<pid_t> killChildrenInOtherSessions(pid_t parent) {
    std::vector<pid_t> killed;
    pid_t own = ::getsid(parent);
    auto stillSuchAChild = [&](pid_t child) { return isChildOf(child, parent) && inOtherSessionThan(child, own); };
    for (pid_t child : childrenInOtherSessions(parent)) {
        if (signalPinnedProcess(child, SIGKILL, stillSuchAChild)) {
            killed.push_back(child);
        }
    }
    return killed;
}

namespace {

// In a user namespace whose maps an unprivileged user wrote (one id),
// setgroups is denied: the groups are the caller's own already.
bool setgroupsDenied() {
    int fd = ::open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC);
    char text[8] = {};
    bool denied = fd >= 0 && ::read(fd, text, sizeof text - 1) > 0 && std::strncmp(text, "deny", 4) == 0;
    if (fd >= 0) {
        ::close(fd);
    }
    return denied;
}

}  // namespace

bool becomeUntraceably(uid_t uid, gid_t gid, const gid_t* groups, std::size_t groupCount) {
    return (::setgroups(groupCount, groups) == 0 || (errno == EPERM && setgroupsDenied())) &&
           ::setresgid(gid, gid, gid) == 0 &&
           ::setresuid(uid, uid, 0) == 0 && ::prctl(PR_SET_DUMPABLE, 0) == 0 &&
           ::setresuid(static_cast<uid_t>(-1), static_cast<uid_t>(-1), uid) == 0;
}

void detachFromCaller(const std::vector<int>& keep) {
    ::setsid();
    // The caller's working directory stays busy while we live (an NFS or
    // automounted home that could not be unmounted), and its umask is not ours.
    if (::chdir("/") != 0) {
        _exit(1);
    }
    ::umask(022);
    int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) {
        ::dup2(null, fd);
    }
    closeDescriptorsExcept(keep);
}

pid_t spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
    if (options.passFds.size() > maxPassedDescriptors) {
        throw Error("cannot pass " + std::to_string(options.passFds.size()) + " descriptors to " + argv[0] +
                    ": at most " + std::to_string(maxPassedDescriptors));
    }
    std::vector<char*> args;
    for (const auto& arg : argv) {
        args.push_back(const_cast<char*>(arg.c_str()));
    }
    args.push_back(nullptr);
    std::vector<char*> envp;
    if (options.env) {
        for (const auto& entry : *options.env) {
            envp.push_back(const_cast<char*>(entry.c_str()));
        }
        envp.push_back(nullptr);
    }
    // Room for what the child adds: it must not allocate between fork and exec.
    std::vector<int> keep = options.keepFds;
    keep.reserve(keep.size() + 1 + maxPassedDescriptors);
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) {
        throw systemError("cannot start " + argv[0], errno);
    }
    if (pid > 0) {
        return pid;
    }
    // Child: only async-signal-safe work from here on, then exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
        _exit(127);  // the parent died before PDEATHSIG was armed
    }
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s : forwardedSignals) {
        ::sigaction(s, &dfl, nullptr);
    }
    ::sigaction(SIGPIPE, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (options.stdinFd >= 0 && ::dup2(options.stdinFd, 0) < 0) childFail("redirect stdin of", argv[0]);
    if (options.stdoutFd >= 0 && ::dup2(options.stdoutFd, 1) < 0) childFail("redirect stdout of", argv[0]);
    if (options.stderrFd >= 0 && ::dup2(options.stderrFd, 2) < 0) childFail("redirect stderr of", argv[0]);
    int executable = -1;
    if (options.executableFd >= 0) {
        // above every number passFds will take
        executable = ::fcntl(options.executableFd, F_DUPFD_CLOEXEC, 3 + 2 * static_cast<int>(maxPassedDescriptors));
        if (executable < 0) childFail("keep the descriptor of", argv[0]);
        keep.push_back(executable);
    }
    if (!options.passFds.empty()) {
        // via copies above any target number, so no target overwrites a source
        int copies[maxPassedDescriptors];  // no allocation between fork and exec
        size_t count = options.passFds.size();
        for (size_t i = 0; i < count; ++i) {
            copies[i] = ::fcntl(options.passFds[i], F_DUPFD_CLOEXEC, 3 + static_cast<int>(count));
            if (copies[i] < 0) childFail("pass a descriptor to", argv[0]);
        }
        for (size_t i = 0; i < count; ++i) {
            if (::dup2(copies[i], 3 + static_cast<int>(i)) < 0) childFail("pass a descriptor to", argv[0]);
            keep.push_back(3 + static_cast<int>(i));
        }
    }
    closeDescriptorsExcept(keep.data(), keep.size());
    if (options.prepareChild) {
        if (const char* failed = options.prepareChild()) {
            childFail(failed, argv[0]);
        }
    }
    if (options.gid && ::setresgid(*options.gid, *options.gid, *options.gid) != 0) {
        childFail("set the group of", argv[0]);
    }
    if (options.uid && !options.ambientCapabilities.empty()) {
        ::prctl(PR_SET_KEEPCAPS, 1);  // leaving uid 0 would clear the permitted set
    }
    if (options.uid && ::setresuid(*options.uid, *options.uid, *options.uid) != 0) {
        childFail("set the user of", argv[0]);
    }
    // A credential change clears PDEATHSIG: arm it again, then make sure the
    // parent did not die in between.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
        _exit(127);
    }
    raiseAmbient(options.ambientCapabilities);
    if (executable >= 0) {
        ::syscall(SYS_execveat, executable, "", args.data(), options.env ? envp.data() : environ,
                  AT_EMPTY_PATH);
    } else if (options.env) {
        ::execve(args[0], args.data(), envp.data());
    } else {
        ::execv(args[0], args.data());
    }
    childFail("execute", argv[0]);
}

int waitForExit(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            throw systemError("cannot wait for process " + std::to_string(pid), errno);
        }
    }
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    if (WIFSIGNALED(status)) {
        return 128 + WTERMSIG(status);
    }
    return 1;
}

ReapedChild::~ReapedChild() {
    if (pid_ > 0) {
        waitForExit(pid_);
    }
}

ReapedChild& ReapedChild::operator=(ReapedChild&& other) noexcept {
    if (this != &other) {
        if (pid_ > 0) {
            waitForExit(pid_);
        }
        pid_ = other.pid_;
        other.pid_ = -1;
    }
    return *this;
}

sigset_t forwardedSignalSet() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : forwardedSignals) {
        sigaddset(&set, s);
    }
    return set;
}

void forwardSignalsTo(pid_t pid) {
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0) {
        throw systemError("cannot forward signals to process " + std::to_string(pid), errno);
    }
    sigset_t forwarded = forwardedSignalSet(), previous;
    ::sigprocmask(SIG_BLOCK, &forwarded, &previous);  // no handler holds the old pidfd while it closes
    int old = forwardTarget.exchange(pidfd);
    if (old >= 0) {
        ::close(old);
    }
    ::sigprocmask(SIG_SETMASK, &previous, nullptr);
    struct sigaction action {};
    action.sa_handler = forwardSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    for (int s : forwardedSignals) {
        ::sigaction(s, &action, nullptr);
    }
}

CommandOutput runCapturingOutput(const std::vector<std::string>& argv, SpawnOptions options) {
    int pipe[2];
    makePipe(pipe);
    options.stdoutFd = pipe[1];
    pid_t pid;
    try {
        pid = spawn(argv, options);
    } catch (...) {
        ::close(pipe[0]);
        ::close(pipe[1]);
        throw;
    }
    ::close(pipe[1]);
    CommandOutput result{0, readToEnd(pipe[0])};
    ::close(pipe[0]);
    result.exitCode = waitForExit(pid);
    return result;
}

std::vector<std::string> currentEnvironment() {
    std::vector<std::string> env;
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
        env.emplace_back(*entry);
    }
    return env;
}

std::map<std::string, std::string> environmentMap(const std::vector<std::string>& env) {
    std::map<std::string, std::string> map;
    for (const auto& entry : env) {
        auto eq = entry.find('=');
        map.emplace(entry.substr(0, eq), eq == std::string::npos ? "" : entry.substr(eq + 1));
    }
    return map;
}

std::string valueOr(const std::map<std::string, std::string>& settings, const std::string& name,
                    const std::string& fallback) {
    auto it = settings.find(name);
    return it == settings.end() ? fallback : it->second;
}

std::string searchPath(const std::string& name, const std::string& pathVariable,
                       const std::function<std::string(const std::string&)>& accept) {
    if (name.find('/') != std::string::npos) {
        return name;
    }
    std::size_t start = 0;
    while (start <= pathVariable.size()) {
        auto end = pathVariable.find(':', start);
        auto directory = pathVariable.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (!directory.empty()) {
            auto found = accept(directory + "/" + name);
            if (!found.empty()) {
                return found;
            }
        }
        if (end == std::string::npos) {
            break;
        }
        start = end + 1;
    }
    return "";
}

std::string findInPath(const std::string& name, const std::string& pathVariable) {
    return searchPath(name, pathVariable, [](const std::string& candidate) {
        return ::access(candidate.c_str(), X_OK) == 0 ? candidate : std::string();
    });
}

}  // namespace sarus
