// One container per node for the ranks of one job step (userns mode).
//
// Every rank of `srun -n 8 sarus run ...` or `mpiexec -n 8 sarus run ...`
// would otherwise build a container of its own: its own user and PID
// namespace, so intra-node MPI (shared memory keyed by PID, cross-memory
// attach, a peer's /proc/PID/fd) falls back to slow paths or fails, and its
// own image mount with cold caches. Instead the first rank on a node to
// arrive (the leader) starts the container as usual, with
// sarus-rank-agent as its process, and every rank (the leader's own too)
// has the agent fork and exec its command inside it, with the rank's own
// arguments, environment, working directory, descriptors and exit code.
// The container ends when the last rank has ended: the leader, whose own
// rank ended, waits for the others, then stops the agent, and the usual
// teardown follows. A killed rank's sarus takes its rank with it (the agent
// kills the rank's process group when the connection drops); a killed
// leader takes the container, and so every rank, with it.
//
// Ranks meet in a directory of the caller's under tempDir, keyed by the job
// step (Slurm's job and step ids, PMIx's namespace, or for Hydra and other
// launchers the launcher process that started the rank), with an flock for
// every decision, and only within one job step's cgroups. Ranks whose
// container options differ (image, mounts, devices, annotations) get a
// clear error instead of a shared container.
#pragma once

#include "runtime/backend.hpp"
#include "runtime/container_spec.hpp"
#include "image/image_store.hpp"

#include <optional>
#include <string>
#include <vector>

namespace sarus {

class Config;

// The job step this process is a rank of, from its launcher's environment;
// SARUS_RANK_GROUP names one explicitly. Nothing when not launched as a rank
// or when SARUS_SHARED_CONTAINER=0.
std::optional<std::string> rankGroupKey(const std::vector<std::string>& env, pid_t parent);

// Why this container cannot be shared (empty: it can).
std::string reasonNotToShare(const ContainerSpec& spec);

// What every rank of a shared container must have in common.
std::string sharedContainerIdentity(const ContainerSpec& spec, const StoredImage& image);

// The cgroups of a job step, from a rank's /proc/self/cgroup: Slurm's
// task_N level, which differs from rank to rank, left out. Ranks share a
// container only within one step.
std::string cgroupsOfStep(const std::string& procSelfCgroup);

// Runs spec as a rank of the group's container, starting the container if
// this is the first rank; returns the rank's exit code.
int runAsRankOfSharedContainer(const Config& config, const ContainerSpec& spec, const StoredImage& image,
                               Backend& backend, const std::string& key);

}  // namespace sarus
