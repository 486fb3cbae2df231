// slurm_global_sync_hook: holds every container of a Slurm job step until
// the containers of all its tasks exist, so none of them reaches for a peer
// (ssh, MPI) that is not there yet. Tasks meet in a directory keyed by job,
// step and restart count: each announces itself in arrival/, waits for all,
// then announces its departure in departure/; task 0 removes the directory
// once everyone has departed (nobody then still reads arrival/).
#pragma once

#include "container_state.hpp"

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace hook {

struct SlurmTask {
    std::string jobId;
    std::string stepId;        // "" outside a step (e.g. a batch script)
    std::string restartCount;  // "" unless the job was requeued
    unsigned procId = 0;
    unsigned taskCount = 0;
};

// The task from the container's environment (SLURM_JOB_ID, SLURM_STEP_ID,
// SLURM_RESTART_COUNT, SLURM_PROCID, SLURM_NTASKS); nullopt when the
// container does not run under Slurm. Throws on malformed values: they
// become path names.
std::optional<SlurmTask> slurmTaskOf(const std::vector<std::string>& containerEnv);

// "job-12-step-0" (+ "-restart-N").
std::string syncDirectoryName(const SlurmTask& task);

// "2, 5-7": the task ids in [0, count) with no file in directory.
std::string missingTasks(const std::filesystem::path& directory, unsigned count);

class GlobalSync {
public:
    GlobalSync(std::filesystem::path directory, SlurmTask task, std::chrono::milliseconds pollInterval,
               std::chrono::seconds timeout);
    // Arrives, waits for all arrivals, departs; task 0 then waits for all
    // departures and removes the directory. On timeout or cancellation it
    // withdraws its own files and throws naming the tasks still missing.
    void synchronize();

private:
    void announce(const char* phase) const;
    void waitForAll(const char* phase, std::chrono::steady_clock::time_point deadline) const;
    void withdraw() const;

    std::filesystem::path directory_;
    SlurmTask task_;
    std::chrono::milliseconds pollInterval_;
    std::chrono::seconds timeout_;
};

// Removes sibling sync directories untouched for longer than maxAge: the
// steps that left them were cancelled, and no hook waits that long.
void removeStaleSyncDirectories(const std::filesystem::path& parent, std::chrono::seconds maxAge);

int runSlurmGlobalSyncHook();

}  // namespace hook
