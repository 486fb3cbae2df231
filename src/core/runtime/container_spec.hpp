// Everything a backend needs to start one container, computed by pure
// functions from sarus.json, the image metadata, the command line and the
// host environment, so every rule is unit-testable without mounting anything.
#pragma once

#include "commands/commands.hpp"
#include "config/identity.hpp"
#include "image/image_metadata.hpp"
#include "runtime/mount_options.hpp"
#include "config/security_profiles.hpp"

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace sarus {

class Config;

// How much the hooks log (Sarus's numbers: 0 DEBUG, 1 INFO, 2 WARN).
inline const std::string hookLogLevelAnnotation = "com.hooks.logging.level";

struct ContainerSpec {
    std::vector<std::string> args;
    std::vector<std::string> env;  // NAME=VALUE
    std::string cwd;
    std::vector<BindMount> siteMounts;
    std::vector<BindMount> userMounts;
    std::vector<DeviceMount> devices;
    std::map<std::string, std::string> annotations;
    // The annotations that choose hooks (when.annotations): the engine's and
    // the user's, never an image label, whatever a hook's pattern matches.
    std::map<std::string, std::string> selectingAnnotations;
    // The com.hooks.* keys the user asked for, on the command line or with
    // --mpi, --glibc, --ssh (image labels excluded): a hook should act on them.
    std::vector<std::string> requestedHookAnnotations;
    bool tty = false;
    bool init = false;
    bool pidHost = false;
    std::string name;
    Identity identity;
    std::vector<int> passFds;  // caller's descriptors the container gets as 3, 4, ... (PMI_FD)
    int endWithProcessFd = -1;  // a pidfd: the container ends when that process does
    SecurityProfiles security;
};

// As Sarus: the host environment (without what glibc keeps from set-user-ID
// programs), then the image's Env (but PMIX_*), CUDA_VISIBLE_DEVICES from
// the host turned into NVIDIA_VISIBLE_DEVICES, TINI_SUBREAPER with init, then
// sarus.json "environment" (set, prepend, append, unset), then -e/--env.
std::vector<std::string> buildEnvironment(const std::vector<std::string>& hostEnv,
                                          const std::vector<std::string>& imageEnv,
                                          const nlohmann::json& configEnvironment,
                                          const std::vector<std::string>& cliEnv, bool init = false);

// Entrypoint/Cmd rules of the Sarus documentation.
std::vector<std::string> buildArgs(const ImageMetadata& image, const RunOptions& options);

// -w (must be absolute) else the image WorkingDir else "/"; none at or below
// /proc or /sys.
std::string buildWorkingDirectory(const ImageMetadata& image, const RunOptions& options);

// Throws sarus::Error naming `what` when the working directory, as resolved
// in the container, is at or below /proc or /sys.
void checkWorkingDirectoryOutsideProcAndSys(const std::string& resolved, const std::string& what);

// Whether an image label may become an annotation. Labels are the image
// author's, who must not switch a hook on (com.hooks.*.enabled) nor set the
// SSH and Slurm sync hooks, which act with the user's host files and keys.
bool imageLabelMaySetAnnotation(const std::string& key);

// Image labels (those allowed) < engine annotations (--mpi, --glibc, --ssh)
// < --annotation.
std::map<std::string, std::string> buildAnnotations(const ImageMetadata& image,
                                                    const RunOptions& options,
                                                    const std::string& defaultMpiType);

// The com.hooks.* annotation keys the options ask for (see ContainerSpec).
std::vector<std::string> requestedHookAnnotations(const RunOptions& options);

UserMountRestrictions userMountRestrictions(const nlohmann::json& configJson);
std::vector<BindMount> siteMounts(const nlohmann::json& configJson);
std::vector<DeviceMount> siteDevices(const nlohmann::json& configJson);

ContainerSpec buildContainerSpec(const Config& config, const ImageMetadata& image,
                                 const RunOptions& options, const std::vector<std::string>& hostEnv,
                                 const Identity& identity);

}  // namespace sarus
