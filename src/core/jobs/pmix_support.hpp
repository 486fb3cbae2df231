// PMIx v3 between a PMIx server on the host (Slurm's pmix plugin, prterun)
// and the MPI library in the container, when sarus.json says
// "enablePMIxv3Support": true. The client in the container finds its server
// through rendezvous directories and variables that the server set for the
// rank: the container must see the same paths, and a client of another PMIx
// version needs the server's choice of components as PMIX_MCA_* variables.
#pragma once

#include "runtime/container_spec.hpp"

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace sarus {

class Config;

struct PmixPlan {
    std::vector<BindMount> mounts;  // each at its own path, read-write
    std::vector<std::pair<std::string, std::string>> variables;  // for the container, where unset
    std::vector<std::string> notes;  // what was done or skipped, for --verbose
};

// "Key = Value" lines of `scontrol show config` (other lines are ignored).
std::map<std::string, std::string> parseSlurmConfig(const std::string& text);

// Whether the caller is a rank of a Slurm step run by the pmix plugin
// (SLURM_MPI_TYPE pmix or pmix_vN, with job and step ids).
bool underSlurmPmix(const std::map<std::string, std::string>& hostEnv);

// The directories of the step's PMIx server in the Slurm configuration:
// <SlurmdSpoolDir>/pmix.<job>.<step> (%n and %h expanded) and, under
// PMIxCliTmpDirBase or else TmpFS, spmix_appdir_<uid>_<job>.<step> (the
// name of Slurm before 20.11 has no uid).
std::vector<std::string> slurmPmixDirectories(const std::map<std::string, std::string>& slurmConfig,
                                              const std::map<std::string, std::string>& hostEnv, uid_t uid,
                                              const std::string& hostname);

// The plan from the caller's environment and, under Slurm's pmix plugin,
// its configuration; directoryOwner gives the owner of an existing
// directory (nullopt for anything else). These directories are the
// launcher's (Slurm and PRRTE make them for the job's user), not the user's
// choice of a mount: they are not subject to userMounts, but must be
// directories of the caller's own.
PmixPlan planPmixSupport(const std::map<std::string, std::string>& hostEnv,
                         const std::optional<std::map<std::string, std::string>>& slurmConfig, uid_t uid,
                         const std::string& hostname,
                         const std::function<std::optional<uid_t>(const std::string&)>& directoryOwner);

// Applies the plan to spec when sarus.json enables PMIx v3 support; runs
// `scontrol show config` (from the caller's PATH, as the caller) only under
// Slurm's pmix plugin. Variables already in the container's environment win.
void applyPmixSupport(ContainerSpec& spec, const Config& config, const std::vector<std::string>& hostEnv);

}  // namespace sarus
