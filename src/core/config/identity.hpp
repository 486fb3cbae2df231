#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

namespace sarus {

// Who runs sarus: the container process gets exactly these ids.
struct Identity {
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> supplementaryGids;
    std::string userName;
    std::string home;
    std::string shell;

    // The real ids of this process (not the effective ones: a SUID sarus
    // acts for the user who started it).
    static Identity ofCaller();
};

}  // namespace sarus
