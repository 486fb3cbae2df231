#include "runtime/entrypoint_prefetch.hpp"

#include "common/log.hpp"
#include "runtime/path_in_root.hpp"
#include "common/process.hpp"

#include <csignal>
#include <elf.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace sarus {

namespace fs = std::filesystem;

namespace {

// Enough for any real program; a giant one is only partly read ahead.
constexpr off_t maxPrefetchBytes = 64 << 20;

std::string environmentValue(const std::vector<std::string>& env, const std::string& name) {
    for (const auto& entry : env) {
        if (entry.size() > name.size() && entry.compare(0, name.size(), name) == 0 && entry[name.size()] == '=') {
            return entry.substr(name.size() + 1);
        }
    }
    return "";
}

bool isRegularFile(const fs::path& path, mode_t requiredMode = 0) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & requiredMode) == requiredMode;
}

// Opens without following a final symlink and without blocking (a FIFO
// planted in the image), and keeps only regular files.
int openRegularFile(const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        return -1;
    }
    return fd;
}

void readThrough(const fs::path& path) {
    int fd = openRegularFile(path);
    if (fd < 0) {
        return;
    }
    // One squashfs block at a time: a larger buffer costs more page faults
    // to zero than its fewer reads save.
    static char buffer[128 << 10];
    off_t done = 0;
    ssize_t n;
    while (done < maxPrefetchBytes && (n = ::read(fd, buffer, sizeof buffer)) > 0) {
        done += n;
    }
    ::close(fd);
}

}  // namespace

fs::path entrypointProgram(const fs::path& rootfs, const ContainerSpec& spec) {
    if (spec.args.empty() || spec.args[0].empty()) {
        return {};
    }
    auto inRoot = [&](const std::string& containerPath) -> std::string {
        auto hostPath = rootfs.string() + resolveInRoot(rootfs, containerPath);
        return isRegularFile(hostPath, S_IXUSR) ? hostPath : std::string();
    };
    const auto& name = spec.args[0];
    if (name.find('/') != std::string::npos) {
        return inRoot(name[0] == '/' ? name : spec.cwd + "/" + name);
    }
    return searchPath(name, environmentValue(spec.env, "PATH"), inRoot);
}

std::string elfInterpreter(int fd) {
    Elf64_Ehdr header {};
    if (::pread(fd, &header, sizeof header, 0) != static_cast<ssize_t>(sizeof header) ||
        std::string(reinterpret_cast<const char*>(header.e_ident), SELFMAG) != ELFMAG ||
        header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_phentsize != sizeof(Elf64_Phdr)) {
        return "";
    }
    for (unsigned i = 0; i < header.e_phnum; ++i) {
        Elf64_Phdr program {};
        auto offset = static_cast<off_t>(header.e_phoff + i * sizeof program);
        if (::pread(fd, &program, sizeof program, offset) != static_cast<ssize_t>(sizeof program)) {
            return "";
        }
        if (program.p_type != PT_INTERP || program.p_filesz < 2 || program.p_filesz > 4096) {
            continue;
        }
        std::string interpreter(program.p_filesz, '\0');
        if (::pread(fd, interpreter.data(), interpreter.size(), static_cast<off_t>(program.p_offset)) !=
            static_cast<ssize_t>(interpreter.size())) {
            return "";
        }
        return interpreter.substr(0, interpreter.find('\0'));
    }
    return "";
}

std::vector<fs::path> entrypointFiles(const fs::path& rootfs, const ContainerSpec& spec) {
    auto program = entrypointProgram(rootfs, spec);
    if (program.empty()) {
        return {};
    }
    std::vector<fs::path> files;
    int fd = openRegularFile(program);
    if (fd >= 0) {
        auto interpreter = elfInterpreter(fd);
        ::close(fd);
        if (!interpreter.empty() && interpreter[0] == '/') {
            auto hostPath = rootfs.string() + resolveInRoot(rootfs, interpreter);
            if (isRegularFile(hostPath)) {
                files.push_back(hostPath);
            }
        }
    }
    files.push_back(program);
    return files;
}

EntrypointPrefetch::EntrypointPrefetch(const fs::path& rootfs, const ContainerSpec& spec, uid_t uid, gid_t gid) {
    auto parent = ::getpid();
    pid_t helper = ::fork();
    if (helper > 0) {
        pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, helper, 0));
        if (pidfd_ < 0) {
            ::kill(helper, SIGKILL);  // not yet reaped: the pid is still the helper's
            ::waitpid(helper, nullptr, 0);
        }
        return;
    }
    if (helper < 0) {
        return;  // running without read-ahead is only slower
    }
    // Nothing of the sandbox's (root's, in suid mode) stays open or
    // traceable once this process is the caller's; the parent-death signal
    // after the identity change, which clears it.
    closeDescriptorsExcept(nullptr, 0);
    if (!becomeUntraceably(uid, gid, nullptr, 0) || ::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 ||
        ::getppid() != parent) {
        _exit(0);
    }
    try {
        auto files = entrypointFiles(rootfs, spec);
        for (const auto& file : files) {
            log::debug("sandbox: reading ahead " + file.lexically_relative(rootfs).string());
            readThrough(file);
        }
        if (!files.empty()) {
            log::debug("sandbox: read ahead done");
        }
    } catch (...) {
        // an unreadable or odd entrypoint is the runtime's to report
    }
    _exit(0);
}

void EntrypointPrefetch::reapIfDone() {
    siginfo_t info {};
    if (pidfd_ >= 0 && ::waitid(P_PIDFD, pidfd_, &info, WEXITED | WNOHANG) == 0 &&
        info.si_pid != 0) {
        ::close(pidfd_);
        pidfd_ = -1;
    }
}

EntrypointPrefetch::~EntrypointPrefetch() {
    if (pidfd_ >= 0) {
        ::syscall(SYS_pidfd_send_signal, pidfd_, SIGKILL, nullptr, 0);
        siginfo_t info {};
        ::waitid(P_PIDFD, pidfd_, &info, WEXITED);
        ::close(pidfd_);
    }
}

}  // namespace sarus
