// The supervisor of a suid-mode container: see suid_sandbox.hpp.
#include "container_cgroups.hpp"
#include "common/error.hpp"
#include "common/file_descriptor.hpp"
#include "common/log.hpp"
#include "common/process.hpp"
#include "loop_keeper.hpp"
#include "suid_sandbox.hpp"

#include <cerrno>
#include <filesystem>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <optional>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace sarus::suid {

namespace {

// Root for good: the caller can no longer signal or trace this process, and
// it stays when sarus dies (a credential change clears PDEATHSIG) so that it
// can clean up after the container. Nothing of the caller's environment is
// kept for what root runs later.
void becomeRootForGood() {
    // uid first: root is in the saved set-user-ID of a SUID process
    if (::setresuid(0, 0, 0) != 0 || ::setresgid(0, 0, 0) != 0 || ::setgroups(0, nullptr) != 0) {
        throw systemError("cannot switch to root for the container setup", errno);
    }
    ::prctl(PR_SET_PDEATHSIG, 0);
    ::prctl(PR_SET_DUMPABLE, 0);
    ::clearenv();
}

bool callerGone(int parentAliveFd) {
    struct pollfd check {parentAliveFd, POLLIN, 0};
    return ::poll(&check, 1, 0) > 0;
}

// Until the sandbox has ended, or sarus (the caller's side) has: then the
// sandbox is killed, and with it its PID namespace.
int waitForSandboxOrCaller(pid_t sandbox, int parentAliveFd) {
    FileDescriptor pidfd(static_cast<int>(::syscall(SYS_pidfd_open, sandbox, 0)));
    if (pidfd.get() < 0) {
        throw systemError("cannot watch the container sandbox", errno);
    }
    for (;;) {
        struct pollfd watched[2] = {{pidfd.get(), POLLIN, 0}, {parentAliveFd, POLLIN, 0}};
        int n = ::poll(watched, 2, -1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n > 0 && !(watched[0].revents & POLLIN) && (watched[1].revents & (POLLIN | POLLHUP))) {
            ::kill(sandbox, SIGKILL);
        }
        if (n < 0 || (watched[0].revents & POLLIN) || (watched[1].revents & (POLLIN | POLLHUP))) {
            return waitForExit(sandbox);
        }
    }
}

// A batch system that SIGKILLs every process of a job step at once (Slurm's
// proctrack/linuxproc walks the process tree from the step) kills this
// supervisor with its container, before it can remove the cgroups. A
// detached reaper, no longer in that tree, removes them once every holder of
// the pipe's write end (this supervisor and the sandbox) is gone; after a
// normal end it finds nothing left to do. Returns the write end to hold; the
// short-lived process that orphans the reaper is reaped later, not waited for.
FileDescriptor startCgroupReaper(ContainerCgroups& cgroups, ReapedChild& orphaning) {
    int fds[2];
    makePipe(fds);
    FileDescriptor readEnd(fds[0]), writeEnd(fds[1]);
    pid_t child = ::fork();
    if (child < 0) {
        throw systemError("cannot start the cgroup reaper", errno);
    }
    if (child == 0) {
        if (::fork() != 0) {
            _exit(0);  // the reaper is orphaned: out of the job's process tree
        }
        auto keep = cgroups.descriptors();
        keep.push_back(readEnd.get());
        detachFromCaller(keep);
        char byte;
        while (::read(readEnd.get(), &byte, 1) != 0 && errno == EINTR) {
        }
        cgroups.killAndRemove();
        _exit(0);
    }
    orphaning = ReapedChild(child);
    return writeEnd;
}

std::vector<DeviceRule> deviceRules(const ContainerSpec& spec) {
    auto rules = defaultDeviceRules();
    for (const auto& device : spec.devices) {
        const auto& node = device.node.value();
        rules.push_back({std::string(1, node.type) + " " + std::to_string(node.major) + ":" +
                             std::to_string(node.minor) + " " + device.access,
                         true});
    }
    return rules;
}

// Held until the container has ended: the keeper counts the connection.
std::optional<KeptMountClaim> claimKeptMount(SandboxPlan& plan, int parentAliveFd) {
    if (plan.imageMountIdleTime.count() <= 0) {
        return std::nullopt;
    }
    try {
        auto claim = claimKeptLoopMount(plan.keeperPaths, plan.imageMountIdleTime, plan.image.get(), parentAliveFd);
        plan.keptMount = std::move(claim.descriptors[0]);
        plan.readAhead = claim.fresh;
        log::debug(std::string("supervisor: image ") + (claim.fresh ? "mounted" : "kept") + " by " +
                   plan.keeperPaths.directory.string());
        return claim;
    } catch (const Error& e) {
        log::warn(std::string("cannot keep the image mounted (imageMountIdleTime): ") + e.what() +
                  "; mounting it for this container alone");
        return std::nullopt;
    }
}

}  // namespace

int superviseContainer(SandboxPlan& plan, int parentAliveFd, int statusFd) {
    // No signal may end or stop root with the cgroups half made, or with no
    // reaper yet: every forwarded signal is held until the sandbox exists
    // and signals have somewhere to go.
    // (suid_backend.cpp starts this process with them held already.)
    sigset_t forwarded = forwardedSignalSet();
    ::sigprocmask(SIG_BLOCK, &forwarded, nullptr);
    becomeRootForGood();
    if (callerGone(parentAliveFd)) {
        return 1;
    }
    // Of the caller's descriptors, root keeps only those opened for it on
    // purpose: the image, the mount trees and PMI_FD.
    std::vector<int> keep = {parentAliveFd, statusFd, plan.image.get()};
    for (const auto& tree : plan.userMountTrees) {
        keep.push_back(tree.get());
    }
    keep.insert(keep.end(), plan.spec.passFds.begin(), plan.spec.passFds.end());
    closeDescriptorsExcept(keep);
    // crun runs with its cgroup management off; runc nests cgroups of its own.
    auto scope = std::filesystem::path(plan.runtimePath).filename() == "crun"
                     ? CgroupScope::devicesAndTracking
                     : CgroupScope::everyHierarchy;
    auto cgroups = ContainerCgroups::createBelow(::getpid(), "sarus-" + std::to_string(::getpid()), scope);
    cgroups.restrictDevices(deviceRules(plan.spec));
    ReapedChild orphaning;
    auto reaperPipe = startCgroupReaper(cgroups, orphaning);
    log::debug("supervisor: cgroups ready below the caller's");
    auto kept = claimKeptMount(plan, parentAliveFd);
    if (callerGone(parentAliveFd)) {
        cgroups.killAndRemove();
        return 1;
    }

    pid_t self = ::getpid();
    unsigned long flags = CLONE_NEWNS | (plan.spec.pidHost ? 0 : CLONE_NEWPID);
    pid_t sandbox = cloneSandbox(flags, "cannot create the container's namespaces");
    if (sandbox == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (plan.spec.pidHost && ::getppid() != self) {
            _exit(1);
        }
        struct sigaction quit {};
        quit.sa_handler = [](int signal) { _exit(128 + signal); };
        for (int s : {SARUS_ENDING_SIGNALS, SIGUSR1, SIGUSR2}) {
            ::sigaction(s, &quit, nullptr);
        }
        ::sigprocmask(SIG_UNBLOCK, &forwarded, nullptr);
        _exit(runReporting(statusFd, [&] { return runSuidSandbox(plan, cgroups, parentAliveFd); }));
    }
    forwardSignalsTo(sandbox);
    ::sigprocmask(SIG_UNBLOCK, &forwarded, nullptr);
    // The process that orphaned the reaper exited right after its fork: no
    // <defunct> sarus while the container runs.
    orphaning = ReapedChild();
    int code = waitForSandboxOrCaller(sandbox, parentAliveFd);
    cgroups.killAndRemove();
    log::debug("supervisor: container and cgroups gone");
    return code;
}

}  // namespace sarus::suid
