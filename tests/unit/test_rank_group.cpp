#include "jobs/rank_group.hpp"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

using namespace sarus;

namespace {

std::string keyOf(const std::vector<std::string>& env) {
    return rankGroupKey(env, ::getpid()).value_or("none");
}

}  // namespace

TEST(RankGroupKey, NotARankWithoutALauncher) {
    EXPECT_EQ(keyOf({"HOME=/home/u", "PATH=/bin"}), "none");
    EXPECT_EQ(keyOf({"SLURM_JOB_ID=7"}), "none");  // sbatch's script, not a task of a step
}

TEST(RankGroupKey, NothingToShareForTheOnlyRankOfANode) {
    EXPECT_EQ(keyOf({"PMIX_NAMESPACE=1", "PMIX_RANK=0", "OMPI_COMM_WORLD_LOCAL_SIZE=1"}), "none");
    EXPECT_EQ(keyOf({"PMIX_NAMESPACE=1", "PMIX_RANK=0", "OMPI_COMM_WORLD_LOCAL_SIZE=2"}), "pmix:1");
    std::vector<std::string> slurm{"SLURM_JOB_ID=7", "SLURM_STEP_ID=2", "SLURM_PROCID=5",
                                   "SLURM_STEP_TASKS_PER_NODE=2(x2),1"};
    auto onNode = [&](const char* node) {
        auto env = slurm;
        env.push_back(std::string("SLURM_NODEID=") + node);
        return keyOf(env);
    };
    EXPECT_EQ(onNode("0"), "slurm:7.2.");
    EXPECT_EQ(onNode("1"), "slurm:7.2.");
    EXPECT_EQ(onNode("2"), "none");
    auto explicitGroup = slurm;
    explicitGroup.push_back("SARUS_RANK_GROUP=g");
    explicitGroup.push_back("SLURM_NODEID=2");
    EXPECT_EQ(keyOf(explicitGroup), "explicit:g");
}

TEST(RankGroupKey, HugeSlurmNodeCountsDoNotOverflow) {
    std::vector<std::string> env{"SLURM_JOB_ID=7", "SLURM_STEP_ID=2", "SLURM_PROCID=5",
                                 "SLURM_STEP_TASKS_PER_NODE=2(x9223372036854775807),1(x0),1",
                                 "SLURM_NODEID=9223372036854775807"};
    EXPECT_EQ(keyOf(env), "none");  // the last node: one task
    env.back() = "SLURM_NODEID=9223372036854775806";
    EXPECT_EQ(keyOf(env), "slurm:7.2.");
}

TEST(RankGroupKey, SlurmJobStepAndRestart) {
    EXPECT_EQ(keyOf({"SLURM_JOB_ID=7", "SLURM_STEP_ID=2", "SLURM_PROCID=5", "SLURM_RESTART_COUNT=1"}),
              "slurm:7.2.1");
    EXPECT_NE(keyOf({"SLURM_JOB_ID=7", "SLURM_STEP_ID=3", "SLURM_PROCID=5"}),
              keyOf({"SLURM_JOB_ID=7", "SLURM_STEP_ID=2", "SLURM_PROCID=5"}));
}

TEST(RankGroupKey, PmixNamespace) {
    EXPECT_EQ(keyOf({"PMIX_NAMESPACE=757858305", "PMIX_RANK=1"}), "pmix:757858305");
}

TEST(RankGroupKey, HydraByThePeerOfPmiFd) {
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    auto key = keyOf({"PMI_RANK=0", "PMI_FD=" + std::to_string(pair[0])});
    EXPECT_EQ(key.rfind("hydra:" + std::to_string(::getpid()) + ".", 0), 0u) << key;
    ::close(pair[0]);
    ::close(pair[1]);
}

TEST(RankGroupKey, OtherLaunchersByTheParentProcess) {
    auto key = keyOf({"OMPI_COMM_WORLD_RANK=3"});
    EXPECT_EQ(key.rfind("launcher:" + std::to_string(::getpid()) + ".", 0), 0u) << key;
}

TEST(RankGroupKey, ExplicitAndTurnedOff) {
    EXPECT_EQ(keyOf({"SARUS_RANK_GROUP=mine", "SLURM_JOB_ID=7", "SLURM_STEP_ID=2", "SLURM_PROCID=5"}),
              "explicit:mine");
    EXPECT_EQ(keyOf({"SARUS_SHARED_CONTAINER=0", "SARUS_RANK_GROUP=mine"}), "none");
    EXPECT_EQ(keyOf({"SARUS_SHARED_CONTAINER=0", "PMIX_NAMESPACE=1", "PMIX_RANK=0"}), "none");
}

TEST(SharedContainerIdentity, DependsOnWhatDefinesTheContainerNotOnTheRank) {
    ContainerSpec a;
    a.args = {"hostname"};
    a.env = {"PMI_RANK=0"};
    a.cwd = "/";
    StoredImage image;
    image.imageFile = "/repo/a.squashfs";
    image.id = "sha256:1";
    ContainerSpec b = a;
    b.args = {"true"};
    b.env = {"PMI_RANK=1"};
    b.cwd = "/tmp";
    EXPECT_EQ(sharedContainerIdentity(a, image), sharedContainerIdentity(b, image));
    b.userMounts.push_back({"/data", "/data", false, false});
    EXPECT_NE(sharedContainerIdentity(a, image), sharedContainerIdentity(b, image));
    StoredImage other = image;
    other.id = "sha256:2";
    EXPECT_NE(sharedContainerIdentity(a, image), sharedContainerIdentity(a, other));
    ContainerSpec c = a;
    c.annotations["com.hooks.mpi.enabled"] = "true";
    EXPECT_NE(sharedContainerIdentity(a, image), sharedContainerIdentity(c, image));
}

TEST(ReasonNotToShare, SshAndTheSyncHookWantAContainerPerRank) {
    ContainerSpec spec;
    spec.args = {"true"};
    ContainerSpec ssh = spec;
    ssh.annotations["com.hooks.ssh.enabled"] = "true";
    ssh.annotations["com.hooks.slurm-global-sync.enabled"] = "true";
    EXPECT_EQ(reasonNotToShare(ssh), "--ssh");
    ContainerSpec sync = spec;
    sync.annotations["com.hooks.slurm-global-sync.enabled"] = "true";
    EXPECT_EQ(reasonNotToShare(sync), "com.hooks.slurm-global-sync.enabled");
    ContainerSpec off = spec;
    off.annotations["com.hooks.ssh.enabled"] = "false";
    EXPECT_NE(reasonNotToShare(off), "--ssh");
}

TEST(CgroupsOfStep, TheTasksOfOneSlurmStepAreOneStep) {
    // task/cgroup on cgroup v1 and on v2
    EXPECT_EQ(cgroupsOfStep("4:memory:/slurm/uid_1001/job_5/step_0/task_0\n0::/\n"),
              cgroupsOfStep("4:memory:/slurm/uid_1001/job_5/step_0/task_3\n0::/\n"));
    EXPECT_EQ(cgroupsOfStep("0::/system.slice/slurmstepd.scope/job_5/step_0/user/task_1\n"),
              cgroupsOfStep("0::/system.slice/slurmstepd.scope/job_5/step_0/user/task_12\n"));
}

TEST(CgroupsOfStep, OtherStepsAndJobsDiffer) {
    EXPECT_NE(cgroupsOfStep("4:memory:/slurm/uid_1001/job_5/step_0/task_0\n"),
              cgroupsOfStep("4:memory:/slurm/uid_1001/job_5/step_1/task_0\n"));
    EXPECT_NE(cgroupsOfStep("0::/system.slice/slurmstepd.scope/job_5/step_0/user/task_0\n"),
              cgroupsOfStep("0::/system.slice/slurmstepd.scope/job_6/step_0/user/task_0\n"));
    EXPECT_NE(cgroupsOfStep("0::/user.slice/a\n"), cgroupsOfStep("0::/user.slice/b\n"));
    // only a last level named task_ is the task's
    EXPECT_NE(cgroupsOfStep("0::/task_1/x\n"), cgroupsOfStep("0::/task_2/x\n"));
}
