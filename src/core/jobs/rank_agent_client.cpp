#include "jobs/rank_agent_client.hpp"

#include "common/error.hpp"
#include "common/process.hpp"
#include "common/unix_socket.hpp"

extern "C" {
#include "../rank_agent/rank_agent_protocol.h"
}

#include <cerrno>
#include <csignal>
#include <cstring>
#include <poll.h>
#include <sched.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

namespace sarus {

namespace {

std::string startPayload(const ContainerSpec& spec) {
    std::string payload = spec.cwd.empty() ? "/" : spec.cwd;
    payload.push_back('\0');
    for (const auto& arg : spec.args) {
        payload += arg;
        payload.push_back('\0');
    }
    for (const auto& variable : spec.env) {
        payload += variable;
        payload.push_back('\0');
    }
    return payload;
}

// The CPUs Slurm's task/affinity, Hydra's -bind-to or Open MPI's binding
// gave this rank's sarus: the agent forks the rank from the leader's, so it
// applies them to the rank's process. Empty when they cannot be read.
std::string cpuAffinity() {
    for (std::size_t bytes = sizeof(cpu_set_t); bytes <= RANK_AGENT_MAX_CPU_BYTES; bytes *= 2) {
        std::string mask(bytes, '\0');
        if (::sched_getaffinity(0, bytes, reinterpret_cast<cpu_set_t*>(mask.data())) == 0) {
            return mask;
        }
        if (errno != EINVAL) {
            break;
        }
    }
    return "";
}

// The NUMA memory policy (numactl, Slurm's --mem-bind) of this rank's
// sarus, for the same reason; `mode` -1 when it cannot be read (no NUMA).
struct MemoryPolicy {
    int mode = -1;
    std::string nodes;
};

MemoryPolicy memoryPolicy() {
    for (std::size_t bytes = sizeof(unsigned long); bytes <= RANK_AGENT_MAX_NODE_BYTES; bytes *= 2) {
        MemoryPolicy policy;
        policy.nodes.assign(bytes, '\0');
        if (::syscall(SYS_get_mempolicy, &policy.mode, policy.nodes.data(), bytes * 8, nullptr, 0UL) == 0) {
            return policy;
        }
        if (errno != EINVAL) {
            break;
        }
    }
    return {};
}

void sendStart(int connection, const rank_agent_start& start, const std::vector<int>& fds) {
    static_assert(RANK_AGENT_MAX_FDS <= maxSentDescriptors);
    if (sendWithDescriptors(connection, &start, sizeof start, fds) != static_cast<ssize_t>(sizeof start)) {
        throw systemError("cannot send the rank's command to the shared container", errno);
    }
}

void sendAll(int connection, const void* data, std::size_t size) {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
        auto n = ::send(connection, p, size, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            throw systemError("cannot send the rank's command to the shared container", errno);
        }
        p += n;
        size -= static_cast<std::size_t>(n);
    }
}

// Blocks the forwarded signals for the life of the rank and reads them from
// a signalfd instead, so that they travel in order with nothing lost.
class SignalReader {
public:
    SignalReader() : set_(forwardedSignalSet()) {
        ::sigprocmask(SIG_BLOCK, &set_, &previous_);
        fd_ = FileDescriptor(::signalfd(-1, &set_, SFD_CLOEXEC));
        if (fd_.get() < 0) {
            ::sigprocmask(SIG_SETMASK, &previous_, nullptr);
            throw systemError("cannot forward signals to the rank", errno);
        }
    }
    ~SignalReader() { ::sigprocmask(SIG_SETMASK, &previous_, nullptr); }
    SignalReader(const SignalReader&) = delete;
    SignalReader& operator=(const SignalReader&) = delete;
    int fd() const { return fd_.get(); }
    int next() const {
        signalfd_siginfo info{};
        return ::read(fd_.get(), &info, sizeof info) == sizeof info ? static_cast<int>(info.ssi_signo) : 0;
    }

private:
    sigset_t set_{};
    sigset_t previous_{};
    FileDescriptor fd_;
};

// The agent gets this rank's stdio, command and environment: it must be
// the caller's own process, whatever happened to the directory the socket
// was found in.
void checkAgentIsTheCallers(int connection) {
    auto peer = peerCredentials(connection);
    if (!peer || peer->uid != ::getuid()) {
        throw Error("the agent of the shared container runs as uid " + (peer ? std::to_string(peer->uid) : "?") +
                    ", not " + std::to_string(::getuid()) + ": refusing to hand it this rank");
    }
}

}  // namespace

int runRankInAgent(const FileDescriptor& connection, const ContainerSpec& spec) {
    if (spec.args.empty()) {
        throw Error("no command to run in the shared container");
    }
    checkAgentIsTheCallers(connection.get());
    std::vector<int> fds{STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO};
    fds.insert(fds.end(), spec.passFds.begin(), spec.passFds.end());
    if (fds.size() > RANK_AGENT_MAX_FDS) {
        throw Error("too many descriptors for the shared container (" + std::to_string(fds.size()) + ")");
    }
    auto payload = startPayload(spec);
    auto cpus = cpuAffinity();
    auto policy = memoryPolicy();
    rank_agent_start start{RANK_AGENT_MAGIC, static_cast<uint32_t>(spec.args.size()),
                           static_cast<uint32_t>(spec.env.size()), static_cast<uint32_t>(payload.size()),
                           static_cast<uint32_t>(cpus.size()), policy.mode,
                           static_cast<uint32_t>(policy.nodes.size())};
    if (payload.size() > RANK_AGENT_MAX_SIZE) {
        throw Error("the rank's command and environment exceed " + std::to_string(RANK_AGENT_MAX_SIZE) + " bytes");
    }
    SignalReader signals;
    sendStart(connection.get(), start, fds);
    sendAll(connection.get(), payload.data(), payload.size());
    sendAll(connection.get(), cpus.data(), cpus.size());
    sendAll(connection.get(), policy.nodes.data(), policy.nodes.size());
    for (;;) {
        pollfd polled[2] = {{connection.get(), POLLIN, 0}, {signals.fd(), POLLIN, 0}};
        if (::poll(polled, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw systemError("waiting for the rank", errno);
        }
        if (polled[1].revents & POLLIN) {
            int32_t signal = signals.next();
            if (signal > 0) {
                ::send(connection.get(), &signal, sizeof signal, MSG_NOSIGNAL);
            }
        }
        if (polled[0].revents) {
            int32_t code = 0;
            if (::recv(connection.get(), &code, sizeof code, MSG_WAITALL) == sizeof code) {
                return code;
            }
            throw Error("the container shared by this job step ended before this rank did");
        }
    }
}

bool stopRankAgent(const std::filesystem::path& socketPath) {
    auto connection = connectUnlessNobodyListens(socketPath);
    if (!connection) {
        return false;
    }
    rank_agent_start start{RANK_AGENT_MAGIC, 0, 0, 0, 0, -1, 0};
    sendStart(connection->get(), start, {});
    return true;
}

}  // namespace sarus
