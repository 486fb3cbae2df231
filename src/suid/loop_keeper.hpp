// Kept image mounts in suid mode (see runtime/mount_keeper.hpp): a keeper
// per user, root, holding for each image a loop device and a detached,
// read-only, nosuid, nodev squashfs mount. The supervisor (root) sends it
// the image file that sarus opened as the caller and gets a descriptor of
// that detached mount, which the sandbox clones and attaches as its lower
// layer. The keeper resolves no path a user influences; its socket lies in
// a root-only directory and answers root alone, and the caller cannot
// signal or trace it.
#pragma once

#include "runtime/mount_keeper.hpp"

#include <chrono>
#include <filesystem>
#include <sys/types.h>

namespace sarus::suid {

// Where the keeper of uid serves, for the installation of configFile:
// /run/sarus/<uid>-<nameHash of configFile's path>.
KeeperPaths loopKeeperPaths(uid_t uid, const std::filesystem::path& configFile);

// In the supervisor (root): a claim on the kept mount of imageFd, whose
// only descriptor is the detached mount. Starts the keeper when none
// serves. Throws sarus::Error.
// Gives up when callerAliveFd turns readable (the caller is gone).
KeptMountClaim claimKeptLoopMount(const KeeperPaths& paths, std::chrono::seconds idleTime, int imageFd,
                                  int callerAliveFd);

}  // namespace sarus::suid
