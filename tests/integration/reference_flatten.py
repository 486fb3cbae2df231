"""Reference OCI layer flattening: the test oracle for sarus' image import.

Why this exists
---------------
`sarus load` / `sarus pull` flatten the layers of an image into one squashfs
file (src/core/image/layer_flattener.*, C++, libarchive + libsquashfs). To test that
code we need to know what the flattened tree *should* be without asking sarus,
and to read what sarus *did* write without trusting sarus' own squashfs code.
This module does both, independently and as simply as possible:

* expected_tree(archive) reads a docker-archive or OCI archive with Python's
  tarfile/json/gzip and applies the layers in memory, following the OCI image
  spec (image-spec/layer.md).
* actual_tree(squashfs) reads a squashfs image with squashfs-tools'
  `unsquashfs` (a different implementation from the libsquashfs sarus writes
  with): metadata from `unsquashfs -lln`, contents and hard-link identity
  from an extraction into a temporary directory.
* diff_trees(expected, actual) lists the differences as readable strings.
* image_config(archive) returns the image configuration; write_flat_tar()
  writes the expected tree as a tar (for a reference squashfs via tar2sqfs).

Only the standard library is used, and everything works as an unprivileged
user. Meant for the small test images of tests/images/make_images.py (layer
contents are held in memory).

Tree format
-----------
A tree is a dict {path: Entry}. Paths are absolute, normalised, without a
trailing slash: the root is "/", then "/etc", "/etc/passwd", ...  Names are
str decoded from UTF-8 (undecodable bytes as surrogate escapes).

Flattening rules (expected_tree)
--------------------------------
* Layers are applied in manifest order, entries in tar order.
* An entry over an existing path: a directory over a directory updates the
  metadata and keeps the children; anything else removes the old path and
  its whole subtree first.
* Missing parent directories are created implicitly (0755, root:root); a
  non-directory standing where a parent directory is needed is replaced by
  such an implicit directory.
* `.wh.NAME` removes NAME (and its subtree) as it exists in the LOWER layers;
  a path added by the same layer is not hidden, wherever the whiteout entry
  stands in the tar. A whiteout of a missing path is a no-op.
* `.wh..wh..opq` in directory D removes every child of D that came from a
  lower layer; children added by the same layer stay, whatever their order.
  Other `.wh..wh.*` entries (aufs metadata) are ignored.
* Hard links (tar type 1) name an existing non-directory of the tree being
  built (same or lower layer) and share its inode: its type, mode, owner and
  content. A later entry over one of the names breaks the link for that name
  only.
* Entries with absolute names, `..` components, or hard links whose target
  does so, raise UnsafePathError (sarus must reject such images). A layer or
  OCI blob whose digest does not match raises CorruptArchiveError.
* Symlinks always have mode 0o777 (as on Linux and in squashfs); their tar
  mode is ignored. Modification times are not compared.

CLI: python3 reference_flatten.py ARCHIVE [SQUASHFS]
prints the expected tree, or the differences with the squashfs image.
"""

import dataclasses
import gzip
import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile

__all__ = ["Entry", "expected_tree", "actual_tree", "diff_trees", "format_tree",
           "image_config", "write_flat_tar",
           "OracleError", "UnsafePathError", "CorruptArchiveError"]

FILE, DIR, SYMLINK, CHAR, BLOCK, FIFO, SOCKET = (
    "file", "dir", "symlink", "char", "block", "fifo", "socket")


@dataclasses.dataclass(frozen=True)
class Entry:
    type: str                 # file | dir | symlink | char | block | fifo | socket
    mode: int                 # permission bits incl. setuid/setgid/sticky (07777)
    uid: int
    gid: int
    size: int = 0             # file: content length; symlink: target length in bytes; else 0
    target: str = None        # symlink target
    sha256: str = None        # file content (hex); None for other types
    link_group: str = None    # non-directories: the smallest path sharing this inode
                              # (the path itself when not hard-linked); dirs: None
    rdev: tuple = None        # (major, minor) for char/block devices


class OracleError(Exception):
    pass


class UnsafePathError(OracleError):
    pass


class CorruptArchiveError(OracleError):
    pass


# ---------------------------------------------------------------------------
# expected_tree


class _Node:
    """One inode of the in-memory tree; hard links share the object."""
    __slots__ = ("type", "mode", "uid", "gid", "size", "target", "sha256", "rdev", "data")

    def __init__(self, type_, mode, uid, gid, size=0, target=None, sha256=None, rdev=None,
                 data=None):
        self.type, self.mode, self.uid, self.gid = type_, mode, uid, gid
        self.size, self.target, self.sha256, self.rdev = size, target, sha256, rdev
        self.data = data


def _norm(name, what="entry"):
    """Tar name -> "/a/b". Raises UnsafePathError for absolute or '..' names."""
    if name.startswith("/"):
        raise UnsafePathError(f"{what} has an absolute path: {name!r}")
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise UnsafePathError(f"{what} has a '..' component: {name!r}")
        parts.append(part)
    return "/" + "/".join(parts)


def _parent(path):
    return posixpath.dirname(path)


def _ancestors(path):
    """'/a/b/c' -> ['/a', '/a/b'] (root excluded)."""
    out = []
    p = _parent(path)
    while p != "/":
        out.append(p)
        p = _parent(p)
    return out[::-1]


class _Flattener:
    def __init__(self, keep_data=False):
        self.tree = {"/": _Node(DIR, 0o755, 0, 0)}
        self.keep_data = keep_data

    def _subtree(self, path):
        prefix = path.rstrip("/") + "/"
        return [p for p in self.tree if p.startswith(prefix) and p != "/"]

    def _remove(self, path, keep=frozenset()):
        """Removes path and its subtree, except paths in keep (and so their
        parents, which the layer has touched too)."""
        for p in self._subtree(path) + [path]:
            if p not in keep and p in self.tree:
                del self.tree[p]

    def apply_layer(self, tar):
        added = set()   # paths created or modified by this layer
        for member in tar:
            path = _norm(member.name)
            base = posixpath.basename(path)
            if base.startswith(".wh."):
                self._whiteout(path, base, added)
                continue
            if path == "/":
                if member.isdir():
                    self._set_meta(self.tree["/"], member)
                continue
            for anc in _ancestors(path):
                node = self.tree.get(anc)
                if node is None or node.type != DIR:
                    self._remove(anc)
                    self.tree[anc] = _Node(DIR, 0o755, 0, 0)
                added.add(anc)
            self._add(tar, member, path)
            added.add(path)

    def _whiteout(self, path, base, added):
        parent = _parent(path)
        if base == ".wh..wh..opq":
            node = self.tree.get(parent)
            if node is None or node.type != DIR:
                return
            added.add(parent)
            # `added` holds the ancestors of every same-layer addition too,
            # so those stay along with their own lower-layer metadata.
            for p in self._subtree(parent):
                if p not in added:
                    del self.tree[p]
            return
        if base.startswith(".wh..wh."):
            return      # aufs metadata (.wh..wh.plnk, ...)
        target = posixpath.join(parent, base[len(".wh."):])
        if target in added or target not in self.tree:
            return
        self._remove(target, keep=added)

    @staticmethod
    def _set_meta(node, m):
        node.mode = stat.S_IMODE(m.mode)
        node.uid, node.gid = m.uid, m.gid

    def _add(self, tar, m, path):
        existing = self.tree.get(path)
        if m.isdir():
            if existing is not None and existing.type == DIR:
                self._set_meta(existing, m)
                return
            node = _Node(DIR, stat.S_IMODE(m.mode), m.uid, m.gid)
        elif m.islnk():
            target = _norm(m.linkname, what=f"hard link {m.name!r} target")
            node = self.tree.get(target)
            if node is None:
                raise OracleError(f"hard link {m.name!r} -> {m.linkname!r}: no such file")
            if node.type == DIR:
                raise OracleError(f"hard link {m.name!r} -> {m.linkname!r}: a directory")
            if target == path:
                return
        elif m.issym():
            size = len(m.linkname.encode("utf-8", "surrogateescape"))
            node = _Node(SYMLINK, 0o777, m.uid, m.gid, size=size, target=m.linkname)
        elif m.isreg():
            data = tar.extractfile(m).read()
            if len(data) != m.size:
                raise CorruptArchiveError(f"{m.name!r}: short read")
            node = _Node(FILE, stat.S_IMODE(m.mode), m.uid, m.gid, size=len(data),
                         sha256=hashlib.sha256(data).hexdigest(),
                         data=data if self.keep_data else None)
        elif m.ischr() or m.isblk():
            node = _Node(CHAR if m.ischr() else BLOCK, stat.S_IMODE(m.mode), m.uid, m.gid,
                         rdev=(m.devmajor, m.devminor))
        elif m.isfifo():
            node = _Node(FIFO, stat.S_IMODE(m.mode), m.uid, m.gid)
        else:
            raise OracleError(f"{m.name!r}: unsupported tar entry type {m.type!r}")
        if existing is not None:
            self._remove(path)
        self.tree[path] = node

    def result(self):
        groups = {}
        for path, node in self.tree.items():
            if node.type != DIR:
                groups.setdefault(id(node), []).append(path)
        leader = {key: min(paths) for key, paths in groups.items()}
        out = {}
        for path, n in self.tree.items():
            out[path] = Entry(n.type, n.mode, n.uid, n.gid, n.size, n.target, n.sha256,
                              None if n.type == DIR else leader[id(n)], n.rdev)
        return out


def _decompress(data, media_type, what):
    if data[:2] == b"\x1f\x8b":
        if media_type and not media_type.endswith("gzip"):
            raise CorruptArchiveError(f"{what}: gzip data but mediaType {media_type}")
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, ValueError) as e:
            raise CorruptArchiveError(f"{what}: bad gzip data: {e}") from e
    if data[:4] == b"\x28\xb5\x2f\xfd":
        raise OracleError(f"{what}: zstd layers are not supported by the oracle")
    if media_type and (media_type.endswith("gzip") or media_type.endswith("zstd")):
        raise CorruptArchiveError(f"{what}: mediaType {media_type} but not compressed")
    return data


def _read_archive(archive_path):
    """Returns (kind, config dict, [uncompressed layer bytes])."""
    try:
        outer = tarfile.open(archive_path, "r:*")
    except (tarfile.TarError, OSError) as e:
        raise CorruptArchiveError(f"{archive_path}: not a tar archive: {e}") from e
    with outer:
        files = {}
        try:
            for m in outer:
                if m.isreg():
                    files[_norm(m.name)[1:]] = outer.extractfile(m).read()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise CorruptArchiveError(f"{archive_path}: {e}") from e

    def get(name, what):
        if name not in files:
            raise CorruptArchiveError(f"{archive_path}: missing {what} {name!r}")
        return files[name]

    def blob(digest, what):
        algo, _, hexd = digest.partition(":")
        if algo != "sha256":
            raise OracleError(f"{what}: unsupported digest {digest}")
        data = get(f"blobs/sha256/{hexd}", what)
        if hashlib.sha256(data).hexdigest() != hexd:
            raise CorruptArchiveError(f"{what}: digest mismatch for {digest}")
        return data

    if "manifest.json" in files:
        manifest = json.loads(files["manifest.json"])
        if not isinstance(manifest, list) or len(manifest) != 1:
            raise OracleError("manifest.json must list exactly one image")
        config = json.loads(get(manifest[0]["Config"], "config"))
        layers = [_decompress(get(name, "layer"), None, name)
                  for name in manifest[0]["Layers"]]
        kind = "docker"
    elif "index.json" in files:
        index = json.loads(files["index.json"])
        desc = index["manifests"][0]
        manifest = json.loads(blob(desc["digest"], "manifest"))
        while "manifests" in manifest:      # nested index
            desc = manifest["manifests"][0]
            manifest = json.loads(blob(desc["digest"], "manifest"))
        config = json.loads(blob(manifest["config"]["digest"], "config"))
        layers = [_decompress(blob(d["digest"], "layer"), d.get("mediaType"), d["digest"])
                  for d in manifest["layers"]]
        kind = "oci"
    else:
        raise CorruptArchiveError(f"{archive_path}: neither manifest.json nor index.json")

    diff_ids = config.get("rootfs", {}).get("diff_ids", [])
    if len(diff_ids) != len(layers):
        raise CorruptArchiveError(f"{len(layers)} layers but {len(diff_ids)} diff_ids")
    for i, (data, diff_id) in enumerate(zip(layers, diff_ids)):
        if "sha256:" + hashlib.sha256(data).hexdigest() != diff_id:
            raise CorruptArchiveError(f"layer {i}: diff_id mismatch ({diff_id})")
    return kind, config, layers


def image_config(archive_path):
    """The image configuration (parsed JSON) of a docker or OCI archive."""
    return _read_archive(archive_path)[1]


def _flatten(archive_path, keep_data=False):
    _, _, layers = _read_archive(archive_path)
    flat = _Flattener(keep_data)
    for i, data in enumerate(layers):
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:",
                              encoding="utf-8", errors="surrogateescape") as tar:
                flat.apply_layer(tar)
        except tarfile.TarError as e:
            raise CorruptArchiveError(f"layer {i}: {e}") from e
    return flat


def expected_tree(archive_path, owner=None):
    """The flattened root filesystem of a docker-archive or OCI archive, as
    a tree {path: Entry}; see the module docstring for the rules. With
    owner=(uid, gid) every entry is owned by it, as sarus stores an image
    for the user who imports it."""
    tree = _flatten(archive_path).result()
    if owner is not None:
        tree = {path: dataclasses.replace(e, uid=owner[0], gid=owner[1]) for path, e in tree.items()}
    return tree


def importer_of(squashfs_path):
    """(uid, gid) of whoever wrote an image file: the kernel sets them, not sarus."""
    st = os.stat(squashfs_path)
    return st.st_uid, st.st_gid


def write_flat_tar(archive_path, out_path):
    """Writes the flattened root filesystem as one tar (sorted entries, hard
    links as tar hard links to the group's first path, no root entry). With
    e.g. `tar2sqfs` this gives a reference squashfs made without sarus."""
    flat = _flatten(archive_path, keep_data=True)
    first = {}
    with tarfile.open(out_path, "w", format=tarfile.PAX_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tar:
        for path in sorted(flat.tree):
            if path == "/":
                continue
            n = flat.tree[path]
            ti = tarfile.TarInfo(path[1:])
            ti.mode, ti.uid, ti.gid, ti.mtime = n.mode, n.uid, n.gid, 0
            data = None
            if n.type != DIR and id(n) in first:
                ti.type, ti.linkname = tarfile.LNKTYPE, first[id(n)]
            elif n.type == DIR:
                ti.type = tarfile.DIRTYPE
            elif n.type == FILE:
                ti.size, data = n.size, io.BytesIO(n.data)
            elif n.type == SYMLINK:
                ti.type, ti.linkname = tarfile.SYMTYPE, n.target
            elif n.type in (CHAR, BLOCK):
                ti.type = tarfile.CHRTYPE if n.type == CHAR else tarfile.BLKTYPE
                ti.devmajor, ti.devminor = n.rdev
            elif n.type == FIFO:
                ti.type = tarfile.FIFOTYPE
            if n.type != DIR:
                first.setdefault(id(n), path[1:])
            tar.addfile(ti, data)


# ---------------------------------------------------------------------------
# actual_tree

_LS_RE = re.compile(
    rb"^([-dlcbps])([-rwxsStT]{9}) (\d+)/(\d+) +(\d+|\d+, *\d+) "
    rb"\d{4}-\d\d-\d\d \d\d:\d\d squashfs-root(.*)$")
_TYPES = {b"-": FILE, b"d": DIR, b"l": SYMLINK, b"c": CHAR, b"b": BLOCK,
          b"p": FIFO, b"s": SOCKET}


def _parse_mode(perm):
    """'rwsr-xr-t' -> 0o5755-style int."""
    p = perm.decode()
    mode = 0
    for i, (r, w, x) in enumerate((p[0:3], p[3:6], p[6:9])):
        shift = 6 - 3 * i
        mode |= (r == "r") << (shift + 2) | (w == "w") << (shift + 1) | (x in "xst") << shift
        if x in "sS" and i < 2:
            mode |= 0o4000 if i == 0 else 0o2000
        if x in "tT" and i == 2:
            mode |= 0o1000
    return mode


def _decode_rdev(text):
    major, minor = (int(v) for v in text.replace(b" ", b"").split(b","))
    # unsquashfs 4.5 prints (rdev >> 8, rdev & 0xff) of the kernel's
    # new_encode_dev() value; decode properly for big major/minor numbers.
    raw = (major << 8) | minor
    return ((raw & 0xfff00) >> 8, (raw & 0xff) | ((raw >> 12) & 0xfff00))


def _listing(squashfs_path):
    r = subprocess.run(["unsquashfs", "-lln", squashfs_path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise OracleError(f"unsquashfs -lln {squashfs_path} failed ({r.returncode}): "
                          f"{r.stderr.decode(errors='replace').strip()}")
    entries = {}
    for line in r.stdout.split(b"\n"):
        m = _LS_RE.match(line)
        if not m:
            continue
        tchar, perm, uid, gid, size, rest = m.groups()
        type_ = _TYPES[tchar]
        target = None
        rdev = None
        nsize = 0
        if type_ == SYMLINK:
            # "name -> target": the size column is the target's length, which
            # disambiguates names and targets containing " -> ".
            nsize = int(size)
            sep = len(rest) - nsize - 4
            if sep < 0 or rest[sep:sep + 4] != b" -> ":
                raise OracleError(f"cannot parse symlink line: {line!r}")
            target = rest[sep + 4:].decode("utf-8", "surrogateescape")
            rest = rest[:sep]
        elif type_ in (CHAR, BLOCK):
            rdev = _decode_rdev(size)
        elif type_ == FILE:
            nsize = int(size)
        path = rest.decode("utf-8", "surrogateescape") or "/"
        entries[path] = Entry(type_, 0o777 if type_ == SYMLINK else _parse_mode(perm),
                              int(uid), int(gid), nsize, target, None, None, rdev)
    if "/" not in entries:
        raise OracleError(f"unsquashfs -lln {squashfs_path}: no root in the listing")
    return entries


def _make_accessible(top):
    """After an unprivileged extraction: u+rwx on dirs, u+r on files, so the
    tree can be hashed and removed whatever modes the image has."""
    st = os.lstat(top)
    os.chmod(top, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)
    with os.scandir(top) as it:
        for e in it:
            if e.is_dir(follow_symlinks=False):
                _make_accessible(e.path)
            elif e.is_file(follow_symlinks=False):
                os.chmod(e.path, stat.S_IMODE(e.stat(follow_symlinks=False).st_mode)
                         | stat.S_IRUSR | stat.S_IWUSR)


def actual_tree(squashfs_path):
    """The tree stored in a squashfs image, read with squashfs-tools'
    unsquashfs (not with sarus' code). Works unprivileged: modes and owners
    come from the listing; contents and hard-link identity (st_ino) from an
    extraction into a temporary directory, removed afterwards."""
    listing = _listing(squashfs_path)
    tmp = tempfile.mkdtemp(prefix="sarus-oracle-")
    root = os.path.join(tmp, "root")
    try:
        # -ignore-errors: device nodes cannot be created unprivileged and
        # ownership cannot be set; neither matters here. Exit code 2 means
        # such non-fatal errors; missing contents show up below.
        r = subprocess.run(["unsquashfs", "-n", "-no-xattrs", "-ignore-errors",
                            "-d", root, squashfs_path],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if r.returncode not in (0, 2) or not os.path.isdir(root):
            raise OracleError(f"unsquashfs -d failed ({r.returncode}): "
                              f"{r.stderr.decode(errors='replace').strip()}")
        _make_accessible(root)
        inodes = {}
        result = {}
        for path, e in listing.items():
            sha = None
            ino = None
            if e.type != DIR:
                host = os.path.join(root, path.lstrip("/")).encode("utf-8", "surrogateescape")
                try:
                    st = os.lstat(host)
                    ino = st.st_ino
                    if e.type == FILE and stat.S_ISREG(st.st_mode):
                        h = hashlib.sha256()
                        with open(host, "rb") as f:
                            for chunk in iter(lambda: f.read(1 << 20), b""):
                                h.update(chunk)
                        sha = h.hexdigest()
                except OSError:
                    pass    # not extracted (devices when unprivileged, errors)
                if ino is not None:
                    inodes.setdefault(ino, []).append(path)
            result[path] = (e, sha, ino)
        leader = {ino: min(paths) for ino, paths in inodes.items()}
        return {path: dataclasses.replace(
                    e, sha256=sha,
                    link_group=None if e.type == DIR else leader.get(ino, path))
                for path, (e, sha, ino) in result.items()}
    finally:
        try:
            if os.path.isdir(root):
                _make_accessible(root)
        except OSError:
            pass
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------
# diff_trees


def _describe(e):
    if e.type == DIR:
        extra = ""
    elif e.type == SYMLINK:
        extra = f" -> {e.target!r}"
    elif e.type == FILE:
        extra = f" size={e.size} sha256={(e.sha256 or 'None')[:12]}"
        if e.link_group is not None:
            extra += f" link_group={e.link_group!r}"
    elif e.rdev:
        extra = f" rdev={e.rdev[0]},{e.rdev[1]}"
    else:
        extra = ""
    return f"{e.type} {e.mode:04o} {e.uid}:{e.gid}{extra}"


def diff_trees(expected, actual, ignore=()):
    """Differences between two trees as sorted human-readable lines; empty
    when they are equal. Paths in `ignore` are skipped (e.g. "/" when the
    root directory's metadata is not under test). Directory sizes, symlink
    modes and times are never compared."""
    ignore = set(ignore)
    out = []
    for path in sorted(set(expected) | set(actual)):
        if path in ignore:
            continue
        e, a = expected.get(path), actual.get(path)
        if a is None:
            out.append(f"{path}: missing (expected {_describe(e)})")
            continue
        if e is None:
            out.append(f"{path}: unexpected ({_describe(a)})")
            continue
        if e.type != a.type:
            out.append(f"{path}: type {a.type}, expected {e.type}")
            continue
        problems = []
        if e.type != SYMLINK and e.mode != a.mode:
            problems.append(f"mode {a.mode:04o}, expected {e.mode:04o}")
        if (e.uid, e.gid) != (a.uid, a.gid):
            problems.append(f"owner {a.uid}:{a.gid}, expected {e.uid}:{e.gid}")
        if e.type == SYMLINK and e.target != a.target:
            problems.append(f"target {a.target!r}, expected {e.target!r}")
        if e.type == FILE:
            if e.size != a.size:
                problems.append(f"size {a.size}, expected {e.size}")
            if e.sha256 != a.sha256:
                problems.append(f"sha256 {a.sha256}, expected {e.sha256}")
        if e.type in (CHAR, BLOCK) and e.rdev != a.rdev:
            problems.append(f"rdev {a.rdev}, expected {e.rdev}")
        if e.type != DIR and e.link_group != a.link_group:
            problems.append(f"hard-link group {a.link_group!r}, expected {e.link_group!r}")
        if problems:
            out.append(f"{path}: " + "; ".join(problems))
    return out


def format_tree(tree):
    """One line per entry, sorted: handy in assertion messages."""
    return "\n".join(f"{path}  {_describe(e)}" for path, e in sorted(tree.items()))


def main(argv):
    if len(argv) not in (2, 3):
        print("usage: reference_flatten.py ARCHIVE [SQUASHFS]", file=sys.stderr)
        return 2
    expected = expected_tree(argv[1])
    if len(argv) == 2:
        print(format_tree(expected))
        return 0
    diffs = diff_trees(expected, actual_tree(argv[2]))
    print("\n".join(diffs) if diffs else "trees are equal")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
