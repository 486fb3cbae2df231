// PMIx v3 support: Slurm's configuration parsed line by line, the step's
// directories, and the plan of mounts and variables.
#include "common/error.hpp"
#include "jobs/pmix_support.hpp"

#include <gtest/gtest.h>

#include <set>

using sarus::BindMount;
using Env = std::map<std::string, std::string>;

namespace {

// Abridged `scontrol show config` of Slurm 22.05, with the MPI section.
const char* scontrolOutput = R"(Configuration data as of 2026-11-22T10:00:00
AccountingStorageBackupHost = (null)
SlurmdSpoolDir          = /var/spool/slurmd/%n
SlurmctldParameters     = enable_configless,idle_on_node_suspend
TmpFS                   = /local/tmp
UnkillableStepProgram   = (null)

MPI Plugins Configuration:
PMIxCliTmpDirBase       = (null)
PMIxEnv                 = SOME_VAR=a=b
Slurmctld(primary) at ctl01 is UP
)";

Env slurmStep() {
    return {{"SLURM_MPI_TYPE", "pmix_v3"}, {"SLURM_JOB_ID", "4242"}, {"SLURM_STEP_ID", "0"},
            {"SLURMD_NODENAME", "nid001"}};
}

std::vector<std::string> destinations(const sarus::PmixPlan& plan) {
    std::vector<std::string> paths;
    for (const auto& mount : plan.mounts) {
        EXPECT_EQ(mount.source, mount.destination);
        EXPECT_FALSE(mount.readonly);
        paths.push_back(mount.destination);
    }
    return paths;
}

}  // namespace

TEST(SlurmConfig, KeyValueLinesOnly) {
    auto config = sarus::parseSlurmConfig(scontrolOutput);
    EXPECT_EQ(config.at("SlurmdSpoolDir"), "/var/spool/slurmd/%n");
    EXPECT_EQ(config.at("TmpFS"), "/local/tmp");
    EXPECT_EQ(config.at("PMIxCliTmpDirBase"), "(null)");
    EXPECT_EQ(config.at("PMIxEnv"), "SOME_VAR=a=b");  // split at the first '='
    EXPECT_EQ(config.count("Configuration data as of 2026-11-22T10:00:00"), 0u);
    EXPECT_EQ(config.count("Slurmctld(primary) at ctl01 is UP"), 0u);
}

TEST(SlurmPmix, OnlyUnderThePmixPluginWithNumericIds) {
    EXPECT_TRUE(sarus::underSlurmPmix(slurmStep()));
    auto pmi2 = slurmStep();
    pmi2["SLURM_MPI_TYPE"] = "pmi2";
    EXPECT_FALSE(sarus::underSlurmPmix(pmi2));
    auto oldNames = Env{{"SLURM_MPI_TYPE", "pmix"}, {"SLURM_JOBID", "7"}, {"SLURM_STEPID", "1"}};
    EXPECT_TRUE(sarus::underSlurmPmix(oldNames));
    auto escaping = slurmStep();
    escaping["SLURM_STEP_ID"] = "0/../../../etc";
    EXPECT_FALSE(sarus::underSlurmPmix(escaping));
    EXPECT_FALSE(sarus::underSlurmPmix({{"SLURM_MPI_TYPE", "pmix"}}));
}

TEST(SlurmPmix, StepDirectoriesFromTheConfiguration) {
    auto dirs = sarus::slurmPmixDirectories(sarus::parseSlurmConfig(scontrolOutput), slurmStep(), 1001, "host1");
    EXPECT_EQ(dirs, (std::vector<std::string>{"/var/spool/slurmd/nid001/pmix.4242.0",
                                              "/local/tmp/spmix_appdir_1001_4242.0",
                                              "/local/tmp/spmix_appdir_4242.0"}));
    auto withBase = sarus::parseSlurmConfig(
        "SlurmdSpoolDir = /var/spool/%h//slurmd/\nPMIxCliTmpDirBase = /scratch/pmix\nTmpFS = /tmp\n");
    auto env = slurmStep();
    env.erase("SLURMD_NODENAME");
    dirs = sarus::slurmPmixDirectories(withBase, env, 7, "host1");
    EXPECT_EQ(dirs, (std::vector<std::string>{"/var/spool/host1/slurmd/pmix.4242.0",
                                              "/scratch/pmix/spmix_appdir_7_4242.0",
                                              "/scratch/pmix/spmix_appdir_4242.0"}));
}

TEST(PmixPlan, MountsTheSlurmDirectoriesThatExistAndCoversTheServerTmpdir) {
    auto env = slurmStep();
    env["PMIX_SERVER_TMPDIR"] = "/var/spool/slurmd/nid001/pmix.4242.0/";
    std::set<std::string> existing = {"/var/spool/slurmd/nid001/pmix.4242.0", "/local/tmp/spmix_appdir_1001_4242.0"};
    auto plan = sarus::planPmixSupport(env, sarus::parseSlurmConfig(scontrolOutput), 1001, "host1",
                                       [&](const std::string& p) -> std::optional<uid_t> {
                                           if (existing.count(p) > 0) {
                                               return 1001;
                                           }
                                           return std::nullopt;
                                       });
    EXPECT_EQ(destinations(plan), (std::vector<std::string>{"/var/spool/slurmd/nid001/pmix.4242.0",
                                                            "/local/tmp/spmix_appdir_1001_4242.0"}));
    EXPECT_TRUE(plan.variables.empty());
}

TEST(PmixPlan, ServerTmpdirAloneIsMountedWhenItIsTheCallers) {
    Env env = {{"PMIX_SERVER_TMPDIR", "/var/tmp/prte.host.1001/dvm.77"}};
    auto mine = [](const std::string&) -> std::optional<uid_t> { return 1001; };
    auto plan = sarus::planPmixSupport(env, std::nullopt, 1001, "host1", mine);
    EXPECT_EQ(destinations(plan), (std::vector<std::string>{"/var/tmp/prte.host.1001/dvm.77"}));
    EXPECT_TRUE(plan.mounts[0].launcher);  // not subject to userMounts

    env["PMIX_SERVER_TMPDIR"] = "/etc";
    auto roots = [](const std::string&) -> std::optional<uid_t> { return 0; };
    EXPECT_THROW(sarus::planPmixSupport(env, std::nullopt, 1001, "host1", roots), sarus::Error);
    env["PMIX_SERVER_TMPDIR"] = "relative/dir";
    EXPECT_THROW(sarus::planPmixSupport(env, std::nullopt, 1001, "host1", mine), sarus::Error);
    env["PMIX_SERVER_TMPDIR"] = "/tmp/missing";
    try {
        sarus::planPmixSupport(env, std::nullopt, 1001, "host1",
                               [](const std::string&) -> std::optional<uid_t> { return std::nullopt; });
        FAIL() << "expected an error";
    } catch (const sarus::Error& e) {
        EXPECT_STREQ(e.what(), "PMIX_SERVER_TMPDIR '/tmp/missing' is not a directory");
    }
}

TEST(PmixPlan, McaVariablesFromTheServersModules) {
    Env env = {{"PMIX_PTL_MODULE", "tcp,usock"}, {"PMIX_SECURITY_MODE", "native"}, {"PMIX_GDS_MODULE", "ds21,ds12,hash"}};
    auto plan = sarus::planPmixSupport(env, std::nullopt, 1, "h",
                                       [](const std::string&) -> std::optional<uid_t> { return std::nullopt; });
    EXPECT_EQ(plan.variables, (std::vector<std::pair<std::string, std::string>>{
                                  {"PMIX_MCA_ptl", "tcp,usock"}, {"PMIX_MCA_psec", "native"},
                                  {"PMIX_MCA_gds", "ds21,ds12,hash"}}));
    EXPECT_TRUE(plan.mounts.empty());
}
