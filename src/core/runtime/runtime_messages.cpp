#include "runtime/runtime_messages.hpp"

#include <fstream>

namespace sarus {

RuntimeFailure explainRuntimeError(const std::string& message) {
    RuntimeFailure failure;
    if (message.find("cgroups in hybrid mode not supported") != std::string::npos) {
        failure.explanation =
            "the OCI runtime refuses this host's hybrid cgroups (controllers left on the v2 side); "
            "as root, mount them in v1, e.g. 'mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o "
            "hugetlb cgroup /sys/fs/cgroup/hugetlb' (tools/prepare_host.sh does it)";
    } else if (message.find("executable file") != std::string::npos &&
               message.find("not found") != std::string::npos) {  // crun and runc wordings
        failure.exitCode = 127;
        // Sarus shows runc's line, which scripts (and Sarus's own CI) grep for:
        // crun says "executable file `NAME` not found in $PATH: ..." instead.
        auto open = message.find('`');
        auto close = open == std::string::npos ? open : message.find('`', open + 1);
        if (message.find("level=error") == std::string::npos && close != std::string::npos) {
            failure.sarusLine = "level=error msg=\"exec: \\\"" + message.substr(open + 1, close - open - 1) +
                                "\\\": executable file not found in $PATH\"";
        }
    } else if ((message.find("exec") != std::string::npos &&
                message.find("Permission denied") != std::string::npos) ||
               // crun's EPERM: the command exists but is not a regular file (e.g. a directory)
               message.find("open executable: Operation not permitted") != std::string::npos) {
        failure.exitCode = 126;
    }
    return failure;
}

RuntimeFailure runtimeFailure(const std::filesystem::path& runtimeLog) {
    std::ifstream in(runtimeLog);
    std::string line, last;
    while (std::getline(in, line)) {
        if (!line.empty()) {
            last = line;
        }
    }
    return last.empty() ? RuntimeFailure{} : explainRuntimeError(last);
}

}  // namespace sarus
