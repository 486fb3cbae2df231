#!/usr/bin/python3
"""Builds the docker-archive test images of the MPI and glibc hooks.

Usage: make_mpi_images.py [OUTDIR]     (default /var/tmp/sarus-test-images/mpi)

The host is Debian bookworm with MPICH 4.0.2 (libmpich.so.12.2.2, soname
libmpich.so.12). The MPI hook swaps a container's MPI library for the host's
when their ABI versions (from the file names) are compatible under
MPI_COMPATIBILITY_TYPE: "major" needs equal majors (the 12 of libmpich.so.12);
"full" also wants the container's minor (the 1 of libmpich.so.12.1.10) not
newer than the host's, and only warns when it is; "strict" needs equal majors
and minors. The glibc hook injects the host's glibc into containers whose
glibc is older than the host's and leaves newer ones alone.

  mpich-older.tar       bullseye's MPICH 3.4.1, libmpich.so.12.1.10: same major,
                        older minor: fine for major and full, error for strict.
  mpich-newer-minor.tar the same library renamed libmpich.so.12.9.0, minor 9 >
                        host's 2: fine for major, a warning for full, error for
                        strict.
  mpich-major-only.tar  the same library as a plain file libmpich.so.12 (no
                        minor in any name): fine for major and full, error for
                        strict ("container library has no minor").
  mpich-major13.tar     the same library patched to soname libmpich.so.13
                        (file libmpich.so.13.0.0), no libmpich.so.12: majors
                        differ, error for every type; the programs cannot even
                        start without the hook.
  no-mpi.tar            host glibc, no MPI library: the MPI hook has nothing
                        to do.
  glibc-older.tar       bullseye's glibc 2.31: /usr/local/bin/hello (built
                        against the host's 2.36, needs GLIBC_2.34) fails
                        unless the glibc hook injects the host's glibc.
  glibc-newer.tar       trixie's glibc 2.41: hello runs; nothing to inject.

The mpich-* images carry the host's glibc and the host's copies of every
library the host's libmpich needs (so that the host MPI library injected by
the hook finds its dependencies), plus /usr/local/bin/mpi_ring and
/usr/local/bin/mpi_pingpong compiled on the host with mpicc.mpich from
tests/images/mpi/*.c. Every image has a static busybox as /bin/sh (with the
applets of make_images.py), an /etc/ld.so.cache made with the host's
`ldconfig -r`, /etc/sarus-test-image (name and versions), Env PATH and Cmd
/bin/sh, in one layer, merged-/usr layout (/bin, /lib, /lib64 and /sbin are
links into /usr; libraries in /usr/lib/x86_64-linux-gnu).

.debs of other suites come from tests/images/fetch_debs.sh (private apt
setup, signatures checked); busybox-static like in make_images.py. Tar entries
are deterministic (make_images.py's MTIME, owners, order). Each image is
checked before it is written by running its programs with chroot, which with
`ldconfig -r` is why this script must run as root. An archive newer than all
inputs (this script, make_images.py, fetch_debs.sh, the .c sources) is left
alone. MANIFEST.txt in OUTDIR lists the archives and the versions inside.
"""

import functools
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_images as mi  # noqa: E402  (the archive writer and tar helpers)

DEFAULT_OUTDIR = "/var/tmp/sarus-test-images/mpi"
DEB_CACHE = "/var/tmp/sarus-test-debs"
FETCH_DEBS = os.path.join(HERE, "fetch_debs.sh")
MPI_SOURCES = sorted(glob.glob(os.path.join(HERE, "mpi", "*.c")))
HELLO_SOURCE = os.path.join(HERE, "glibc", "hello.c")
INPUTS = [os.path.abspath(__file__), mi.SCRIPT, FETCH_DEBS, HELLO_SOURCE] + MPI_SOURCES

LIBDIR = "usr/lib/x86_64-linux-gnu"
HOST_LIBDIRS = ["/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu"]
INTERP = "ld-linux-x86-64.so.2"
OLD_SUITE, NEW_SUITE = "bullseye", "trixie"
CONFIG = {"Env": [mi.DEFAULT_PATH], "Cmd": ["/bin/sh"]}

IMAGES = [
    ("mpich-older.tar", "MPICH 3.4.1 as libmpich.so.12.1.10 (minor 1 < host's 2)"),
    ("mpich-newer-minor.tar", "MPICH 3.4.1 renamed libmpich.so.12.9.0 (minor 9 > host's 2)"),
    ("mpich-major-only.tar", "MPICH 3.4.1 as a plain file libmpich.so.12 (no minor)"),
    ("mpich-major13.tar", "MPICH 3.4.1 patched to soname libmpich.so.13 (libmpich.so.13.0.0)"),
    ("no-mpi.tar", "host glibc, busybox, hello; no MPI library"),
    ("glibc-older.tar", "bullseye glibc + hello built against the host glibc (cannot run)"),
    ("glibc-newer.tar", "trixie glibc + hello"),
]


def log(msg):
    print(f"make_mpi_images: {msg}", flush=True)


def run(argv, **kw):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True, **kw).stdout


# --------------------------------------------------------------------------
# Inputs: .debs, host files, compiled programs


def upstream_version(deb):
    """'libc6_2.31-13+deb11u11_amd64.deb' -> '2.31'."""
    version = os.path.basename(deb).split("_")[1].replace("%3a", ":")
    return version.split(":")[-1].rsplit("-", 1)[0]


def readelf_dynamic(path):
    """(soname or None, [NEEDED...]) of an ELF file."""
    out = run(["readelf", "-d", path])
    soname = re.findall(r"\(SONAME\).*\[(.*)\]", out)
    return (soname[0] if soname else None), re.findall(r"\(NEEDED\).*\[(.*)\]", out)


def ldd_closure(paths):
    """{needed name: host path} of every library the host's loader maps for
    the ELF files `paths` (the interpreter included)."""
    found = {}
    for path in paths:
        for line in run(["ldd", path]).splitlines():
            m = re.match(r"\s*(\S+) => (/\S+) \(", line) or re.match(r"\s*((/\S+)) \(", line)
            if m:
                found[os.path.basename(m.group(1))] = m.group(2)
    return found


def host_lib(name):
    for d in HOST_LIBDIRS:
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    return None


class Inputs:
    """Everything the images are made of, fetched or built once, lazily."""

    def __init__(self, outdir, tmpdir):
        self.outdir = outdir
        self.tmpdir = tmpdir

    def debs(self, suite, *packages):
        debdir = os.path.join(DEB_CACHE, suite, "debs")
        return run([FETCH_DEBS, suite, debdir] + list(packages)).split()

    @functools.lru_cache(maxsize=None)
    def extracted(self, suite, package):
        """(directory with the unpacked package, .deb path)."""
        deb = self.debs(suite, package)[0]
        dest = os.path.join(self.tmpdir, "debs", suite, package)
        os.makedirs(dest)
        subprocess.run(["dpkg-deb", "-x", deb, dest], check=True)
        return dest, deb

    @functools.cached_property
    def busybox(self):
        debdir = mi.own_directory(os.path.join(self.outdir, "debs"))
        # the same host-apt download (with its fallbacks) as make_images.py
        deb = mi.Packages._find_deb(debdir, "busybox-static")
        if not deb:
            sys.exit("make_mpi_images: no busybox-static .deb")
        dest = os.path.join(self.tmpdir, "busybox")
        subprocess.run(["dpkg-deb", "-x", deb, dest], check=True)
        return os.path.join(dest, "bin", "busybox")

    @functools.cached_property
    def host_glibc(self):
        """{name: path} of the host's glibc shared libraries (package libc6)."""
        files = run(["dpkg-query", "-L", "libc6"]).splitlines()
        return {os.path.basename(f): f for f in files
                if re.fullmatch(r"/(usr/)?lib/x86_64-linux-gnu/[^/]+\.so\.[0-9.]+", f)}

    @functools.cached_property
    def host_glibc_version(self):
        return run(["getconf", "GNU_LIBC_VERSION"]).split()[-1]

    @functools.cached_property
    def host_mpich(self):
        path = host_lib("libmpich.so.12")
        if not path:
            sys.exit("make_mpi_images: no libmpich.so.12 on the host (apt-get install mpich)")
        return path

    @functools.cached_property
    def programs(self):
        """{installed name: compiled file}: mpi/*.c with mpicc.mpich, glibc/hello.c with gcc."""
        bindir = os.path.join(self.tmpdir, "bin")
        os.makedirs(bindir)
        progs = {}
        for src in MPI_SOURCES + [HELLO_SOURCE]:
            name = os.path.basename(src)[:-2]
            # MPICH's own name: Open MPI (for the Slurm tests) takes over plain mpicc
            cc = "gcc" if src == HELLO_SOURCE else "mpicc.mpich"
            progs[name] = os.path.join(bindir, name)
            subprocess.run([cc, "-O2", "-Wall", "-o", progs[name], src], check=True)
        return progs

    @property
    def mpi_programs(self):
        return {n: p for n, p in self.programs.items() if n != "hello"}

    @functools.cached_property
    def old_mpich(self):
        """(path of bullseye's libmpich.so.12.1.10, its MPICH version, .deb)."""
        root, deb = self.extracted(OLD_SUITE, "libmpich12")
        real = os.path.realpath(os.path.join(root, LIBDIR, "libmpich.so.12"))
        return real, upstream_version(deb), deb


# --------------------------------------------------------------------------
# Root file system, staged in a directory


class Rootfs:
    """A merged-/usr root file system being assembled in a directory."""

    def __init__(self, path):
        self.path = path
        for d in ["dev", "etc", "etc/ld.so.conf.d", "home", "proc", "run", "sys", "usr",
                  "usr/bin", "usr/sbin", "usr/lib", LIBDIR, "usr/lib64", "usr/local",
                  "usr/local/bin", "var", "var/tmp"]:
            os.makedirs(self.abs(d), exist_ok=True)
        os.chmod(self.abs("var/tmp"), 0o1777)
        os.makedirs(self.abs("root"), 0o700)
        os.makedirs(self.abs("tmp"))
        os.chmod(self.abs("tmp"), 0o1777)
        for top in ["bin", "lib", "lib64", "sbin"]:
            os.symlink(f"usr/{top}", self.abs(top))

    def abs(self, rel):
        return os.path.join(self.path, rel)

    def write(self, rel, text, mode=0o644):
        with open(self.abs(rel), "w") as f:
            f.write(text)
        os.chmod(self.abs(rel), mode)

    def copy(self, src, rel, mode=0o755):
        shutil.copyfile(src, self.abs(rel))
        os.chmod(self.abs(rel), mode)

    def link(self, rel, target):
        if os.path.lexists(self.abs(rel)):
            os.unlink(self.abs(rel))
        os.symlink(target, self.abs(rel))

    def add_lib(self, src, name=None):
        """Copies the real file behind `src` into /usr/lib/x86_64-linux-gnu
        under its own name, with a link `name` (the soname) to it if different."""
        real = os.path.realpath(src)
        self.copy(real, f"{LIBDIR}/{os.path.basename(real)}")
        name = name or os.path.basename(src)
        if name != os.path.basename(real):
            self.link(f"{LIBDIR}/{name}", os.path.basename(real))
        if name == INTERP:
            self.link(f"usr/lib64/{INTERP}", f"/lib/x86_64-linux-gnu/{INTERP}")

    def add_deb_libs(self, root):
        """The shared libraries (files and links, top level only) of an unpacked
        .deb, /lib and /lib64 folded into /usr."""
        for sub, dest in [("lib/x86_64-linux-gnu", LIBDIR), (LIBDIR, LIBDIR),
                          ("lib64", "usr/lib64"), ("usr/lib64", "usr/lib64")]:
            src_dir = os.path.join(root, sub)
            if not os.path.isdir(src_dir) or os.path.islink(src_dir):
                continue
            for name in sorted(os.listdir(src_dir)):
                src = os.path.join(src_dir, name)
                if ".so" not in name or (os.path.isdir(src) and not os.path.islink(src)):
                    continue
                if os.path.islink(src):
                    self.link(f"{dest}/{name}", os.readlink(src))
                else:
                    self.copy(src, f"{dest}/{name}")

    def add_busybox(self, busybox):
        self.copy(busybox, "usr/bin/busybox")
        for applet in mi.BUSYBOX_APPLETS:
            self.link(f"usr/bin/{applet}", "busybox")

    def add_etc(self, image, versions):
        self.write("etc/passwd", mi.PASSWD)
        self.write("etc/group", mi.GROUP)
        self.write("etc/os-release", f'NAME="sarus {image} test image"\nID=sarus-test\n')
        self.write("etc/sarus-test-image",
                   f"IMAGE={image}\n" + "".join(f"{k}={v}\n" for k, v in versions.items()))
        self.write("etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n")
        self.write("etc/ld.so.conf.d/x86_64-linux-gnu.conf",
                   "/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n"
                   "/usr/lib/x86_64-linux-gnu\n")

    def install_programs(self, programs):
        for name, path in sorted(programs.items()):
            self.copy(path, f"usr/local/bin/{name}")

    def make_ld_cache(self):
        """/etc/ld.so.cache by the host's ldconfig (-X: links stay as made here)."""
        subprocess.run(["ldconfig", "-X", "-r", self.path], check=True)
        shutil.rmtree(self.abs("var/cache"), ignore_errors=True)    # aux-cache

    def layer(self, comment):
        """The staged tree as a make_images Layer: root-owned, modes kept."""
        layer = mi.Layer(comment)
        for dirpath, dirnames, filenames in os.walk(self.path):
            for name in sorted(dirnames) + sorted(filenames):
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, self.path)
                mode = os.lstat(full).st_mode & 0o7777
                if os.path.islink(full):
                    layer.symlink(rel, os.readlink(full))
                elif os.path.isdir(full):
                    layer.dir(rel, mode)
                else:
                    with open(full, "rb") as f:
                        layer.file(rel, f.read(), mode)
        return layer


def chroot_run(rootfs, argv):
    """(exit status, stdout+stderr) of argv run in the staged tree."""
    r = subprocess.run(["chroot", rootfs.path] + argv, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=120,
                       env={"PATH": mi.DEFAULT_PATH.split("=", 1)[1]})
    return r.returncode, r.stdout


def check(rootfs, argv, ok, *expected):
    """Runs argv in the staged tree; fails unless it succeeds (ok=True) or
    fails (ok=False) printing every string in `expected`."""
    rc, out = chroot_run(rootfs, argv)
    if (rc == 0) != ok or not all(e in out for e in expected):
        sys.exit(f"make_mpi_images: check failed in {os.path.basename(rootfs.path)}: "
                 f"{' '.join(argv)} exited {rc}, expected {'success' if ok else 'failure'} "
                 f"with {expected!r}; output:\n{out}")
    log(f"  check ok: {' '.join(argv)} -> {out.strip().splitlines()[-1]!r}")


# --------------------------------------------------------------------------
# Images


def new_rootfs(inputs, name):
    rootfs = Rootfs(os.path.join(inputs.tmpdir, "rootfs", name))
    rootfs.add_busybox(inputs.busybox)
    return rootfs


def add_host_glibc(rootfs, inputs):
    for name, path in sorted(inputs.host_glibc.items()):
        rootfs.add_lib(path, name)


def mpich_rootfs(inputs, name, variant):
    """Host glibc + host libmpich's dependencies + bullseye's libmpich under
    the name `variant` gives (see mpich_variant) + the MPI programs."""
    rootfs = new_rootfs(inputs, name)
    add_host_glibc(rootfs, inputs)
    lib, mpich_version, _ = inputs.old_mpich
    host_deps = ldd_closure([inputs.host_mpich] + list(inputs.mpi_programs.values()))
    for needed in readelf_dynamic(lib)[1]:
        if host_lib(needed):
            host_deps.update(ldd_closure([host_lib(needed)]))
            host_deps.setdefault(needed, host_lib(needed))
        else:
            sys.exit(f"make_mpi_images: bullseye's libmpich needs {needed}, which the host "
                     f"lacks: add its bullseye package to the image")
    for needed, path in sorted(host_deps.items()):
        if not needed.startswith("libmpich"):
            rootfs.add_lib(path, needed)
    mpich_variant(rootfs, lib, variant)
    rootfs.install_programs(inputs.mpi_programs)
    rootfs.add_etc(name, {"MPICH": mpich_version, "MPICH_FILE": variant,
                          "GLIBC": inputs.host_glibc_version})
    rootfs.make_ld_cache()
    if variant == "libmpich.so.13.0.0":
        check(rootfs, ["/usr/local/bin/mpi_ring"], False, "libmpich.so.12")
    else:
        check(rootfs, ["/usr/local/bin/mpi_ring"], True,
              f"library: MPICH Version:\t{mpich_version}\n", "ring ok: token 1")
    return rootfs


def mpich_variant(rootfs, lib, filename):
    """Installs bullseye's libmpich as `filename`, with the soname link; for
    a major 13 file, the soname itself is patched."""
    rootfs.copy(lib, f"{LIBDIR}/{filename}")
    soname = ".".join(filename.split(".")[:3])           # libmpich.so.N
    if soname == "libmpich.so.13":
        subprocess.run(["patchelf", "--set-soname", soname, rootfs.abs(f"{LIBDIR}/{filename}")],
                       check=True)
    if soname != filename:
        rootfs.link(f"{LIBDIR}/{soname}", filename)
    assert readelf_dynamic(rootfs.abs(f"{LIBDIR}/{filename}"))[0] == soname


def hello_rootfs(inputs, name, suite=None):
    """busybox + hello + glibc: the host's (suite None) or a suite's libc6."""
    rootfs = new_rootfs(inputs, name)
    if suite is None:
        add_host_glibc(rootfs, inputs)
        version = inputs.host_glibc_version
    else:
        root, deb = inputs.extracted(suite, "libc6")
        rootfs.add_deb_libs(root)
        version = upstream_version(deb)
    rootfs.install_programs({"hello": inputs.programs["hello"]})
    rootfs.add_etc(name, {"GLIBC": version})
    rootfs.make_ld_cache()
    if suite == OLD_SUITE:
        check(rootfs, ["/usr/local/bin/hello"], False, "version `GLIBC_2.34' not found")
    else:
        check(rootfs, ["/usr/local/bin/hello"], True, f"hello from glibc {version}\n")
    return rootfs


def build(filename, inputs):
    """Archive bytes of one image."""
    name = filename[:-len(".tar")]
    builders = {
        "mpich-older.tar": lambda: mpich_rootfs(inputs, name, "libmpich.so.12.1.10"),
        "mpich-newer-minor.tar": lambda: mpich_rootfs(inputs, name, "libmpich.so.12.9.0"),
        "mpich-major-only.tar": lambda: mpich_rootfs(inputs, name, "libmpich.so.12"),
        "mpich-major13.tar": lambda: mpich_rootfs(inputs, name, "libmpich.so.13.0.0"),
        "no-mpi.tar": lambda: hello_rootfs(inputs, name),
        "glibc-older.tar": lambda: hello_rootfs(inputs, name, OLD_SUITE),
        "glibc-newer.tar": lambda: hello_rootfs(inputs, name, NEW_SUITE),
    }
    rootfs = builders[filename]()
    layer = rootfs.layer(f"{name}: {dict(IMAGES)[filename]}")
    return mi.docker_archive([layer], CONFIG, f"{name}:latest")


def manifest_text(inputs):
    old_libc = upstream_version(inputs.extracted(OLD_SUITE, "libc6")[1])
    new_libc = upstream_version(inputs.extracted(NEW_SUITE, "libc6")[1])
    _, mpich, mpich_deb = inputs.old_mpich
    lines = [f"{name:24} {desc}\n" for name, desc in IMAGES]
    return ("Test images of the MPI and glibc hooks, written by "
            "tests/images/make_mpi_images.py\n(docker-archive, one layer, "
            "repo tag NAME:latest)\n\n" + "".join(lines) +
            f"\nMPICH in mpich-*: {mpich} ({os.path.basename(mpich_deb)}); host glibc "
            f"{inputs.host_glibc_version} in mpich-* and no-mpi; glibc-older {old_libc}, "
            f"glibc-newer {new_libc}\n")


def up_to_date(path):
    newest_input = max(os.path.getmtime(p) for p in INPUTS)
    return os.path.exists(path) and os.path.getmtime(path) > newest_input


def main(argv):
    outdir = mi.output_directory(argv, __doc__.strip().splitlines()[2], DEFAULT_OUTDIR)
    if outdir is None:
        return 2
    todo = [name for name, _ in IMAGES if not up_to_date(os.path.join(outdir, name))]
    manifest = os.path.join(outdir, "MANIFEST.txt")
    if not todo and up_to_date(manifest):
        log(f"all images in {outdir} are up to date")
        return 0
    if os.geteuid() != 0:
        sys.exit("make_mpi_images: must run as root (ldconfig -r and chroot)")
    with tempfile.TemporaryDirectory(prefix="sarus-make-mpi-images-") as tmpdir:
        inputs = Inputs(outdir, tmpdir)
        for name in todo:
            log(f"building {name}")
            mi.write_atomic(os.path.join(outdir, name), build(name, inputs))
            log(f"wrote {os.path.join(outdir, name)}")
        mi.write_atomic(manifest, manifest_text(inputs).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
