#!/usr/bin/env bash
# Makes this host ready for sarus' integration tests. Run as root; idempotent;
# says what it does. Steps:
#   1. install the test packages that are missing (Debian repositories only)
#   2. users: sarustest (with a subordinate uid/gid range, in group sarusgrp)
#      and sarusnosub (without any subordinate range)
#   3. /dev/fuse usable by unprivileged users
#   4. cgroups: leave no controller on the v2 side of a hybrid hierarchy
#   5. unprivileged user namespaces enabled; checked at the end (exit 1 if not)
set -uo pipefail

say() { echo "setup_host: $*"; }
warn() { echo "setup_host: WARNING: $*" >&2; }
fail=0

if [[ $(id -u) -ne 0 ]]; then
    echo "setup_host.sh: must run as root" >&2
    exit 1
fi

# --- 1. packages -------------------------------------------------------------
packages=(squashfs-tools squashfs-tools-ng python3-pytest busybox-static uidmap fuse3
          squashfuse fuse-overlayfs crun runc tini util-linux procps)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    say "packages: all installed (${packages[*]})"
else
    say "packages: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || warn "apt-get update failed"
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
        warn "apt-get install failed"
        fail=1
    fi
fi

# --- 2. users ----------------------------------------------------------------
set_subids() {   # set_subids USER "START:COUNT" | "" (no range)
    local user=$1 range=$2 f
    for f in /etc/subuid /etc/subgid; do
        [[ -e $f ]] || { touch "$f"; chmod 0644 "$f"; }
        local want=""
        [[ -n $range ]] && want="$user:$range"
        local have
        have=$(grep -E "^$user:" "$f" || true)
        if [[ "$have" != "$want" ]]; then
            sed -i "/^$user:/d" "$f"
            [[ -n $want ]] && echo "$want" >> "$f"
            say "$f: ${want:-no entry for $user} (was: ${have:-none})"
        fi
    done
}

if ! getent group sarusgrp >/dev/null; then
    say "groupadd sarusgrp"
    groupadd sarusgrp
fi
for user in sarustest sarusnosub; do
    if ! id "$user" >/dev/null 2>&1; then
        say "useradd $user"
        # useradd gives new users a subordinate range by itself when
        # /etc/subuid exists; set_subids below makes the entries exact.
        useradd --create-home --home-dir "/home/$user" --shell /bin/bash "$user"
    fi
    [[ -d /home/$user ]] || { mkdir -p "/home/$user"; chown "$user:" "/home/$user"; }
    chmod 0755 "/home/$user"
done
if ! id -nG sarustest | tr ' ' '\n' | grep -qx sarusgrp; then
    say "usermod -aG sarusgrp sarustest"
    usermod -aG sarusgrp sarustest
fi
set_subids sarustest 200000:65536
set_subids sarusnosub ""
say "users: $(id sarustest); $(id sarusnosub)"

# --- 3. /dev/fuse ------------------------------------------------------------
# Rootless sarus mounts the image with squashfuse and the overlay with
# fuse-overlayfs, which open /dev/fuse as the calling user. Debian creates it
# 0600 (root only) in environments without the usual udev rules, so open it
# up as udev does on a normal desktop (fusermount3 still enforces its policy).
# Not persistent across reboots: rerun this script after a reboot.
if [[ ! -e /dev/fuse ]]; then
    modprobe fuse 2>/dev/null || true
    [[ -e /dev/fuse ]] || { mknod -m 0666 /dev/fuse c 10 229 && say "created /dev/fuse"; }
fi
if [[ -c /dev/fuse ]]; then
    if [[ $(stat -c %a /dev/fuse) != 666 ]]; then
        say "chmod 0666 /dev/fuse"
        chmod 0666 /dev/fuse
    fi
    say "/dev/fuse: $(stat -c '%A %U:%G' /dev/fuse)"
else
    warn "/dev/fuse missing: FUSE tests will fail"
    fail=1
fi

# --- 4. cgroups --------------------------------------------------------------
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

# --- 5. user namespaces ------------------------------------------------------
if [[ -e /proc/sys/kernel/unprivileged_userns_clone ]] \
        && [[ $(cat /proc/sys/kernel/unprivileged_userns_clone) != 1 ]]; then
    say "sysctl kernel.unprivileged_userns_clone=1"
    sysctl -q -w kernel.unprivileged_userns_clone=1
fi
if [[ -e /proc/sys/kernel/apparmor_restrict_unprivileged_userns ]] \
        && [[ $(cat /proc/sys/kernel/apparmor_restrict_unprivileged_userns) != 0 ]]; then
    say "sysctl kernel.apparmor_restrict_unprivileged_userns=0"
    sysctl -q -w kernel.apparmor_restrict_unprivileged_userns=0
fi
if [[ $(cat /proc/sys/user/max_user_namespaces) -eq 0 ]]; then
    say "sysctl user.max_user_namespaces=15000"
    sysctl -q -w user.max_user_namespaces=15000
fi
say "user.max_user_namespaces = $(cat /proc/sys/user/max_user_namespaces)"

if out=$(runuser -u sarustest -- unshare --user --map-root-user id -u 2>&1) && [[ $out == 0 ]]; then
    say "check: sarustest can create a user namespace (unshare -Ur): OK"
else
    echo "setup_host: ********************************************************" >&2
    echo "setup_host: ERROR: unprivileged user namespaces do NOT work: $out" >&2
    echo "setup_host: ********************************************************" >&2
    fail=1
fi
if out=$(cd / && runuser -u sarustest -- unshare --user --map-root-user --map-auto \
        cat /proc/self/uid_map 2>&1) && grep -q 200000 <<<"$out"; then
    say "check: newuidmap maps sarustest's subordinate range: OK"
else
    warn "newuidmap with sarustest's subuid range failed: $out"
    fail=1
fi
if out=$(cd / && runuser -u sarusnosub -- unshare --user --map-root-user --map-auto true 2>&1); then
    warn "sarusnosub could map a subordinate range; it should have none"
    fail=1
else
    say "check: sarusnosub has no subordinate range: OK"
fi

if [[ $fail -ne 0 ]]; then
    say "done, WITH PROBLEMS (see above)"
    exit 1
fi
say "done: host ready"
