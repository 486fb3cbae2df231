#include "privileges.hpp"

#include "common/error.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <sys/prctl.h>
#include <unistd.h>

namespace sarus::suid {

namespace {
bool suidRoot = false;
uid_t realUid = 0;
gid_t realGid = 0;
}  // namespace

bool Privileges::initialize() {
    realUid = ::getuid();
    realGid = ::getgid();
    // Set-user-ID to another account than root (a prefix that was never
    // made root's): nothing of sarus may run as that account for its caller.
    uid_t effective = ::geteuid();
    if (effective != 0 && (effective != realUid || ::getegid() != realGid)) {
        if (::setresgid(realGid, realGid, realGid) != 0 || ::setresuid(realUid, realUid, realUid) != 0) {
            std::abort();
        }
        std::fprintf(stderr,
                     "sarus is set-user-ID or set-group-ID to another account than root (uid %u): "
                     "the installation was not finished; ask your administrator to run configure_installation.sh\n",
                     static_cast<unsigned>(effective));
        std::exit(1);
    }
    suidRoot = ::geteuid() == 0 && realUid != 0;
    if (suidRoot) {
        // Act as the caller from the first instruction on; root stays only in
        // the saved set-user-ID for RootScope.
        if (::setresgid(realGid, realGid, 0) != 0 || ::setresuid(realUid, realUid, 0) != 0) {
            std::abort();
        }
        // Not traceable, no core dump, /proc/PID owned by root: what root
        // holds in this process stays out of the caller's reach.
        ::prctl(PR_SET_DUMPABLE, 0);
    }
    return suidRoot;
}

bool Privileges::elevated() { return suidRoot; }
uid_t Privileges::callerUid() { return realUid; }
gid_t Privileges::callerGid() { return realGid; }

void Privileges::dropPermanently() {
    if (!suidRoot) {
        return;
    }
    if (::setresgid(realGid, realGid, realGid) != 0 || ::setresuid(realUid, realUid, realUid) != 0) {
        std::abort();
    }
    // Paranoia: make sure root cannot come back.
    if (::setuid(0) == 0 || ::seteuid(0) == 0) {
        std::abort();
    }
    suidRoot = false;
    // An ordinary process of the caller's from here on: newuidmap, for one,
    // needs /proc/PID of the sandbox to belong to the caller.
    ::prctl(PR_SET_DUMPABLE, 1);
}

RootScope::RootScope() {
    if (realUid == 0) {
        return;  // started by root itself: nothing to switch
    }
    if (!suidRoot) {
        throw Error("this operation needs the SUID installation of sarus (mode \"suid\")");
    }
    if (::setresuid(-1, 0, -1) != 0 || ::setresgid(-1, 0, -1) != 0) {
        throw systemError("cannot regain root privileges", errno);
    }
}

RootScope::~RootScope() {
    if (realUid == 0) {
        return;
    }
    if (::setresgid(-1, realGid, -1) != 0 || ::setresuid(-1, realUid, -1) != 0) {
        std::abort();  // never continue as root by accident
    }
}

}  // namespace sarus::suid
