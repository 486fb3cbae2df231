#include "oci_runtime.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <set>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sarus::oci {

namespace fs = std::filesystem;

namespace {

const nlohmann::json& member(const nlohmann::json& object, const char* key) {
    static const nlohmann::json null;
    if (!object.is_object()) {
        return null;
    }
    auto it = object.find(key);
    return it == object.end() ? null : *it;
}

std::vector<std::string> stringList(const nlohmann::json& value, const std::string& what) {
    if (!value.is_array()) {
        throw RuntimeError("config.json: " + what + " is not a list of strings");
    }
    std::vector<std::string> list;
    for (const auto& item : value) {
        if (!item.is_string()) {
            throw RuntimeError("config.json: " + what + " is not a list of strings");
        }
        list.push_back(item.get<std::string>());
    }
    return list;
}

std::set<std::string> namesOf(const std::vector<std::string>& env) {
    std::set<std::string> names;
    for (const auto& entry : env) {
        names.insert(entry.substr(0, entry.find('=')));
    }
    return names;
}

// A bind mount of config.json (Slurm's batch script, stdout and stderr at
// /tmp/slurm/ for `sbatch --container`) as --mount; other types are sarus's
// own business (it makes /proc, /dev... itself).
std::optional<std::string> mountOption(const nlohmann::json& mount) {
    const auto& options = member(mount, "options");
    auto has = [&](const char* option) {
        return options.is_array() && std::find(options.begin(), options.end(), option) != options.end();
    };
    const auto& source = member(mount, "source");
    const auto& destination = member(mount, "destination");
    if (!(has("bind") || has("rbind") || member(mount, "type") == "bind") || !source.is_string() ||
        !destination.is_string()) {
        return std::nullopt;
    }
    auto from = source.get<std::string>();
    auto to = destination.get<std::string>();
    if (from.find(',') != std::string::npos || to.find(',') != std::string::npos) {
        throw RuntimeError("config.json: cannot pass the mount of " + from + " on " + to +
                           " to sarus run: its paths hold a ','");
    }
    return "--mount=type=bind,source=" + from + ",destination=" + to + (has("ro") ? ",readonly" : "");
}

std::string annotation(const nlohmann::json& annotations, const std::string& key) {
    const auto& value = member(annotations, key.c_str());
    return value.is_string() ? value.get<std::string>() : "";
}

}  // namespace

SarusInvocation sarusInvocation(const nlohmann::json& config, const std::string& sarusPath, const std::string& id,
                                const std::vector<std::string>& ownEnv) {
    if (!config.is_object()) {
        throw RuntimeError("config.json is not a JSON object");
    }
    const auto& process = member(config, "process");
    const auto& annotations = member(config, "annotations");
    auto image = annotation(annotations, imageAnnotation);
    if (image.empty()) {
        throw RuntimeError("config.json has no annotation " + imageAnnotation +
                           ": make the bundle with 'sarus bundle IMAGE DIR'");
    }
    // taken for an option of sarus's, it would be one the adapter never checked
    if (image[0] == '-') {
        throw RuntimeError("config.json: annotation " + imageAnnotation + " '" + image +
                           "' is no image reference");
    }
    auto args = stringList(member(process, "args"), "process.args");
    if (args.empty()) {
        throw RuntimeError("config.json: process.args is empty");
    }
    SarusInvocation invocation;
    auto& argv = invocation.argv;
    // sarus's container names are Docker's: no '@'
    auto name = id;
    std::replace(name.begin(), name.end(), '@', '_');
    argv = {sarusPath, "run", "--entrypoint=", "-n", name};
    if (annotation(annotations, repositoryAnnotation) == "centralized") {
        argv.push_back("--centralized-repository");
    }
    if (const auto& cwd = member(process, "cwd"); cwd.is_string() && !cwd.get<std::string>().empty()) {
        argv.insert(argv.end(), {"-w", cwd.get<std::string>()});
    }
    if (member(process, "terminal") == true) {
        argv.push_back("-t");
    }
    if (annotations.is_object()) {
        for (const auto& [key, value] : annotations.items()) {
            if (key.rfind("com.hooks.", 0) == 0 && value.is_string()) {
                if (key.find('=') != std::string::npos) {
                    throw RuntimeError("config.json: annotation key '" + key + "' holds a '='");
                }
                argv.push_back("--annotation=" + key + "=" + value.get<std::string>());
            }
        }
    }
    for (const auto& mount : member(config, "mounts")) {
        if (auto option = mountOption(mount)) {
            argv.push_back(*option);
        }
    }
    argv.push_back(image);
    argv.insert(argv.end(), args.begin(), args.end());
    const auto& env = member(process, "env");
    if (env.is_null()) {
        invocation.env = ownEnv;
        return invocation;
    }
    for (const auto& entry : stringList(env, "process.env")) {
        if (entry.find('=') != std::string::npos && entry[0] != '=') {
            invocation.env.push_back(entry);
        }
    }
    // What the runtime's own environment has of sarus and Slurm, and the job's does not.
    auto names = namesOf(invocation.env);
    for (const auto& entry : ownEnv) {
        auto name = entry.substr(0, entry.find('='));
        if ((name == "SARUS_CONFIG_FILE" || name.rfind("SLURM", 0) == 0) && !names.count(name)) {
            invocation.env.push_back(entry);
        }
    }
    return invocation;
}

void checkId(const std::string& id) {
    // '@': Slurm's %u of a site whose users are named fully qualified (sssd's
    // alice@ad.example.org)
    auto allowed = [](char c, bool first) {
        bool alphanumeric = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        return alphanumeric || (!first && (c == '_' || c == '.' || c == '-' || c == '@'));
    };
    bool valid = !id.empty() && id.size() <= 128;
    for (std::size_t i = 0; valid && i < id.size(); ++i) {
        valid = allowed(id[i], i == 0);
    }
    if (!valid) {
        throw RuntimeError("invalid container id '" + id + "': use letters, digits, '_', '.', '-', '@'");
    }
}

int parseSignal(const std::string& text) {
    static const std::pair<const char*, int> names[] = {
        {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL}, {"USR1", SIGUSR1},
        {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"CONT", SIGCONT}, {"STOP", SIGSTOP}, {"WINCH", SIGWINCH},
        {"ALRM", SIGALRM}};
    if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos && text.size() <= 2) {
        int number = std::stoi(text);
        if (number >= 1 && number < NSIG) {
            return number;
        }
    }
    auto name = text.rfind("SIG", 0) == 0 ? text.substr(3) : text;
    for (const auto& [known, number] : names) {
        if (name == known) {
            return number;
        }
    }
    throw RuntimeError("unknown signal '" + text + "'");
}

namespace {

// /proc/PID/NAME as text, "" when the process is gone: libstdc++'s ifstream
// throws when a process ends while its file is read (ESRCH).
std::string readProcessFile(pid_t pid, const std::string& name) {
    auto path = "/proc/" + std::to_string(pid) + "/" + name;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    std::string text;
    if (fd < 0) {
        return text;
    }
    char buffer[4096];
    for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) {
        text.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return text;
}

}  // namespace

std::optional<unsigned long long> processStartTime(pid_t pid) {
    if (pid <= 0) {
        return std::nullopt;
    }
    std::istringstream in(readProcessFile(pid, "stat"));
    std::string stat;
    if (!std::getline(in, stat)) {
        return std::nullopt;
    }
    // "PID (COMM) STATE PPID ...": COMM may hold anything, so count from the last ')'.
    auto close = stat.rfind(')');
    if (close == std::string::npos) {
        return std::nullopt;
    }
    std::istringstream fields(stat.substr(close + 1));
    std::string field;
    // fields 3..22: state is field 3, starttime field 22
    for (int i = 3; i <= 22 && fields >> field; ++i) {
        if (i == 3 && (field == "Z" || field == "X")) {
            return std::nullopt;  // a zombie has ended
        }
        if (i == 22) {
            return std::stoull(field);
        }
    }
    return std::nullopt;
}

namespace {

// The real uid of a live process ("Uid:\tREAL\tEFFECTIVE..." of /proc/PID/status).
std::optional<uid_t> processRealUid(pid_t pid) {
    std::istringstream in(readProcessFile(pid, "status"));
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("Uid:", 0) == 0) {
            return static_cast<uid_t>(std::stoul(line.substr(4)));
        }
    }
    return std::nullopt;
}

}  // namespace

bool isRunning(const StateRecord& record, uid_t owner) {
    auto start = processStartTime(record.pid);
    return start && *start == record.startTime && processRealUid(record.pid) == owner;
}

nlohmann::json stateDocument(const std::string& id, const std::optional<StateRecord>& record, bool running) {
    running = running && record;
    nlohmann::json state = {{"ociVersion", "1.0.2"},
                            {"id", id},
                            {"status", running ? "running" : "stopped"},
                            {"pid", running ? record->pid : 0},
                            {"bundle", record ? record->bundle : ""}};
    if (record && !record->image.empty()) {
        state["annotations"] = {{imageAnnotation, record->image}};
    }
    return state;
}

fs::path StateDirectory::defaultPath(uid_t uid) {
    auto id = std::to_string(uid);
    fs::path session = "/run/user/" + id;
    struct stat st {};
    if (::stat(session.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == uid) {
        return session / "sarus-oci";
    }
    return "/tmp/sarus-oci-" + id;
}

namespace {

std::string fallbackPrefix(uid_t owner) { return "/tmp/sarus-oci-" + std::to_string(owner) + "."; }

// The private fallbacks of /tmp/sarus-oci-UID: the readers trust only the
// owner's (openDirectory), which nobody else can make.
std::vector<fs::path> fallbackPaths(uid_t owner) {
    auto prefix = fs::path(fallbackPrefix(owner)).filename().string();
    std::vector<fs::path> found;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/tmp", ec)) {
        if (entry.path().filename().string().rfind(prefix, 0) == 0) {
            found.push_back(entry.path());
        }
    }
    std::sort(found.begin(), found.end());
    return found;
}

bool isPrivateDirectoryOf(const fs::path& path, uid_t owner) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::geteuid() &&
           st.st_uid == owner && (st.st_mode & 077) == 0;
}

// An empty fallback goes with its last record, removed only by its owner's
// own commands: root (Slurm's delete) removes no directory by a name in /tmp.
// The owner's next run removes what root's delete left. Anyone may name a
// directory /tmp/sarus-oci-0.*: root's own runs remove only root's.
void removeIfEmptyFallback(const fs::path& path, uid_t owner) {
    if (::geteuid() == owner && path.string().rfind(fallbackPrefix(owner), 0) == 0 &&
        isPrivateDirectoryOf(path, owner)) {
        ::rmdir(path.c_str());
    }
}

// An exclusive flock on an open directory, held while the object lives.
class DirectoryLock {
public:
    DirectoryLock(int directory, const fs::path& path) : fd_(directory) {
        if (fd_ < 0 || ::flock(fd_, LOCK_EX) != 0) {
            int err = errno;
            if (fd_ >= 0) {
                ::close(fd_);
            }
            throw RuntimeError("cannot lock " + path.string() + ": " + std::strerror(err));
        }
    }
    ~DirectoryLock() { ::close(fd_); }
    DirectoryLock(const DirectoryLock&) = delete;
    DirectoryLock& operator=(const DirectoryLock&) = delete;

private:
    int fd_;
};

}  // namespace

StateDirectory StateDirectory::ofUser(uid_t owner) {
    StateDirectory states;
    states.owner_ = owner;
    states.paths_ = {defaultPath(owner)};
    for (const fs::path other : {"/run/user/" + std::to_string(owner) + "/sarus-oci",
                                 "/tmp/sarus-oci-" + std::to_string(owner)}) {
        if (other != states.paths_[0]) {
            states.paths_.push_back(other);
        }
    }
    for (const auto& fallback : fallbackPaths(owner)) {
        states.paths_.push_back(fallback);
    }
    states.mayFallBack_ = states.paths_[0].parent_path() == "/tmp";
    return states;
}

fs::path StateDirectory::privateFallback() const {
    for (const auto& path : paths_) {
        if (path.string().rfind(fallbackPrefix(owner_), 0) == 0 && isPrivateDirectoryOf(path, owner_)) {
            return path;
        }
    }
    auto pattern = fallbackPrefix(owner_) + "XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
        throw RuntimeError("cannot create a directory in /tmp: " + std::string(std::strerror(errno)));
    }
    return pattern;
}

int StateDirectory::openDirectory(const fs::path& path) const {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st {};
    if (fd >= 0 && (::fstat(fd, &st) != 0 || st.st_uid != owner_)) {
        ::close(fd);
        return -1;
    }
    return fd;
}

fs::path StateDirectory::directoryForRecords() {
    if (chosen_) {
        return *chosen_;
    }
    auto path = paths_.front();
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
        throw RuntimeError("cannot create " + path.string() + ": " + std::strerror(errno));
    }
    // In a shared /tmp another user could have made it first: never trust that.
    if (isPrivateDirectoryOf(path, owner_)) {
        return *(chosen_ = path);
    }
    if (!mayFallBack_) {
        throw RuntimeError(path.string() + " is not a private directory of yours: remove it and retry");
    }
    auto fallback = privateFallback();
    std::fprintf(stderr, "sarus-oci-runtime: %s is not a private directory of yours: the record goes to %s\n",
                 path.c_str(), fallback.c_str());
    if (std::find(paths_.begin(), paths_.end(), fallback) == paths_.end()) {
        paths_.push_back(fallback);  // where remove() must look too
    }
    return *(chosen_ = fallback);
}

void StateDirectory::record(const StateRecord& record) {
    nlohmann::json json = {{"id", record.id},          {"pid", record.pid},       {"startTime", record.startTime},
                           {"bundle", record.bundle}, {"image", record.image}};
    auto text = json.dump() + "\n";
    // A concurrent run or delete of the same user removes a fallback that
    // looks empty: one made again is as good.
    for (int attempt = 1;; ++attempt) {
        auto path = directoryForRecords();
        auto file = path / (record.id + ".json");
        auto partial = path / ("." + record.id + "." + std::to_string(::getpid()));
        int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno == ENOENT && path != paths_.front() && attempt < 3) {
            paths_.erase(std::remove(paths_.begin(), paths_.end(), path), paths_.end());
            chosen_.reset();
            continue;
        }
        if (fd < 0) {
            throw RuntimeError("cannot write " + partial.string() + ": " + std::strerror(errno));
        }
        bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
        ::close(fd);
        if (!written || ::rename(partial.c_str(), file.c_str()) != 0) {
            int err = errno;
            ::unlink(partial.c_str());
            throw RuntimeError("cannot write " + file.string() + ": " + std::strerror(err));
        }
        return;
    }
}

void StateDirectory::claim(const StateRecord& record) {
    auto path = directoryForRecords();
    DirectoryLock lock(openDirectory(path), path);
    if (auto existing = find(record.id); existing && isRunning(*existing, owner_)) {
        throw RuntimeError("a container with id '" + record.id + "' is running already (pid " +
                           std::to_string(existing->pid) + ")");
    }
    this->record(record);
}

std::optional<StateRecord> StateDirectory::find(const std::string& id) const {
    for (const auto& path : paths_) {
        int directory = openDirectory(path);
        if (directory < 0) {
            continue;
        }
        // O_NONBLOCK: a FIFO planted as the record must not hang root's
        // state, kill or delete; it is then refused as no regular file.
        int fd = ::openat(directory, (id + ".json").c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        ::close(directory);
        if (fd < 0) {
            continue;
        }
        struct stat st {};
        std::string text;
        if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == owner_ && st.st_size < 65536) {
            text.resize(static_cast<std::size_t>(st.st_size));
            if (::read(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
                text.clear();
            }
        }
        ::close(fd);
        try {
            auto json = nlohmann::json::parse(text);
            StateRecord record;
            record.id = json.at("id").get<std::string>();
            record.pid = json.at("pid").get<pid_t>();
            record.startTime = json.at("startTime").get<unsigned long long>();
            record.bundle = json.value("bundle", "");
            record.image = json.value("image", "");
            if (record.id == id) {
                return record;
            }
        } catch (const nlohmann::json::exception&) {
            // not ours, or damaged: nothing runs under this id here
        }
    }
    return std::nullopt;
}

void StateDirectory::remove(const std::string& id) const {
    for (const auto& path : paths_) {
        int directory = openDirectory(path);
        if (directory < 0) {
            continue;
        }
        struct stat st {};
        auto name = id + ".json";
        if (::fstatat(directory, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_uid == owner_) {
            ::unlinkat(directory, name.c_str(), 0);
        }
        ::close(directory);
        removeIfEmptyFallback(path, owner_);
    }
}

void StateDirectory::removeStale() const {
    for (const auto& path : paths_) {
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator(path, ec)) {
            auto name = entry.path().filename().string();
            if (entry.path().extension() != ".json" || name[0] == '.') {
                continue;
            }
            auto id = entry.path().stem().string();
            auto record = find(id);
            if (record && !isRunning(*record, owner_)) {
                remove(id);
            }
        }
        removeIfEmptyFallback(path, owner_);
    }
}

}  // namespace sarus::oci
