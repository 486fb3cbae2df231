#include "jobs/pmix_support.hpp"

#include "config/config.hpp"
#include "common/decimal.hpp"
#include "common/error.hpp"
#include "common/log.hpp"
#include "common/process.hpp"

#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace sarus {

namespace {

using Env = std::map<std::string, std::string>;

// First of the names that is set and not empty (Slurm exports both spellings).
std::string firstSet(const Env& env, std::initializer_list<const char*> names) {
    for (const char* name : names) {
        auto value = valueOr(env, name);
        if (!value.empty()) {
            return value;
        }
    }
    return "";
}

std::string trim(const std::string& text) {
    auto begin = text.find_first_not_of(" \t\r");
    if (begin == std::string::npos) {
        return "";
    }
    return text.substr(begin, text.find_last_not_of(" \t\r") - begin + 1);
}

// scontrol prints "(null)" for unset keys.
std::string configValue(const Env& slurmConfig, const std::string& key) {
    auto value = valueOr(slurmConfig, key);
    return value == "(null)" ? "" : value;
}

std::string expandNodePatterns(std::string path, const std::string& nodeName, const std::string& hostname) {
    for (auto [pattern, value] : {std::pair<std::string, std::string>{"%n", nodeName}, {"%h", hostname}}) {
        for (auto at = path.find(pattern); at != std::string::npos; at = path.find(pattern, at + value.size())) {
            path.replace(at, pattern.size(), value);
        }
    }
    return path;
}

std::optional<Env> readSlurmConfig(const Env& hostEnv) {
    auto scontrol = findInPath("scontrol", valueOr(hostEnv, "PATH"));
    if (scontrol.empty()) {
        log::warn("Slurm's pmix plugin runs this step but scontrol is not in PATH: "
                  "the step's PMIx directories are not mounted");
        return std::nullopt;
    }
    // As the caller for good (a SUID sarus keeps root only as its saved uid):
    // the program comes from the caller's PATH.
    SpawnOptions asCaller;
    asCaller.uid = ::getuid();
    asCaller.gid = ::getgid();
    auto result = runCapturingOutput({scontrol, "show", "config"}, asCaller);
    if (result.exitCode != 0) {
        log::warn("'" + scontrol + " show config' failed (exit code " + std::to_string(result.exitCode) +
                  "): the step's PMIx directories are not mounted");
        return std::nullopt;
    }
    return parseSlurmConfig(result.output);
}

}  // namespace

std::map<std::string, std::string> parseSlurmConfig(const std::string& text) {
    Env config;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        auto eq = line.find('=');
        if (eq == std::string::npos) {
            continue;
        }
        auto key = trim(line.substr(0, eq));
        if (key.empty() || key.find_first_of(" \t") != std::string::npos) {
            continue;  // not a "Key = Value" line
        }
        config[key] = trim(line.substr(eq + 1));
    }
    return config;
}

bool underSlurmPmix(const Env& hostEnv) {
    // The ids become parts of mount paths: only Slurm's numeric ids, never "../x".
    return valueOr(hostEnv, "SLURM_MPI_TYPE").rfind("pmix", 0) == 0 &&
           isDecimalNumber(firstSet(hostEnv, {"SLURM_JOB_ID", "SLURM_JOBID"})) &&
           isDecimalNumber(firstSet(hostEnv, {"SLURM_STEP_ID", "SLURM_STEPID"}));
}

std::vector<std::string> slurmPmixDirectories(const Env& slurmConfig, const Env& hostEnv, uid_t uid,
                                              const std::string& hostname) {
    auto step = firstSet(hostEnv, {"SLURM_JOB_ID", "SLURM_JOBID"}) + "." +
                firstSet(hostEnv, {"SLURM_STEP_ID", "SLURM_STEPID"});
    std::vector<std::string> directories;
    auto spool = configValue(slurmConfig, "SlurmdSpoolDir");
    if (!spool.empty()) {
        auto nodeName = firstSet(hostEnv, {"SLURMD_NODENAME"});
        directories.push_back(expandNodePatterns(spool, nodeName.empty() ? hostname : nodeName, hostname) +
                              "/pmix." + step);
    }
    auto base = configValue(slurmConfig, "PMIxCliTmpDirBase");
    if (base.empty()) {
        base = configValue(slurmConfig, "TmpFS");
    }
    if (base.empty()) {
        base = "/tmp";
    }
    directories.push_back(base + "/spmix_appdir_" + std::to_string(uid) + "_" + step);
    directories.push_back(base + "/spmix_appdir_" + step);
    std::vector<std::string> absolute;
    for (const auto& directory : directories) {
        if (!directory.empty() && directory[0] == '/') {  // a relative setting is not Slurm's
            absolute.push_back(normalizeAbsolutePath(directory));
        }
    }
    return absolute;
}

PmixPlan planPmixSupport(const Env& hostEnv, const std::optional<Env>& slurmConfig, uid_t uid,
                         const std::string& hostname,
                         const std::function<std::optional<uid_t>(const std::string&)>& directoryOwner) {
    PmixPlan plan;
    std::vector<std::string> mounted;
    auto launcherMount = [](const std::string& directory) {
        BindMount mount{directory, directory, false};
        mount.launcher = true;
        return mount;
    };
    if (slurmConfig) {
        for (const auto& directory : slurmPmixDirectories(*slurmConfig, hostEnv, uid, hostname)) {
            auto owner = directoryOwner(directory);
            if (owner == uid) {
                plan.mounts.push_back(launcherMount(directory));
                mounted.push_back(directory);
                plan.notes.push_back("PMIx: Slurm step directory " + directory + " mounted");
            } else {
                plan.notes.push_back("PMIx: no Slurm step directory " + directory +
                                     (owner ? " of yours (uid " + std::to_string(*owner) + ")" : ""));
            }
        }
    }
    auto serverTmpdir = valueOr(hostEnv, "PMIX_SERVER_TMPDIR");
    if (!serverTmpdir.empty()) {
        if (serverTmpdir[0] != '/') {
            throw Error("PMIX_SERVER_TMPDIR '" + serverTmpdir + "' is not an absolute path");
        }
        serverTmpdir = normalizeAbsolutePath(serverTmpdir);
        bool covered = false;
        for (const auto& directory : mounted) {
            covered |= isSameOrBelow(serverTmpdir, directory);
        }
        auto owner = directoryOwner(serverTmpdir);
        if (covered) {
            plan.notes.push_back("PMIx: PMIX_SERVER_TMPDIR " + serverTmpdir + " is in a mounted Slurm directory");
        } else if (!owner) {
            throw Error("PMIX_SERVER_TMPDIR '" + serverTmpdir + "' is not a directory");
        } else if (*owner != uid) {
            throw Error("PMIX_SERVER_TMPDIR '" + serverTmpdir + "' belongs to uid " + std::to_string(*owner) +
                        ": only a directory of yours, as the launcher makes it for your job, is mounted");
        } else {
            plan.mounts.push_back(launcherMount(serverTmpdir));
            plan.notes.push_back("PMIx: PMIX_SERVER_TMPDIR " + serverTmpdir + " mounted");
        }
    }
    for (auto [mca, module] : {std::pair<const char*, const char*>{"PMIX_MCA_ptl", "PMIX_PTL_MODULE"},
                               {"PMIX_MCA_psec", "PMIX_SECURITY_MODE"},
                               {"PMIX_MCA_gds", "PMIX_GDS_MODULE"}}) {
        auto value = valueOr(hostEnv, module);
        if (!value.empty()) {
            plan.variables.emplace_back(mca, value);
        }
    }
    return plan;
}

void applyPmixSupport(ContainerSpec& spec, const Config& config, const std::vector<std::string>& hostEnv) {
    if (!config.json().value("enablePMIxv3Support", false)) {
        return;
    }
    auto env = environmentMap(hostEnv);
    auto slurmConfig = underSlurmPmix(env) ? readSlurmConfig(env) : std::nullopt;
    auto directoryOwner = [](const std::string& path) -> std::optional<uid_t> {
        // lstat: in a shared /tmp another user may put a symlink at the
        // name, to a directory of the caller's that passes, then retarget it
        struct stat st {};
        if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {  // with the caller's ids
            return std::nullopt;
        }
        return st.st_uid;
    };
    auto plan = planPmixSupport(env, slurmConfig, spec.identity.uid, hostName(), directoryOwner);
    spec.userMounts.insert(spec.userMounts.end(), plan.mounts.begin(), plan.mounts.end());
    auto containerEnv = environmentMap(spec.env);
    for (const auto& [name, value] : plan.variables) {
        if (containerEnv.count(name) == 0) {
            spec.env.push_back(name + "=" + value);
            log::verbose("PMIx: " + name + "=" + value);
        }
    }
    for (const auto& note : plan.notes) {
        log::verbose(note);
    }
}

}  // namespace sarus
