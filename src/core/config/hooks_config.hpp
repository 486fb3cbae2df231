// OCI hooks selected for a container: the oci-hooks(5) 1.0.0 files of the
// hooksDir of sarus.json plus the legacy "OCIHooks" object. Loading reads
// files; selection is a pure function from the spec and the loaded files to
// the "hooks" object of config.json, so every `when` rule is unit-testable.
#pragma once

#include "runtime/container_spec.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace sarus {

class Config;

struct HookFile {
    std::string name;  // file name, e.g. "10-mount.json"
    nlohmann::json json;
};

// The *.json files of hooksDir in file-name order, each validated against
// schemaFile. A bad file throws sarus::Error naming the file and the problem.
// A missing directory gives no hooks.
std::vector<HookFile> loadHookFiles(const std::filesystem::path& hooksDir,
                                    const std::filesystem::path& schemaFile);

// True when every condition of `when` holds for the container (all ANDed).
bool hookApplies(const nlohmann::json& when, const ContainerSpec& spec);

// An oci-hooks(5) pattern, matched with libstdc++'s polynomial matcher;
// throws sarus::Error naming `what` for a pattern it cannot take.
std::regex compileHookPattern(const std::string& pattern, const std::string& what);

// {"<stage>": [{"path", "args", "env", "timeout"}...]}: the applying hook
// files in order, then the legacy OCIHooks entries as they are.
nlohmann::json selectHooks(const ContainerSpec& spec, const std::vector<HookFile>& files,
                           const nlohmann::json& legacyOciHooks);

// Loads the files of config's hooksDir (schema from <prefix>/etc) and selects.
// Also refuses a selected hook whose program cannot run, naming its file, and
// warns about each of spec.requestedHookAnnotations that no hook acts on.
nlohmann::json configuredHooks(const Config& config, const ContainerSpec& spec);

// Of the annotation keys, those that no hook file has a condition on.
std::vector<std::string> unheededAnnotations(const std::vector<std::string>& requested,
                                             const std::vector<HookFile>& files);

// The files of config's hooksDir, for `sarus hooks`.
std::vector<HookFile> configuredHookFiles(const Config& config);

// As `sarus hooks --mpi` shows it (Sarus's rule): a hook is an MPI hook when
// one of its annotation conditions accepts com.hooks.mpi.enabled=true; its
// MPI type is the value pattern of the condition on com.hooks.mpi.type ("" when
// there is none). nullopt for other hooks.
std::optional<std::string> mpiTypeOf(const HookFile& file);

}  // namespace sarus
