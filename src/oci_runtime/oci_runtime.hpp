// sarus-oci-runtime: the OCI runtime commands that Slurm's oci.conf calls
// (RunTimeRun, RunTimeQuery, RunTimeKill, RunTimeDelete), in front of
// `sarus run`. A bundle made by `sarus bundle IMAGE DIR` names its image in
// an annotation; `run` turns the config.json that Slurm rewrote into a
// `sarus run` command line and environment and becomes that sarus, so the
// task's process, signals and exit code are sarus's. The program has no
// privilege of its own: a SUID sarus in suid mode is what gains it.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <sys/types.h>
#include <vector>

namespace sarus::oci {

// Every failure is one line naming the input and what is wrong.
class RuntimeError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The annotations `sarus bundle` writes and `run` reads.
inline const std::string imageAnnotation = "com.sarus.image";
inline const std::string repositoryAnnotation = "com.sarus.repository";  // "local" or "centralized"

// What `run` executes.
struct SarusInvocation {
    std::vector<std::string> argv;
    std::vector<std::string> env;  // NAME=VALUE
};

// config.json -> `sarus run`:
//   process.args  -> the command after the image, with --entrypoint= so that
//                    args are the whole command line (OCI semantics; Slurm
//                    puts the srun command there)
//   process.cwd   -> -w
//   process.env   -> the environment sarus runs with, i.e. the host
//                    environment of `sarus run`, which passes it to the
//                    container under the image's Env and sarus.json's
//                    "environment" exactly as for `srun sarus run` (and
//                    reads SARUS_CONFIG_FILE, CUDA_VISIBLE_DEVICES, PMIx
//                    variables from it). Slurm 22.05 runs the runtime with
//                    slurmstepd's own environment (HOME=/root...), which must
//                    not reach the container, and writes the job's
//                    environment into process.env without the task's
//                    variables: of ownEnv, only SARUS_CONFIG_FILE and SLURM*
//                    (SLURMD_NODENAME) are added when process.env lacks them.
//                    Without process.env: ownEnv.
//   process.terminal -> -t
//   mounts        -> bind mounts as --mount (what Slurm adds for a batch
//                    step: the script at /tmp/slurm/startup); others are
//                    left to sarus, which makes /proc, /dev... itself
//   annotations   -> the image (com.sarus.image), --centralized-repository
//                    (com.sarus.repository=centralized), and every com.hooks.*
//                    one as --annotation (what --mpi, --glibc... set)
//   id            -> -n, the container name `sarus ps` and `sarus kill` show
// root.path, hooks and namespaces are not used: sarus mounts the image
// itself and applies its own configuration.
SarusInvocation sarusInvocation(const nlohmann::json& config, const std::string& sarusPath, const std::string& id,
                                const std::vector<std::string>& ownEnv);

// A container id is a file name here and a sarus container name:
// [A-Za-z0-9][A-Za-z0-9_.-]*, at most 128 characters (Slurm's
// %n.%u.%j.%s.%t qualifies, "-1" task included).
void checkId(const std::string& id);

// SIGTERM, TERM, 15.
int parseSignal(const std::string& text);

// What `run` records about a container.
struct StateRecord {
    std::string id;
    pid_t pid = 0;
    unsigned long long startTime = 0;  // /proc/PID/stat field 22: tells a reused pid apart
    std::string bundle;
    std::string image;
};

// Start time of a live process, nullopt when it is gone.
std::optional<unsigned long long> processStartTime(pid_t pid);
// The recorded process lives (same start time) and is owner's (its real
// uid): root, asked by Slurm, never signals a process its record's writer
// could not.
bool isRunning(const StateRecord& record, uid_t owner);

// The OCI state document: "running" with the pid while the recorded process
// lives, else "stopped" with pid 0, also for an id never seen (Slurm 22.05
// logs "JSON parsing error" for anything that is not JSON).
nlohmann::json stateDocument(const std::string& id, const std::optional<StateRecord>& record, bool running);

// One file per container, ID.json, in a directory only its user can write.
// Records are trusted only when the directory and the file belong to the
// owner, so root (Slurm 22.05 runs RunTimeQuery, RunTimeKill and
// RunTimeDelete as root, with --user %u) reads a user's records safely.
class StateDirectory {
public:
    // /run/user/UID/sarus-oci when that session directory exists, else
    // /tmp/sarus-oci-UID. Not $XDG_RUNTIME_DIR: Slurm runs the commands with
    // slurmstepd's environment, not the job's.
    static std::filesystem::path defaultPath(uid_t uid);
    // The default place of a user; both candidates are searched, as the
    // session directory may come or go between two calls.
    static StateDirectory ofUser(uid_t owner);
    // --root DIR
    StateDirectory(std::filesystem::path path, uid_t owner) : paths_{std::move(path)}, owner_(owner) {}

    uid_t owner() const { return owner_; }
    // Creates the directory (0700) if needed; refuses one that is not the
    // caller's own, except that a default /tmp/sarus-oci-UID another user
    // made first gives way, with a warning, to a private
    // /tmp/sarus-oci-UID.XXXXXX, which ofUser finds by its name. Only the
    // owner records.
    void record(const StateRecord& record);
    // Records it unless a container with its id runs already (then a
    // RuntimeError). The check and the write hold a lock on the directory:
    // two runs of one id at the same moment would both pass a bare check,
    // and the second's record would hide the first container from state
    // and kill.
    void claim(const StateRecord& record);
    std::optional<StateRecord> find(const std::string& id) const;
    // Also removes a fallback left empty, unless root calls.
    void remove(const std::string& id) const;
    // Drops the records of processes that are gone, and empty fallbacks.
    void removeStale() const;

private:
    StateDirectory() = default;
    int openDirectory(const std::filesystem::path& path) const;  // -1 unless a directory of the owner
    std::filesystem::path privateFallback() const;
    std::filesystem::path directoryForRecords();  // made if needed, chosen once
    std::vector<std::filesystem::path> paths_;  // the first is where records are written
    uid_t owner_ = 0;
    bool mayFallBack_ = false;  // the default place, not --root
    std::optional<std::filesystem::path> chosen_;  // by directoryForRecords
};

}  // namespace sarus::oci
