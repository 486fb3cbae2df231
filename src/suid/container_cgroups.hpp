// The cgroups of a suid-mode container: a new directory below the caller's
// own cgroup, in the v2 hierarchy (to find and kill the container's
// processes) and the v1 devices one (its own device whitelist); in every
// other hierarchy the container stays in the caller's cgroup. The limits
// that hold for the caller (a Slurm job's memory, CPU set and devices, a
// systemd slice) therefore hold for the container. With a runtime that makes
// cgroups of its own (runc), a directory is made in every hierarchy, so that
// runc's nest below it and go with it. The runtime inherits these cgroups.
//
// Everything is reached through descriptors opened beneath the cgroup mounts
// (no symlink, no other mount), and the supervisor that created the
// directories removes them, killing what is left in them first, however the
// container ended.
#pragma once

#include "common/file_descriptor.hpp"

#include <string>
#include <sys/types.h>
#include <vector>

namespace sarus::suid {

struct CgroupHierarchy {
    std::string mountPoint;   // e.g. /sys/fs/cgroup/memory
    std::string mountRoot;    // the cgroup the mount shows as its root, usually "/"
    std::vector<std::string> controllers;  // empty for the v2 hierarchy
    bool unified = false;
    std::string callerPath;   // the caller's cgroup in this hierarchy
};

// Pairs the cgroup mounts of a mountinfo text with the lines of a
// /proc/PID/cgroup text. Named v1 hierarchies (name=systemd) control
// nothing, but a runtime that manages cgroups (runc) nests its own there.
std::vector<CgroupHierarchy> callerHierarchies(const std::string& mountinfo, const std::string& procCgroup);

// Where a container gets cgroups of its own: where sarus acts on them (the
// v2 hierarchy to kill what is left, v1 devices to restrict devices; every
// hierarchy when a host has neither), or every hierarchy.
enum class CgroupScope { devicesAndTracking, everyHierarchy };
std::vector<CgroupHierarchy> selectHierarchies(std::vector<CgroupHierarchy> hierarchies, CgroupScope scope);

// "c 1:3 rwm" lines of devices.allow (v1).
struct DeviceRule {
    std::string rule;
    bool required = false;  // an error when the caller's cgroup does not allow it
};

// What runc and crun allow a container by default: creating any node, and
// using null, zero, full, random, urandom, tty, console, ptmx, pts and tun.
std::vector<DeviceRule> defaultDeviceRules();

class ContainerCgroups {
public:
    // Creates `leaf` below the cgroups of process `caller` in the hierarchies
    // of scope. As root.
    static ContainerCgroups createBelow(pid_t caller, const std::string& leaf, CgroupScope scope);
    ContainerCgroups() = default;
    ~ContainerCgroups() { killAndRemove(); }
    ContainerCgroups(ContainerCgroups&&) = default;
    ContainerCgroups& operator=(ContainerCgroups&&) = delete;

    // devices (v1): deny everything, then allow the rules.
    void restrictDevices(const std::vector<DeviceRule>& rules) const;
    // Moves the calling process into every one of the container's cgroups.
    void enter() const;
    // Kills every process left in them and removes the directories.
    void killAndRemove();
    // The descriptors it holds (a forked reaper keeps them, closes the rest).
    std::vector<int> descriptors() const;

private:
    struct Directory {
        CgroupHierarchy hierarchy;
        FileDescriptor parent;  // the caller's cgroup
        FileDescriptor self;
    };
    std::vector<Directory> directories_;
    std::string leaf_;
};

}  // namespace sarus::suid
