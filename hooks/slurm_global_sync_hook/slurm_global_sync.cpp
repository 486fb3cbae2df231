#include "slurm_global_sync.hpp"

#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "hook_log.hpp"
#include "hook_main.hpp"
#include "user_hook_dir.hpp"

#include <cctype>
#include <csignal>
#include <iostream>
#include <system_error>
#include <thread>

namespace hook {

namespace {

volatile std::sig_atomic_t cancelled = 0;

void onCancel(int) {
    cancelled = 1;
}

std::string envValue(const std::vector<std::string>& env, const std::string& name) {
    std::string value;
    for (const auto& entry : env) {  // the last definition wins, as for exec
        if (entry.rfind(name + "=", 0) == 0) {
            value = entry.substr(name.size() + 1);
        }
    }
    return value;
}

bool isIdentifier(const std::string& text) {
    if (text.empty() || text.size() > 64) {
        return false;
    }
    for (char c : text) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') {
            return false;
        }
    }
    return true;
}

std::string identifier(const std::vector<std::string>& env, const std::string& name, bool required) {
    auto value = envValue(env, name);
    if (value.empty() && !required) {
        return value;
    }
    if (!isIdentifier(value)) {
        throw sarus::Error(name + "='" + value + "' in the container's environment is not a Slurm id");
    }
    return value;
}

unsigned number(const std::vector<std::string>& env, const std::string& name) {
    auto value = envValue(env, name);
    try {
        size_t used = 0;
        auto parsed = std::stoul(value, &used);
        if (used == value.size() && parsed <= 10'000'000) {
            return static_cast<unsigned>(parsed);
        }
    } catch (const std::exception&) {
    }
    throw sarus::Error(name + "='" + value + "' in the container's environment is not a task number");
}

std::filesystem::path taskFile(const std::filesystem::path& phaseDirectory, unsigned procId) {
    return phaseDirectory / ("slurm-procid-" + std::to_string(procId));
}

std::chrono::seconds timeoutFromEnvironment() {
    auto value = environmentVariable("SLURM_GLOBAL_SYNC_TIMEOUT");
    if (value.empty()) {
        return std::chrono::seconds(300);
    }
    try {
        size_t used = 0;
        auto seconds = std::stoul(value, &used);
        if (used == value.size() && seconds > 0) {
            return std::chrono::seconds(seconds);
        }
    } catch (const std::exception&) {
    }
    throw sarus::Error("SLURM_GLOBAL_SYNC_TIMEOUT='" + value + "' is not a positive number of seconds");
}

}  // namespace

std::optional<SlurmTask> slurmTaskOf(const std::vector<std::string>& containerEnv) {
    if (envValue(containerEnv, "SLURM_JOB_ID").empty()) {
        return std::nullopt;
    }
    SlurmTask task;
    task.jobId = identifier(containerEnv, "SLURM_JOB_ID", true);
    task.stepId = identifier(containerEnv, "SLURM_STEP_ID", false);
    task.restartCount = identifier(containerEnv, "SLURM_RESTART_COUNT", false);
    task.procId = number(containerEnv, "SLURM_PROCID");
    task.taskCount = number(containerEnv, "SLURM_NTASKS");
    if (task.taskCount == 0 || task.procId >= task.taskCount) {
        throw sarus::Error("SLURM_PROCID=" + std::to_string(task.procId) + " is not below SLURM_NTASKS=" +
                           std::to_string(task.taskCount));
    }
    return task;
}

std::string syncDirectoryName(const SlurmTask& task) {
    auto name = "job-" + task.jobId;
    if (!task.stepId.empty()) {
        name += "-step-" + task.stepId;
    }
    if (!task.restartCount.empty() && task.restartCount != "0") {
        name += "-restart-" + task.restartCount;
    }
    return name;
}

std::string missingTasks(const std::filesystem::path& directory, unsigned count) {
    std::string list;
    auto append = [&](unsigned first, unsigned last) {
        list += (list.empty() ? "" : ", ") + std::to_string(first);
        if (last > first) {
            list += "-" + std::to_string(last);
        }
    };
    std::optional<unsigned> runStart;
    for (unsigned id = 0; id <= count; ++id) {
        bool missing = id < count && !std::filesystem::exists(taskFile(directory, id));
        if (missing && !runStart) {
            runStart = id;
        } else if (!missing && runStart) {
            append(*runStart, id - 1);
            runStart.reset();
        }
    }
    return list;
}

GlobalSync::GlobalSync(std::filesystem::path directory, SlurmTask task, std::chrono::milliseconds pollInterval,
                       std::chrono::seconds timeout)
    : directory_(std::move(directory)), task_(std::move(task)), pollInterval_(pollInterval), timeout_(timeout) {}

void GlobalSync::announce(const char* phase) const {
    auto phaseDirectory = directory_ / phase;
    std::filesystem::create_directories(phaseDirectory);
    auto file = taskFile(phaseDirectory, task_.procId);
    FILE* created = std::fopen(file.c_str(), "w");
    if (created == nullptr) {
        throw sarus::systemError("cannot create " + file.string(), errno);
    }
    std::fclose(created);
}

void GlobalSync::waitForAll(const char* phase, std::chrono::steady_clock::time_point deadline) const {
    auto phaseDirectory = directory_ / phase;
    for (;;) {
        auto missing = missingTasks(phaseDirectory, task_.taskCount);
        if (missing.empty()) {
            return;
        }
        std::string why;
        if (cancelled) {
            why = "cancelled";
        } else if (std::chrono::steady_clock::now() >= deadline) {
            why = "timed out after " + std::to_string(timeout_.count()) + " s";
        }
        if (!why.empty()) {
            withdraw();
            throw sarus::Error(why + " waiting for the " + phase + " of tasks " + missing + " of Slurm job " +
                               task_.jobId + (task_.stepId.empty() ? "" : " step " + task_.stepId) + " (" +
                               std::to_string(task_.taskCount) + " tasks)");
        }
        std::this_thread::sleep_for(pollInterval_);
    }
}

// Leaves nothing behind for a step that will never complete: our files go,
// and whoever is last removes the (then empty) directories.
void GlobalSync::withdraw() const {
    std::error_code ignored;
    for (const char* phase : {"arrival", "departure"}) {
        std::filesystem::remove(taskFile(directory_ / phase, task_.procId), ignored);
        std::filesystem::remove(directory_ / phase, ignored);
    }
    std::filesystem::remove(directory_, ignored);
}

void GlobalSync::synchronize() {
    auto deadline = std::chrono::steady_clock::now() + timeout_;
    log::debug("slurm global sync: task " + std::to_string(task_.procId) + " of " +
               std::to_string(task_.taskCount) + " arrives in " + directory_.string());
    announce("arrival");
    waitForAll("arrival", deadline);
    announce("departure");
    if (task_.procId != 0) {
        return;
    }
    waitForAll("departure", deadline);
    std::filesystem::remove_all(directory_);
}

void removeStaleSyncDirectories(const std::filesystem::path& parent, std::chrono::seconds maxAge) {
    std::error_code error;
    auto now = std::filesystem::file_time_type::clock::now();
    for (const auto& entry : std::filesystem::directory_iterator(parent, error)) {
        auto modified = entry.last_write_time(error);
        if (!error && entry.is_directory(error) && !entry.is_symlink(error) && now - modified > maxAge) {
            log::info("slurm global sync: removing " + entry.path().string() + " left by a cancelled step");
            std::filesystem::remove_all(entry.path(), error);
        }
    }
}

int runSlurmGlobalSyncHook() {
    return runHookMain("Slurm global sync hook", [] {
        auto state = readContainerState(std::cin);
        log::setLevelFromAnnotations(state.annotations);
        auto task = slurmTaskOf(state.env);
        if (!task) {
            log::info("the container does not run under Slurm (no SLURM_JOB_ID): "
                      "nothing to synchronize");
            return;
        }
        auto timeout = timeoutFromEnvironment();
        auto parent = userHookDirectory("slurm-global-sync", state);
        becomeUserOnHost(state);
        sarus::createDirectories(parent, 0755);  // whatever the umask: the re-check refuses world-writable ones
        userHookDirectory("slurm-global-sync", state);
        removeStaleSyncDirectories(parent, 2 * timeout);
        std::signal(SIGTERM, onCancel);
        std::signal(SIGINT, onCancel);
        std::signal(SIGHUP, onCancel);
        GlobalSync(parent / syncDirectoryName(*task), *task, std::chrono::milliseconds(100), timeout).synchronize();
    });
}

}  // namespace hook
