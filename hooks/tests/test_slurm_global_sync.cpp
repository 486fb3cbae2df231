#include "slurm_global_sync.hpp"

#include "common/error.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> slurmEnv(const std::string& procId, const std::string& tasks) {
    return {"PATH=/bin", "SLURM_JOB_ID=42", "SLURM_STEP_ID=3", "SLURM_PROCID=" + procId, "SLURM_NTASKS=" + tasks};
}

struct TempDir {
    fs::path path;
    TempDir() {
        char pattern[] = "/tmp/sync-test-XXXXXX";
        path = ::mkdtemp(pattern);
    }
    ~TempDir() { fs::remove_all(path); }
};

hook::SlurmTask task(unsigned procId, unsigned count) {
    return *hook::slurmTaskOf(slurmEnv(std::to_string(procId), std::to_string(count)));
}

}  // namespace

TEST(SlurmTask, ReadsTheContainerEnvironmentAndIsAbsentOutsideSlurm) {
    EXPECT_FALSE(hook::slurmTaskOf({"PATH=/bin"}).has_value());
    auto t = task(1, 4);
    EXPECT_EQ(t.jobId, "42");
    EXPECT_EQ(t.stepId, "3");
    EXPECT_EQ(t.procId, 1u);
    EXPECT_EQ(t.taskCount, 4u);
    EXPECT_EQ(hook::syncDirectoryName(t), "job-42-step-3");
}

TEST(SlurmTask, ConsecutiveStepsAndRequeuedJobsNeverShareADirectory) {
    auto env = slurmEnv("0", "2");
    env.push_back("SLURM_RESTART_COUNT=2");
    EXPECT_EQ(hook::syncDirectoryName(*hook::slurmTaskOf(env)), "job-42-step-3-restart-2");
    env.push_back("SLURM_STEP_ID=4");  // the last definition wins, as for exec
    EXPECT_EQ(hook::syncDirectoryName(*hook::slurmTaskOf(env)), "job-42-step-4-restart-2");
}

TEST(SlurmTask, RefusesValuesThatWouldEscapeTheSyncDirectory) {
    auto env = slurmEnv("0", "2");
    env.push_back("SLURM_JOB_ID=../../etc");
    EXPECT_THROW(hook::slurmTaskOf(env), sarus::Error);
    EXPECT_THROW(hook::slurmTaskOf(slurmEnv("2", "2")), sarus::Error);
    EXPECT_THROW(hook::slurmTaskOf(slurmEnv("x", "2")), sarus::Error);
    EXPECT_THROW(hook::slurmTaskOf(slurmEnv("0", "")), sarus::Error);
}

TEST(MissingTasks, NamesRangesOfAbsentTasks) {
    TempDir dir;
    for (int id : {0, 1, 4, 8}) {
        std::ofstream(dir.path / ("slurm-procid-" + std::to_string(id)));
    }
    EXPECT_EQ(hook::missingTasks(dir.path, 10), "2-3, 5-7, 9");
    EXPECT_EQ(hook::missingTasks(dir.path, 2), "");
}

TEST(GlobalSync, HoldsEveryTaskUntilTheLastArrivesAndLeavesNothing) {
    TempDir dir;
    auto syncDir = dir.path / "job-42-step-3";
    auto start = std::chrono::steady_clock::now();
    auto first = std::async(std::launch::async, [&] {
        hook::GlobalSync(syncDir, task(0, 3), 10ms, 10s).synchronize();
        return std::chrono::steady_clock::now();
    });
    auto second = std::async(std::launch::async, [&] {
        hook::GlobalSync(syncDir, task(1, 3), 10ms, 10s).synchronize();
        return std::chrono::steady_clock::now();
    });
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(first.wait_for(0s), std::future_status::timeout);
    EXPECT_EQ(second.wait_for(0s), std::future_status::timeout);
    hook::GlobalSync(syncDir, task(2, 3), 10ms, 10s).synchronize();
    EXPECT_GE(first.get() - start, 300ms);
    EXPECT_GE(second.get() - start, 300ms);
    EXPECT_FALSE(fs::exists(syncDir));
}

TEST(GlobalSync, TimesOutNamingTheMissingTasksAndWithdraws) {
    TempDir dir;
    auto syncDir = dir.path / "job-42-step-3";
    try {
        hook::GlobalSync(syncDir, task(0, 4), 10ms, 1s).synchronize();
        FAIL() << "no timeout";
    } catch (const sarus::Error& e) {
        EXPECT_NE(std::string(e.what()).find("timed out after 1 s waiting for the arrival of tasks 1-3 of "
                                             "Slurm job 42 step 3 (4 tasks)"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_FALSE(fs::exists(syncDir));
}

TEST(StaleSyncDirectories, OnlyOldOnesAreRemoved) {
    TempDir dir;
    fs::create_directories(dir.path / "job-1-step-0" / "arrival");
    fs::create_directories(dir.path / "job-2-step-0" / "arrival");
    fs::last_write_time(dir.path / "job-1-step-0", fs::file_time_type::clock::now() - std::chrono::hours(2));
    hook::removeStaleSyncDirectories(dir.path, std::chrono::seconds(600));
    EXPECT_FALSE(fs::exists(dir.path / "job-1-step-0"));
    EXPECT_TRUE(fs::exists(dir.path / "job-2-step-0"));
}
