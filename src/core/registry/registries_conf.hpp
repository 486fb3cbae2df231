// containers-registries.conf(5), as skopeo (which Sarus 1.7 pulls with)
// reads it: which registries are insecure (HTTPS without verification, then
// plain HTTP) and which are blocked. Both the version 2 format
// ([[registry]] tables with location or prefix, insecure, blocked) and the
// version 1 one ([registries.insecure] and [registries.block] lists) are
// read; mirrors and search registries are not used (a reference names its
// registry, as with skopeo's docker:// transport).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace sarus {

struct RegistriesConf {
    std::vector<std::string> insecure;  // registry locations or prefixes
    std::vector<std::string> blocked;
    std::vector<std::filesystem::path> files;  // what was read, for messages
};

// Parses one file's text; throws sarus::Error naming `what` and the problem.
RegistriesConf parseRegistriesConf(const std::string& text, const std::string& what);

// $CONTAINERS_REGISTRIES_CONF when set; else ~/.config/containers/registries.conf
// when it exists, else /etc/containers/registries.conf; then the *.conf
// files of the matching registries.conf.d directory, in name order. A
// missing file is no error.
RegistriesConf readRegistriesConf(const std::map<std::string, std::string>& environment,
                                  const std::filesystem::path& home);

// The first entry that covers server/repository (an entry "host[:port]"
// covers all of that registry, "host[:port]/path" what lies below the path,
// "*.domain" every host of the domain), or "".
std::string matchingEntry(const std::vector<std::string>& entries, const std::string& server,
                          const std::string& repository);

}  // namespace sarus
