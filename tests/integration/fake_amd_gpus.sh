#!/bin/sh
# fake_amd_gpus.sh NGPUS COMMAND...: runs COMMAND (as root, or through
# setpriv as a test user) in a private mount namespace whose /dev has the
# device nodes of NGPUS AMD GPUs: /dev/kfd and /dev/dri/cardN + renderD<128+N>
# with their by-path links. The nodes have the real DRM major (226) and an
# unused one for kfd (238) but no driver behind them: opening one fails with
# ENXIO where the devices cgroup allows it and EPERM where it does not.
# Run it under `unshare -m --propagation private`: the host's /dev is not
# touched (an overlay on a tmpfs takes the new nodes).
set -eu
gpus=$1
shift
scratch=/mnt  # hidden by a tmpfs in this namespace only: nothing to clean up on the host
mount -t tmpfs tmpfs "$scratch"
mkdir "$scratch/upper" "$scratch/work" "$scratch/host-dev"
mount --rbind /dev "$scratch/host-dev"
mount -t overlay overlay -o "lowerdir=/dev,upperdir=$scratch/upper,workdir=$scratch/work" /dev
# the overlay shows only devtmpfs itself: bring back the file systems mounted under /dev
for sub in pts shm mqueue hugepages; do
    if [ -d "$scratch/host-dev/$sub" ] && mountpoint -q "$scratch/host-dev/$sub"; then
        mount --rbind "$scratch/host-dev/$sub" "/dev/$sub"
    fi
done
mknod -m 666 /dev/kfd c 238 0
mkdir -p /dev/dri/by-path
n=0
while [ "$n" -lt "$gpus" ]; do
    mknod -m 666 "/dev/dri/card$n" c 226 "$n"
    mknod -m 666 "/dev/dri/renderD$((128 + n))" c 226 "$((128 + n))"
    ln -s "../card$n" "/dev/dri/by-path/pci-0000:c$n:00.0-card"
    ln -s "../renderD$((128 + n))" "/dev/dri/by-path/pci-0000:c$n:00.0-render"
    n=$((n + 1))
done
umount -l "$scratch/host-dev"
exec "$@"
