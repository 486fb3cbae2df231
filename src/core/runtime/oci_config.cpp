#include "runtime/oci_config.hpp"

#include "config/security_profiles.hpp"

#include "common/error.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>

namespace sarus {

namespace {

using json = nlohmann::json;

const char* initDestination = "/dev/init";

json processSection(const ContainerSpec& spec, const OciConfigOptions& options) {
    json user = {{"uid", spec.identity.uid}, {"gid", spec.identity.gid}};
    if (!options.rootless) {
        user["additionalGids"] = spec.identity.supplementaryGids;
    }
    std::vector<std::string> args = spec.args;
    auto cwd = options.runtimeCwd.empty() ? spec.cwd : options.runtimeCwd;
    if (!options.workdirHelper.empty()) {
        args.insert(args.begin(), {options.workdirHelper, spec.cwd});
        cwd = std::string("/");  // (assigning the literal trips a false -Wrestrict of GCC 12)
    }
    if (spec.init) {
        args.insert(args.begin(), {initDestination, "--"});
    }
    json noCapabilities = json::array();
    return {
        {"terminal", spec.tty},
        {"user", user},
        {"args", args},
        {"env", spec.env},
        {"cwd", cwd},
        {"capabilities",
         {{"bounding", noCapabilities}, {"effective", noCapabilities}, {"inheritable", noCapabilities},
          {"permitted", noCapabilities}, {"ambient", noCapabilities}}},
        {"noNewPrivileges", true},
    };
}

enum class DeviceNodes { refused, allowed };

json bindMount(const std::string& source, const std::string& destination, bool readonly,
               DeviceNodes nodes = DeviceNodes::refused) {
    json opts = {"rbind", "nosuid", "rprivate"};
    if (nodes == DeviceNodes::refused) {
        opts.insert(opts.begin() + 2, "nodev");
    }
    if (readonly) {
        opts.push_back("ro");
    }
    return {{"destination", destination}, {"type", "bind"}, {"source", source}, {"options", opts}};
}

json systemMounts(const ContainerSpec& spec, const OciConfigOptions& options) {
    json mounts = json::array();
    if (spec.pidHost && options.rootless) {
        // procfs of a PID namespace we do not own cannot be mounted: reuse the host's.
        mounts.push_back(bindMount("/proc", "/proc", false));
    } else {
        mounts.push_back({{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"},
                          {"options", {"nosuid", "noexec", "nodev"}}});
    }
    if (!options.sandboxMounts) {
        mounts.push_back({{"destination", "/dev"}, {"type", "tmpfs"}, {"source", "tmpfs"},
                          {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}});
    }
    json ptsOptions = {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"};
    if (!options.rootless) {
        ptsOptions.push_back("gid=5");
    }
    mounts.push_back({{"destination", "/dev/pts"}, {"type", "devpts"}, {"source", "devpts"},
                      {"options", ptsOptions}});
    if (!options.sandboxMounts) {
        // The host's /dev/shm, as Sarus shares the host's IPC: MPI ranks of one
        // node, each in its own container, exchange data through files there.
        mounts.push_back({{"destination", "/dev/shm"}, {"type", "bind"}, {"source", "/dev/shm"},
                          {"options", {"rbind", "nosuid", "nodev", "rprivate"}}});
    }
    // As Sarus: the message queues of the host's IPC namespace, which the
    // container shares. A user namespace may not mount that namespace's
    // mqueue: it gets the host's mount, where there is one.
    if (!options.rootless) {
        mounts.push_back({{"destination", "/dev/mqueue"}, {"type", "mqueue"}, {"source", "mqueue"},
                          {"options", {"nosuid", "noexec", "nodev"}}});
    } else if (options.hostMqueue) {
        mounts.push_back({{"destination", "/dev/mqueue"}, {"type", "bind"}, {"source", "/dev/mqueue"},
                          {"options", {"rbind", "nosuid", "noexec", "nodev", "rprivate"}}});
    }
    if (options.rootless) {
        mounts.push_back({{"destination", "/sys"}, {"type", "bind"}, {"source", "/sys"},
                          {"options", {"rbind", "nosuid", "noexec", "nodev", "ro", "rprivate"}}});
    } else {
        mounts.push_back({{"destination", "/sys"}, {"type", "sysfs"}, {"source", "sysfs"},
                          {"options", {"nosuid", "noexec", "nodev", "ro"}}});
    }
    return mounts;
}

json deviceEntry(const DeviceMount& device) {
    auto node = device.node ? *device.node : statDeviceNode(device.source);
    return {{"path", device.destination},
            {"type", std::string(1, node.type)},
            {"major", node.major},
            {"minor", node.minor},
            {"fileMode", node.mode & 0777},
            {"uid", node.uid},
            {"gid", node.gid}};
}

json idMappings(const std::vector<IdMap>& maps) {
    json out = json::array();
    for (const auto& m : maps) {
        out.push_back({{"containerID", m.containerId}, {"hostID", m.hostId}, {"size", m.size}});
    }
    return out;
}

}  // namespace

bool annotationReachesRuntime(const std::string& key) {
    return key.rfind("com.hooks.", 0) == 0;
}

json generateOciConfig(const ContainerSpec& spec, const OciConfigOptions& options) {
    json mounts = systemMounts(spec, options);
    if (!options.sandboxMounts) {
        for (const auto& mount : spec.siteMounts) {
            mounts.push_back(bindMount(mount.source, mount.destination, mount.readonly));
        }
        for (const auto& mount : spec.userMounts) {
            mounts.push_back(bindMount(mount.source, mount.destination, mount.readonly));
        }
        if (spec.init) {
            mounts.push_back(bindMount(options.initPath, initDestination, true));
        }
    }

    json namespaces = json::array();
    if (options.mountNamespace || !options.uidMappings.empty()) {
        namespaces.push_back({{"type", "mount"}});
    }
    if (!spec.pidHost) {
        namespaces.push_back({{"type", "pid"}});
    }
    json linux = {{"namespaces", namespaces},
                  // as Sarus: kernel interfaces a container has no business with
                  {"maskedPaths",
                   {"/proc/kcore", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                    "/proc/sched_debug", "/sys/firmware", "/proc/scsi"}},
                  {"readonlyPaths", {"/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                     "/proc/sysrq-trigger"}}};
    if (!options.uidMappings.empty()) {
        linux["namespaces"].push_back({{"type", "user"}});
        linux["uidMappings"] = idMappings(options.uidMappings);
        linux["gidMappings"] = idMappings(options.gidMappings);
    }

    json devices = json::array();
    json allowed = {{{"allow", false}, {"access", "rwm"}}};
    for (const auto& device : spec.devices) {
        if (options.rootless) {
            // No mknod in a user namespace: the node is bind-mounted, and
            // access is what its permissions allow.
            auto mount = bindMount(device.source, device.destination, false, DeviceNodes::allowed);
            mounts.push_back(mount);
            continue;
        }
        auto entry = deviceEntry(device);
        if (!options.sandboxMounts) {
            devices.push_back(entry);
        }
        allowed.push_back({{"allow", true}, {"type", entry["type"]}, {"major", entry["major"]},
                           {"minor", entry["minor"]}, {"access", device.access}});
    }
    if (!options.rootless) {
        linux["devices"] = devices;
        linux["resources"] = {{"devices", allowed}};
    }
    if (!options.cgroupsPath.empty()) {
        linux["cgroupsPath"] = options.cgroupsPath;
    }

    // Only keys that the hooks read: crun and runc act on others (run.oci.*,
    // org.criu.*, ...) as root, with values that come from the user or the image.
    json annotations = json::object();
    for (const auto& [key, value] : spec.annotations) {
        if (annotationReachesRuntime(key)) {
            annotations[key] = value;
        }
    }
    if (options.rootless) {
        // The caller's supplementary groups stay (file access on shared
        // filesystems depends on them) even though they cannot be mapped.
        annotations["run.oci.keep_original_groups"] = "1";
    }

    json config = {
        {"ociVersion", "1.0.2"},
        {"process", processSection(spec, options)},
        {"root", {{"path", options.rootfs}, {"readonly", false}}},
        {"mounts", mounts},
        {"linux", linux},
        {"annotations", annotations},
    };
    applySecurityProfiles(config, spec.security);
    // crun opens these files as itself (root in suid mode): never a path of
    // the user's. Hooks write to FIFOs in the bundle, relayed to sarus's
    // stdout and stderr as they come (see hooks_output_relay.hpp).
    config["annotations"].erase("run.oci.hooks.stdout");
    config["annotations"].erase("run.oci.hooks.stderr");
    if (!options.hooks.empty()) {
        config["hooks"] = options.hooks;
        if (!options.hooksStdout.empty()) {
            config["annotations"]["run.oci.hooks.stdout"] = options.hooksStdout;
        }
        if (!options.hooksStderr.empty()) {
            config["annotations"]["run.oci.hooks.stderr"] = options.hooksStderr;
        }
    }
    return config;
}

}  // namespace sarus
