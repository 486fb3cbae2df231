#include "suid/container_cgroups.hpp"

#include <gtest/gtest.h>

namespace {

const char* hybridMountinfo =
    "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
    "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "35 30 0:32 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices\n"
    "39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n"
    "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,favordynmods\n"
    "50 22 0:50 / /mnt/with\\040space rw - ext4 /dev/sda rw\n";

const char* slurmProcCgroup =
    "12:devices:/slurm/uid_1000/job_7/step_0/task_0\n"
    "4:memory:/slurm/uid_1000/job_7/step_0/task_0\n"
    "3:cpu,cpuacct:/user.slice\n"
    "1:name=systemd:/user.slice/user-1000.slice/session-3.scope\n"
    "0::/user.slice/user-1000.slice/session-3.scope\n";

}  // namespace

TEST(CallerHierarchies, PairsEveryHierarchyWithItsMount) {
    auto hierarchies = sarus::suid::callerHierarchies(hybridMountinfo, slurmProcCgroup);
    ASSERT_EQ(hierarchies.size(), 5u);
    EXPECT_EQ(hierarchies[0].mountPoint, "/sys/fs/cgroup/devices");
    EXPECT_EQ(hierarchies[0].callerPath, "/slurm/uid_1000/job_7/step_0/task_0");
    EXPECT_EQ(hierarchies[1].mountPoint, "/sys/fs/cgroup/memory");
    EXPECT_EQ(hierarchies[2].mountPoint, "/sys/fs/cgroup/cpu,cpuacct");
    EXPECT_EQ(hierarchies[2].controllers, (std::vector<std::string>{"cpu", "cpuacct"}));
    EXPECT_EQ(hierarchies[3].mountPoint, "/sys/fs/cgroup/systemd");
    EXPECT_EQ(hierarchies[3].callerPath, "/user.slice/user-1000.slice/session-3.scope");
    EXPECT_TRUE(hierarchies[4].unified);
    EXPECT_EQ(hierarchies[4].mountPoint, "/sys/fs/cgroup/unified");
    EXPECT_EQ(hierarchies[4].callerPath, "/user.slice/user-1000.slice/session-3.scope");
}

TEST(CallerHierarchies, PureV2) {
    auto hierarchies = sarus::suid::callerHierarchies(
        "29 22 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n", "0::/system.slice/slurmd.service\n");
    ASSERT_EQ(hierarchies.size(), 1u);
    EXPECT_TRUE(hierarchies[0].unified);
    EXPECT_EQ(hierarchies[0].mountPoint, "/sys/fs/cgroup");
}

TEST(CallerHierarchies, AMountOfAnotherSubtreeIsNotUsed) {
    // a cgroup namespace's view: the mount shows /job_7 as its root
    auto hierarchies = sarus::suid::callerHierarchies(
        "34 30 0:31 /job_7 /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n", "4:memory:/job_8/step_0\n");
    EXPECT_TRUE(hierarchies.empty());
}

TEST(DefaultDeviceRules, AllowTheRuntimesDefaultNodesOnly) {
    auto rules = sarus::suid::defaultDeviceRules();
    std::vector<std::string> texts;
    for (const auto& rule : rules) {
        EXPECT_FALSE(rule.required);
        texts.push_back(rule.rule);
    }
    EXPECT_NE(std::find(texts.begin(), texts.end(), "c 1:3 rwm"), texts.end());
    EXPECT_EQ(std::find(texts.begin(), texts.end(), "a *:* rwm"), texts.end());
}

TEST(SelectHierarchies, CrunContainersGetCgroupsOnlyWhereSarusActs) {
    using sarus::suid::CgroupScope;
    auto hierarchies = sarus::suid::callerHierarchies(hybridMountinfo, slurmProcCgroup);
    auto chosen = sarus::suid::selectHierarchies(hierarchies, CgroupScope::devicesAndTracking);
    ASSERT_EQ(chosen.size(), 2u);
    EXPECT_EQ(chosen[0].mountPoint, "/sys/fs/cgroup/devices");
    EXPECT_TRUE(chosen[1].unified);
    EXPECT_EQ(sarus::suid::selectHierarchies(hierarchies, CgroupScope::everyHierarchy).size(), 5u);
}

TEST(SelectHierarchies, AHostWithoutDevicesOrV2KeepsEveryHierarchy) {
    using sarus::suid::CgroupScope;
    auto hierarchies = sarus::suid::callerHierarchies(
        "31 30 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "32 30 0:29 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n",
        "5:pids:/job\n4:memory:/job\n");
    ASSERT_EQ(hierarchies.size(), 2u);
    EXPECT_EQ(sarus::suid::selectHierarchies(hierarchies, CgroupScope::devicesAndTracking).size(), 2u);
}
