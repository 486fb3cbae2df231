"""Checks of the test oracle (reference_flatten.py) and of the generated test
images themselves; nothing here runs sarus."""

import dataclasses
import hashlib
import json
import os
import pathlib
import pwd
import shutil
import subprocess
import tarfile
import tempfile

import pytest

import reference_flatten as rf
from conftest import run_as

HERE = os.path.dirname(os.path.abspath(__file__))
APPLETS = ["sh", "ls", "cat", "echo", "id", "env", "pwd", "touch", "mkdir", "sleep",
           "stat", "ps", "true", "false", "grep", "wc", "readlink"]


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module", params=["docker", "oci"])
def layered(request, test_images):
    path = os.path.join(test_images, f"layered.{request.param}.tar")
    return rf.expected_tree(path)


@pytest.fixture(scope="module", params=["docker", "oci"])
def busybox(request, test_images):
    return rf.expected_tree(os.path.join(test_images, f"busybox.{request.param}.tar"))


# --- the layered image -----------------------------------------------------

def test_docker_and_oci_variants_flatten_identically(test_images):
    d = rf.expected_tree(os.path.join(test_images, "layered.docker.tar"))
    o = rf.expected_tree(os.path.join(test_images, "layered.oci.tar"))
    assert rf.diff_trees(d, o) == []
    assert d == o


def test_root_and_path_keys(layered):
    assert layered["/"].type == "dir"
    assert layered["/"].mode == 0o755
    assert all(p == "/" or (p.startswith("/") and not p.endswith("/")) for p in layered)


def test_whiteouts(layered):
    assert "/data/remove-me.txt" not in layered
    assert "/data/keep.txt" in layered
    assert not [p for p in layered if p.startswith("/data/olddir")]
    assert not [p for p in layered if "/.wh." in p]
    assert "/data/never-existed" not in layered


def test_whiteout_does_not_hide_same_layer_file(layered):
    assert layered["/data/same-layer.txt"].type == "file"


def test_opaque_directory_keeps_only_new_file(layered):
    children = sorted(p for p in layered if p.startswith("/data/opaque/"))
    assert children == ["/data/opaque/new.txt"]
    assert layered["/data/opaque"].type == "dir"


def test_dir_replaces_file_and_file_replaces_dir(layered):
    assert layered["/data/was-file"].type == "dir"
    assert layered["/data/was-file/inside.txt"].type == "file"
    assert layered["/data/was-dir"].type == "file"
    assert "/data/was-dir/child.txt" not in layered


def test_symlink_replaces_directory(layered):
    app = layered["/opt/app"]
    assert app.type == "symlink" and app.target == "/opt/app-v2"
    assert app.size == len("/opt/app-v2")
    assert not [p for p in layered if p.startswith("/opt/app/")]
    assert layered["/opt/app-v2/bin/run.sh"].mode == 0o755


def test_hard_links(layered):
    orig, link = layered["/data/hl-original.txt"], layered["/data/hl-link.txt"]
    assert orig.type == link.type == "file"
    assert orig.link_group == link.link_group == "/data/hl-link.txt"
    assert orig.sha256 == link.sha256
    # layer 1 linked one/two/three; layer 3 replaced three: link broken
    one, two, three = (layered[f"/data/hardlinks/{n}.txt"] for n in ("one", "two", "three"))
    assert one.link_group == two.link_group == "/data/hardlinks/one.txt"
    assert three.link_group == "/data/hardlinks/three.txt"
    assert three.sha256 != one.sha256
    # hard link inside the unsorted layer 4
    assert layered["/zeta/hl-a"].link_group == layered["/zeta/hl-b"].link_group == "/zeta/hl-a"
    assert layered["/data/keep.txt"].link_group == "/data/keep.txt"


def test_owners_and_special_modes(layered):
    assert (layered["/home/user1234"].uid, layered["/home/user1234"].gid) == (1234, 5678)
    owned = layered["/home/user1234/owned.txt"]
    assert (owned.uid, owned.gid, owned.mode) == (1234, 5678, 0o640)
    assert layered["/usr/local/bin/suid-tool"].mode == 0o4755
    assert layered["/usr/local/bin/suid-tool"].uid == 0
    shared = layered["/srv/shared"]
    assert (shared.type, shared.mode, shared.gid) == ("dir", 0o2775, 5678)
    assert layered["/tmp"].mode == 0o1777
    assert layered["/root"].mode == 0o700


def test_odd_files(layered):
    assert layered["/data/ünïcødé-文件.txt"].type == "file"
    big = layered["/data/big.bin"]
    assert big.size > 1024 * 1024
    empty = layered["/data/empty"]
    assert empty.size == 0 and empty.sha256 == sha(b"")
    assert layered["/data/name with spaces -> arrow.txt"].type == "file"
    link = layered["/data/link with space -> x"]
    assert link.type == "symlink" and link.target == "name with spaces -> arrow.txt"


def test_unsorted_layer_child_before_parent(layered):
    zeta = layered["/zeta"]
    assert (zeta.mode, zeta.uid, zeta.gid) == (0o750, 0, 5678)
    assert layered["/zeta/file.txt"].type == "file"
    assert {"/alpha/a.txt", "/alpha/z.txt"} <= set(layered)


def test_usrmerge_glibc_base(layered):
    for link, target in [("/bin", "usr/bin"), ("/lib", "usr/lib"), ("/lib64", "usr/lib64")]:
        assert layered[link].type == "symlink" and layered[link].target == target
    assert layered["/usr/lib/x86_64-linux-gnu/libc.so.6"].size > 1_000_000
    assert layered["/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"].type == "file"
    assert layered["/usr/lib64/ld-linux-x86-64.so.2"].target == \
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    assert layered["/usr/bin/echo"].target == "busybox"
    # os-release replaced by layer 4 (file over file)
    assert layered["/etc/os-release"].sha256 == \
        sha(b'NAME="sarus layered test image"\nVERSION_ID=4\n')


def test_layered_config(test_images):
    for kind in ("docker", "oci"):
        cfg = rf.image_config(os.path.join(test_images, f"layered.{kind}.tar"))
        c = cfg["config"]
        assert c["Entrypoint"] == ["/bin/echo"]
        assert c["Cmd"] == ["default", "args"]
        assert c["WorkingDir"] == "/opt"
        assert c["Env"][0].startswith("PATH=") and len(c["Env"]) == 3
        assert c["Labels"]
        assert len(cfg["rootfs"]["diff_ids"]) == 4


def _outer_files(path):
    with tarfile.open(path) as t:
        return {m.name: t.extractfile(m).read() for m in t if m.isreg()}


def test_oci_layout_details(test_images):
    files = _outer_files(os.path.join(test_images, "layered.oci.tar"))
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    desc = index["manifests"][0]
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == "latest"
    manifest = json.loads(files["blobs/sha256/" + desc["digest"].split(":")[1]])
    types = [layer["mediaType"] for layer in manifest["layers"]]
    assert types == ["application/vnd.oci.image.layer.v1.tar+gzip",
                     "application/vnd.oci.image.layer.v1.tar"] * 2
    for layer in manifest["layers"]:
        data = files["blobs/sha256/" + layer["digest"].split(":")[1]]
        assert len(data) == layer["size"]
        assert (data[:2] == b"\x1f\x8b") == layer["mediaType"].endswith("gzip")


# --- the busybox image -----------------------------------------------------

def test_busybox_tree(busybox):
    assert busybox["/bin/busybox"].mode == 0o755 and busybox["/bin/busybox"].size > 500_000
    for applet in APPLETS:
        assert busybox[f"/bin/{applet}"].target == "busybox", applet
    assert busybox["/tmp"].mode == 0o1777
    for d in ["/etc", "/root", "/home", "/dev", "/proc", "/sys", "/usr/bin"]:
        assert busybox[d].type == "dir", d
    assert busybox["/etc/os-release"].type == "file"


def test_busybox_config_and_tags(test_images):
    files = _outer_files(os.path.join(test_images, "busybox.docker.tar"))
    manifest = json.loads(files["manifest.json"])
    assert manifest[0]["RepoTags"] == ["sarus-tests/busybox:latest"]
    for kind in ("docker", "oci"):
        cfg = rf.image_config(os.path.join(test_images, f"busybox.{kind}.tar"))
        c = cfg["config"]
        assert c["Cmd"] == ["/bin/sh", "-c", "echo hello from busybox"]
        assert c["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                            "IMAGE_VAR=from-image"]
        assert c["WorkingDir"] == "/"
        assert c["Labels"] == {"org.example.purpose": "sarus-tests"}
        assert (cfg["architecture"], cfg["os"]) == ("amd64", "linux")
        assert cfg["created"]


# --- bad inputs ------------------------------------------------------------

@pytest.mark.parametrize("name,error", [
    ("evil-dotdot.docker.tar", rf.UnsafePathError),
    ("evil-absolute.docker.tar", rf.UnsafePathError),
    ("evil-hardlink.docker.tar", rf.UnsafePathError),
    ("truncated.docker.tar", rf.CorruptArchiveError),
    ("corrupt-layer.oci.tar", rf.CorruptArchiveError),
    ("no-manifest.tar", rf.CorruptArchiveError),
    ("not-a-tar.tar", rf.CorruptArchiveError),
])
def test_bad_archives_are_rejected(test_images, name, error):
    with pytest.raises(error):
        rf.expected_tree(os.path.join(test_images, name))


def test_manifest_lists_every_archive(test_images):
    text = open(os.path.join(test_images, "MANIFEST.txt")).read()
    archives = sorted(f for f in os.listdir(test_images) if f.endswith(".tar"))
    assert len(archives) == 16
    for name in archives:
        assert name in text


# --- diff_trees and actual_tree --------------------------------------------

def test_diff_trees_reports_differences(test_images):
    tree = rf.expected_tree(os.path.join(test_images, "layered.oci.tar"))
    assert rf.diff_trees(tree, dict(tree)) == []
    other = dict(tree)
    del other["/data/keep.txt"]
    other["/extra"] = rf.Entry("file", 0o644, 0, 0, 0, None, sha(b""), "/extra")
    other["/usr/local/bin/suid-tool"] = dataclasses.replace(tree["/usr/local/bin/suid-tool"],
                                                            mode=0o755)
    other["/home/user1234/owned.txt"] = dataclasses.replace(tree["/home/user1234/owned.txt"],
                                                            uid=0)
    # a hard link lost: hl-original.txt no longer in hl-link.txt's group
    other["/data/hl-original.txt"] = dataclasses.replace(tree["/data/hl-original.txt"],
                                                         link_group="/data/hl-original.txt")
    other["/opt/app"] = rf.Entry("dir", 0o755, 0, 0)
    diffs = rf.diff_trees(tree, other)
    joined = "\n".join(diffs)
    assert len(diffs) == 6, joined
    for path in ["/data/keep.txt: missing", "/extra: unexpected", "/usr/local/bin/suid-tool: mode",
                 "/home/user1234/owned.txt: owner",
                 "/data/hl-original.txt: hard-link", "/opt/app: type"]:
        assert path in joined
    assert rf.diff_trees(tree, other, ignore=[d.split(":")[0] for d in diffs]) == []


def _reference_squashfs(test_images, name, tmp_path):
    if not shutil.which("tar2sqfs"):
        pytest.skip("tar2sqfs (squashfs-tools-ng) not installed")
    flat = tmp_path / "flat.tar"
    sqfs = tmp_path / f"{name}.sqfs"
    rf.write_flat_tar(os.path.join(test_images, name), str(flat))
    with open(flat, "rb") as f:
        subprocess.run(["tar2sqfs", "-q", "-f", "-c", "gzip", str(sqfs)], stdin=f, check=True)
    return sqfs


@pytest.mark.parametrize("name", ["layered.oci.tar", "busybox.docker.tar"])
def test_actual_tree_round_trip(test_images, tmp_path, name):
    """expected tree -> tar -> tar2sqfs -> actual_tree gives the same tree:
    checks the unsquashfs-based reader on every tricky entry."""
    sqfs = _reference_squashfs(test_images, name, tmp_path)
    expected = rf.expected_tree(os.path.join(test_images, name))
    actual = rf.actual_tree(str(sqfs))
    assert rf.diff_trees(expected, actual) == []


def test_actual_tree_as_unprivileged_user(test_images, request):
    """The CLI (expected vs actual) as sarustest when running as root, so
    the extraction runs without privileges (modes 0700/0000, owners)."""
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("sarustest")
        except KeyError:
            pytest.skip("user sarustest missing: run tests/integration/setup_host.sh")
    # pytest's tmp_path is not reachable by other users when run as root
    shared = tempfile.mkdtemp(prefix="sarus-oracle-test-", dir="/var/tmp")
    request.addfinalizer(lambda: shutil.rmtree(shared, ignore_errors=True))
    os.chmod(shared, 0o755)
    sqfs = _reference_squashfs(test_images, "layered.oci.tar", pathlib.Path(shared))
    os.chmod(sqfs, 0o644)
    # The checkout may be unreadable to the test user (a clone under /root).
    oracle = shutil.copy(os.path.join(HERE, "reference_flatten.py"), shared)
    os.chmod(oracle, 0o644)
    r = run_as("sarustest", ["/usr/bin/python3", oracle,
                             os.path.join(test_images, "layered.oci.tar"), str(sqfs)],
               cwd="/")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "trees are equal"
    if os.geteuid() == 0:
        assert run_as("sarustest", ["id", "-un"]).stdout.strip() == "sarustest"


def test_actual_tree_sees_differences(test_images, tmp_path):
    sqfs = _reference_squashfs(test_images, "busybox.oci.tar", tmp_path)
    expected = rf.expected_tree(os.path.join(test_images, "layered.oci.tar"))
    diffs = rf.diff_trees(expected, rf.actual_tree(str(sqfs)))
    assert any(d.startswith("/opt/app: missing") for d in diffs)
    assert any(d.startswith("/bin: type dir, expected symlink") for d in diffs)
