// Entering the container's namespaces and knowing what we may do there.
#pragma once

#include <sys/types.h>

namespace hook {

// Joins the mount namespace of pid (the user namespace first when the
// container has its own and the mount namespace cannot be joined without it).
// A namespace we already are in is left alone. Throws sarus::Error.
void enterMountNamespace(pid_t pid);

// Makes the children forked from now on members of pid's PID namespace (this
// process itself stays where it is). Returns false, after a warning, when
// the namespace cannot be joined.
bool enterPidNamespace(pid_t pid);

// Whether this process is in the host's user namespace (its root is real root).
bool inInitialUserNamespace();

// Root of the host (euid 0 in the initial user namespace), whatever
// HOOK_ROOTLESS says: what such a hook runs on the image's input must give
// up that privilege.
bool isHostRoot();

// HOOK_ROOTLESS=true (any case), or the hook is not root of the initial user
// namespace: no identity switches, no cgroup writes.
bool isRootless();

}  // namespace hook
