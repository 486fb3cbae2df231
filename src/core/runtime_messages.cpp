#include "runtime_messages.hpp"

#include <fstream>
#include <regex>

namespace sarus {

std::string explainRuntimeError(const std::string& message) {
    if (message.find("cgroups in hybrid mode not supported") != std::string::npos) {
        return "the OCI runtime refuses this host's hybrid cgroups (controllers left on the v2 side); "
               "as root, mount them in v1, e.g. 'mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o "
               "hugetlb cgroup /sys/fs/cgroup/hugetlb' (tools/prepare_host.sh does it)";
    }
    std::smatch match;
    static const std::regex notFound("executable file `([^`]*)` not found");
    if (std::regex_search(message, match, notFound)) {
        return "command '" + match[1].str() + "' not found in the container";
    }
    static const std::regex execFailed("exec(?:ve)? `([^`]*)`[^:]*: (.*)");
    if (std::regex_search(message, match, execFailed)) {
        return "cannot execute '" + match[1].str() + "' in the container: " + match[2].str();
    }
    static const std::regex noSource("(?:mount|open) `([^`]*)`.*No such file or directory");
    if (std::regex_search(message, match, noSource)) {
        return "container runtime: " + match[1].str() + ": No such file or directory";
    }
    return "container runtime: " + message;
}

std::string runtimeFailure(const std::filesystem::path& runtimeLog) {
    std::ifstream in(runtimeLog);
    std::string line, last;
    while (std::getline(in, line)) {
        if (!line.empty()) {
            last = line;
        }
    }
    if (last.empty()) {
        return "";
    }
    // crun's text log lines start with a timestamp and a level: keep the message.
    static const std::regex prefix("^[0-9T:.+Z-]+ ?(?:error|warning)?:? ?");
    return explainRuntimeError(std::regex_replace(last, prefix, ""));
}

}  // namespace sarus
