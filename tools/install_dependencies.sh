#!/usr/bin/env bash
# Installs, from Debian's repositories only, everything sarus needs to build,
# run and be tested. Idempotent: apt-get skips what is already there.
#   tools/install_dependencies.sh            build + runtime packages
#   tools/install_dependencies.sh --tests    also the packages the test suite uses
#   tools/install_dependencies.sh --bench    those and what bench/ compares against
set -euo pipefail

build_packages=(
    build-essential cmake pkg-config
    libmount-dev libcap-dev nlohmann-json3-dev libvalijson-dev libtoml11-dev libarchive-dev
    libcurl4-openssl-dev libcli11-dev libgtest-dev libsquashfs-dev libzstd-dev zlib1g-dev liblz4-dev libisal-dev libfuse3-dev
    # tools/build_dropbear.sh: the SSH hook's static Dropbear, from Debian's
    # source package (apt-get source needs dpkg-source), linked with musl
    musl-tools dpkg-dev debian-archive-keyring
    # tools/build_crun.sh: a static crun from Debian's source package
    libseccomp-dev libyajl-dev libtool python3
)
runtime_packages=(
    squashfuse fuse-overlayfs fuse3 crun runc uidmap tini squashfs-tools ca-certificates libisal2
)
test_packages=(
    python3 python3-pytest busybox-static util-linux procps psmisc file
    docker-registry skopeo apache2-utils curl podman
    mpich libmpich-dev patchelf
    # test_shared_container.py gives ranks their own NUMA memory policy
    numactl
    clang libclang-rt-14-dev
    # test_hooks.py delays crun's writes to force a race a hook can win
    strace
    # test_pull.py pushes zstd layers
    zstd
    # the Slurm test cluster (tests/integration/slurm_cluster.py): Slurm 22.05
    # daemons and clients, munge, iproute2 for its bridge and veths, and Open
    # MPI 4.1 (PMIx only, through libpmix2) next to MPICH (PMI-2). Open MPI
    # takes the mpicc/mpiexec alternatives: MPICH is mpicc.mpich/mpiexec.mpich.
    slurm-wlm slurmctld slurmd slurm-client munge iproute2
    openmpi-bin libopenmpi-dev libpmix2
)

# bench/pull_benchmark.py runs Sarus 1.7's pipeline (skopeo, umoci,
# mksquashfs); bench/make_python_image.sh debootstraps its Python image, and
# startup_benchmark.py imports numpy on the host too.
bench_packages=(umoci debootstrap zstd python3-numpy)

packages=("${build_packages[@]}" "${runtime_packages[@]}")
case "${1:-}" in
    --tests) packages+=("${test_packages[@]}") ;;
    --bench) packages+=("${test_packages[@]}" "${bench_packages[@]}") ;;
    "") ;;
    *) echo "install_dependencies.sh: unknown option '$1' (use --tests or --bench)" >&2; exit 1 ;;
esac

if [[ $(id -u) -ne 0 ]]; then
    echo "install_dependencies.sh: must run as root (it calls apt-get)" >&2
    exit 1
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    echo "All dependencies already installed."
    exit 0
fi
echo "Installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
