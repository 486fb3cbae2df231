// Running containers of the calling user, for `sarus ps` and `sarus kill`.
// Each `sarus run` owns one small file in a private per-user directory for
// as long as it runs; a file whose sarus process is gone is stale and ignored.
#pragma once

#include <filesystem>
#include <chrono>
#include <string>
#include <sys/types.h>
#include <vector>

namespace sarus {

// What `sarus ps` shows of a container, in the columns of runc's `list`.
struct RunningContainer {
    std::string name;
    pid_t pid = 0;  // the `sarus run` process, which `sarus kill` signals
    std::string bundle;
    std::string created;  // RFC 3339, UTC
    std::string startTime;  // of pid, as the registry read it back ("" in older records)
};

class ContainerRegistry {
public:
    // /run/user/<uid>/sarus when the session directory exists, else /tmp/sarus-<uid>.
    static ContainerRegistry forCaller();
    explicit ContainerRegistry(std::filesystem::path directory) : directory_(std::move(directory)) {}
    const std::filesystem::path& directory() const { return directory_; }

    // True when the directory exists but is not a private one of the
    // caller's (in a shared /tmp another user may make it first).
    bool takenByAnother() const;
    // Makes the directory if it is missing; false when it is not the
    // caller's (another user made it, also just after a check).
    bool claim() const;
    std::vector<RunningContainer> list() const;
    // Throws if a running container already has this name.
    void add(const RunningContainer& container) const;
    void remove(const std::string& name) const;
    // SIGTERM, then SIGKILL after graceSeconds; throws if no such container.
    void stop(const std::string& name, std::chrono::milliseconds grace) const;

private:
    std::filesystem::path fileOf(const std::string& name) const;
    void ensureDirectory() const;
    std::filesystem::path directory_;
};

// Registers a container for the lifetime of the object; in a registry taken
// by another user, says so and runs the container unlisted.
class Registration {
public:
    Registration(const ContainerRegistry& registry, const RunningContainer& container);
    ~Registration();
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;

private:
    const ContainerRegistry& registry_;
    std::string name_;
    bool registered_ = false;
};

}  // namespace sarus
