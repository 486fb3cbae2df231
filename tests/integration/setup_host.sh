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
          squashfuse fuse-overlayfs crun runc tini util-linux procps
          docker-registry skopeo apache2-utils curl podman)
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

# --- 3-5. /dev/fuse, cgroups, user namespaces: the same host preparation an
# admin runs (tools/prepare_host.sh) ------------------------------------------
"$(cd "$(dirname "$0")/../.." && pwd)/tools/prepare_host.sh" || fail=1

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
