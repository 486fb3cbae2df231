// Privilege handling of a SUID sarus, kept small and obvious.
//
// Started as euid 0 by the SUID bit, sarus immediately acts as the caller
// (effective ids = real ids) and keeps root only as its saved uid. Root is
// taken back only inside RootScope, for namespace setup and mounts; every
// command that does not need it drops it for good with dropPermanently().
#pragma once

#include <sys/types.h>

namespace sarus::suid {

class Privileges {
public:
    // Call first thing in main(). Returns true when running with the SUID bit.
    static bool initialize();
    static bool elevated();  // SUID root is still available (saved uid 0)
    static uid_t callerUid();
    static gid_t callerGid();
    // setresuid(ruid, ruid, ruid): root can never be regained afterwards.
    static void dropPermanently();
};

// Effective root for the scope's lifetime; the caller's ids again afterwards.
class RootScope {
public:
    RootScope();
    ~RootScope();
    RootScope(const RootScope&) = delete;
    RootScope& operator=(const RootScope&) = delete;
};

}  // namespace sarus::suid
