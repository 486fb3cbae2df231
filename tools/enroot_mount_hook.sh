#!/bin/sh
# Adapter running sarus' mount_hook as an enroot hook: copy it (root-owned,
# 0755) to $ENROOT_SYSCONF_PATH/hooks.d/, named e.g. 50-sarus-mount.sh, and
# set the mounts in MOUNT_HOOK_ARGS below (the `sarus run` --mount/--device
# formats; no spaces inside one argument).
#
# enroot runs its hooks inside the container's namespaces, as root of its
# user namespace, with ENROOT_ROOTFS (and ENROOT_ENVIRON, the container's
# environment file). The hook wants the OCI state on stdin and a bundle
# config.json: this script writes both for it, with pid 0 ("already inside")
# and HOOK_ROOTLESS=true (an enroot container is rootless: no cgroup writes).
set -eu

MOUNT_HOOK=${MOUNT_HOOK:-@PREFIX@/bin/mount_hook}
MOUNT_HOOK_ARGS=${MOUNT_HOOK_ARGS:-}

[ -n "${ENROOT_ROOTFS:-}" ] || { echo "[hook] [ERROR] enroot adapter: ENROOT_ROOTFS is not set" >&2; exit 1; }
[ -n "$MOUNT_HOOK_ARGS" ] || exit 0

bundle=$(mktemp -d)
trap 'rm -rf "$bundle"' EXIT

# JSON string of $1 (backslashes and double quotes escaped; enroot's
# environment file has one NAME=VALUE per line).
json_string() {
    printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

{
    printf '{"ociVersion": "1.0.2", "root": {"path": %s}, "process": {"args": [], "env": [' \
        "$(json_string "$ENROOT_ROOTFS")"
    separator=""
    if [ -n "${ENROOT_ENVIRON:-}" ] && [ -r "$ENROOT_ENVIRON" ]; then
        while IFS= read -r line; do
            case "$line" in *=*) printf '%s%s' "$separator" "$(json_string "$line")"; separator=", " ;; esac
        done < "$ENROOT_ENVIRON"
    fi
    printf ']}}\n'
} > "$bundle/config.json"

printf '{"ociVersion": "1.0.2", "id": "enroot", "status": "created", "pid": 0, "bundle": %s}\n' \
    "$(json_string "$bundle")" |
    env HOOK_ROOTLESS=true ${LDCONFIG_PATH:+LDCONFIG_PATH=$LDCONFIG_PATH} "$MOUNT_HOOK" $MOUNT_HOOK_ARGS
