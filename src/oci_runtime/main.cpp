// <prefix>/libexec/sarus/sarus-oci-runtime: see oci_runtime.hpp.
//
//   sarus-oci-runtime [--root DIR] [--user NAME] run [--bundle DIR] ID
//   sarus-oci-runtime [--root DIR] [--user NAME] state ID
//   sarus-oci-runtime [--root DIR] [--user NAME] kill [--all] ID [SIGNAL]
//   sarus-oci-runtime [--root DIR] [--user NAME] delete [--force] ID
#include "oci_runtime.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <pwd.h>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace sarus::oci {

namespace {

namespace fs = std::filesystem;

const char* usage =
    "Usage: sarus-oci-runtime [--root DIR] [--user NAME] COMMAND\n"
    "\n"
    "The OCI runtime commands of Slurm's oci.conf, for bundles made by 'sarus bundle'.\n"
    "\n"
    "Commands:\n"
    "   run [--bundle DIR] ID        run the bundle's process with 'sarus run' (the exit code is its)\n"
    "   state ID                     print the OCI state: running or stopped\n"
    "   kill [--all] ID [SIGNAL]     send SIGNAL (default SIGTERM) to the container's sarus\n"
    "   delete [--force] ID          forget the container (--force: kill it first)\n"
    "\n"
    "--root DIR: the directory of the containers' state (default /run/user/UID/sarus-oci,\n"
    "or /tmp/sarus-oci-UID without a session directory)\n"
    "--user NAME: whose containers; for root, as Slurm runs state, kill and delete (%u)\n";

// <prefix>/libexec/sarus/sarus-oci-runtime -> <prefix>
fs::path installPrefix() {
    std::error_code ec;
    auto exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec) {
        throw RuntimeError("cannot find the sarus installation: /proc/self/exe: " + ec.message());
    }
    return exe.parent_path().parent_path().parent_path();
}

nlohmann::json readConfig(const fs::path& bundle) {
    auto file = bundle / "config.json";
    std::ifstream in(file);
    if (!in) {
        throw RuntimeError("cannot read " + file.string() + ": " + std::strerror(errno));
    }
    try {
        return nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        throw RuntimeError(file.string() + " is not valid JSON: " + e.what());
    }
}

std::vector<std::string> ownEnvironment() {
    std::vector<std::string> env;
    for (char** entry = environ; entry && *entry; ++entry) {
        env.emplace_back(*entry);
    }
    return env;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
    std::vector<char*> result;
    for (auto& s : strings) {
        result.push_back(s.data());
    }
    result.push_back(nullptr);
    return result;
}

[[noreturn]] void usageError(const std::string& message) {
    throw RuntimeError(message + " (see 'sarus-oci-runtime --help')");
}

// A command's options, its ID and, for kill, a signal.
struct Arguments {
    std::vector<std::string> positional;
    std::string bundle = ".";
    bool force = false;
};

Arguments parseArguments(const std::string& command, const std::vector<std::string>& args) {
    Arguments parsed;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto& arg = args[i];
        if (command == "run" && (arg == "--bundle" || arg == "-b")) {
            if (i + 1 == args.size()) {
                usageError("option '" + arg + "' needs a directory");
            }
            parsed.bundle = args[++i];
        } else if (command == "run" && arg.rfind("--bundle=", 0) == 0) {
            parsed.bundle = arg.substr(9);
        } else if (command == "kill" && (arg == "--all" || arg == "-a")) {
            // one process stands for the container: sarus forwards the signal
        } else if (command == "delete" && (arg == "--force" || arg == "-f")) {
            parsed.force = true;
        } else if (arg.size() > 1 && arg[0] == '-' && parsed.positional.empty()) {
            usageError("unknown option '" + arg + "' of '" + command + "'");
        } else {
            parsed.positional.push_back(arg);
        }
    }
    std::size_t most = command == "kill" ? 2 : 1;
    if (parsed.positional.empty() || parsed.positional.size() > most) {
        usageError("'" + command + "' takes " + (command == "kill" ? "ID [SIGNAL]" : "one ID"));
    }
    checkId(parsed.positional[0]);
    return parsed;
}

int run(StateDirectory& states, const std::string& id, const std::string& bundleArgument) {
    auto bundle = fs::absolute(bundleArgument).lexically_normal();
    auto config = readConfig(bundle);
    auto sarus = (installPrefix() / "bin" / "sarus").string();
    auto invocation = sarusInvocation(config, sarus, id, ownEnvironment());
    states.removeStale();
    StateRecord record;
    record.id = id;
    record.pid = ::getpid();
    record.startTime = processStartTime(record.pid).value_or(0);
    record.bundle = bundle.string();
    record.image = config["annotations"][imageAnnotation].get<std::string>();
    states.claim(record);
    // This process becomes sarus: the recorded pid is the container's sarus.
    auto argv = pointers(invocation.argv);
    auto envp = pointers(invocation.env);
    std::fflush(stdout);
    ::execve(sarus.c_str(), argv.data(), envp.data());
    int err = errno;
    states.remove(id);
    throw RuntimeError("cannot run " + sarus + ": " + std::strerror(err));
}

// A descriptor of the recorded process, taken before it is checked: the
// signal then reaches that process even if it ends and its pid is reused in
// between (Slurm runs kill and delete as root). -1 when it is gone.
int pidfdOfRunning(const StateRecord& record, uid_t owner) {
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, record.pid, 0));
    if (pidfd >= 0 && !isRunning(record, owner)) {
        ::close(pidfd);
        return -1;
    }
    return pidfd;
}

int signalPidfd(int pidfd, int signal) {
    int result = static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0));
    int error = errno;
    ::close(pidfd);
    errno = error;
    return result;
}

int kill(const StateDirectory& states, const std::string& id, int signal) {
    auto record = states.find(id);
    int pidfd = record ? pidfdOfRunning(*record, states.owner()) : -1;
    if (pidfd < 0) {
        throw RuntimeError("container '" + id + "' is not running");
    }
    if (signalPidfd(pidfd, signal) != 0) {
        throw RuntimeError("cannot signal container '" + id + "' (pid " + std::to_string(record->pid) +
                           "): " + std::strerror(errno));
    }
    return 0;
}

int remove(const StateDirectory& states, const std::string& id, bool force) {
    auto record = states.find(id);
    int pidfd = record ? pidfdOfRunning(*record, states.owner()) : -1;
    if (pidfd >= 0) {
        if (!force) {
            ::close(pidfd);
            throw RuntimeError("container '" + id + "' is running: kill it first, or delete --force");
        }
        signalPidfd(pidfd, SIGKILL);
        for (int i = 0; i < 100 && isRunning(*record, states.owner()); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
    states.remove(id);  // an unknown id is already deleted
    return 0;
}

// --user NAME: root acts on NAME's containers; anybody else only on their own.
uid_t ownerOf(const std::string& user) {
    if (user.empty()) {
        return ::geteuid();
    }
    const auto* entry = ::getpwnam(user.c_str());
    if (entry == nullptr) {
        throw RuntimeError("unknown user '" + user + "'");
    }
    if (::geteuid() != 0 && entry->pw_uid != ::geteuid()) {
        throw RuntimeError("--user " + user + ": only root acts on the containers of another user");
    }
    return entry->pw_uid;
}

int main(std::vector<std::string> args) {
    fs::path root;
    std::string user;
    while (!args.empty() && args[0].size() > 1 && args[0][0] == '-') {
        if (args[0] == "--help" || args[0] == "-h") {
            std::printf("%s", usage);
            return 0;
        }
        if (args[0] == "--root" && args.size() > 1) {
            root = args[1];
            args.erase(args.begin(), args.begin() + 2);
        } else if (args[0].rfind("--root=", 0) == 0) {
            root = args[0].substr(7);
            args.erase(args.begin());
        } else if (args[0] == "--user" && args.size() > 1) {
            user = args[1];
            args.erase(args.begin(), args.begin() + 2);
        } else {
            usageError("unknown option '" + args[0] + "'");
        }
    }
    if (args.empty()) {
        usageError("no command given");
    }
    auto command = args[0];
    if (command != "run" && command != "state" && command != "kill" && command != "delete") {
        usageError("unknown command '" + command + "' (create and start are not provided: use RunTimeRun)");
    }
    auto parsed = parseArguments(command, std::vector<std::string>(args.begin() + 1, args.end()));
    const auto& id = parsed.positional[0];
    auto owner = ownerOf(user);
    auto states = root.empty() ? StateDirectory::ofUser(owner) : StateDirectory(root, owner);
    if (command == "run") {
        if (owner != ::geteuid()) {
            throw RuntimeError("run: containers run as their user, not with --user");
        }
        return run(states, id, parsed.bundle);
    }
    if (command == "state") {
        auto record = states.find(id);
        std::printf("%s\n", stateDocument(id, record, record && isRunning(*record, owner)).dump().c_str());
        return 0;
    }
    if (command == "kill") {
        return kill(states, id, parseSignal(parsed.positional.size() > 1 ? parsed.positional[1] : "TERM"));
    }
    return remove(states, id, parsed.force);
}

}  // namespace

}  // namespace sarus::oci

int main(int argc, char** argv) {
    try {
        return sarus::oci::main(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sarus-oci-runtime: %s\n", e.what());
        return 1;
    }
}
