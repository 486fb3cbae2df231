#!/usr/bin/python3
"""Builds openmpi.tar, the docker-archive test image with the host's Open MPI.

Usage: make_openmpi_image.py [OUTDIR]   (default /var/tmp/sarus-test-images/openmpi)

The host is Debian bookworm with Open MPI 4.1.4 (openmpi-bin, libopenmpi3,
openmpi-common) built against the external PMIx 4.2.2 (libpmix2); Slurm's
pmix plugin speaks the same PMIx. The image holds, at the host's paths:

* every file of those four packages but documentation, manual pages and
  headers: mpirun (orterun), orted, ompi_info, the libraries, the MCA
  components in /usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3, PMIx's
  components in /usr/lib/x86_64-linux-gnu/pmix2/lib/pmix, /etc/openmpi,
  the help files in /usr/share/openmpi and .../pmix2/share; `mpirun` and
  `mpiexec` are links to the .openmpi names (Debian's alternatives);
* the host's glibc and the host's copy of every library that the host's
  loader maps for any of those programs or components (ldd closure: hwloc,
  libevent, libfabric, UCX, verbs, PSM...);
* /usr/local/bin/ring, RING_C below compiled with mpicc.openmpi;
* a static busybox as /bin/sh with make_images.py's applets (plus a few
  that test scripts use), /etc/ld.so.cache from the host's `ldconfig -r`.

Open MPI's prefix is /usr, as on the host, so orted is /usr/bin/orted: a
remote shell whose PATH has /usr/bin (Dropbear's /usr/local/bin:/usr/bin:/bin)
finds it without `mpirun --prefix`.

The image is checked before it is written: `ompi_info` must open every
component, and `mpirun --mca plm isolated -n 2 ring` (no ssh in the image)
must send its message round, run as root in the staged tree (chroot in new
mount and PID namespaces with /proc, /dev, /sys, /tmp and /dev/shm), which
is why this script must run as root. The archive (28 MB, 7 to 25 s) is
rebuilt when it is older than this script, make_mpi_images.py or
make_images.py, or when the host's versions of those packages (or of libc6)
differ from the ones recorded in openmpi.tar.versions; otherwise it is left
alone (and then no root is needed). The output is reproducible: tar
entries as make_images.py writes them.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_images as mi  # noqa: E402  (the archive writer and tar helpers)
import make_mpi_images as mmi  # noqa: E402  (Rootfs, ldd closure, busybox)

DEFAULT_OUTDIR = "/var/tmp/sarus-test-images/openmpi"
IMAGE = "openmpi.tar"
PACKAGES = ["openmpi-bin", "openmpi-common", "libopenmpi3", "libpmix2"]
VERSIONED = PACKAGES + ["libc6"]
INPUTS = [os.path.abspath(__file__), mmi.__file__, mi.SCRIPT]
SKIP = re.compile(r"^/usr/share/(doc|man|lintian)/|/include(/|$)")
APPLETS = mi.BUSYBOX_APPLETS + ["[", "tr", "sed", "awk", "cut", "uname", "basename", "dirname",
                                "mktemp", "rmdir", "cp", "mv", "chmod", "xargs", "timeout", "find"]
ALTERNATIVES = {"usr/bin/mpirun": "mpirun.openmpi", "usr/bin/mpiexec": "mpiexec.openmpi"}
CONFIG = {"Env": [mi.DEFAULT_PATH], "Cmd": ["/bin/sh"], "WorkingDir": "/"}

# Every rank prints "rank R of N on HOST library: Open MPI vX.Y.Z"; then a
# message goes once around the ring (0 -> 1 -> ... -> N-1 -> 0), each rank
# appending "R@HOST", and rank 0 prints "ring ok: N ranks: 0@h 1@h ...":
# every rank took part, in order, on the host it says. Then an MPI_Allreduce
# of the ranks, printed by rank 0 as "allreduce ok: sum S". Exit status 1
# when the ring comes back wrong. Works with N = 1.
RING_C = r"""
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX 65536

int main(int argc, char **argv)
{
    static char ring[MAX], expected[32];
    char host[256], version[MPI_MAX_LIBRARY_VERSION_STRING];
    int rank, size, len, sum = -1, status = 0;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_library_version(version, &len);
    version[strcspn(version, ",\n")] = '\0';
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    printf("rank %d of %d on %s library: %s\n", rank, size, host, version);
    fflush(stdout);

    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    if (rank == 0) {
        MPI_Request req;
        static char start[300];
        snprintf(start, sizeof start, "0@%s", host);
        MPI_Isend(start, (int)strlen(start) + 1, MPI_CHAR, next, 0, MPI_COMM_WORLD, &req);
        MPI_Recv(ring, MAX, MPI_CHAR, prev, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
        snprintf(expected, sizeof expected, " %d@", size - 1);
        if (size == 1 || strstr(ring, expected)) {
            printf("ring ok: %d ranks: %s\n", size, ring);
        } else {
            printf("ring BROKEN: %d ranks: %s\n", size, ring);
            status = 1;
        }
        fflush(stdout);
    } else {
        MPI_Recv(ring, MAX - 300, MPI_CHAR, prev, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        len = (int)strlen(ring);
        snprintf(ring + len, MAX - len, " %d@%s", rank, host);
        MPI_Send(ring, (int)strlen(ring) + 1, MPI_CHAR, next, 0, MPI_COMM_WORLD);
    }
    MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("allreduce ok: sum %d\n", sum);
        fflush(stdout);
    }
    MPI_Finalize();
    return status;
}
"""


def log(msg):
    print(f"make_openmpi_image: {msg}", flush=True)


def run(argv, **kw):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True, **kw).stdout


def host_versions():
    out = run(["dpkg-query", "-W", "-f", "${Package} ${Version}\n"] + VERSIONED)
    return "".join(sorted(line + "\n" for line in out.splitlines()))


def in_image(host_path):
    """/lib/x/y -> usr/lib/x/y (merged /usr, as the rootfs is)."""
    rel = host_path.lstrip("/")
    top = rel.split("/", 1)[0]
    return f"usr/{rel}" if top in ("bin", "lib", "lib64", "sbin") else rel


def is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def package_files():
    """Host paths of the packages' files and symbolic links worth having."""
    files = []
    for line in run(["dpkg-query", "-L"] + PACKAGES).splitlines():
        if not line.startswith("/") or SKIP.search(line):
            continue
        if os.path.islink(line) or os.path.isfile(line):
            files.append(line)
    return sorted(set(files))


def stage(rootfs, inputs):
    """Fills the rootfs; returns (ELF files of the packages, libraries they need)."""
    elves = []
    for path in package_files():
        rel = in_image(path)
        os.makedirs(os.path.dirname(rootfs.abs(rel)), exist_ok=True)
        if os.path.islink(path):
            rootfs.link(rel, os.readlink(path))
        else:
            shutil.copy2(path, rootfs.abs(rel))
            if is_elf(path):
                elves.append(path)
    for rel, target in ALTERNATIVES.items():
        rootfs.link(rel, target)
    ring = os.path.join(inputs.tmpdir, "ring")
    with open(ring + ".c", "w") as f:
        f.write(RING_C)
    subprocess.run(["mpicc.openmpi", "-O2", "-Wall", "-o", ring, ring + ".c"], check=True)
    rootfs.copy(ring, "usr/local/bin/ring")
    mmi.add_host_glibc(rootfs, inputs)
    closure = mmi.ldd_closure(elves + [ring])
    for needed, path in sorted(closure.items()):
        if not os.path.lexists(rootfs.abs(in_image(path))):
            rootfs.add_lib(path, needed)
    versions = dict(line.split(" ", 1) for line in host_versions().splitlines())
    rootfs.add_etc("openmpi", {k.replace("-", "_").upper(): v for k, v in versions.items()})
    rootfs.make_ld_cache()
    return len(elves), len(closure)


# The staged tree as a small machine: new mount and PID namespaces, the
# tree's own /proc, /dev (the host's, bound), /tmp and /dev/shm.
CHROOT_SCRIPT = r"""
set -e
root=$1; shift
mount --make-rprivate /
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --rbind /sys "$root/sys"
mount -t tmpfs tmpfs "$root/dev/shm"
mount -t tmpfs tmpfs "$root/tmp"
exec chroot "$root" "$@"
"""


def check(rootfs, argv, *expected, forbidden=()):
    env = {"PATH": mi.DEFAULT_PATH.split("=", 1)[1], "HOME": "/root"}
    r = subprocess.run(["unshare", "--mount", "--pid", "--fork", "sh", "-c", CHROOT_SCRIPT, "sh",
                        rootfs.path] + argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=120, env=env)
    bad = [f for f in forbidden if f in r.stdout]
    if r.returncode != 0 or bad or not all(e in r.stdout for e in expected):
        sys.exit(f"make_openmpi_image: check failed: {' '.join(argv)} exited {r.returncode}, "
                 f"expected {expected!r}{f', found {bad!r}' if bad else ''}; output:\n{r.stdout}")
    log(f"  check ok: {' '.join(argv)} -> {r.stdout.strip().splitlines()[-1]!r}")
    return r.stdout


def build(outdir, tmpdir):
    begin = time.time()
    inputs = mmi.Inputs(outdir, tmpdir)
    rootfs = mmi.Rootfs(os.path.join(tmpdir, "rootfs"))
    rootfs.copy(inputs.busybox, "usr/bin/busybox")
    for applet in APPLETS:
        rootfs.link(f"usr/bin/{applet}", "busybox")
    elves, libs = stage(rootfs, inputs)
    log(f"staged {elves} ELF files of {', '.join(PACKAGES)} and {libs} libraries they need")
    version = run(["dpkg-query", "-W", "-f", "${Version}", "libopenmpi3"]).split("-")[0]
    info = check(rootfs, ["ompi_info"], f"Open MPI: {version}",
                 forbidden=("unable to open", "unable to be opened", "not found", "WARNING:", "ERROR:"))
    if "MCA pmix: ext3x" not in info or "MCA btl: tcp" not in info:
        sys.exit(f"make_openmpi_image: ompi_info lacks pmix ext3x or btl tcp:\n{info}")
    check(rootfs, ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "plm", "isolated",
                  "-n", "2", "ring"],
          "ring ok: 2 ranks: 0@", "allreduce ok: sum 1", f"library: Open MPI v{version}")
    layer = rootfs.layer(f"openmpi: the host's Open MPI {version} and PMIx, ring, busybox")
    data = mi.docker_archive([layer], CONFIG, "openmpi:latest")
    log(f"built in {time.time() - begin:.1f} s, {len(data) / 1e6:.1f} MB")
    return data


def up_to_date(outdir):
    image = os.path.join(outdir, IMAGE)
    stamp = image + ".versions"
    if not (os.path.exists(image) and os.path.exists(stamp)):
        return False
    if os.path.getmtime(image) <= max(os.path.getmtime(p) for p in INPUTS):
        return False
    with open(stamp) as f:
        return f.read() == host_versions()


def main(argv):
    outdir = mi.output_directory(argv, __doc__.strip().splitlines()[2], DEFAULT_OUTDIR)
    if outdir is None:
        return 2
    if up_to_date(outdir):
        log(f"{os.path.join(outdir, IMAGE)} is up to date")
        return 0
    if os.geteuid() != 0:
        sys.exit("make_openmpi_image: must run as root (ldconfig -r, chroot, namespaces)")
    for tool in ("mpicc.openmpi", "orted", "ompi_info"):
        if not shutil.which(tool):
            sys.exit(f"make_openmpi_image: no {tool} on the host: run tools/install_dependencies.sh --tests")
    with tempfile.TemporaryDirectory(prefix="sarus-make-openmpi-image-") as tmpdir:
        versions = host_versions()
        mi.write_atomic(os.path.join(outdir, IMAGE), build(outdir, tmpdir))
        mi.write_atomic(os.path.join(outdir, IMAGE + ".versions"), versions.encode())
        log(f"wrote {os.path.join(outdir, IMAGE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
