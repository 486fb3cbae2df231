#!/usr/bin/env bash
# Host prerequisites for sarus in userns mode (run once as root; idempotent;
# not persistent across reboots, so run it from the boot scripts too):
#   - /dev/fuse usable by every user (squashfuse and fuse-overlayfs run as the user)
#   - no cgroup controller left on the v2 side of a hybrid hierarchy (crun 1.8
#     refuses to run otherwise)
#   - unprivileged user namespaces enabled
#   - cgroup moves without an RCU grace period (favordynmods), for suid mode
set -uo pipefail

say() { echo "prepare_host: $*"; }
warn() { echo "prepare_host: WARNING: $*" >&2; }
fail=0

if [[ $(id -u) -ne 0 ]]; then
    echo "prepare_host.sh: must run as root" >&2
    exit 1
fi

# --- /dev/fuse ------------------------------------------------------------
# Rootless sarus mounts the image with squashfuse and the overlay with
# fuse-overlayfs, which open /dev/fuse as the calling user. Debian creates it
# 0600 (root only) in environments without the usual udev rules, so open it
# up as udev does on a normal desktop (fusermount3 still enforces its policy).
# Not persistent across reboots: rerun after a reboot (or add a udev rule:
#   KERNEL=="fuse", MODE="0666").
if [[ ! -e /dev/fuse ]]; then
    modprobe fuse 2>/dev/null || true
    [[ -e /dev/fuse ]] || { mknod -m 0666 /dev/fuse c 10 229 && say "created /dev/fuse"; }
fi
if [[ -c /dev/fuse ]]; then
    if [[ $(stat -c %a /dev/fuse) != 666 ]]; then
        say "chmod 0666 /dev/fuse"
        chmod 0666 /dev/fuse || { warn "chmod 0666 /dev/fuse failed: userns mode cannot mount images"; fail=1; }
    fi
    say "/dev/fuse: $(stat -c '%A %U:%G' /dev/fuse)"
else
    warn "/dev/fuse missing: FUSE tests will fail"
    fail=1
fi

# --- cgroups --------------------------------------------------------------
# This host boots with hybrid cgroups: the controllers on v1 hierarchies plus
# a v2 "unified" mount. crun 1.8 refuses to run ("cgroups in hybrid mode not
# supported") as long as any controller is still attached to the v2 side.
# Controllers that nobody mounted in v1 (here hugetlb) stay on v2, so mount
# each of them as a v1 hierarchy; that moves it off the v2 mount, after which
# crun treats the host as plain v1.
if [[ -d /sys/fs/cgroup/unified && -r /sys/fs/cgroup/unified/cgroup.controllers ]]; then
    left=$(cat /sys/fs/cgroup/unified/cgroup.controllers)
    for c in $left; do
        if mountpoint -q "/sys/fs/cgroup/$c"; then
            continue
        fi
        say "mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c"
        mkdir -p "/sys/fs/cgroup/$c"
        mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" || { warn "mounting $c failed"; fail=1; }
    done
    left=$(cat /sys/fs/cgroup/unified/cgroup.controllers)
    say "cgroups: controllers left on the v2 (unified) side: '${left}'"
    [[ -z $left ]] || { warn "crun will refuse hybrid cgroups"; fail=1; }
else
    say "cgroups: no hybrid v2 mount at /sys/fs/cgroup/unified ($(stat -f -c %T /sys/fs/cgroup))"
fi

# --- cgroup migration latency --------------------------------------------
# In suid mode the runtime moves each container into its cgroups (the device
# whitelist needs them). Every move waits for an RCU grace period unless a
# cgroup2 hierarchy is mounted with favordynmods (Linux >= 6.0): measured on
# this kind of VM, 9-28 ms per container start without it, 0.15 ms with it.
# The flag acts on the kernel's global cgroup lock, so it also speeds up the
# v1 hierarchies of a hybrid host; its price is a slightly slower fork/exit.
cgroup2=$(findmnt -n -t cgroup2 -o TARGET 2>/dev/null | head -n 1)
if [[ -z $cgroup2 ]]; then
    say "cgroups: no cgroup2 mount, favordynmods not applicable"
elif findmnt -n -o OPTIONS "$cgroup2" | tr ',' '\n' | grep -qx favordynmods; then
    say "cgroups: $cgroup2 already mounted with favordynmods"
elif mount -o remount,favordynmods "$cgroup2" 2>/dev/null; then
    say "mount -o remount,favordynmods $cgroup2"
else
    warn "this kernel has no favordynmods: in suid mode each container start waits for an RCU grace period"
fi

# --- user namespaces ------------------------------------------------------
# Sets a sysctl and reads it back: a read-only /proc/sys (a container) fails.
set_sysctl() {
    local key=$1 value=$2
    say "sysctl $key=$value"
    sysctl -q -w "$key=$value" 2>/dev/null
    if [[ $(sysctl -n "$key" 2>/dev/null) != "$value" ]]; then
        warn "could not set $key=$value: unprivileged user namespaces stay restricted"
        fail=1
    fi
}
if [[ -e /proc/sys/kernel/unprivileged_userns_clone ]] \
        && [[ $(cat /proc/sys/kernel/unprivileged_userns_clone) != 1 ]]; then
    set_sysctl kernel.unprivileged_userns_clone 1
fi
if [[ -e /proc/sys/kernel/apparmor_restrict_unprivileged_userns ]] \
        && [[ $(cat /proc/sys/kernel/apparmor_restrict_unprivileged_userns) != 0 ]]; then
    set_sysctl kernel.apparmor_restrict_unprivileged_userns 0
fi
if [[ $(cat /proc/sys/user/max_user_namespaces) -eq 0 ]]; then
    set_sysctl user.max_user_namespaces 15000
fi
say "user.max_user_namespaces = $(cat /proc/sys/user/max_user_namespaces)"


if [[ $fail -ne 0 ]]; then
    say "done, WITH PROBLEMS (see above)"
    exit 1
fi
say "done: host ready for unprivileged containers"
