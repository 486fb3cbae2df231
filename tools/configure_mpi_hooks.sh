#!/usr/bin/env bash
# Writes the MPI and glibc hook files of a sarus installation from the
# templates, for the host's MPICH-ABI MPI and glibc (installed at the top of
# the prefix, next to configure_installation.sh).
#   sudo configure_mpi_hooks.sh [options] [PREFIX]
#     --hooks-dir DIR          where to write (default PREFIX/etc/hooks.d)
#     --mpi-libs A:B           host MPI libraries (default: the MPICH ABI
#                              libraries of the host's ld cache, libmpi*.so.12)
#     --dependency-libs A:B    libraries the MPI needs (default: those ldd
#                              lists, glibc excluded); a container's newer
#                              library of the same soname is kept
#     --bind-mounts A:B        files, directories, devices the MPI needs
#     --compatibility TYPE     major (default), full or strict
#     --type NAME              only for `sarus run --mpi-type=NAME` (or
#                              defaultMPIType); the file is then mpi_hook-NAME.json
set -euo pipefail

hooks_dir= mpi_libs= dependency_libs=- bind_mounts= compatibility=major type=
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in
        --hooks-dir) hooks_dir=$2 ;;
        --mpi-libs) mpi_libs=$2 ;;
        --dependency-libs) dependency_libs=$2 ;;
        --bind-mounts) bind_mounts=$2 ;;
        --compatibility) compatibility=$2 ;;
        --type) type=$2 ;;
        *) echo "configure_mpi_hooks.sh: unknown option $1" >&2; exit 1 ;;
    esac
    shift 2
done
prefix=$(cd "${1:-$(dirname "$0")}" && pwd)
hooks_dir=${hooks_dir:-$prefix/etc/hooks.d}
templates=$prefix/etc/templates/hooks.d
[[ -f $templates/mpi_hook.json ]] || { echo "configure_mpi_hooks.sh: no templates in $templates" >&2; exit 1; }

join() { local IFS=:; echo "$*"; }

# real files, so that the ABI version is in the file names
host_mpi_libs() {
    /sbin/ldconfig -p | awk '$1 ~ /^libmpi(ch)?(cxx|fort)?\.so\.12$/ && $0 ~ /x86-64|64bit|aarch64/ {print $NF}' |
        xargs -r readlink -f | sort -u
}

glibc_libs() {
    # the sonames glibc installs, as the admin's example in the Sarus docs
    dpkg -L libc6 2>/dev/null | grep -E '^/(usr/)?lib(64)?/[^/]*/?(ld-linux[^/]*|lib[^/]*)\.so\.[0-9]+$' |
        awk -F/ '!seen[$NF]++'  # one path per soname
}

# needs the glibc array (glibc is the glibc hook's business)
dependencies_of() {
    local glibc=" $(printf '%s\n' "${glibc[@]}" | xargs -r -n1 basename | tr '\n' ' ') "
    ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u | while read -r soname path; do
        [[ $glibc == *" $soname "* ]] || readlink -f "$path"
    done | sort -u | grep -vxF -f <(printf '%s\n' "$@" | xargs -r readlink -f)
}

mapfile -t glibc < <(glibc_libs)
if [[ -z $mpi_libs ]]; then
    mapfile -t found < <(host_mpi_libs)
    [[ ${#found[@]} -gt 0 ]] || { echo "configure_mpi_hooks.sh: no MPICH-ABI MPI (libmpi*.so.12) in the host's ld cache; give --mpi-libs" >&2; exit 1; }
    mpi_libs=$(join "${found[@]}")
fi
if [[ $dependency_libs == - ]]; then
    IFS=: read -r -a libs <<< "$mpi_libs"
    mapfile -t deps < <(dependencies_of "${libs[@]}")
    dependency_libs=$(join "${deps[@]}")
fi

mkdir -p "$hooks_dir"
mpi_file=$hooks_dir/mpi_hook${type:+-$type}.json
sed -e "s|@PREFIX@|$prefix|g" -e "s|@MPI_LIBS@|$mpi_libs|" -e "s|@MPI_DEPENDENCY_LIBS@|$dependency_libs|" \
    -e "s|@BIND_MOUNTS@|$bind_mounts|" -e "s|@MPI_COMPATIBILITY_TYPE@|$compatibility|" \
    "$templates/mpi_hook.json" > "$mpi_file.new"
if [[ -n $type ]]; then
    sed -i "s|\"^com.hooks.mpi.enabled\$\": \"^true\$\"|&,\n            \"^com.hooks.mpi.type\$\": \"^$type\$\"|" "$mpi_file.new"
fi
sed -e "s|@PREFIX@|$prefix|g" -e "s|@GLIBC_LIBS@|$(join "${glibc[@]}")|" \
    "$templates/glibc_hook.json" > "$hooks_dir/glibc_hook.json.new"
chmod 644 "$mpi_file.new" "$hooks_dir/glibc_hook.json.new"
mv "$mpi_file.new" "$mpi_file"
mv "$hooks_dir/glibc_hook.json.new" "$hooks_dir/glibc_hook.json"
echo "Wrote $mpi_file (MPI_LIBS=$mpi_libs)"
echo "Wrote $hooks_dir/glibc_hook.json (${#glibc[@]} glibc libraries)"
echo "Make sure hooksDir in $prefix/etc/sarus.json is $hooks_dir"
