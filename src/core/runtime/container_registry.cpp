#include "runtime/container_registry.hpp"

#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "common/log.hpp"
#include "common/process.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace sarus {

namespace fs = std::filesystem;

namespace {

// The registered sarus, not another process that got its pid after a
// kill -9 left the record behind: the start time names a process for good.
bool alive(pid_t pid, const std::string& startTime) {
    if (pid <= 0 || startTime.empty() || (::kill(pid, 0) != 0 && errno != EPERM)) {
        return false;
    }
    auto status = readProcessStatus(pid);
    return status && status->name == "sarus" && status->startTime == startTime;
}

// Only a record the caller wrote: in a shared /tmp another user could swap
// a directory of theirs into the name between its check and the reading,
// and `sarus kill` would then signal the pid their record names.
bool isCallersRecord(const fs::path& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::getuid();
}

bool isNameCharacter(char c, bool first) {
    bool alphanumeric = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    return alphanumeric || (!first && (c == '_' || c == '.' || c == '-'));
}

// [a-zA-Z0-9][a-zA-Z0-9_.-]*, checked without std::regex, whose set-up alone
// costs a measurable part of a container start.
void checkName(const std::string& name) {
    bool valid = !name.empty() && name.size() <= 128;
    for (std::size_t i = 0; valid && i < name.size(); ++i) {
        valid = isNameCharacter(name[i], i == 0);
    }
    if (!valid) {
        throw Error("invalid container name '" + name + "': use letters, digits, '_', '.', '-'");
    }
}

}  // namespace

ContainerRegistry ContainerRegistry::forCaller() {
    auto uid = std::to_string(::getuid());
    struct stat st {};
    fs::path session = "/run/user/" + uid;
    if (::stat(session.c_str(), &st) == 0 && st.st_uid == ::getuid()) {
        return ContainerRegistry(session / "sarus");
    }
    return ContainerRegistry("/tmp/sarus-" + uid);
}

void ContainerRegistry::ensureDirectory() const {
    // In a shared /tmp another user could have created it first: never trust that.
    if (!claim()) {
        throw Error(directory_.string() + " is not a directory owned by you: remove it and retry");
    }
}

bool ContainerRegistry::takenByAnother() const { return sarus::takenByAnother(directory_, 022); }

bool ContainerRegistry::claim() const { return claimDirectory(directory_, 022); }

fs::path ContainerRegistry::fileOf(const std::string& name) const { return directory_ / (name + ".json"); }

namespace {

// writeFileAtomically's <record>.tmp-<pid> of a process killed before its
// rename (this directory is the node's own /tmp, so the pid is of this node).
bool isLeftOverTemporaryFile(const fs::path& path) {
    auto name = path.filename().string();
    auto marker = name.rfind(".json.tmp-");
    if (marker == std::string::npos) {
        return false;
    }
    auto pid = std::atoi(name.c_str() + marker + std::strlen(".json.tmp-"));
    return pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH;
}

}  // namespace

std::vector<RunningContainer> ContainerRegistry::list() const {
    std::vector<RunningContainer> containers;
    if (takenByAnother()) {
        return containers;  // nothing in there is the caller's
    }
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(directory_, ec)) {
        if (isLeftOverTemporaryFile(entry.path())) {
            fs::remove(entry.path(), ec);
            continue;
        }
        if (entry.path().extension() != ".json" || !isCallersRecord(entry.path())) {
            continue;
        }
        try {
            auto json = nlohmann::json::parse(readFile(entry.path()));
            RunningContainer c{json.at("name"), json.at("pid"), json.value("bundle", ""), json.value("created", "")};
            c.startTime = json.value("startTime", "");
            if (alive(c.pid, c.startTime)) {
                containers.push_back(c);
            } else {
                fs::remove(entry.path(), ec);
            }
        } catch (const std::exception&) {
            continue;  // being written right now, or garbage: not a running container
        }
    }
    std::sort(containers.begin(), containers.end(),
              [](const auto& a, const auto& b) { return a.name < b.name; });
    return containers;
}

void ContainerRegistry::add(const RunningContainer& container) const {
    checkName(container.name);
    ensureDirectory();
    for (const auto& running : list()) {
        if (running.name == container.name) {
            throw Error("a container named '" + container.name + "' is already running (pid " +
                        std::to_string(running.pid) + ")");
        }
    }
    nlohmann::json json = {{"name", container.name}, {"pid", container.pid}, {"bundle", container.bundle},
                           {"created", container.created}, {"startTime", processStartTime(container.pid)}};
    // A registration describes a running process: after a crash it is stale anyway.
    writeFileAtomically(fileOf(container.name), json.dump() + "\n", 0600, Durability::untilReboot);
}

void ContainerRegistry::remove(const std::string& name) const { ::unlink(fileOf(name).c_str()); }

void ContainerRegistry::stop(const std::string& name, std::chrono::milliseconds grace) const {
    for (const auto& container : list()) {
        if (container.name != name) {
            continue;
        }
        // SIGHUP, as Sarus sends it: a container's PID 1 ignores it unless it
        // handles it, hence the short grace.
        ::kill(container.pid, SIGHUP);
        auto deadline = std::chrono::steady_clock::now() + grace;
        while (alive(container.pid, container.startTime) && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        if (alive(container.pid, container.startTime)) {
            // sarus dies, and PDEATHSIG takes the sandbox and everything in it
            // along (with --pid=host the sandbox ends the container first).
            ::kill(container.pid, SIGKILL);
        }
        return;
    }
    throw Error("no running container named '" + name + "' (see 'sarus ps')");
}

Registration::Registration(const ContainerRegistry& registry, const RunningContainer& container)
    : registry_(registry), name_(container.name) {
    // Checked whether or not it is recorded: the name also names the
    // runtime's state directory, which crun 1.8 does not check.
    checkName(container.name);
    if (!registry_.claim()) {
        log::warn(registry_.directory().string() +
                  " is not a private directory of yours (another user may have made it): "
                  "'sarus ps' and 'sarus kill' will not see this container");
        return;
    }
    registry_.add(container);
    registered_ = true;
}

Registration::~Registration() {
    if (registered_) {
        registry_.remove(name_);
    }
}

}  // namespace sarus
