#include "userns_backend.hpp"

#include "common/decimal.hpp"
#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "config/hooks_config.hpp"
#include "common/log.hpp"
#include "common/process.hpp"
#include "kept_image.hpp"
#include "squashfuse_mount.hpp"
#include "userns_sandbox.hpp"

#include <cerrno>
#include <csignal>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace sarus::userns {

namespace {

std::string requiredTool(const Config& config, const std::string& key, const std::string& fallback,
                         const std::string& package) {
    auto path = config.stringOr(key, fallback);
    if (::access(path.c_str(), X_OK) != 0) {
        throw Error("userns mode needs " + path + " (" + key + " in " + config.file().string() +
                    "; Debian package " + package + "): " + std::strerror(errno));
    }
    return path;
}

OverlayType overlayType(const Config& config) {
    auto type = config.stringOr("overlayType", "auto");
    return type == "kernel" ? OverlayType::kernel : type == "fuse" ? OverlayType::fuse : OverlayType::automatic;
}

// User mount sources are checked as the caller, before any namespace
// exists: a user can only mount what the user can reach.
void checkMountSources(const ContainerSpec& spec) {
    for (const auto& mount : spec.userMounts) {
        openMountSource(mount);
    }
    for (const auto& device : spec.devices) {
        statDeviceNode(device);
    }
}

SandboxPlan makePlan(const Config& config, const ContainerSpec& spec, const StoredImage& image) {
    SandboxPlan plan;
    plan.spec = spec;
    plan.imageFile = image.imageFile;
    plan.bundleDir = config.stringOr("OCIBundleDir", "");
    plan.ramFilesystemType = config.stringOr("ramFilesystemType", "tmpfs");
    plan.crunPath = requiredTool(config, "crunPath", "/usr/bin/crun", "crun");
    plan.squashfusePath = requiredTool(config, "squashfusePath", "/usr/bin/squashfuse_ll", "squashfuse");
    plan.squashfusePreload = installedSquashfusePreload();
    if (::access(plan.squashfusePreload.c_str(), R_OK) != 0) {
        log::warn(plan.squashfusePreload.string() + " is not installed: the container's files keep "
                  "the owners the image records, and every open costs a FUSE round trip");
        plan.squashfusePreload.clear();
    }
    plan.fuseOverlayfsPath = config.stringOr("fuseOverlayfsPath", "/usr/bin/fuse-overlayfs");
    plan.overlay = overlayType(config);
    if (plan.overlay == OverlayType::fuse) {
        requiredTool(config, "fuseOverlayfsPath", "/usr/bin/fuse-overlayfs", "fuse-overlayfs");
    }
    if (spec.init) {
        plan.initPath = requiredTool(config, "initPath", "/usr/bin/tini-static", "tini");
    }
    struct stat st {};
    if (plan.bundleDir.empty() || ::stat(plan.bundleDir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        throw Error("OCIBundleDir '" + plan.bundleDir.string() + "' in " + config.file().string() +
                    " is not an existing directory");
    }
    plan.userMountRules = userMountRestrictions(config.json());
    plan.hostFiles = HostFiles::read(spec.identity);
    plan.hooks = configuredHooks(config, spec);

    auto subuid = findSubordinateRange("/etc/subuid", spec.identity.userName, spec.identity.uid);
    auto subgid = findSubordinateRange("/etc/subgid", spec.identity.userName, spec.identity.uid);
    plan.ids = planIdMapping(spec.identity, subuid, subgid);
    if (!plan.ids.keepId) {
        log::verbose("no subordinate id range for " + spec.identity.userName +
                     " in /etc/subuid and /etc/subgid: using a single-id map");
    } else {
        log::verbose("id map: keep-id with subordinate ranges from /etc/subuid and /etc/subgid");
    }
    return plan;
}

// A Slurm step's processes are killed when it ends (proctrack/cgroup), a
// keeper and its squashfuse_ll daemons with them: a keeper shared with
// another step would take that step's containers' image along. Each step
// gets a keeper of its own.
std::string slurmStepScope(const std::map<std::string, std::string>& env) {
    auto job = valueOr(env, "SLURM_JOB_ID");
    auto step = valueOr(env, "SLURM_STEP_ID");
    return isDecimalNumber(job) ? "-slurm" + job + (isDecimalNumber(step) ? "." + step : "") : "";
}

// `srun sarus run ...`: the step's task is this sarus (or the one leading
// the container its ranks share, whose child this is), so the step starts
// no other container on this node, and its keeper would end with it
// unused: a keeper start is all it would add.
bool isTheTaskOfASlurmStep(const std::map<std::string, std::string>& env) {
    if (!isDecimalNumber(valueOr(env, "SLURM_STEP_ID"))) {
        return false;
    }
    pid_t ancestor = ::getppid();
    for (int generation = 0; generation < 2; ++generation) {
        auto status = readProcessStatus(ancestor);
        if (!status || status->name != "sarus") {
            return status && status->name == "slurmstepd";
        }
        ancestor = status->parent;
    }
    return false;
}

// The image keeper of this user on this node (tempDir may be shared
// between nodes), or nothing when sarus.json turns kept mounts off or the
// keeper cannot serve: the container then mounts the image itself.
std::optional<KeptImage> keepImage(const Config& config, const SandboxPlan& plan, const IdMappingTools& tools) {
    auto idleTime = config.json().value("imageMountIdleTime", 60);
    if (idleTime <= 0) {
        return std::nullopt;
    }
    auto env = environmentMap(currentEnvironment());
    if (isTheTaskOfASlurmStep(env)) {
        log::verbose("image mounted for this container alone: it is the only one of its Slurm step here");
        return std::nullopt;
    }
    KeeperSettings settings;
    settings.options.paths.directory =
        config.tempDir() /
        ("sarus-keeper-" + std::to_string(plan.spec.identity.uid) + slurmStepScope(env) + "@" + hostName());
    settings.options.idleTime = std::chrono::seconds(idleTime);
    settings.options.clientUid = plan.ids.callerUidInside;  // as the keeper's namespace sees the caller
    settings.squashfuse = {plan.squashfusePath, {}, {}, plan.ids.callerUidInside, plan.ids.callerGidInside,
                           plan.squashfusePreload};
    try {
        return acquireKeptImage(settings, plan.ids, tools, plan.imageFile);
    } catch (const Error& e) {
        log::warn(std::string("cannot keep the image mounted (imageMountIdleTime in ") + config.file().string() +
                  "): " + e.what() + "; mounting it for this container alone");
        return std::nullopt;
    }
}

}  // namespace

int UsernsBackend::run(const ContainerSpec& spec, const StoredImage& image) {
    checkMountSources(spec);
    auto plan = makePlan(config_, spec, image);
    IdMappingTools tools;
    tools.newuidmap = config_.stringOr("newuidmapPath", tools.newuidmap);
    tools.newgidmap = config_.stringOr("newgidmapPath", tools.newgidmap);

    auto kept = keepImage(config_, plan, tools);
    if (kept) {
        plan.keptImageMount = kept->mountpoint;
        plan.keptMountsDir = kept->mountpoint.parent_path();
        plan.readAhead = kept->fresh;
    }
    ReapedChild entering;
    auto channels = makeSandboxChannels();
    unsigned long flags = CLONE_NEWUSER | CLONE_NEWNS | (spec.pidHost ? 0 : CLONE_NEWPID);
    pid_t sandbox;
    try {
        sandbox = kept ? cloneSandboxIntoKeeper(*kept, flags, entering) : cloneSandbox(flags, "cannot create a user namespace");
    } catch (const Error& e) {
        throw Error(std::string(e.what()) +
                    " (are unprivileged user namespaces enabled? see user.max_user_namespaces and "
                    "kernel.unprivileged_userns_clone)");
    }
    if (sandbox == 0) {
        runSandboxChild(channels, [&](int parentAliveFd) { return runUsernsSandbox(plan, parentAliveFd); });
    }
    Supervision supervision;
    supervision.watchTerminal = spec.tty;
    supervision.endWithProcessFd = spec.endWithProcessFd;
    // The sandbox is PID 1 of the container's PID namespace: its end is the end of everything in it.
    supervision.endNow = [sandbox] { ::kill(sandbox, SIGKILL); };
    return superviseSandbox(
        sandbox, channels,
        [&] {
            if (!kept) {
                log::debug("sandbox cloned, mapping ids");
                applyIdMapping(sandbox, plan.ids, tools);
            }
            // The helper that entered the keeper's namespaces has reported and
            // is exiting: reaped now, it shows as no <defunct> sarus while the
            // container runs.
            entering = ReapedChild();
        },
        supervision);
}

}  // namespace sarus::userns
