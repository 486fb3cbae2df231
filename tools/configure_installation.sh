#!/usr/bin/env bash
# Finalizes a sarus installation, as Sarus' configure_installation.sh does.
#   sudo configure_installation.sh [--mode suid|userns] [PREFIX]
# PREFIX defaults to the directory holding this script (it is installed at
# the top of the prefix). Idempotent; an existing etc/sarus.json is backed up
# to etc/sarus.json.bak before a new one is generated.
#   suid   (default): root-owned prefix, sarus SUID root, runc/crun as root
#   userns: no privilege at all; the SUID bit is removed
set -euo pipefail

mode=suid
if [[ ${1:-} == --mode ]]; then
    mode=${2:?--mode needs suid or userns}
    shift 2
fi
[[ $mode == suid || $mode == userns ]] || { echo "configure_installation.sh: unknown mode '$mode'" >&2; exit 1; }
prefix=$(cd "${1:-$(dirname "$0")}" && pwd)
if [[ $(id -u) -ne 0 ]]; then
    echo "configure_installation.sh: must run as root" >&2
    exit 1
fi
if [[ ! -x $prefix/bin/sarus || ! -d $prefix/etc/templates ]]; then
    echo "configure_installation.sh: $prefix is not a sarus installation (no bin/sarus or etc/templates)" >&2
    exit 1
fi

first_existing() {
    for candidate in "$@"; do
        [[ -x $candidate ]] && { echo "$candidate"; return; }
    done
    echo "$1"
}

if [[ $mode == suid ]]; then
    echo "Making $prefix root-owned and not writable by group or others"
    chown -R root:root "$prefix"
    chmod -R go-w "$prefix"
    echo "Setting sarus as SUID root"
    chmod 4755 "$prefix/bin/sarus"
    echo "Successfully set sarus as SUID root"
else
    chmod u-s "$prefix/bin/sarus"
fi

echo "Creating cached passwd and group databases"
getent passwd > "$prefix/etc/passwd"
getent group > "$prefix/etc/group"
chmod 644 "$prefix/etc/passwd" "$prefix/etc/group"

mkdir -p "$prefix/var/OCIBundleDir"
chmod 755 "$prefix/var" "$prefix/var/OCIBundleDir"

config=$prefix/etc/sarus.json
if [[ -f $config ]]; then
    cp -p "$config" "$config.bak"
    echo "Backed up the existing configuration to $config.bak"
fi
echo "Configuring $config ($mode mode)"
# crun starts containers about 15 ms faster than runc; both work. The
# static crun that tools/build_crun.sh makes starts faster than Debian's.
runtime=$(first_existing /usr/bin/crun /usr/bin/runc /usr/sbin/runc)
crun=/usr/bin/crun
if [[ -x $prefix/libexec/sarus/crun ]]; then
    runtime=$prefix/libexec/sarus/crun
    crun=$runtime
fi
init=$(first_existing /usr/bin/tini-static /usr/bin/tini)
sed -e "s|@PREFIX@|$prefix|g" \
    -e "s|\"runcPath\": \"[^\"]*\"|\"runcPath\": \"$runtime\"|" \
    -e "s|\"initPath\": \"[^\"]*\"|\"initPath\": \"$init\"|" \
    -e "s|\"crunPath\": \"[^\"]*\"|\"crunPath\": \"$crun\"|" \
    "$prefix/etc/templates/sarus.$mode.json" > "$config.new"
chmod 644 "$config.new"
mv "$config.new" "$config"
echo "Successfully configured $config"
echo "To execute sarus commands run first:"
echo "export PATH=$prefix/bin:\${PATH}"
