#include "squashfuse_mount.hpp"

#include "config/config.hpp"
#include "common/error.hpp"
#include "common/file_descriptor.hpp"
#include "common/log.hpp"
#include "common/log_line.hpp"
#include "common/process.hpp"
#include "runtime/sandbox.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <unistd.h>

namespace sarus::userns {

namespace fs = std::filesystem;

namespace {

FileDescriptor openFuseDevice() {
    FileDescriptor fuse(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
    if (fuse.get() < 0) {
        int error = errno;
        throw Error("cannot open /dev/fuse: " + std::string(std::strerror(error)) +
                    (error == EACCES ? " (userns mode needs it readable and writable by every user, mode 0666: "
                                       "see the README's host prerequisites)"
                                     : ""));
    }
    return fuse;
}

void mountFuse(const SquashfuseMount& mount, int fuseFd) {
    auto options = "fd=" + std::to_string(fuseFd) + ",rootmode=40000,user_id=" + std::to_string(mount.uid) +
                   ",group_id=" + std::to_string(mount.gid) + ",allow_other";
    auto type = "fuse." + fs::path(mount.daemonPath).filename().string();
    if (::mount(mount.image.c_str(), mount.mountpoint.c_str(), type.c_str(), MS_RDONLY | MS_NOSUID | MS_NODEV,
                options.c_str()) != 0) {
        throw systemError("cannot mount FUSE on " + mount.mountpoint.string() + " for " + mount.image.string(),
                          errno);
    }
}

pid_t startDaemon(const SquashfuseMount& mount, int fuseFd) {
    SpawnOptions options;
    options.uid = mount.uid;
    options.gid = mount.gid;
    auto env = helperEnvironment;
    if (!mount.preload.empty()) {
        env.push_back("LD_PRELOAD=" + mount.preload.string());
        // The daemon runs as the container's user: report every file as its.
        env.push_back("SARUS_SQUASHFUSE_OWNER=" + std::to_string(mount.uid) + ":" + std::to_string(mount.gid));
        if (log::enabled(log::Level::debug)) {
            // the library writes its line as sarus's own
            env.push_back("SARUS_SQUASHFUSE_PRELOAD_DEBUG=" + log::instanceId());
        }
    }
    options.env = env;
    options.passFds = {fuseFd};
    auto image = mount.image.string();
    if (mount.imageFd >= 0) {
        options.passFds.push_back(mount.imageFd);
        image = "/dev/fd/4";
    }
    return spawn({mount.daemonPath, "-f", image, "/dev/fd/3"}, options);
}

// The first request waits for the daemon's answer to INIT. If the daemon
// dies instead, it took the last descriptor of the connection with it and
// the request fails.
void waitUntilServed(const SquashfuseMount& mount, pid_t daemon) {
    struct statfs st {};
    int result;
    do {
        result = ::statfs(mount.mountpoint.c_str(), &st);
    } while (result != 0 && errno == EINTR);
    if (result == 0) {
        return;
    }
    ::kill(daemon, SIGKILL);
    throw Error(mount.daemonPath + " could not serve " + mount.image.string() + " (exit code " +
                std::to_string(waitForExit(daemon)) + ")");
}

}  // namespace

fs::path installedSquashfusePreload() {
    return Config::installPrefix() / "libexec" / "sarus" / "squashfuse_preload.so";
}

pid_t mountSquashfs(const SquashfuseMount& mount) {
    auto fuse = openFuseDevice();
    mountFuse(mount, fuse.get());
    pid_t daemon;
    try {
        daemon = startDaemon(mount, fuse.get());
        fuse.reset();
        waitUntilServed(mount, daemon);
    } catch (...) {
        // The image keeper lives on after a failed mount: a dead one would
        // stay in its namespace, and its directory with it.
        ::umount2(mount.mountpoint.c_str(), MNT_DETACH);
        throw;
    }
    log::debug("image " + mount.image.string() + " mounted with " + mount.daemonPath +
               (mount.preload.empty() ? "" : " and " + mount.preload.string()));
    return daemon;
}

}  // namespace sarus::userns
