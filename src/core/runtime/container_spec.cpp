#include "runtime/container_spec.hpp"

#include "config/config.hpp"
#include "common/decimal.hpp"
#include "common/error.hpp"
#include "common/log.hpp"
#include "runtime/mount_options.hpp"

#include <algorithm>
#include <set>
#include <sstream>

namespace sarus {

namespace {

using EnvMap = std::vector<std::pair<std::string, std::string>>;  // keeps first-seen order

std::pair<std::string, std::string> splitVariable(const std::string& entry) {
    auto eq = entry.find('=');
    if (eq == std::string::npos) {
        return {entry, ""};
    }
    return {entry.substr(0, eq), entry.substr(eq + 1)};
}

std::string* lookup(EnvMap& env, const std::string& name) {
    for (auto& [key, value] : env) {
        if (key == name) {
            return &value;
        }
    }
    return nullptr;
}

void setVariable(EnvMap& env, const std::string& name, const std::string& value) {
    if (auto* existing = lookup(env, name)) {
        *existing = value;
    } else {
        env.emplace_back(name, value);
    }
}

void unsetVariable(EnvMap& env, const std::string& name) {
    env.erase(std::remove_if(env.begin(), env.end(), [&](const auto& kv) { return kv.first == name; }),
              env.end());
}

// sarus.json accepts {"A": "1"} and, like old Sarus, [{"A": "1"}, ...].
std::vector<std::pair<std::string, std::string>> operationEntries(const nlohmann::json& operation) {
    std::vector<std::pair<std::string, std::string>> entries;
    if (operation.is_object()) {
        for (const auto& [key, value] : operation.items()) {
            entries.emplace_back(key, value.get<std::string>());
        }
    } else if (operation.is_array()) {
        for (const auto& item : operation) {
            for (const auto& [key, value] : item.items()) {
                entries.emplace_back(key, value.get<std::string>());
            }
        }
    }
    return entries;
}

void applyConfigEnvironment(EnvMap& env, const nlohmann::json& configEnvironment) {
    if (!configEnvironment.is_object()) {
        return;
    }
    if (auto it = configEnvironment.find("set"); it != configEnvironment.end()) {
        for (const auto& [name, value] : operationEntries(*it)) {
            setVariable(env, name, value);
        }
    }
    if (auto it = configEnvironment.find("prepend"); it != configEnvironment.end()) {
        for (const auto& [name, value] : operationEntries(*it)) {
            auto* existing = lookup(env, name);
            setVariable(env, name, existing && !existing->empty() ? value + ":" + *existing : value);
        }
    }
    if (auto it = configEnvironment.find("append"); it != configEnvironment.end()) {
        for (const auto& [name, value] : operationEntries(*it)) {
            auto* existing = lookup(env, name);
            setVariable(env, name, existing && !existing->empty() ? *existing + ":" + value : value);
        }
    }
    if (auto it = configEnvironment.find("unset"); it != configEnvironment.end()) {
        for (const auto& name : *it) {
            unsetVariable(env, name.get<std::string>());
        }
    }
}

// GPUs are assigned by the workload manager through CUDA_VISIBLE_DEVICES on
// the host. The NVIDIA hook needs the host ids in NVIDIA_VISIBLE_DEVICES;
// inside the container only the selected GPUs exist, numbered from 0 in
// host order, so CUDA_VISIBLE_DEVICES is rewritten to those positions.
void applyCudaDevices(EnvMap& env, const std::vector<std::string>& hostEnv) {
    std::string hostDevices;
    bool haveHostDevices = false;
    for (const auto& entry : hostEnv) {
        auto [name, value] = splitVariable(entry);
        if (name == "CUDA_VISIBLE_DEVICES") {
            hostDevices = value;
            haveHostDevices = true;
        }
    }
    if (!haveHostDevices || hostDevices.empty() || hostDevices == "NoDevFiles") {
        // An image's CUDA_VERSION alone makes legacy (nvidia-docker 1)
        // images ask the NVIDIA hook for every GPU of the node.
        for (const char* name : {"CUDA_VERSION", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
                                 "NVIDIA_DRIVER_CAPABILITIES"}) {
            unsetVariable(env, name);
        }
        return;
    }
    std::vector<std::string> ids;
    std::stringstream in(hostDevices);
    for (std::string id; std::getline(in, id, ',');) {
        ids.push_back(id);
    }
    auto numericLess = [](const std::string& a, const std::string& b) {
        return isDecimalNumber(a) && isDecimalNumber(b) ? std::stoul(a) < std::stoul(b) : a < b;
    };
    auto sorted = ids;
    std::sort(sorted.begin(), sorted.end(), numericLess);
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    std::string containerDevices;
    for (const auto& id : ids) {
        auto position = std::lower_bound(sorted.begin(), sorted.end(), id, numericLess) - sorted.begin();
        containerDevices += (containerDevices.empty() ? "" : ",") + std::to_string(position);
    }
    setVariable(env, "NVIDIA_VISIBLE_DEVICES", hostDevices);
    if (!lookup(env, "NVIDIA_DRIVER_CAPABILITIES")) {
        setVariable(env, "NVIDIA_DRIVER_CAPABILITIES", "all");
    }
    setVariable(env, "CUDA_VISIBLE_DEVICES", containerDevices);
}

// What glibc removes from the environment of a set-user-ID program such as
// Sarus's (its "unsecure" variables, and MALLOC_CHECK_): Sarus's containers
// never get them from the host, nor do suid mode's; userns mode follows.
bool removedForSetUserIdPrograms(const std::string& name) {
    static const std::set<std::string> names = {
        "GCONV_PATH",   "GETCONF_DIR",     "GLIBC_TUNABLES", "HOSTALIASES",      "LD_AUDIT",
        "LD_DEBUG",     "LD_DEBUG_OUTPUT", "LD_DYNAMIC_WEAK", "LD_HWCAP_MASK",   "LD_LIBRARY_PATH",
        "LD_ORIGIN_PATH", "LD_PRELOAD",    "LD_PROFILE",     "LD_SHOW_AUXV",     "LD_USE_LOAD_BIAS",
        "LOCALDOMAIN",  "LOCPATH",         "MALLOC_CHECK_",  "MALLOC_TRACE",     "NIS_PATH",
        "NLSPATH",      "RESOLV_HOST_CONF", "RES_OPTIONS",   "TMPDIR",           "TZDIR"};
    return names.count(name) > 0;
}

std::vector<std::string> splitWords(const std::string& text) {
    std::vector<std::string> words;
    std::istringstream in(text);
    for (std::string word; in >> word;) {
        words.push_back(word);
    }
    return words;
}

}  // namespace

std::vector<std::string> buildEnvironment(const std::vector<std::string>& hostEnv,
                                          const std::vector<std::string>& imageEnv,
                                          const nlohmann::json& configEnvironment,
                                          const std::vector<std::string>& cliEnv, bool init) {
    EnvMap env;
    for (const auto& entry : hostEnv) {
        auto [name, value] = splitVariable(entry);
        if (!removedForSetUserIdPrograms(name)) {
            setVariable(env, name, value);
        }
    }
    for (const auto& entry : imageEnv) {
        auto [name, value] = splitVariable(entry);
        // the launcher's PMIx settings, never an image's
        if (name.rfind("PMIX_", 0) != 0) {
            setVariable(env, name, value);
        }
    }
    applyCudaDevices(env, hostEnv);
    if (init) {
        setVariable(env, "TINI_SUBREAPER", "1");  // tini reaps under --pid=host too
    }
    applyConfigEnvironment(env, configEnvironment);
    for (const auto& entry : cliEnv) {
        if (entry.empty()) {
            throw Error("Invalid environment variable requested from CLI: empty option value");
        }
        if (entry[0] == '=') {
            throw Error("Error parsing environment variable requested from CLI '" + entry +
                        "': Failed to parse key-value pair '" + entry + "': key is empty");
        }
        if (entry.find('=') != std::string::npos) {
            auto [name, value] = splitVariable(entry);
            setVariable(env, name, value);
            continue;
        }
        // -e NAME passes the host's value, as docker does.
        for (const auto& hostEntry : hostEnv) {
            auto [name, value] = splitVariable(hostEntry);
            if (name == entry) {
                setVariable(env, name, value);
            }
        }
    }
    std::vector<std::string> result;
    result.reserve(env.size());
    for (const auto& [name, value] : env) {
        result.push_back(name + "=" + value);
    }
    return result;
}

std::vector<std::string> buildArgs(const ImageMetadata& image, const RunOptions& options) {
    std::vector<std::string> args;
    if (options.entrypoint) {
        // A new entrypoint discards the image's default arguments too.
        args = splitWords(*options.entrypoint);
        args.insert(args.end(), options.command.begin(), options.command.end());
    } else {
        if (image.entrypoint) {
            args = *image.entrypoint;
        }
        if (!options.command.empty()) {
            args.insert(args.end(), options.command.begin(), options.command.end());
        } else if (image.cmd) {
            args.insert(args.end(), image.cmd->begin(), image.cmd->end());
        }
    }
    if (args.empty()) {
        throw Error("no command to run: the image has no entrypoint or default command, and none was given");
    }
    return args;
}

void checkWorkingDirectoryOutsideProcAndSys(const std::string& resolved, const std::string& what) {
    // The runtime enters the working directory after it has mounted /proc
    // and /sys: there a name such as /proc/1/root leads out of the container.
    for (const char* directory : {"/proc", "/sys"}) {
        if (isSameOrBelow(resolved, directory)) {
            throw Error("invalid " + what + ": " + resolved + " is in " + directory +
                        ", which the runtime mounts over it");
        }
    }
}

std::string buildWorkingDirectory(const ImageMetadata& image, const RunOptions& options) {
    if (!options.workdir.empty()) {
        if (options.workdir[0] != '/') {
            throw Error("invalid --workdir '" + options.workdir + "': not an absolute path");
        }
        auto workdir = normalizeAbsolutePath(options.workdir);
        checkWorkingDirectoryOutsideProcAndSys(workdir, "--workdir '" + options.workdir + "'");
        return workdir;
    }
    if (!image.workingDir.empty() && image.workingDir[0] == '/') {
        auto workdir = normalizeAbsolutePath(image.workingDir);
        checkWorkingDirectoryOutsideProcAndSys(workdir, "image WorkingDir '" + image.workingDir + "'");
        return workdir;
    }
    return "/";
}

bool imageLabelMaySetAnnotation(const std::string& key) {
    auto startsWith = [&](const char* prefix) { return key.rfind(prefix, 0) == 0; };
    if (!startsWith("com.hooks.")) {
        return true;
    }
    bool switchesOn = key.size() > 8 && key.compare(key.size() - 8, 8, ".enabled") == 0;
    return !switchesOn && !startsWith("com.hooks.ssh.") && !startsWith("com.hooks.slurm-global-sync.");
}

std::map<std::string, std::string> buildAnnotations(const ImageMetadata& image,
                                                    const RunOptions& options,
                                                    const std::string& defaultMpiType) {
    std::map<std::string, std::string> annotations;
    for (const auto& [key, value] : image.labels) {
        if (imageLabelMaySetAnnotation(key)) {
            annotations[key] = value;
        } else {
            log::verbose("image label '" + key + "' ignored: only the user switches hooks on and sets the SSH and "
                      "Slurm sync hooks (--mpi, --glibc, --ssh, --annotation)");
        }
    }
    if (options.mpi || !options.mpiType.empty()) {
        annotations["com.hooks.mpi.enabled"] = "true";
        annotations["com.hooks.glibc.enabled"] = "true";
        auto type = options.mpiType.empty() ? defaultMpiType : options.mpiType;
        if (!type.empty()) {
            annotations["com.hooks.mpi.type"] = type;
        }
    }
    if (options.glibc) {
        annotations["com.hooks.glibc.enabled"] = "true";
    }
    if (options.ssh) {
        annotations["com.hooks.ssh.enabled"] = "true";
        annotations["com.hooks.slurm-global-sync.enabled"] = "true";
    }
    for (const auto& entry : options.annotations) {
        auto eq = entry.find('=');
        if (entry.empty()) {
            throw Error("Invalid annotation requested from CLI: empty option value");
        }
        if (eq == std::string::npos || eq == 0) {
            throw Error("Error parsing annotation from CLI '" + entry + "': Failed to parse key-value pair '" + entry +
                        "': " + (eq == 0 ? "key is empty" : "expected KEY=VALUE"));
        }
        annotations[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
    return annotations;
}

std::vector<std::string> requestedHookAnnotations(const RunOptions& options) {
    std::vector<std::string> keys;
    if (options.mpi || !options.mpiType.empty()) {
        keys.push_back("com.hooks.mpi.enabled");
    }
    if (options.glibc) {
        keys.push_back("com.hooks.glibc.enabled");
    }
    if (options.ssh) {
        keys.push_back("com.hooks.ssh.enabled");
    }
    for (const auto& entry : options.annotations) {
        auto key = entry.substr(0, entry.find('='));
        if (key.rfind("com.hooks.", 0) == 0 && key.rfind("com.hooks.logging.", 0) != 0 &&
            std::find(keys.begin(), keys.end(), key) == keys.end()) {
            keys.push_back(key);
        }
    }
    return keys;
}

UserMountRestrictions userMountRestrictions(const nlohmann::json& configJson) {
    UserMountRestrictions rules;
    if (auto it = configJson.find("userMounts"); it != configJson.end()) {
        rules.notAllowedPrefixesOfPath =
            it->value("notAllowedPrefixesOfPath", std::vector<std::string>{});
        rules.notAllowedPaths = it->value("notAllowedPaths", std::vector<std::string>{});
    }
    return rules;
}

std::vector<BindMount> siteMounts(const nlohmann::json& configJson) {
    std::vector<BindMount> mounts;
    if (auto it = configJson.find("siteMounts"); it != configJson.end()) {
        for (const auto& entry : *it) {
            BindMount mount;
            mount.source = entry.at("source").get<std::string>();
            mount.destination = normalizeAbsolutePath(entry.at("destination").get<std::string>());
            auto flags = entry.value("flags", nlohmann::json::object());
            mount.readonly = flags.contains("readonly");
            mounts.push_back(mount);
        }
    }
    return mounts;
}

std::vector<DeviceMount> siteDevices(const nlohmann::json& configJson) {
    std::vector<DeviceMount> devices;
    if (auto it = configJson.find("siteDevices"); it != configJson.end()) {
        for (const auto& entry : *it) {
            DeviceMount device;
            device.source = entry.at("source").get<std::string>();
            device.destination = normalizeAbsolutePath(entry.value("destination", device.source));
            device.access = entry.value("access", "rwm");
            devices.push_back(device);
        }
    }
    return devices;
}

ContainerSpec buildContainerSpec(const Config& config, const ImageMetadata& image,
                                 const RunOptions& options, const std::vector<std::string>& hostEnv,
                                 const Identity& identity) {
    ContainerSpec spec;
    spec.identity = identity;
    spec.args = buildArgs(image, options);
    spec.cwd = buildWorkingDirectory(image, options);
    spec.env = buildEnvironment(hostEnv, image.env, config.json().value("environment", nlohmann::json()),
                                options.env, options.init);
    spec.annotations = buildAnnotations(image, options, config.stringOr("defaultMPIType", ""));
    spec.selectingAnnotations = buildAnnotations({}, options, config.stringOr("defaultMPIType", ""));
    spec.requestedHookAnnotations = requestedHookAnnotations(options);
    spec.siteMounts = siteMounts(config.json());
    auto rules = userMountRestrictions(config.json());
    for (const auto& text : options.mounts) {
        auto mount = parseMount(text);
        checkUserMountDestination(mount.destination, rules, text);
        spec.userMounts.push_back(mount);
    }
    const auto sites = siteDevices(config.json());
    spec.devices = sites;
    for (const auto& text : options.devices) {
        auto device = parseDevice(text);
        auto site = std::find_if(sites.begin(), sites.end(),
                                 [&](const DeviceMount& d) { return d.source == device.source; });
        if (site != sites.end()) {
            log::warn("Device " + device.source + " already added by the system administrator at container path " +
                      site->destination + " with access " + site->access + ". Skipping request from the command line");
            continue;
        }
        spec.devices.push_back(device);
    }
    spec.tty = options.tty;
    spec.init = options.init;
    spec.pidHost = options.pid == "host";
    spec.name = options.name;
    return spec;
}

}  // namespace sarus
