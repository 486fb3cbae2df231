"""Images that break naive engines (issue 8, point 7), loaded and run in both
execution modes as both test users:

* replace.docker.tar: a directory replaced by a symlink in the next layer,
  and a symlink replaced by a real directory (an engine that extracts with
  plain open()/mkdir() writes through the old symlink);
* unicode.oci.tar: UTF-8 names (NFC and NFD spellings as two files, CJK,
  emoji, a newline, a 255-byte name of 85 characters), UTF-8 symlinks, a hard
  link and a whiteout;
* deep.docker.tar: a file whose absolute path has 4095 characters, i.e.
  PATH_MAX (4096 bytes) with the terminating NUL, and a symlink to it;
* many.oci.tar: 100,000 small files (loaded once per mode by a module
  fixture: one mode per test user, the walk costs seconds over FUSE);
* the caller's umask (000 and 777) around `sarus load` and `sarus run`.

The images come from tests/images/make_images.py; the expected names and
contents are imported from it (what the archive holds), plus literal bytes
where the encoding itself is the point."""

import os
import pwd
import stat
import sys

import pytest

from conftest import REPO, _sarus_session, run_as

sys.path.insert(0, os.path.join(REPO, "tests", "images"))
import make_images as mi  # noqa: E402  (expected names and contents)

REPLACE = "load/library/replace"
UNICODE = "load/library/unicode"
DEEP = "load/library/deep"
MANY = "load/library/many"
ARCHIVES = {REPLACE: "replace.docker.tar", UNICODE: "unicode.oci.tar", DEEP: "deep.docker.tar"}

BYTES = {"encoding": "utf-8", "errors": "surrogateescape"}  # exact bytes of names


def image_file(sarus, name, tag="latest"):
    return os.path.join(sarus.repository, "images", name, tag + ".squashfs")


def load(sarus, test_images, image):
    sarus.ok("load", os.path.join(test_images, ARCHIVES[image]), image.rpartition("/")[2])
    return image


def run_sh(sarus, image, script, *args):
    """`sarus run IMAGE sh -c SCRIPT sh ARGS...`; must succeed; stdout as str
    (UTF-8, undecodable bytes as surrogate escapes)."""
    r = sarus("run", image, "sh", "-c", script, "sh", *args, **BYTES)
    assert r.returncode == 0, f"{script}\nexit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def fields(stdout):
    """'key=value' lines -> dict."""
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


# --- a directory replaced by a symlink, a symlink replaced by a directory ----

def test_symlink_replaces_a_directory_of_the_lower_layer(sarus, test_images):
    load(sarus, test_images, REPLACE)
    out = fields(run_sh(sarus, REPLACE, """
        echo "type=$(stat -c %F /data)"
        echo "target=$(readlink /data)"
        echo "through=$(ls -A /data/ | tr '\\n' ' ')"
        echo "real=$(ls -A /opt/real | tr '\\n' ' ')"
        echo "content=$(cat /data/real.txt)"
        test -e /data/old.txt; echo "old=$?"
        test -e /data/sub/deep.txt; echo "sub=$?"
        test -e /opt/real/old.txt; echo "old-in-target=$?"
    """))
    assert out == {
        "type": "symbolic link", "target": "/opt/real",
        "through": "real.txt ", "real": "real.txt ",      # layer 1's files are gone
        "content": "in /opt/real, reached through /data (layer 2)",
        "old": "1", "sub": "1", "old-in-target": "1",
    }


def test_directory_replaces_a_symlink_of_the_lower_layer(sarus, test_images):
    load(sarus, test_images, REPLACE)
    out = fields(run_sh(sarus, REPLACE, """
        echo "type=$(stat -c '%F %a' /link)"
        echo "link=$(ls -A /link | tr '\\n' ' ')"
        echo "mine=$(cat /link/mine.txt)"
        echo "target=$(ls -A /opt/target | tr '\\n' ' ')"
        echo "target-content=$(cat /opt/target/target.txt)"
    """))
    assert out == {
        "type": "directory 775", "link": "mine.txt ",
        "mine": "in the directory that replaced the /link symlink (layer 2)",
        # nothing written through the old symlink into its target
        "target": "target.txt ", "target-content": "target of /link (layer 1)",
    }


def test_replaced_trees_hold_exactly_the_expected_files(sarus, test_images):
    load(sarus, test_images, REPLACE)
    found = run_sh(sarus, REPLACE, "find / -xdev -name '*.txt' | sort").split()
    assert found == ["/link/mine.txt", "/opt/real/real.txt", "/opt/target/target.txt"]


# --- non-ASCII names ---------------------------------------------------------

def test_utf8_names_are_byte_exact(sarus, test_images):
    # the encoding itself, not only a round trip through the generator
    assert "données/été.txt".encode() == b"donn\xc3\xa9es/\xc3\xa9t\xc3\xa9.txt"
    assert len(("あ" * 85).encode()) == 255
    load(sarus, test_images, UNICODE)
    out = run_sh(sarus, UNICODE, "cd /unicode && find . -print0")
    names = sorted(n[2:] for n in out.split("\0") if n.startswith("./"))
    expected = set(mi.UNICODE_FILES) | set(mi.UNICODE_LINKS) | {"日本語/リンク"}
    expected |= {os.path.dirname(n) for n in expected}
    assert names == sorted(expected)
    assert "données/supprimé.txt" not in names                  # whited out in layer 2
    assert {"données/été.txt", "données/e\u0301te\u0301.txt"} <= set(names)  # not normalised


def test_utf8_named_files_have_their_contents(sarus, test_images):
    load(sarus, test_images, UNICODE)
    # name NUL content NUL, for every regular file (a name holds a newline)
    out = run_sh(sarus, UNICODE, r"cd /unicode && find . -type f -exec printf '%s\0' {} \; "
                                 r"-exec cat {} \; -exec printf '\0' \;")
    parts = out.split("\0")
    assert parts[-1] == ""
    got = {parts[i][2:]: parts[i + 1] for i in range(0, len(parts) - 1, 2)}
    expected = dict(mi.UNICODE_FILES)
    expected["日本語/リンク"] = mi.UNICODE_FILES["日本語/ファイル名.txt"]
    assert got == expected
    assert got["données/été.txt"] != got["données/e\u0301te\u0301.txt"]


def test_utf8_symlinks_and_hard_link(sarus, test_images):
    load(sarus, test_images, UNICODE)
    args = list(mi.UNICODE_LINKS)
    out = run_sh(sarus, UNICODE, r"""
        cd /unicode
        for l; do printf '%s\0' "$(readlink "$l")"; cat "$l"; printf '\0'; done
        stat -c '%i:%h' 日本語/ファイル名.txt 日本語/リンク
    """, *args)
    parts = out.split("\0")
    for i, name in enumerate(args):
        assert parts[2 * i] == mi.UNICODE_LINKS[name]
        assert parts[2 * i + 1] == {"liens/→été": "été (NFC name)\n",
                                    "liens/🔗": "こんにちは、世界\n"}[name]
    inode = parts[-1].split()[0].split(":")[0]
    assert parts[-1].split() == [f"{inode}:2", f"{inode}:2"]       # one inode, two names


# --- a path of PATH_MAX bytes ------------------------------------------------

def test_deepest_path_by_relative_walk(sarus, test_images):
    assert len(mi.DEEP_FILE) == 4095 and len(mi.DEEP_FILE.encode()) + 1 == 4096  # with the NUL
    assert all(len(d.encode()) == 255 for d in mi.DEEP_DIRS)
    load(sarus, test_images, DEEP)
    out = run_sh(sarus, DEEP, """
        f=$1; shift
        cd /deep || exit 10
        for d; do cd "$d" || exit 11; done
        echo "depth=${#PWD}"
        echo "listing=$(ls)"
        cat "$f"
    """, mi.DEEP_FILE_NAME, *mi.DEEP_DIRS)
    assert out == (f"depth={len(os.path.dirname(mi.DEEP_FILE))}\n"
                   f"listing={mi.DEEP_FILE_NAME}\n{mi.DEEP_CONTENT}")


def test_deepest_path_is_at_the_kernel_limit(sarus, test_images):
    """The 4095-character absolute path opens; the same file with one more
    byte ("//deep/...") is refused with ENAMETOOLONG: the path is exactly as
    long as the kernel allows."""
    load(sarus, test_images, DEEP)
    out = run_sh(sarus, DEEP, """
        cat "$1"; echo "rc=$?"
        cat "/$1" 2>&1 | grep -c 'File name too long'
        echo "link=$(readlink /deep-link | wc -c)"
        cat /deep-link
        test "$(readlink /deep-link)" = "$1" && echo same-target
    """, mi.DEEP_FILE)
    assert out == f"{mi.DEEP_CONTENT}rc=0\n1\nlink=4096\n{mi.DEEP_CONTENT}same-target\n"


# --- images and rmi of the hard images ---------------------------------------

def test_images_lists_and_rmi_removes_the_hard_images(sarus, test_images):
    for image in ARCHIVES:
        load(sarus, test_images, image)
    listed = [line.split()[:2] for line in sarus.ok("images").stdout.splitlines()[1:]]
    assert listed == [[DEEP, "latest"], [REPLACE, "latest"], [UNICODE, "latest"]]
    for image in ARCHIVES:
        assert os.path.getsize(image_file(sarus, image)) > 100 * 1024   # busybox is inside
        assert sarus.ok("rmi", image).stdout.strip() == f"removed image {image}:latest"
        assert not os.path.exists(image_file(sarus, image))
    assert sarus.ok("images").stdout.splitlines()[1:] == []


# --- the caller's umask ------------------------------------------------------

def with_umask(sarus, umask, *args, **kw):
    """sarus ARGS run by a shell that set the caller's umask first."""
    return run_as(sarus.user, ["sh", "-c", f'umask {umask}; exec "$@"', "sh", sarus.binary, *args],
                  env={"SARUS_CONFIG_FILE": sarus.config_file}, **kw)


def repository_modes(sarus):
    modes = {}
    for root, dirs, files in os.walk(sarus.repository):
        for name in [root] + [os.path.join(root, n) for n in files]:
            modes[os.path.relpath(name, sarus.repository)] = os.lstat(name).st_mode
    return modes


@pytest.mark.parametrize("umask", ["000", "777"])
def test_load_and_run_under_a_umask(sarus, test_images, umask):
    archive = os.path.join(test_images, ARCHIVES[REPLACE])
    r = with_umask(sarus, umask, "load", archive, "replace")
    assert r.returncode == 0, r.stderr
    r = with_umask(sarus, umask, "run", REPLACE, "cat", "/data/real.txt")
    assert (r.returncode, r.stdout) == (0, "in /opt/real, reached through /data (layer 2)\n"), r.stderr
    r = with_umask(sarus, umask, "images")
    assert r.returncode == 0 and r.stdout.splitlines()[1].split()[:2] == [REPLACE, "latest"], r.stderr
    modes = repository_modes(sarus)
    assert os.path.relpath(image_file(sarus, REPLACE), sarus.repository) in modes
    for path, mode in modes.items():
        # umask 000 must not open the repository to others (nor to the group);
        # umask 777 must not lock its owner out of it
        assert mode & 0o022 == 0, f"{path}: {oct(mode)}"
        need = 0o700 if stat.S_ISDIR(mode) else 0o600
        assert mode & need == need, f"{path}: {oct(mode)}"


def test_repository_stays_usable_after_a_load_under_umask_777(sarus, test_images):
    with_umask(sarus, "777", "load", os.path.join(test_images, ARCHIVES[UNICODE]), "unicode")
    # whatever that load did, a load with an ordinary umask must work afterwards
    r = with_umask(sarus, "022", "load", os.path.join(test_images, ARCHIVES[REPLACE]), "replace")
    assert r.returncode == 0, r.stderr
    assert run_sh(sarus, REPLACE, "readlink /data") == "/opt/real\n"


@pytest.mark.parametrize("umask", ["000", "777"])
def test_container_writes_to_a_bind_mount_under_a_umask(sarus, test_images, umask):
    load(sarus, test_images, REPLACE)
    host_dir = os.path.join(sarus.workdir, "out")
    run_as(sarus.user, ["mkdir", host_dir], check=True)
    r = with_umask(sarus, umask, "run", "--mount", f"type=bind,src={host_dir},dst=/out", REPLACE,
                   "sh", "-c", "echo written > /out/file && mkdir /out/dir && cat /out/file")
    assert (r.returncode, r.stdout) == (0, "written\n"), r.stderr
    pw = pwd.getpwnam(sarus.user)
    for name in ("file", "dir"):
        st = os.lstat(os.path.join(host_dir, name))
        assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid), name
    with open(os.path.join(host_dir, "file")) as f:
        assert f.read() == "written\n"
    # the repository is still as sarus made it
    assert all(mode & 0o022 == 0 for mode in repository_modes(sarus).values())


# --- 100,000 files (one load per mode) --------------------------------------

@pytest.fixture(scope="module", params=[("userns", "sarusnosub"), ("suid", "sarustest")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def many(request, test_images):
    """The 100,000-file image loaded once per mode (each mode with one of
    the two test users)."""
    for s in _sarus_session(*request.param):
        s.ok("load", os.path.join(test_images, "many.oci.tar"), "many")
        yield s


def test_many_files_are_all_there(many):
    out = run_sh(many, MANY, "find /many -type f | wc -l; ls /many | wc -l; ls /many/d042 | wc -l")
    assert out.split() == [str(mi.MANY_DIRS * mi.MANY_PER_DIR), str(mi.MANY_DIRS), str(mi.MANY_PER_DIR)]


def test_many_files_have_their_own_contents(many):
    total = mi.MANY_DIRS * mi.MANY_PER_DIR
    sample = [0, 1, 999, 1000, 31337, 42123, 50000, 77777, total - 1000, total - 1]
    paths = ["/" + mi.many_file_path(i) for i in sample]
    out = run_sh(many, MANY, 'for f; do cat "$f"; done', *paths)
    assert out == "".join(mi.many_file_content(i).decode() for i in sample)


def test_many_files_image_is_listed_and_removed(many):
    # last of the module: removes what the fixture loaded
    rows = [line.split() for line in many.ok("images").stdout.splitlines()[1:]]
    assert [row[:2] for row in rows] == [[MANY, "latest"]]
    assert many.ok("rmi", MANY).stdout.strip() == f"removed image {MANY}:latest"
    assert not os.path.exists(image_file(many, MANY))
    assert many.ok("images").stdout.splitlines()[1:] == []
