#include "common/unnamed_file.hpp"

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/process.hpp"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sarus {

namespace fs = std::filesystem;

std::string partialFileName(const std::string& name) {
    static std::atomic<unsigned> next{0};
    return "." + name + partialFileMarker + std::to_string(::getpid()) + "-" + std::to_string(next++) + "@" +
           hostName();
}

UnnamedFile::UnnamedFile(const fs::path& directory, const std::string& fallbackName) {
    mode_t mask = ::umask(0);
    ::umask(mask);
    fd_ = ::open(directory.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0644 & ~mask);
    if (fd_ >= 0) {
        return;
    }
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
        throw systemError("cannot create a file in " + directory.string(), errno);
    }
    partial_ = directory / partialFileName(fallbackName);
    fd_ = ::open(partial_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd_ < 0) {
        int err = errno;
        partial_.clear();
        throw systemError("cannot create a file in " + directory.string(), err);
    }
}

UnnamedFile::~UnnamedFile() {
    if (!partial_.empty()) {
        ::unlink(partial_.c_str());
    }
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

std::string UnnamedFile::path() const {
    return partial_.empty() ? "/proc/self/fd/" + std::to_string(fd_) : partial_.string();
}

bool UnnamedFile::publish(const fs::path& target, bool replace) {
    if (!partial_.empty()) {
        if (!replace && ::access(target.c_str(), F_OK) == 0) {
            return false;
        }
        if (::rename(partial_.c_str(), target.c_str()) != 0) {
            throw systemError("cannot move " + partial_.string() + " to " + target.string(), errno);
        }
        partial_.clear();
        return true;
    }
    // linkat with AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the /proc link
    // does the same for everyone.
    auto source = path();
    if (!replace) {
        if (::linkat(AT_FDCWD, source.c_str(), AT_FDCWD, target.c_str(), AT_SYMLINK_FOLLOW) == 0) {
            return true;
        }
        if (errno == EEXIST) {
            return false;
        }
        throw systemError("cannot create " + target.string(), errno);
    }
    // Replacing: link under a temporary name, then rename over the target.
    auto temporary = target.parent_path() / partialFileName(target.filename().string());
    if (::linkat(AT_FDCWD, source.c_str(), AT_FDCWD, temporary.c_str(), AT_SYMLINK_FOLLOW) != 0) {
        throw systemError("cannot create " + temporary.string(), errno);
    }
    if (::rename(temporary.c_str(), target.c_str()) != 0) {
        int err = errno;
        ::unlink(temporary.c_str());
        throw systemError("cannot move " + temporary.string() + " to " + target.string(), err);
    }
    return true;
}

void removeStalePartialFiles(const fs::path& directory) {
    auto here = hostName();
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(directory, ec)) {
        auto name = entry.path().filename().string();
        auto pos = name.rfind(partialFileMarker);
        if (name.empty() || name[0] != '.' || pos == std::string::npos) {
            continue;
        }
        // Another node's process is not ours to look for (a home on NFS or
        // GPFS); names without a host are of earlier versions, made here.
        auto at = name.find('@', pos);
        if (at != std::string::npos && name.substr(at + 1) != here) {
            continue;
        }
        auto pid = std::atoi(name.c_str() + pos + partialFileMarker.size());
        if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) {
            log::verbose("removing stale partial file " + entry.path().string());
            fs::remove(entry.path(), ec);
        }
    }
}

}  // namespace sarus
