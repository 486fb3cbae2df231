#!/usr/bin/python3
"""Builds the container image archives used by sarus' tests.

Usage: make_images.py OUTDIR

There is no Docker engine on the test machines, so the archives are made here
from Debian packages (busybox-static, libc6), fetched with `apt-get download`
into OUTDIR/debs and unpacked with `dpkg-deb -x`. Layers are written with
Python's tarfile module with explicit ownership and modes, so no root is
needed. Output is deterministic (fixed mtimes, fixed entry order, gzip without
timestamps) for a given pair of .debs, and the script is idempotent: an
archive that exists and is newer than this script is left alone.

See MANIFEST.txt in OUTDIR (written by this script) for the list of archives.
Only the Python standard library, apt-get and dpkg-deb are used.
"""

import glob
import gzip
import hashlib
import io
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile

MTIME = 1700000000                  # 2023-11-14T22:13:20Z, every tar entry
CREATED = "2024-01-01T00:00:00Z"    # image config "created"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

BUSYBOX_APPLETS = ["sh", "ls", "cat", "echo", "id", "env", "pwd", "touch", "mkdir",
                   "sleep", "stat", "ps", "true", "false", "grep", "wc", "readlink", "kill",
                   "rm", "tty", "head", "printenv", "ln", "sort", "hostname", "dd", "seq", "test"]

SCRIPT = os.path.abspath(__file__)


def log(msg):
    print(f"make_images: {msg}", flush=True)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def jdump(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def gzip_bytes(data):
    buf = io.BytesIO()
    # filename="" and mtime=0: no name nor timestamp in the gzip header.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return buf.getvalue()


def pseudo_random(seed, size):
    """Deterministic, incompressible bytes (a sha256 counter stream)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


# --------------------------------------------------------------------------
# Layer builder


class Layer:
    """An ordered list of tar entries. Entries are written in the order they
    were added unless sort=True (then by path, which puts parents first)."""

    def __init__(self, comment, sort=True):
        self.comment = comment
        self.sort = sort
        self.entries = []   # (TarInfo, data or None)
        self._tar = None

    def _info(self, name, type_, mode, uid, gid):
        ti = tarfile.TarInfo(name)
        ti.type = type_
        ti.mode = mode
        ti.uid = uid
        ti.gid = gid
        ti.uname = "root" if uid == 0 else ""
        ti.gname = "root" if gid == 0 else ""
        ti.mtime = MTIME
        return ti

    def dir(self, name, mode=0o755, uid=0, gid=0):
        self.entries.append((self._info(name, tarfile.DIRTYPE, mode, uid, gid), None))

    def file(self, name, data, mode=0o644, uid=0, gid=0):
        if isinstance(data, str):
            data = data.encode()
        ti = self._info(name, tarfile.REGTYPE, mode, uid, gid)
        ti.size = len(data)
        self.entries.append((ti, data))

    def symlink(self, name, target, uid=0, gid=0):
        ti = self._info(name, tarfile.SYMTYPE, 0o777, uid, gid)
        ti.linkname = target
        self.entries.append((ti, None))

    def hardlink(self, name, target, mode=0o644, uid=0, gid=0):
        ti = self._info(name, tarfile.LNKTYPE, mode, uid, gid)
        ti.linkname = target
        self.entries.append((ti, None))

    def whiteout(self, name):
        d, _, base = name.rpartition("/")
        self.file((d + "/" if d else "") + ".wh." + base, b"")

    def opaque(self, dirname):
        self.file(dirname.rstrip("/") + "/.wh..wh..opq", b"")

    def raw(self, tarinfo, data=None):
        """An entry written exactly as given (for the malicious archives)."""
        tarinfo.mtime = MTIME
        self.entries.append((tarinfo, data))

    def tar_bytes(self):
        if self._tar is None:
            self._tar = self._write_tar()
        return self._tar

    def _write_tar(self):
        entries = self.entries
        if self.sort:
            entries = sorted(entries, key=lambda e: e[0].name.rstrip("/"))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                          encoding="utf-8") as tar:
            for ti, data in entries:
                tar.addfile(ti, io.BytesIO(data) if data is not None else None)
        return buf.getvalue()


# --------------------------------------------------------------------------
# Archive writers


def outer_tar(files, first=()):
    """files: {path: bytes}. Returns a tar with the entries named in `first`
    (metadata: manifest.json, index.json...) first, then the others sorted
    with the directories they need; all root-owned, fixed mtime. Metadata
    first means a truncated archive still has its manifest and breaks off
    inside a layer."""
    dirs = set()
    for path in files:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        first = [name for name in first if name in files]
        for name in first + sorted(set(dirs) | set(files) - set(first)):
            ti = tarfile.TarInfo(name)
            ti.mtime = MTIME
            ti.uname = ti.gname = "root"
            if name in dirs:
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
                tar.addfile(ti)
            else:
                ti.mode = 0o644
                ti.size = len(files[name])
                tar.addfile(ti, io.BytesIO(files[name]))
    return buf.getvalue()


def image_config(layers, cfg, history_prefix):
    diff_ids = ["sha256:" + sha256(layer.tar_bytes()) for layer in layers]
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": CREATED,
        "author": "sarus tests/images/make_images.py",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": CREATED,
                     "created_by": f"{history_prefix}: {layer.comment}"}
                    for layer in layers],
    }


def docker_archive(layers, cfg, repo_tag, corrupt=None):
    """`docker save` format (legacy layout, one directory per layer)."""
    config = jdump(image_config(layers, cfg, "make_images.py"))
    config_name = sha256(config) + ".json"
    files = {config_name: config}
    layer_paths = []
    parent = ""
    for layer in layers:
        data = layer.tar_bytes()
        layer_id = sha256(f"{parent}\n{sha256(data)}".encode())
        v1 = {"id": layer_id, "created": CREATED, "os": "linux"}
        if parent:
            v1["parent"] = parent
        files[f"{layer_id}/VERSION"] = b"1.0"
        files[f"{layer_id}/json"] = jdump(v1)
        files[f"{layer_id}/layer.tar"] = data
        layer_paths.append(f"{layer_id}/layer.tar")
        parent = layer_id
    manifest = [{"Config": config_name, "RepoTags": [repo_tag] if repo_tag else None,
                 "Layers": layer_paths}]
    files["manifest.json"] = jdump(manifest)
    if repo_tag:
        repo, _, tag = repo_tag.rpartition(":")
        files["repositories"] = jdump({repo: {tag: parent}})
    return outer_tar(files, first=["manifest.json", "repositories", config_name])


def oci_archive(layers, cfg, ref_name, gzip_layers, corrupt_layer=None):
    """Tar of an OCI image layout. gzip_layers: one bool per layer.
    corrupt_layer: index of a layer blob whose middle bytes get flipped after
    its digest was computed (the digest is NOT updated)."""
    blobs = {}

    def add_blob(data):
        digest = sha256(data)
        blobs[digest] = data
        return digest

    config = jdump(image_config(layers, cfg, "make_images.py"))
    descriptors = []
    corrupt_digest = None
    for i, (layer, gz) in enumerate(zip(layers, gzip_layers)):
        data = layer.tar_bytes()
        if gz:
            data = gzip_bytes(data)
        digest = add_blob(data)
        if i == corrupt_layer:
            corrupt_digest = digest
        descriptors.append({"mediaType": MT_LAYER_GZIP if gz else MT_LAYER_TAR,
                            "digest": "sha256:" + digest, "size": len(data)})
    manifest = jdump({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": "sha256:" + add_blob(config),
                   "size": len(config)},
        "layers": descriptors,
    })
    manifest_digest = add_blob(manifest)
    index = jdump({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [{"mediaType": MT_MANIFEST, "digest": "sha256:" + manifest_digest,
                       "size": len(manifest),
                       "annotations": {"org.opencontainers.image.ref.name": ref_name}}],
    })
    if corrupt_digest is not None:
        data = bytearray(blobs[corrupt_digest])
        mid = len(data) // 2
        for j in range(mid - 128, mid + 128):
            data[j] ^= 0xFF
        blobs[corrupt_digest] = bytes(data)
    files = {"oci-layout": jdump({"imageLayoutVersion": "1.0.0"}), "index.json": index}
    for digest, data in blobs.items():
        files[f"blobs/sha256/{digest}"] = data
    return outer_tar(files, first=["oci-layout", "index.json"])


# --------------------------------------------------------------------------
# Package content


class Packages:
    """Files from busybox-static and libc6, extracted into a temp dir."""

    def __init__(self, outdir, tmpdir):
        self.root = os.path.join(tmpdir, "pkgroot")
        os.makedirs(self.root)
        debdir = own_directory(os.path.join(outdir, "debs"))
        for pkg in ("busybox-static", "libc6"):
            deb = self._find_deb(debdir, pkg)
            if deb:
                subprocess.run(["dpkg-deb", "-x", deb, self.root], check=True)
            else:
                self._from_host(pkg)

    @staticmethod
    def _find_deb(debdir, pkg):
        pattern = f"{pkg}_*_amd64.deb"
        found = sorted(glob.glob(os.path.join(debdir, pattern)))
        if found:
            return found[-1]
        log(f"apt-get download {pkg} (into {debdir})")
        r = subprocess.run(["apt-get", "download", pkg], cwd=debdir,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        found = sorted(glob.glob(os.path.join(debdir, pattern)))
        if r.returncode == 0 and found:
            for f in found:
                os.chmod(f, 0o644)
            return found[-1]
        log(f"apt-get download {pkg} failed ({r.stdout.strip()[-300:]})")
        cached = sorted(glob.glob(os.path.join("/var/cache/apt/archives", pattern)))
        if cached:
            log(f"using {cached[-1]}")
            shutil.copy(cached[-1], debdir)
            os.chmod(os.path.join(debdir, os.path.basename(cached[-1])), 0o644)
            return os.path.join(debdir, os.path.basename(cached[-1]))
        return None

    def _from_host(self, pkg):
        """Last resort without any .deb: copy the files installed on this host."""
        log(f"WARNING: no .deb for {pkg}; copying the host's installed files "
            f"(output then depends on the host)")
        wanted = {"busybox-static": ["bin/busybox"],
                  "libc6": ["lib/x86_64-linux-gnu/libc.so.6",
                            "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"]}[pkg]
        for rel in wanted:
            src = os.path.realpath("/" + rel)
            if not os.path.isfile(src):
                sys.exit(f"make_images: cannot find {pkg} (no .deb, no /{rel})")
            dst = os.path.join(self.root, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(src, dst)

    def read(self, rel):
        with open(os.path.join(self.root, rel), "rb") as f:
            return f.read()


# --------------------------------------------------------------------------
# Images


BUSYBOX_CFG = {
    "Cmd": ["/bin/sh", "-c", "echo hello from busybox"],
    "Env": [DEFAULT_PATH, "IMAGE_VAR=from-image"],
    "WorkingDir": "/",
    "Labels": {"org.example.purpose": "sarus-tests"},
}

LAYERED_CFG = {
    "Entrypoint": ["/bin/echo"],
    "Cmd": ["default", "args"],
    "WorkingDir": "/opt",
    "Env": [DEFAULT_PATH, "LAYERED_VAR=one", "ANOTHER_VAR=two words"],
    "Labels": {"org.example.purpose": "sarus-tests", "org.example.image": "layered"},
}

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


SHOW_EUID_C = b"#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf(\"%d\\n\", (int)geteuid()); return 0; }\n"


def show_euid_binary():
    """A static program printing its effective uid, built with the host's gcc."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "show-euid.c")
        out = os.path.join(tmp, "show-euid")
        with open(src, "wb") as f:
            f.write(SHOW_EUID_C)
        subprocess.run(["gcc", "-static", "-O2", "-o", out, src], check=True)
        subprocess.run(["strip", out], check=True)
        with open(out, "rb") as f:
            return f.read()


def add_busybox(layer, pkgs, applets):
    """The static busybox in /bin with its applet links, /tmp and the
    test passwd/group: enough for `sarus run` to look inside an image."""
    layer.dir("tmp", 0o1777)
    layer.file("bin/busybox", pkgs.read("bin/busybox"), 0o755)
    for applet in applets:
        layer.symlink(f"bin/{applet}", "busybox")
    layer.file("etc/passwd", PASSWD)
    layer.file("etc/group", GROUP)


def busybox_layer(pkgs):
    layer = Layer("busybox-static rootfs")
    for d in ["bin", "dev", "etc", "home", "proc", "sys", "usr", "usr/bin"]:
        layer.dir(d)
    layer.dir("root", 0o700)
    add_busybox(layer, pkgs, BUSYBOX_APPLETS)
    layer.file("etc/os-release", 'NAME="sarus busybox test image"\nID=sarus-busybox\n')
    # Mount destinations that are symlinks: one to a forbidden prefix, one to
    # an absolute path that also exists on the host. Both must resolve
    # inside the container's rootfs.
    layer.symlink("scratch", "/etc")
    layer.symlink("outside", "/tmp/sarus-escape-target")
    layer.dir("opt")
    layer.dir("opt/work")
    layer.symlink("opt/work-link", "../etc/sub")
    # A setuid-root program that prints its effective uid: it must never
    # give root inside a container (busybox cannot tell: it drops setuid
    # privileges by itself).
    layer.file("bin/show-euid", show_euid_binary(), 0o4755)
    return layer


# An image that attacks the engine through its own content: /dev, /proc and
# /sys are symlinks to host paths (a runtime that opens "dev" from the rootfs
# with a plain openat follows them on the host), and labels name annotations
# that crun and runc act on as root.
HOSTILE_DIR = "/var/tmp/sarus-hostile"
HOSTILE_LINKS = {"dev": HOSTILE_DIR + "/dev", "proc": HOSTILE_DIR + "/proc", "sys": HOSTILE_DIR + "/sys"}
HOSTILE_CFG = dict(BUSYBOX_CFG, Labels={
    "org.example.purpose": "sarus-tests",
    "com.hooks.test.label": "kept",
    "run.oci.pidfd_receiver": HOSTILE_DIR + "/socket",
    "run.oci.seccomp.plugins": HOSTILE_DIR + "/evil.so",
    "run.oci.delegate-cgroup": "delegated",
    "run.oci.hooks.stderr": HOSTILE_DIR + "/hooks.log",
    "org.criu.config": HOSTILE_DIR + "/criu.conf",
})


def hostile_layers(pkgs):
    top = Layer("hostile: /dev, /proc and /sys become symlinks to host paths")
    for name, target in HOSTILE_LINKS.items():
        top.symlink(name, target)
    return [busybox_layer(pkgs), top]


BIG_FILE_SIZE = 1536 * 1024   # 1.5 MiB


def layered_layers(pkgs):
    # Layer 1: a Debian-like usrmerged glibc base plus the trees that the
    # upper layers modify.
    l1 = Layer("base: usrmerge glibc + busybox, trees to modify later")
    for d in ["etc", "home", "srv", "usr", "usr/bin", "usr/lib", "usr/lib/x86_64-linux-gnu",
              "usr/lib64", "usr/local", "usr/local/bin", "opt", "opt/app", "opt/app/bin",
              "opt/app/sub", "data", "data/olddir", "data/olddir/nested", "data/opaque",
              "data/opaque/subdir", "data/was-dir", "data/hardlinks"]:
        l1.dir(d)
    l1.dir("root", 0o700)
    l1.dir("tmp", 0o1777)
    l1.symlink("bin", "usr/bin")
    l1.symlink("lib", "usr/lib")
    l1.symlink("lib64", "usr/lib64")
    for so in ["libc.so.6", "ld-linux-x86-64.so.2"]:
        l1.file(f"usr/lib/x86_64-linux-gnu/{so}", pkgs.read(f"lib/x86_64-linux-gnu/{so}"), 0o755)
    l1.symlink("usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    l1.file("usr/bin/busybox", pkgs.read("bin/busybox"), 0o755)
    for applet in BUSYBOX_APPLETS:
        l1.symlink(f"usr/bin/{applet}", "busybox")
    l1.file("etc/os-release", 'NAME="sarus layered test image"\nVERSION_ID=1\n')
    l1.file("etc/passwd", PASSWD)
    l1.file("etc/group", GROUP)
    l1.file("opt/app/bin/run.sh", "#!/bin/sh\necho app v1\n", 0o755)
    l1.file("opt/app/README", "app version 1\n")
    l1.file("opt/app/sub/deep.txt", "deep v1\n")
    l1.file("data/keep.txt", "kept through all layers\n")
    l1.file("data/remove-me.txt", "whited out in layer 2\n")
    l1.file("data/olddir/a.txt", "a\n")
    l1.file("data/olddir/nested/b.txt", "b\n")
    l1.file("data/opaque/old1.txt", "old1\n")
    l1.file("data/opaque/subdir/old2.txt", "old2\n")
    l1.file("data/was-file", "a file in layer 1, a directory from layer 2\n")
    l1.file("data/was-dir/child.txt", "child of a directory replaced by a file in layer 2\n")
    l1.file("data/hardlinks/one.txt", "three names, one inode (layer 1)\n")
    l1.hardlink("data/hardlinks/two.txt", "data/hardlinks/one.txt")
    l1.hardlink("data/hardlinks/three.txt", "data/hardlinks/one.txt")

    # Layer 2: whiteouts, an opaque directory, replacements, a hard link.
    # Written in this exact (unsorted) order on purpose.
    l2 = Layer("whiteouts, opaque dir, dir<->file replacements, hard link", sort=False)
    l2.dir("data")
    l2.whiteout("data/remove-me.txt")
    l2.whiteout("data/olddir")
    l2.dir("data/opaque")
    l2.file("data/opaque/new.txt", "new in layer 2, beside the opaque marker\n")
    l2.opaque("data/opaque")               # after new.txt: must not remove it
    l2.file("data/same-layer.txt", "whiteout in the same layer must not hide me\n")
    l2.whiteout("data/same-layer.txt")
    l2.dir("data/was-file")
    l2.file("data/was-file/inside.txt", "inside the directory that replaced a file\n")
    l2.file("data/was-dir", "a file that replaced a directory\n")
    l2.file("data/hl-original.txt", "same inode, two names (layer 2)\n")
    l2.hardlink("data/hl-link.txt", "data/hl-original.txt")

    # Layer 3: a symlink over a directory, special modes and owners, odd files.
    l3 = Layer("symlink over dir, suid/sgid, owners, utf-8 name, big and empty files")
    l3.symlink("opt/app", "/opt/app-v2")
    l3.dir("opt/app-v2")
    l3.dir("opt/app-v2/bin")
    l3.file("opt/app-v2/bin/run.sh", "#!/bin/sh\necho app v2\n", 0o755)
    l3.file("opt/app-v2/VERSION", "2\n")
    l3.file("data/hardlinks/three.txt", "replaced in layer 3: no longer linked\n")
    l3.file("usr/local/bin/suid-tool", "#!/bin/sh\necho setuid test file\n", 0o4755)
    l3.dir("srv/shared", 0o2775, 0, 5678)
    l3.file("srv/shared/file.txt", "in a setgid directory\n", 0o664, 0, 5678)
    l3.dir("home/user1234", 0o700, 1234, 5678)
    l3.file("home/user1234/owned.txt", "owned by 1234:5678\n", 0o640, 1234, 5678)
    l3.file("data/ünïcødé-文件.txt", "utf-8 name\n")
    l3.file("data/big.bin", pseudo_random("sarus big file", BIG_FILE_SIZE))
    l3.file("data/empty", b"")

    # Layer 4: entries deliberately out of order (a child before its parent
    # directory entry, reverse-sorted siblings), names with spaces and " -> ".
    l4 = Layer("unsorted entries, names with spaces and arrows", sort=False)
    l4.file("zeta/file.txt", "written before its parent directory entry\n")
    l4.file("zeta/hl-a", "hard link inside an unsorted layer\n")
    l4.dir("zeta", 0o750, 0, 5678)
    l4.hardlink("zeta/hl-b", "zeta/hl-a")
    l4.dir("alpha")
    l4.file("alpha/z.txt", "z\n")
    l4.file("alpha/a.txt", "a\n")
    l4.file("data/name with spaces -> arrow.txt", "tricky name\n")
    l4.symlink("data/link with space -> x", "name with spaces -> arrow.txt")
    l4.whiteout("data/never-existed")
    l4.file("etc/os-release", 'NAME="sarus layered test image"\nVERSION_ID=4\n')
    return [l1, l2, l3, l4]


# --------------------------------------------------------------------------
# Images that break naive engines (see tests/integration/test_hard_images.py).
# Each has the static busybox (with a few more applets) so the tests can look
# inside with `sarus run`.

HARD_APPLETS = BUSYBOX_APPLETS + ["find", "printf", "tr", "od"]


def hard_base_layer(pkgs, comment):
    """A minimal busybox rootfs, the first layer of each hard image."""
    layer = Layer(comment)
    for d in ["bin", "dev", "etc", "proc", "sys", "opt"]:
        layer.dir(d)
    add_busybox(layer, pkgs, HARD_APPLETS)
    return layer


HARD_CFG = {"Cmd": ["/bin/sh"], "Env": [DEFAULT_PATH], "WorkingDir": "/"}


def replace_layers(pkgs):
    """Layer 1 has a directory /data and a symlink /link; layer 2 turns
    /data into a symlink and /link into a real directory. An engine that
    extracts layer 2 over layer 1 with plain open()/mkdir() writes layer 2's
    /link/mine.txt THROUGH the old symlink into /opt/target, and cannot
    create the /data symlink over a non-empty directory (or keeps the old
    files beside it)."""
    l1 = hard_base_layer(pkgs, "busybox; /data a directory, /link a symlink to /opt/target")
    l1.dir("data")
    l1.file("data/old.txt", "old file of the /data directory (layer 1)\n")
    l1.dir("data/sub")
    l1.file("data/sub/deep.txt", "old nested file (layer 1)\n")
    l1.dir("opt/target")
    l1.file("opt/target/target.txt", "target of /link (layer 1)\n")
    l1.symlink("link", "/opt/target")

    # Written unsorted on purpose: the new symlink first, then the directory
    # it points to; the directory entry for /link before its file.
    l2 = Layer("/data -> /opt/real (symlink over a directory), /link a real directory", sort=False)
    l2.symlink("data", "/opt/real")
    l2.dir("opt/real")
    l2.file("opt/real/real.txt", "in /opt/real, reached through /data (layer 2)\n")
    l2.dir("link", 0o775)                  # its own mode, not the symlink's 0777
    l2.file("link/mine.txt", "in the directory that replaced the /link symlink (layer 2)\n")
    return [l1, l2]


# name (relative to /unicode) -> content; every file name non-ASCII, UTF-8 bytes
# in the tar (PAX path records). NFC and NFD spellings of the same word are
# two different files: an engine must never normalise names.
UNICODE_FILES = {
    "données/été.txt": "été (NFC name)\n",
    "données/e\u0301te\u0301.txt": "e\u0301te\u0301 (NFD name, a different file)\n",
    "日本語/ファイル名.txt": "こんにちは、世界\n",
    "emoji/🦀🐍.txt": "🎉 four-byte UTF-8 🎉\n",
    "emoji/new\nline 🌊.txt": "a newline in the name\n",
    # 85 three-byte characters: 255 bytes, NAME_MAX, but only 85 characters
    "長い/" + "あ" * 85: "255 bytes of name\n",
    "Ελληνικά/Ωμέγα.txt": "ωμέγα\n",
}
UNICODE_LINKS = {            # symlinks with UTF-8 names and UTF-8 targets
    "liens/→été": "../données/été.txt",
    "liens/🔗": "/unicode/日本語/ファイル名.txt",
}


def unicode_layers(pkgs):
    l1 = hard_base_layer(pkgs, "busybox; UTF-8 file, directory, symlink and hard link names")
    for name, content in UNICODE_FILES.items():
        l1.file("unicode/" + name, content)
    for name, target in UNICODE_LINKS.items():
        l1.symlink("unicode/" + name, target)
    # after its target in the (sorted) tar, as a hard link must be
    l1.hardlink("unicode/日本語/リンク", "unicode/日本語/ファイル名.txt")
    l1.file("unicode/données/supprimé.txt", "whited out by layer 2\n")
    l2 = Layer("a whiteout with a UTF-8 name")
    l2.whiteout("unicode/données/supprimé.txt")
    return [l1, l2]


# PATH_MAX is 4096 bytes INCLUDING the terminating NUL, so the longest
# absolute path a single system call accepts has 4095 characters. DEEP_FILE
# is exactly that long: "/deep", then 15 directories named with NAME_MAX (255)
# bytes, then a 249-byte file name: 5 + 15 * 256 + 1 + 249 = 4095. The same
# file spelled with one more byte ("//deep/...", 4096 characters) is refused
# with ENAMETOOLONG, which is how the tests prove the boundary. In the layer
# tar the entry name has no leading "/" (4094 bytes, a PAX path record).
DEEP_DIRS = [f"{i:02d}-" + "d" * 252 for i in range(15)]
DEEP_FILE_NAME = "deepest-file-" + "f" * 236
DEEP_FILE = "/deep/" + "/".join(DEEP_DIRS) + "/" + DEEP_FILE_NAME
DEEP_CONTENT = "at the bottom of a 4095-character path\n"
assert all(len(d) == 255 for d in DEEP_DIRS) and len(DEEP_FILE) == 4095


def deep_layers(pkgs):
    """The deepest path the kernel can open in one call, and a symlink whose
    target is that 4095-character path (readlink buffers of PATH_MAX bytes
    without room for the NUL truncate it)."""
    layer = hard_base_layer(pkgs, "busybox; a 4095-character path and a symlink to it")
    path = "deep"
    layer.dir(path)
    for d in DEEP_DIRS:
        path += "/" + d
        layer.dir(path)
    layer.file(path + "/" + DEEP_FILE_NAME, DEEP_CONTENT)
    layer.symlink("deep-link", DEEP_FILE)
    return [layer]


MANY_DIRS = 100
MANY_PER_DIR = 1000          # 100,000 files


def many_file_content(index):
    return f"file {index} of /many\n".encode()


def many_file_path(index):
    return f"many/d{index // MANY_PER_DIR:03d}/f{index:06d}"


class UstarStream:
    """A plain ustar writer for layers of very many small entries: building
    100,000 TarInfo objects takes seconds, packing the headers here does not.
    Root-owned entries, MTIME, names shorter than 100 bytes."""

    def __init__(self):
        self.chunks = []

    def _header(self, name, type_, mode, size):
        name = name.encode()
        assert len(name) < 100
        h = bytearray(512)
        h[0:len(name)] = name
        h[100:108] = b"%07o\0" % mode
        h[108:116] = b"0000000\0"
        h[116:124] = b"0000000\0"
        h[124:136] = b"%011o\0" % size
        h[136:148] = b"%011o\0" % MTIME
        h[148:156] = b" " * 8
        h[156:157] = type_
        h[257:265] = b"ustar\x0000"
        h[265:269] = b"root"
        h[297:301] = b"root"
        h[148:156] = b"%06o\0 " % sum(h)
        return bytes(h)

    def dir(self, name, mode=0o755):
        self.chunks.append(self._header(name, tarfile.DIRTYPE, mode, 0))

    def file(self, name, data, mode=0o644):
        self.chunks.append(self._header(name, tarfile.REGTYPE, mode, len(data)))
        self.chunks.append(data + b"\0" * (-len(data) % 512))

    def tar_bytes(self):
        data = b"".join(self.chunks) + b"\0" * 1024
        return data + b"\0" * (-len(data) % tarfile.RECORDSIZE)


class BytesLayer(Layer):
    """A layer whose tar was written elsewhere (UstarStream)."""

    def __init__(self, comment, data):
        super().__init__(comment)
        self._tar = data


def many_layers(pkgs):
    """100,000 small files, each with its own content, in 100 directories:
    for engines that hold a tree in memory per entry, fork a process per
    file or walk the tree in O(n^2)."""
    stream = UstarStream()
    stream.dir("many")
    for d in range(MANY_DIRS):
        stream.dir(f"many/d{d:03d}")
        for i in range(d * MANY_PER_DIR, (d + 1) * MANY_PER_DIR):
            stream.file(many_file_path(i), many_file_content(i))
    return [hard_base_layer(pkgs, "busybox"),
            BytesLayer(f"{MANY_DIRS * MANY_PER_DIR} small files", stream.tar_bytes())]


def evil_layer(kind):
    layer = Layer(f"malicious: {kind}", sort=False)
    layer.dir("etc")
    layer.file("etc/hostname", "evil\n")
    if kind == "dotdot":
        layer.file("../escape", "escaped via ..\n")
    elif kind == "absolute":
        layer.file("/etc/evil", "absolute path\n")
    elif kind == "hardlink":
        layer.hardlink("passwd-link", "../../etc/passwd")
    return layer


def no_manifest_tar():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        data = pseudo_random("no-manifest", 2048)
        ti = tarfile.TarInfo("random.bin")
        ti.size, ti.mtime, ti.mode = len(data), MTIME, 0o644
        tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


MANIFEST = [
    ("busybox.docker.tar", "docker-archive, 1 layer: static busybox + applet symlinks, "
     "tag sarus-tests/busybox:latest"),
    ("busybox.oci.tar", "OCI archive of the busybox image, 1 gzip layer, ref.name latest"),
    ("layered.docker.tar", "docker-archive, 4 layers: glibc usrmerge base, whiteouts/opaque/"
     "replacements/hard links, symlink over dir + suid/sgid/owners/utf-8/big/empty, "
     "unsorted entries; tag sarus-tests/layered:latest"),
    ("layered.oci.tar", "OCI archive of the layered image; layers 1,3 gzip, 2,4 plain tar"),
    ("evil-dotdot.docker.tar", "BAD: layer entry ../escape"),
    ("evil-absolute.docker.tar", "BAD: layer entry /etc/evil (absolute path)"),
    ("evil-hardlink.docker.tar", "BAD: hard link passwd-link -> ../../etc/passwd"),
    ("truncated.docker.tar", "BAD: busybox.docker.tar cut at 60% of its size"),
    ("corrupt-layer.oci.tar", "BAD: busybox OCI archive, 256 bytes flipped in the middle of the "
     "gzip layer blob, digest not updated"),
    ("no-manifest.tar", "BAD: a tar holding only random.bin"),
    ("not-a-tar.tar", "BAD: 8 KiB of pseudo-random bytes"),
    ("replace.docker.tar", "HARD: 2 layers; /data dir -> symlink to /opt/real, /link symlink "
     "-> real dir; tag sarus-tests/replace:latest"),
    ("unicode.oci.tar", "HARD: UTF-8 names (NFC+NFD, CJK, emoji, newline, 255-byte name), "
     "UTF-8 symlinks, hard link and whiteout; 2 gzip layers"),
    ("deep.docker.tar", "HARD: a file at a 4095-character absolute path (PATH_MAX with NUL) "
     "and a symlink to it; tag sarus-tests/deep:latest"),
    ("many.oci.tar", "HARD: 100,000 small files /many/dNNN/fNNNNNN, each its own content; "
     "2 gzip layers"),
    ("hostile.docker.tar", "ATTACK: busybox with /dev, /proc, /sys as symlinks to "
     "/var/tmp/sarus-hostile/*, labels naming run.oci.* and org.criu.* annotations"),
]


def build(name, pkgs):
    if name == "busybox.docker.tar":
        return docker_archive([busybox_layer(pkgs)], BUSYBOX_CFG, "sarus-tests/busybox:latest")
    if name == "busybox.oci.tar":
        return oci_archive([busybox_layer(pkgs)], BUSYBOX_CFG, "latest", [True])
    if name == "layered.docker.tar":
        return docker_archive(layered_layers(pkgs), LAYERED_CFG, "sarus-tests/layered:latest")
    if name == "layered.oci.tar":
        return oci_archive(layered_layers(pkgs), LAYERED_CFG, "latest",
                           [True, False, True, False])
    if name.startswith("evil-"):
        kind = name[len("evil-"):-len(".docker.tar")]
        return docker_archive([evil_layer(kind)], BUSYBOX_CFG, f"sarus-tests/evil-{kind}:latest")
    if name == "truncated.docker.tar":
        data = build("busybox.docker.tar", pkgs)
        return data[:len(data) * 6 // 10]
    if name == "corrupt-layer.oci.tar":
        return oci_archive([busybox_layer(pkgs)], BUSYBOX_CFG, "latest", [True],
                           corrupt_layer=0)
    if name == "no-manifest.tar":
        return no_manifest_tar()
    if name == "not-a-tar.tar":
        return pseudo_random("not-a-tar", 8192)
    if name == "replace.docker.tar":
        return docker_archive(replace_layers(pkgs), HARD_CFG, "sarus-tests/replace:latest")
    if name == "unicode.oci.tar":
        return oci_archive(unicode_layers(pkgs), HARD_CFG, "latest", [True, True])
    if name == "deep.docker.tar":
        return docker_archive(deep_layers(pkgs), HARD_CFG, "sarus-tests/deep:latest")
    if name == "hostile.docker.tar":
        return docker_archive(hostile_layers(pkgs), HOSTILE_CFG, "sarus-tests/hostile:latest")
    if name == "many.oci.tar":
        return oci_archive(many_layers(pkgs), HARD_CFG, "latest", [True, True])
    raise ValueError(name)


def up_to_date(path):
    return os.path.exists(path) and os.path.getmtime(path) > os.path.getmtime(SCRIPT)


def own_directory(path):
    """Creates path (0755) unless it is there, and exits naming its owner
    unless it is a directory of ours that nobody else may write to: these
    builders run as root in /var/tmp, which is everyone's, and what they
    chmod, load and run there must be theirs alone."""
    os.umask(0o022)
    os.makedirs(path, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        try:
            owner = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            owner = f"uid {st.st_uid}"
        sys.exit(f"{path} belongs to {owner} or others may write to it (mode {stat.S_IMODE(st.st_mode):o}): "
                 "refusing to build images there; remove it and retry")
    os.chmod(path, 0o755)
    return path


def output_directory(argv, usage, default):
    """OUTDIR, the only argument (default when absent), made by own_directory;
    None after printing usage for any other command line."""
    if len(argv) > 2 or (len(argv) == 2 and argv[1].startswith("-")):
        print(usage, file=sys.stderr)
        return None
    return own_directory(os.path.abspath(argv[1] if len(argv) == 2 else default))


def write_atomic(path, data, mode=0o644):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv):
    if len(argv) != 2 or argv[1].startswith("-"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    outdir = own_directory(os.path.abspath(argv[1]))
    todo = [name for name, _ in MANIFEST if not up_to_date(os.path.join(outdir, name))]
    if not todo and up_to_date(os.path.join(outdir, "MANIFEST.txt")):
        log(f"all archives in {outdir} are up to date")
        return 0
    if todo:
        with tempfile.TemporaryDirectory(prefix="sarus-make-images-") as tmpdir:
            pkgs = Packages(outdir, tmpdir)
            for name in todo:
                write_atomic(os.path.join(outdir, name), build(name, pkgs))
                log(f"wrote {os.path.join(outdir, name)}")
    text = "".join(f"{name:28} {desc}\n" for name, desc in MANIFEST)
    write_atomic(os.path.join(outdir, "MANIFEST.txt"),
                 ("Test archives written by tests/images/make_images.py\n\n" + text).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
