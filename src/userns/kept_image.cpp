#include "kept_image.hpp"

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/process.hpp"
#include "runtime/sandbox.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace sarus::userns {

namespace fs = std::filesystem;

namespace {

struct CloneResult {
    pid_t pid = -1;
    int error = 0;
};

// In the keeper's namespaces, after the id mapping: the listener first, so
// that the socket serves once this process reported success; then the
// keeper proper, detached from the caller's session and descriptors.
void becomeKeeper(const KeeperSettings& settings) {
    auto listener = prepareKeeper(settings);
    pid_t keeper = ::fork();
    if (keeper < 0) {
        throw systemError("cannot start the image keeper", errno);
    }
    if (keeper > 0) {
        return;
    }
    detachAsKeeper({listener.get()}, "sarus image keeper " + settings.options.paths.directory.string());
    serveAsKeeper(settings, std::move(listener));
}

void startKeeper(const KeeperSettings& settings, const IdMappingPlan& ids, const IdMappingTools& tools) {
    log::debug("starting the image keeper in " + settings.options.paths.directory.string());
    auto channels = makeSandboxChannels();
    pid_t child = cloneSandbox(CLONE_NEWUSER | CLONE_NEWNS, "cannot create the image keeper's user namespace");
    if (child == 0) {
        runSandboxChild(channels, [&](int) {
            becomeKeeper(settings);
            return 0;
        });
    }
    ::close(channels.go[0]);
    ::close(channels.status[1]);
    FileDescriptor go(channels.go[1]);
    FileDescriptor status(channels.status[0]);
    try {
        applyIdMapping(child, ids, tools);
    } catch (...) {
        ::kill(child, SIGKILL);
        waitForExit(child);
        throw;
    }
    if (::write(go.get(), "g", 1) != 1) {
        throw systemError("cannot start the image keeper", errno);
    }
    int code = waitForExit(child);
    auto failure = readToEnd(status.get());
    if (!failure.empty() || code != 0) {
        throw Error("cannot start the image keeper: " + (failure.empty() ? "exit code " + std::to_string(code) : failure));
    }
}

}  // namespace

KeptImage acquireKeptImage(const KeeperSettings& settings, const IdMappingPlan& ids, const IdMappingTools& tools,
                           const fs::path& imageFile) {
    auto claim = claimKeptMount(settings.options.paths, imageFile.string(), {}, ::getuid(), [&] {
        // What the keepers of ended Slurm steps left on this node goes first.
        const auto& directory = settings.options.paths.directory;
        auto name = directory.filename().string();
        removeDeadKeeperDirectories(directory.parent_path(), "sarus-keeper-" + std::to_string(::getuid()),
                                    name.substr(name.rfind('@')), {"images"});
        startKeeper(settings, ids, tools);
    });
    if (claim.descriptors.size() != 2) {
        throw Error("the image keeper at " + settings.options.paths.socket().string() +
                    " did not send its namespaces");
    }
    log::debug("image " + imageFile.string() + (claim.fresh ? " mounted" : " kept") + " at " + claim.text);
    return {std::move(claim.connection), std::move(claim.descriptors[0]), std::move(claim.descriptors[1]),
            claim.text, claim.fresh};
}

pid_t cloneSandboxIntoKeeper(const KeptImage& kept, unsigned long flags, ReapedChild& entering) {
    int report[2];
    makePipe(report);
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t middle = ::fork();
    if (middle < 0) {
        int error = errno;
        ::close(report[0]);
        ::close(report[1]);
        throw systemError("cannot start the container sandbox", error);
    }
    if (middle == 0) {
        // setns into a user namespace needs a single-threaded process that
        // shares no filesystem data: this fresh child. CLONE_PARENT makes the
        // sandbox sarus's own child, to wait for and to signal.
        CloneResult result;
        if (::setns(kept.userNamespace.get(), CLONE_NEWUSER) != 0 ||
            ::setns(kept.mountNamespace.get(), CLONE_NEWNS) != 0) {
            result.error = errno;
        } else {
            result.pid = static_cast<pid_t>(::syscall(SYS_clone, (flags & ~CLONE_NEWUSER) | CLONE_PARENT | SIGCHLD,
                                                      nullptr, nullptr, nullptr, 0));
            if (result.pid == 0) {
                ::close(report[0]);
                ::close(report[1]);
                return 0;
            }
            result.error = result.pid < 0 ? errno : 0;
        }
        [[maybe_unused]] auto written = ::write(report[1], &result, sizeof result);
        ::_exit(0);
    }
    ::close(report[1]);
    CloneResult result;
    entering = ReapedChild(middle);
    auto n = ::read(report[0], &result, sizeof result);
    ::close(report[0]);
    if (n != sizeof result || result.pid < 0) {
        throw systemError("cannot enter the namespaces of the kept image mounts", n == sizeof result ? result.error : EIO);
    }
    return result.pid;
}

}  // namespace sarus::userns
