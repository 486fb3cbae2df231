#include "jobs/rank_group.hpp"

#include "config/config.hpp"
#include "common/error.hpp"
#include "common/file_descriptor.hpp"
#include "common/file_utils.hpp"
#include "common/log.hpp"
#include "common/process.hpp"
#include "jobs/rank_agent_client.hpp"
#include "suid/privileges.hpp"
#include "common/unix_socket.hpp"
#include "common/name_hash.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace sarus {

namespace fs = std::filesystem;

namespace {

const char* const purpose = "it holds the shared containers of job steps";

// Where the agent appears in the container: a bind on crun's /dev.
const char* const agentInContainer = "/dev/.sarus-rank-agent";

fs::path installedAgent() {
    return Config::installPrefix() / "libexec" / "sarus" / "sarus-rank-agent";
}

// The caller's directory of groups and the group's own, both only the
// caller's (lstat: no one else's link is followed). The last rank of a group
// removes the group's, so it may go between the two steps: then again.
void ensureGroupDirectory(const fs::path& groupDir) {
    for (;;) {
        ensurePrivateDirectory(groupDir.parent_path(), purpose);
        if (::mkdir(groupDir.c_str(), 0700) != 0 && errno == ENOENT) {
            continue;
        }
        ensurePrivateDirectory(groupDir, purpose);
        return;
    }
}

// The group's lock, held for every decision. Whoever removes the lock file
// (and the directory, when no generation leads) holds it; an opener checks
// that what it locked is still the file there, and makes the directory again
// if it went in between.
FileDescriptor lockGroup(const fs::path& groupDir) {
    auto lockFile = groupDir / "lock";
    for (;;) {
        FileDescriptor fd(::open(lockFile.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
        if (fd.get() < 0 && errno == ENOENT) {
            ensureGroupDirectory(groupDir);
            continue;
        }
        if (fd.get() < 0) {
            throw systemError("cannot open " + lockFile.string(), errno);
        }
        if (::flock(fd.get(), LOCK_EX) != 0) {
            throw systemError("cannot lock " + lockFile.string(), errno);
        }
        // As for the keeper's lock: the directories may have gone between
        // their check and the open, and another user made the names again.
        struct stat locked {}, current {};
        if (::fstat(fd.get(), &locked) == 0 && ::lstat(lockFile.c_str(), &current) == 0 &&
            locked.st_ino == current.st_ino && locked.st_dev == current.st_dev && locked.st_uid == ::getuid() &&
            isPrivateDirectoryOfCaller(groupDir) && isPrivateDirectoryOfCaller(groupDir.parent_path())) {
            return fd;
        }
        ensureGroupDirectory(groupDir);  // throws if the names are another user's now
    }
}

struct Generation {
    fs::path directory;  // agent.sock and members
    std::string identity;
};

std::optional<Generation> readLeader(const fs::path& groupDir) {
    auto file = groupDir / "leader.json";
    std::ifstream in(file);
    if (!in) {
        return std::nullopt;
    }
    try {
        auto json = nlohmann::json::parse(in);
        auto name = json.at("generation").get<std::string>();
        // Only a directory of the group: the leader's is removed when it is gone.
        if (name.rfind("gen-", 0) != 0 || name.find('/') != std::string::npos) {
            return std::nullopt;
        }
        return Generation{groupDir / name, json.at("identity").get<std::string>()};
    } catch (const std::exception&) {
        return std::nullopt;  // half-written by a leader that died: a new one takes over
    }
}

FileDescriptor openMembers(const fs::path& generationDir) {
    auto file = generationDir / "members";
    FileDescriptor fd(::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd.get() < 0) {
        throw systemError("cannot open " + file.string(), errno);
    }
    return fd;
}

// What no leader or rank holds any more: generations whose members lock is
// free (a step killed whole, a leader killed before it named its
// generation or while it ended it) and the temporaries of leaders killed
// while they wrote leader.json. Called with the group's lock held and no
// live leader named in it.
void removeLeftoversOfGroup(const fs::path& groupDir) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(groupDir, ec)) {
        auto name = entry.path().filename().string();
        if (name.rfind("leader.json.tmp-", 0) == 0) {
            fs::remove(entry.path(), ec);
            continue;
        }
        if (name.rfind("gen-", 0) != 0) {
            continue;
        }
        FileDescriptor members(::open((entry.path() / "members").c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
        if (members.get() >= 0 && ::flock(members.get(), LOCK_EX | LOCK_NB) != 0) {
            continue;  // its leader is ending it
        }
        fs::remove_all(entry.path(), ec);
    }
}

// Removes the group's lock and directory when nothing else is left in it.
// A group directory that keeps something keeps its lock too, so that a
// later leader can still lock it and clean up.
void removeGroupIfEmpty(const fs::path& groupDir) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(groupDir, ec)) {
        if (entry.path().filename() != "lock") {
            return;
        }
    }
    ::unlink((groupDir / "lock").c_str());
    // The caller's directory of groups stays: in a shared /tmp another
    // user could take its name the moment it went, and make the ranks
    // that were about to meet there fail.
    ::rmdir(groupDir.c_str());
}

// Removes what a generation left in the group's directory, and the
// directory itself once no generation leads. Idempotent: the leader calls it
// after the container ended, the container's process once more in case the
// leader was killed.
void retireGeneration(const fs::path& groupDir, const fs::path& generation) {
    if (!fs::exists(generation)) {
        return;  // retired already
    }
    auto lock = lockGroup(groupDir);
    auto leader = readLeader(groupDir);
    if (leader && leader->directory == generation) {
        ::unlink((groupDir / "leader.json").c_str());
        leader.reset();
    }
    std::error_code ignored;
    fs::remove_all(generation, ignored);
    if (!leader && !fs::exists(groupDir / "leader.json")) {
        removeLeftoversOfGroup(groupDir);
        removeGroupIfEmpty(groupDir);
    }
}

// The groups of steps Slurm killed whole (every rank and the container at
// once, so nobody retired them): no agent answers and nobody holds their
// members or their lock. A new leader removes them; a group that is busy,
// or whose agent answers, is left alone.
void removeDeadGroups(const fs::path& ranksDir, const fs::path& own) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(ranksDir, ec)) {
        auto groupDir = entry.path();
        if (groupDir == own || !isPrivateDirectoryOfCaller(groupDir)) {
            continue;
        }
        // made if missing: a group whose last leader left something behind
        // and its lock gone is cleaned up too
        FileDescriptor lock(::open((groupDir / "lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
        if (lock.get() < 0 || ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
            continue;
        }
        auto leader = readLeader(groupDir);
        if (leader) {
            FileDescriptor members(
                ::open((leader->directory / "members").c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
            if (members.get() >= 0 && ::flock(members.get(), LOCK_EX | LOCK_NB) != 0) {
                continue;  // a rank or its leader is still there
            }
            try {
                if (connectUnlessNobodyListens(leader->directory / "agent.sock")) {
                    continue;
                }
            } catch (const Error&) {
                continue;  // not known to be dead
            }
            ::unlink((groupDir / "leader.json").c_str());
        }
        if (!fs::exists(groupDir / "leader.json")) {
            log::debug("shared container: removing what ended steps left in " + groupDir.string());
            removeLeftoversOfGroup(groupDir);
            removeGroupIfEmpty(groupDir);
        }
    }
}

// The leader's second process: the container itself, run as any container
// is, with the agent as its process. It ends when the leader ends
// (spec.endWithProcessFd), as any container ends with its sarus, and then
// cleans up. Never returns.
[[noreturn]] void runContainerOfGroup(Backend& backend, ContainerSpec spec, const StoredImage& image,
                                      const fs::path& groupDir, const fs::path& generation) {
    ::setpgid(0, 0);  // a terminal's ^C is for the ranks, which their sarus forward
    int code = 1;
    try {
        code = backend.run(spec, image);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
    }
    try {
        retireGeneration(groupDir, generation);
    } catch (const std::exception&) {
    }
    std::fflush(stdout);
    std::fflush(stderr);
    ::_exit(code);
}

class SharedContainerRank {
public:
    SharedContainerRank(const fs::path& ranksDir, const ContainerSpec& spec, const StoredImage& image,
                        Backend& backend, const std::string& key)
        : spec_(spec), image_(image), backend_(backend),
          identity_(sharedContainerIdentity(spec, image)) {
        groupDir_ = ranksDir / nameHash(key);
        ensureGroupDirectory(groupDir_);
    }

    int run() {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        for (;;) {
            auto lock = lockGroup(groupDir_);
            auto leader = readLeader(groupDir_);
            if (!leader) {
                return lead(std::move(lock));
            }
            // Only a socket nobody listens on means the leader is gone: a
            // rank out of descriptors or memory must not split the group
            // (the first container would then wait for a stop that never
            // comes).
            auto connection = connectUnlessNobodyListens(leader->directory / "agent.sock");
            if (!connection) {
                log::debug("shared container: the leader of " + groupDir_.string() + " is gone, taking over");
                std::error_code ignored;  // what is left is the dead leader's; a new one leads anyway
                fs::remove_all(leader->directory, ignored);
                return lead(std::move(lock));
            }
            if (leader->identity != identity_) {
                throw Error("this rank's container differs from the one its job step shares on this node "
                            "(image, mounts, devices or annotations): give every rank the same, or set "
                            "SARUS_SHARED_CONTAINER=0 for a container per rank");
            }
            auto members = openMembers(leader->directory);
            if (::flock(members.get(), LOCK_SH | LOCK_NB) == 0) {
                lock = FileDescriptor();
                log::debug("shared container: joining " + leader->directory.string());
                // A joining rank needs no root: in suid mode it keeps none
                // while it talks to the agent, which is the caller's.
                suid::Privileges::dropPermanently();
                return runRankInAgent(*connection, spec_);
            }
            // Its leader is ending it: a new one starts once it is gone.
            lock = FileDescriptor();
            if (std::chrono::steady_clock::now() > deadline) {
                throw Error("the container shared by this job step did not end within 60 s");
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }

private:
    int lead(FileDescriptor lock) {
        removeDeadGroups(groupDir_.parent_path(), groupDir_);
        removeLeftoversOfGroup(groupDir_);  // no live leader: what is here is the dead ones'
        auto generation = groupDir_ / ("gen-" + std::to_string(::getpid()));
        std::error_code ignored;  // a stale one that is busy, with our pid: checked just below
        fs::remove_all(generation, ignored);
        ensurePrivateDirectory(generation, purpose);
        auto socketPath = generation / "agent.sock";
        auto listener = listenOnUnixSocket(socketPath);
        auto members = openMembers(generation);
        if (::flock(members.get(), LOCK_SH) != 0) {
            throw systemError("cannot lock " + (generation / "members").string(), errno);
        }
        writeFileAtomically(groupDir_ / "leader.json",
                            nlohmann::json{{"generation", generation.filename().string()}, {"identity", identity_}}.dump(),
                            0600, Durability::untilReboot);
        log::debug("shared container: leading " + generation.string());

        // Opened here: a pid the container process looked up later could be another's by then.
        FileDescriptor leaderEnds(static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0)));
        if (leaderEnds.get() < 0) {
            throw systemError("cannot watch this rank's own process", errno);
        }
        auto containerSpec = agentContainerSpec(listener.get());
        containerSpec.endWithProcessFd = leaderEnds.get();
        std::fflush(stdout);
        std::fflush(stderr);
        pid_t container = ::fork();
        if (container < 0) {
            throw systemError("cannot start the shared container", errno);
        }
        if (container == 0) {
            lock = FileDescriptor();
            members = FileDescriptor();
            runContainerOfGroup(backend_, containerSpec, image_, groupDir_, generation);
        }
        leaderEnds = FileDescriptor();
        listener = FileDescriptor();  // the container's now: its end closes the socket
        lock = FileDescriptor();
        suid::Privileges::dropPermanently();  // the container's process has what root was needed for

        int code = 1;
        std::string failure;
        try {
            auto connection = connectToUnixSocket(socketPath);
            code = runRankInAgent(connection, spec_);
        } catch (const Error& e) {
            failure = e.what();
        }
        endContainer(generation, members, container);
        if (!failure.empty()) {
            throw Error(failure);
        }
        return code;
    }

    // After the leader's own rank: wait for the others, then stop the agent.
    void endContainer(const fs::path& generation, const FileDescriptor& members, pid_t container) {
        if (::flock(members.get(), LOCK_EX) != 0) {  // converts our shared lock: every other rank has left
            log::warn("cannot wait for the other ranks of the shared container: " + std::string(std::strerror(errno)));
        }
        bool told = true;
        {
            auto lock = lockGroup(groupDir_);
            auto leader = readLeader(groupDir_);
            if (leader && leader->directory == generation) {
                ::unlink((groupDir_ / "leader.json").c_str());
            }
            try {
                if (!stopRankAgent(generation / "agent.sock")) {
                    log::debug("shared container already gone: " + generation.string());
                }
            } catch (const Error& e) {
                // Out of descriptors or memory: waiting would wait for ever
                // for an agent that was never told. The container ends with
                // this process instead, as when a leader is killed.
                log::warn(std::string("cannot stop the shared container, it ends with this rank: ") + e.what());
                told = false;
            }
        }
        int status = 0;
        while (told && ::waitpid(container, &status, 0) < 0 && errno == EINTR) {
        }
        retireGeneration(groupDir_, generation);
    }

    ContainerSpec agentContainerSpec(int listener) const {
        ContainerSpec spec = spec_;
        spec.args = {agentInContainer};
        spec.passFds = {listener};
        spec.cwd = "/";
        spec.siteMounts.push_back(BindMount{installedAgent().string(), agentInContainer, true, false});
        return spec;
    }

    const ContainerSpec& spec_;
    const StoredImage& image_;
    Backend& backend_;
    std::string identity_;
    fs::path groupDir_;
};

// Slurm's "2(x3),1": the tasks of node `index` of the step.
std::optional<long> slurmTasksOfNode(const std::string& perNode, long index) {
    std::istringstream groups(perNode);
    std::string group;
    long node = 0;
    while (std::getline(groups, group, ',')) {
        char* end = nullptr;
        long tasks = std::strtol(group.c_str(), &end, 10);
        long repeat = 1;
        if (end && std::strncmp(end, "(x", 2) == 0) {
            repeat = std::strtol(end + 2, nullptr, 10);
        }
        if (repeat < 1) {
            continue;  // no nodes
        }
        if (index - node < repeat) {  // never node + repeat: no overflow, whatever the environment says
            return tasks;
        }
        node += repeat;
    }
    return std::nullopt;
}

// How many ranks of the step the launcher starts on this node, if it says.
std::optional<long> localRanks(const std::map<std::string, std::string>& env) {
    for (const char* name : {"MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE"}) {
        if (!valueOr(env, name).empty()) {
            return std::strtol(valueOr(env, name).c_str(), nullptr, 10);
        }
    }
    auto perNode = valueOr(env, "SLURM_STEP_TASKS_PER_NODE");
    auto node = valueOr(env, "SLURM_NODEID");
    if (!perNode.empty() && !node.empty()) {
        return slurmTasksOfNode(perNode, std::strtol(node.c_str(), nullptr, 10));
    }
    return std::nullopt;
}

}  // namespace

std::optional<std::string> rankGroupKey(const std::vector<std::string>& env, pid_t parent) {
    auto vars = environmentMap(env);
    auto get = [&](const char* name) { return valueOr(vars, name); };
    if (get("SARUS_SHARED_CONTAINER") == "0") {
        return std::nullopt;
    }
    if (get("SARUS_RANK_GROUP").empty() && localRanks(vars) == 1) {
        return std::nullopt;  // the only rank here: nothing to share
    }
    if (!get("SARUS_RANK_GROUP").empty()) {
        return "explicit:" + get("SARUS_RANK_GROUP");
    }
    if (!get("SLURM_JOB_ID").empty() && !get("SLURM_STEP_ID").empty() && !get("SLURM_PROCID").empty()) {
        return "slurm:" + get("SLURM_JOB_ID") + "." + get("SLURM_STEP_ID") + "." + get("SLURM_RESTART_COUNT");
    }
    if (!get("PMIX_NAMESPACE").empty() && !get("PMIX_RANK").empty()) {
        return "pmix:" + get("PMIX_NAMESPACE");
    }
    // Hydra names no job, but every rank's PMI_FD is connected to the one
    // proxy of the job on this node, whatever runs between it and sarus.
    if (!get("PMI_RANK").empty() && !get("PMI_FD").empty()) {
        int fd = std::atoi(get("PMI_FD").c_str());
        auto peer = fd > 2 ? peerCredentials(fd) : std::nullopt;
        if (peer && peer->pid > 0) {
            auto started = processStartTime(peer->pid);
            if (!started.empty()) {
                return "hydra:" + std::to_string(peer->pid) + "." + started;
            }
        }
    }
    // Other launchers: the ranks of one job on a node are children of one
    // launcher process.
    if (!get("PMI_RANK").empty() || !get("OMPI_COMM_WORLD_RANK").empty()) {
        auto started = processStartTime(parent);
        if (!started.empty()) {
            return "launcher:" + std::to_string(parent) + "." + started;
        }
    }
    return std::nullopt;
}

std::string reasonNotToShare(const ContainerSpec& spec) {
    if (spec.tty) {
        return "-t";
    }
    if (spec.init) {
        return "--init";
    }
    if (spec.pidHost) {
        return "--pid=host";
    }
    // Sarus's SSH model is one daemon and one sync per container, for one
    // task per node: the sync hook would wait for ranks that joined instead.
    for (const char* hook : {"com.hooks.ssh.enabled", "com.hooks.slurm-global-sync.enabled"}) {
        if (auto it = spec.annotations.find(hook); it != spec.annotations.end() && it->second == "true") {
            return std::string(hook) == "com.hooks.ssh.enabled" ? "--ssh" : hook;
        }
    }
    if (::access(installedAgent().c_str(), X_OK) != 0) {
        return "libexec/sarus/sarus-rank-agent is not installed";
    }
    return "";
}

std::string sharedContainerIdentity(const ContainerSpec& spec, const StoredImage& image) {
    nlohmann::json json;
    json["image"] = image.imageFile.string();
    json["id"] = image.id;
    auto mounts = [](const std::vector<BindMount>& list) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& m : list) {
            out.push_back({m.source, m.destination, m.readonly, m.launcher});
        }
        return out;
    };
    json["site"] = mounts(spec.siteMounts);
    json["user"] = mounts(spec.userMounts);
    for (const auto& d : spec.devices) {
        json["devices"].push_back({d.source, d.destination, d.access});
    }
    // The hooks run once, for the leader: a rank's verbosity cannot change them.
    auto annotations = spec.annotations;
    annotations.erase(hookLogLevelAnnotation);
    json["annotations"] = annotations;
    json["uid"] = spec.identity.uid;
    json["gid"] = spec.identity.gid;
    json["seccomp"] = spec.security.seccomp;
    json["apparmor"] = spec.security.apparmorProfile;
    return json.dump();  // compared whole: a hash could collide (and OpenSSL costs every start)
}

namespace {

// The GPUs a launcher gave this rank (Slurm's --gpus-per-task, --gpu-bind),
// as the rank's own environment names them: the hooks set up the devices of
// a container once, for its leader, so only ranks that see the same GPUs
// share one.
std::string gpuSelection() {
    std::string selection;
    for (const char* name : {"CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
                             "HIP_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "ZE_AFFINITY_MASK"}) {
        if (const char* value = std::getenv(name)) {
            selection += std::string(name) + "=" + value + "\n";
        }
    }
    return selection;
}

}  // namespace

std::string cgroupsOfStep(const std::string& procSelfCgroup) {
    std::istringstream lines(procSelfCgroup);
    std::string line, step;
    while (std::getline(lines, line)) {
        auto last = line.rfind('/');
        if (last != std::string::npos && line.compare(last + 1, 5, "task_") == 0) {
            line.erase(last);
        }
        step += line + "\n";
    }
    return step;
}

namespace {

// A rank that joins runs in the leader's container and so in its cgroups:
// only ranks of the same job step may. A SARUS_RANK_GROUP or a PMIx
// namespace used again by another job of the same user on the node would
// otherwise run that job's work under this job's limits, devices and
// accounting.
std::string callersStep() {
    std::ifstream in("/proc/self/cgroup");
    std::stringstream text;
    text << in.rdbuf();
    return cgroupsOfStep(text.str());
}

}  // namespace

int runAsRankOfSharedContainer(const Config& config, const ContainerSpec& spec, const StoredImage& image,
                               Backend& backend, const std::string& key) {
    auto ranksDir = config.tempDir() / ("sarus-ranks-" + std::to_string(::getuid()));
    // tempDir is usually /tmp: anybody can make this name first, also
    // between a check and the mkdir. Once the caller's, it stays. Every
    // rank of the step sees the same, so they all run on, each alone.
    if (!claimDirectory(ranksDir, 077)) {
        log::warn("shared container: " + ranksDir.string() +
                  " is not a private directory of yours (another user may have made it): "
                  "this rank runs in a container of its own");
        return backend.run(spec, image);
    }
    // One container per node: tempDir may be shared between nodes.
    auto gpus = gpuSelection();
    auto groupKey = key + (gpus.empty() ? "" : "-gpus-" + nameHash(gpus)) + "-cgroups-" + nameHash(callersStep());
    return SharedContainerRank(ranksDir, spec, image, backend, groupKey + "@" + hostName()).run();
}

}  // namespace sarus
