#include "runtime/path_in_root.hpp"

#include "common/error.hpp"
#include "runtime/mount_options.hpp"
#include "runtime/root_directory.hpp"

#include <deque>
#include <sys/stat.h>
#include <unistd.h>

namespace sarus {

std::string resolveInRoot(const std::filesystem::path& root, const std::string& containerPath) {
    constexpr int maxLinks = 40;
    int links = 0;
    auto parts = pathComponents(containerPath);
    std::deque<std::string> pending(parts.begin(), parts.end());
    std::string resolved;  // "" means "/"
    while (!pending.empty()) {
        auto part = pending.front();
        pending.pop_front();
        if (part == "..") {
            resolved = resolved.substr(0, resolved.rfind('/'));
            continue;
        }
        auto candidate = resolved + "/" + part;
        auto hostPath = root.string() + candidate;
        struct stat st {};
        if (::lstat(hostPath.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) {
            resolved = candidate;
            continue;
        }
        if (++links > maxLinks) {
            throw Error("too many levels of symbolic links resolving " + containerPath);
        }
        std::string target(static_cast<std::size_t>(st.st_size) + 1, '\0');
        auto n = ::readlink(hostPath.c_str(), target.data(), target.size());
        if (n < 0) {
            throw systemError("cannot read symlink " + hostPath, errno);
        }
        target.resize(static_cast<std::size_t>(n));
        auto next = pathComponents(target);
        if (!target.empty() && target[0] == '/') {
            resolved.clear();
        }
        pending.insert(pending.begin(), next.begin(), next.end());
    }
    return resolved.empty() ? "/" : resolved;
}

}  // namespace sarus
