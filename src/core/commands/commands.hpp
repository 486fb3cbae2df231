// One function per sarus command. The CLI layer (cli.cpp) parses arguments
// into these option structs; commands return the process exit code.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <vector>

namespace sarus {

class Config;
struct ImageMetadata;

struct ImagesOptions {
    bool digests = false;
    bool centralizedRepository = false;
};
int commandImages(const Config& config, const ImagesOptions& options);

struct LoadOptions {
    std::string archive;
    std::string name;
    std::string tempDir;
    bool centralizedRepository = false;
};
int commandLoad(const Config& config, const LoadOptions& options);

struct RmiOptions {
    std::string reference;
    bool centralizedRepository = false;
};
int commandRmi(const Config& config, const RmiOptions& options);

struct RunOptions {
    std::string image;
    std::vector<std::string> command;
    bool centralizedRepository = false;
    bool tty = false;
    std::optional<std::string> entrypoint;  // set to "" by a bare --entrypoint
    std::vector<std::string> mounts;
    std::vector<std::string> devices;
    std::vector<std::string> env;
    std::string workdir;
    bool init = false;
    bool mpi = false;
    std::string mpiType;
    bool glibc = false;
    bool ssh = false;
    std::string name;
    std::vector<std::string> annotations;
    std::string pid = "private";
};

struct PullOptions {
    std::string reference;
    bool login = false;
    std::string username;
    bool passwordStdin = false;
    std::string tempDir;
    bool centralizedRepository = false;
};
int commandPull(const Config& config, const PullOptions& options);

int commandRun(const Config& config, const RunOptions& options);
int commandPs();
// Lists the hook files of hooksDir (--mpi: those conditioned on com.hooks.mpi*).
int commandHooks(const Config& config, bool mpiOnly);
int commandKill(const std::string& name);
// Runs the installation's ssh_hook as the user to make the keys of --ssh.
int commandSshKeygen(const Config& config, bool overwrite);
// Throws Sarus's message when the user has no keys for --ssh.
void checkUserHasSshKeys(const Config& config);

// `sarus bundle`: DIR/config.json naming the image (annotation
// com.sarus.image) and an empty DIR/rootfs, for Slurm's --container with
// <prefix>/libexec/sarus/sarus-oci-runtime in oci.conf.
struct BundleOptions {
    std::string image;
    std::string directory;
    bool centralizedRepository = false;
};
int commandBundle(const Config& config, const BundleOptions& options);
// Its config.json: process args, env and cwd as `sarus run IMAGE` has them
// from the image (sarus.json's "environment" is left to `sarus run`).
nlohmann::json bundleConfig(const ImageMetadata& image, const std::string& reference, bool centralizedRepository,
                            unsigned uid, unsigned gid);

}  // namespace sarus
