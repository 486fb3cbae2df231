"""`sarus load`, `sarus images` and `sarus rmi`, driven as unprivileged users
against the archives built by tests/images/make_images.py."""

import json
import os
import pwd
import shutil
import signal
import subprocess
import tarfile
import threading
import time
import uuid

import pytest

from conftest import TEST_USERS, busybox_with_layer, loaded_image_file as image_file, popen_as, run_as, tree_snapshot
import reference_flatten

# unicode.oci.tar and deep.docker.tar are checked inside containers by
# test_hard_images.py: the oracle reads images through unsquashfs's listing,
# which cannot show a name with a newline or extract a 4095-character path.
ARCHIVES = ["busybox.docker.tar", "busybox.oci.tar", "layered.docker.tar", "layered.oci.tar",
            "replace.docker.tar"]


def partial_files(path):
    found = []
    for root, dirs, files in os.walk(path):
        found += [f for f in files if ".partial-" in f or ".tmp-" in f]
    return found


@pytest.mark.parametrize("archive", ARCHIVES)
def test_load_yields_the_flattened_layers_entry_by_entry(sarus, test_images, archive):
    path = os.path.join(test_images, archive)
    r = sarus.ok("load", path, "img")
    assert f"# created: {image_file(sarus, 'img')}" in r.stdout
    expected = reference_flatten.expected_tree(path, reference_flatten.importer_of(image_file(sarus, "img")))
    actual = reference_flatten.actual_tree(image_file(sarus, "img"))
    differences = reference_flatten.diff_trees(expected, actual)
    assert differences == [], "\n".join(differences[:50])
    # the comparison is not vacuous: the image holds what the archive holds
    assert len(actual) == len(expected) > 10


def test_load_writes_image_metadata(sarus, test_images):
    sarus.ok("load", os.path.join(test_images, "layered.oci.tar"), "layered:v1")
    meta_file = image_file(sarus, "layered", "v1").replace(".squashfs", ".meta")
    with open(meta_file) as f:
        meta = json.load(f)
    config = reference_flatten.image_config(os.path.join(test_images, "layered.oci.tar"))["config"]
    assert meta["Entrypoint"] == config["Entrypoint"] == ["/bin/echo"]
    assert meta["Cmd"] == config["Cmd"]
    assert meta["WorkingDir"] == "/opt"
    assert meta["Env"] == config["Env"]
    assert meta["Labels"] == config["Labels"]


def test_images_of_an_empty_repository_is_sarus_header(sarus):
    # Sarus's widths: 10 or the longest value, IMAGE ID always 12, 3 spaces apart
    r = sarus.ok("images")
    assert r.stdout == "REPOSITORY   TAG          IMAGE ID       CREATED      SIZE         SERVER\n", repr(r.stdout)
    r = sarus.ok("images", "--digests")
    assert r.stdout == ("REPOSITORY   TAG          DIGEST       IMAGE ID       CREATED      SIZE         SERVER\n"), \
        repr(r.stdout)


def test_images_lists_loaded_images_like_sarus(sarus, test_images):
    sarus.ok("load", os.path.join(test_images, "busybox.docker.tar"), "busybox")
    sarus.ok("load", os.path.join(test_images, "layered.docker.tar"), "my/layered:2.0")
    lines = sarus.ok("images").stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE", "SERVER"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[0], r[1], r[-1]) for r in rows] == [
        ("load/library/busybox", "latest", "load"), ("load/my/layered", "2.0", "load")]
    config_digest = reference_flatten.image_config  # noqa: keep the oracle import used
    for row in rows:
        assert len(row[2]) == 12 and all(c in "0123456789abcdef" for c in row[2])
        assert row[3][:2] == "20" and "T" in row[3]
    size = os.path.getsize(image_file(sarus, "busybox"))
    assert rows[0][4].endswith(("KB", "MB"))
    assert abs(float(rows[0][4][:-2]) * (1024 if rows[0][4].endswith("KB") else 1024 ** 2) - size) < 0.01 * size + 1024

    digest_lines = sarus.ok("images", "--digests").stdout.splitlines()
    assert digest_lines[0].split()[:3] == ["REPOSITORY", "TAG", "DIGEST"]
    assert digest_lines[1].split()[2] == "<none>"  # loaded images have no registry digest


def test_images_on_an_empty_repository_prints_only_the_header(sarus):
    r = sarus.ok("images")
    assert r.stdout.split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE", "SERVER"]


def test_rmi_removes_files_and_entry(sarus, test_images):
    sarus.ok("load", os.path.join(test_images, "busybox.docker.tar"), "a")
    sarus.ok("load", os.path.join(test_images, "busybox.docker.tar"), "b")
    r = sarus.ok("rmi", "load/library/a")
    assert r.stdout.strip() == "removed image load/library/a:latest"
    assert not os.path.exists(image_file(sarus, "a"))
    assert not os.path.exists(image_file(sarus, "a").replace(".squashfs", ".meta"))
    assert os.path.exists(image_file(sarus, "b"))
    listed = [line.split()[0] for line in sarus.ok("images").stdout.splitlines()[1:]]
    assert listed == ["load/library/b"]


def test_rmi_of_a_missing_image_fails_and_changes_nothing(sarus, test_images):
    sarus.ok("load", os.path.join(test_images, "busybox.docker.tar"), "a")
    before = tree_snapshot(sarus.repository)
    r = sarus("rmi", "load/library/nothere:1")
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0
    assert r.stderr == "Cannot find image 'load/library/nothere:1'\n"
    assert tree_snapshot(sarus.repository) == before


@pytest.mark.parametrize("args, message", [
    (["rmi", "load/library/../etc"], "path component '..' is not allowed"),
    (["rmi", "Upper/Case"], "must be lowercase"),
    (["rmi", "alpine@sha256:1234"], "bad digest"),
    (["rmi", "alpine:-x"], "bad tag '-x'"),
    (["load", "ARCHIVE", "../escape"], "path component '..' is not allowed"),
    (["load", "ARCHIVE", "name:bad:tag"], "Invalid image reference"),
])
def test_bad_references_are_rejected_naming_the_part(sarus, test_images, args, message):
    sarus.ok("load", os.path.join(test_images, "busybox.docker.tar"), "keep")
    before = tree_snapshot(sarus.repository)
    args = [os.path.join(test_images, "busybox.docker.tar") if a == "ARCHIVE" else a for a in args]
    r = sarus(*args)
    assert r.returncode == 1, r.stdout
    reference = args[-1]
    if message != "Invalid image reference":
        # Sarus's two lines; what is wrong with it follows with --verbose
        assert r.stderr == f"Invalid image reference '{reference}'\nSee 'sarus help {args[0]}'\n"
        assert message in sarus("--verbose", *args).stderr
    assert message in r.stderr or message in sarus("--verbose", *args).stderr
    assert tree_snapshot(sarus.repository) == before


@pytest.mark.parametrize("archive, message", [
    ("truncated.docker.tar", "truncated"),
    ("corrupt-layer.oci.tar", "corrupt"),
    ("no-manifest.tar", "not a docker-archive or OCI archive"),
    ("not-a-tar.tar", "cannot read archive"),
    ("evil-dotdot.docker.tar", "../escape"),
    ("evil-absolute.docker.tar", "/etc/evil"),
    ("evil-hardlink.docker.tar", "../../etc/passwd"),
])
def test_bad_archives_fail_cleanly_and_leave_the_store_intact(sarus, test_images, archive, message):
    sarus.ok("load", os.path.join(test_images, "busybox.docker.tar"), "keep")
    before = tree_snapshot(sarus.repository)
    r = sarus("load", os.path.join(test_images, archive), "keep")
    assert r.returncode == 1, r.stdout
    error_lines = r.stderr.strip().splitlines()
    assert len(error_lines) == 1, r.stderr
    assert message in error_lines[0], error_lines[0]
    assert archive in error_lines[0] or "layer" in error_lines[0], error_lines[0]
    assert tree_snapshot(sarus.repository) == before
    assert partial_files(sarus.repository) == []
    # nor does a load under a new name leave a directory
    assert sarus("load", os.path.join(test_images, archive), "brandnew").returncode == 1
    assert tree_snapshot(sarus.repository) == before
    # the image that was there still works as before
    assert reference_flatten.diff_trees(
        reference_flatten.expected_tree(os.path.join(test_images, "busybox.docker.tar"),
                                        reference_flatten.importer_of(image_file(sarus, "keep"))),
        reference_flatten.actual_tree(image_file(sarus, "keep"))) == []


@pytest.fixture(scope="module")
def big_archive(test_images):
    """busybox with a layer of 256 MiB that does not compress: a load that
    takes long enough to be interrupted."""
    big = tarfile.TarInfo("big")
    big.mode = 0o644
    archive = f"/var/tmp/sarus-bigload-{uuid.uuid4().hex[:8]}.tar"
    busybox_with_layer(test_images, archive, [(big, os.urandom(256 << 20))])
    yield archive
    os.remove(archive)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
@pytest.mark.parametrize("name", ["keep", "brandnew"])
def test_interrupted_load_leaves_nothing_behind(sarus, test_images, big_archive, sig, name):
    """Also after kill -9, and for a name not loaded before: no file, no
    directory (the image is written unnamed until it is complete)."""
    sarus.ok("load", os.path.join(test_images, "busybox.docker.tar"), "keep")
    before = tree_snapshot(sarus.repository)
    process = popen_as(sarus.user, [sarus.binary, "load", big_archive, name],
                       env={"SARUS_CONFIG_FILE": sarus.config_file})
    try:
        # The big layer is the second: once it is announced, it is being read.
        for line in process.stdout:
            if line.startswith("> layer 2/2"):
                break
        time.sleep(0.2)
        assert process.poll() is None, "the load ended before it could be interrupted"
        started = time.time()
        process.send_signal(sig)
        out, err = process.communicate(timeout=30)
        assert time.time() - started < 5, "the load did not stop promptly"
        if sig != signal.SIGKILL:
            assert process.returncode == 1, out + err
            assert f"interrupted by {signal.Signals(sig).name}" in err, err
        assert tree_snapshot(sarus.repository) == before
        assert partial_files(sarus.repository) == []
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def oci_archive_with_platform(test_images, out_path, platform):
    """busybox.oci.tar with its index entry given `platform`."""
    import io
    with tarfile.open(os.path.join(test_images, "busybox.oci.tar")) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]
    with tarfile.open(out_path, "w") as tar:
        for member, data in members:
            if member.name.lstrip("./") == "index.json":
                index = json.loads(data)
                index["manifests"][0]["platform"] = platform
                data = json.dumps(index).encode()
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    os.chmod(out_path, 0o644)


def test_load_takes_the_image_of_this_machine_from_an_oci_index(sarus, test_images):
    archive = f"/var/tmp/sarus-platform-{uuid.uuid4().hex[:8]}.tar"
    try:
        oci_archive_with_platform(test_images, archive, {"os": "linux", "architecture": "amd64"})
        sarus.ok("load", archive, "amd")
        oci_archive_with_platform(test_images, archive, {"os": "linux", "architecture": "arm64"})
        r = sarus("load", archive, "arm")
        assert r.returncode == 1, r.stdout
        assert "no image for linux/amd64 in the archive (it has linux/arm64)" in r.stderr, r.stderr
        assert "load/library/arm" not in sarus.ok("images").stdout
    finally:
        os.remove(archive)


def test_an_entry_name_with_terminal_escapes_is_shown_escaped(sarus, test_images):
    """What an image names reaches the user's terminal only as text."""
    evil = tarfile.TarInfo("../\x1b]0;owned\x07\x1b[2J")
    evil.type = tarfile.DIRTYPE
    archive = f"/var/tmp/sarus-escape-{uuid.uuid4().hex[:8]}.tar"
    try:
        busybox_with_layer(test_images, archive, [evil])
        r = sarus("load", archive, "escape")
        assert r.returncode == 1, r.stdout
        assert "\x1b" not in r.stderr and "\x07" not in r.stderr, repr(r.stderr)
        assert "../\\x1b]0;owned\\x07\\x1b[2J" in r.stderr, repr(r.stderr)
    finally:
        os.remove(archive)


def test_malicious_layer_error_names_layer_and_entry(sarus, test_images):
    r = sarus("load", os.path.join(test_images, "evil-hardlink.docker.tar"), "evil")
    assert r.returncode == 1
    assert "layer" in r.stderr and "passwd-link" in r.stderr, r.stderr


def rewrite_member(archive, name, change):
    """The archive with member name's bytes passed through change."""
    import io
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]
    with tarfile.open(archive, "w") as tar:
        for info, data in members:
            if info.name == name:
                data = change(data)
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def test_a_layer_that_differs_from_its_diff_id_is_refused(sarus, test_images):
    """A `docker save` archive before Docker 25 names its layers by no
    digest: the configuration's diff id is what the layer's bytes must hash
    to, as Docker's and Skopeo's load check."""
    content = b"the layer's file\n" * 64
    archive = f"/var/tmp/sarus-diffid-{uuid.uuid4().hex[:8]}.docker.tar"
    try:
        info = tarfile.TarInfo("data.txt")
        info.mode = 0o644
        busybox_with_layer(test_images, archive, [(info, content)])
        sarus.ok("load", archive, "keep")
        before = tree_snapshot(sarus.repository)

        def flip_a_byte_of_the_file(layer):
            at = layer.index(content) + 100  # in the file's data: the tar stays valid
            return layer[:at] + bytes([layer[at] ^ 0x20]) + layer[at + 1:]
        rewrite_member(archive, "extra-layer/layer.tar", flip_a_byte_of_the_file)
        r = sarus("load", archive, "keep")
        assert r.returncode == 1, r.stdout
        assert r.stderr.count("\n") == 1, r.stderr
        assert "layer extra-layer/layer.tar is corrupt" in r.stderr and "does not match" in r.stderr, r.stderr
        assert tree_snapshot(sarus.repository) == before
        assert partial_files(sarus.repository) == []
    finally:
        os.remove(archive)


def test_a_compressed_layer_is_checked_against_its_diff_id(sarus, test_images):
    """A layer an old `docker save` archive names by no digest may come
    gzipped (made by hand): its diff id is the digest of the tar inside,
    which is what is checked; libarchive alone would not notice a damaged
    byte (it does not check gzip's CRC)."""
    import gzip
    content = os.urandom(4096) * 4
    archive = f"/var/tmp/sarus-gzlayer-{uuid.uuid4().hex[:8]}.docker.tar"
    try:
        info = tarfile.TarInfo("data.bin")
        info.mode = 0o644
        busybox_with_layer(test_images, archive, [(info, content)])
        rewrite_member(archive, "extra-layer/layer.tar", lambda layer: gzip.compress(layer, compresslevel=0))
        sarus.ok("load", archive, "keep")
        assert sarus.ok("run", "load/library/keep", "busybox", "md5sum", "/data.bin").stdout.split()[0] == \
            __import__("hashlib").md5(content).hexdigest()
        before = tree_snapshot(sarus.repository)

        def flip_a_stored_byte(layer):
            at = len(layer) // 2  # inside the stored (level 0) data: the gzip stream stays readable
            return layer[:at] + bytes([layer[at] ^ 0x20]) + layer[at + 1:]
        rewrite_member(archive, "extra-layer/layer.tar", flip_a_stored_byte)
        r = sarus("load", archive, "keep")
        assert r.returncode == 1, r.stdout
        assert r.stderr.count("\n") == 1, r.stderr
        assert "layer extra-layer/layer.tar is corrupt" in r.stderr, r.stderr
        assert tree_snapshot(sarus.repository) == before
    finally:
        os.remove(archive)


def test_members_that_are_not_metadata_are_not_kept_in_memory(sarus, test_images):
    """An archive's members other than its JSON documents are not held in
    memory while it is read: 60 members of 4 MiB zeros (a few hundred KB
    gzipped) would otherwise take 240 MB."""
    import gzip
    import io
    archive = f"/var/tmp/sarus-filler-{uuid.uuid4().hex[:8]}.docker.tar.gz"
    try:
        with tarfile.open(os.path.join(test_images, "busybox.docker.tar")) as source, \
                gzip.open(archive, "wb", compresslevel=1) as raw, tarfile.open(fileobj=raw, mode="w") as tar:
            for member in source.getmembers():
                tar.addfile(member, source.extractfile(member) if member.isfile() else None)
            zeros = bytes(4 << 20)
            for i in range(60):
                info = tarfile.TarInfo(f"filler/{i:04d}")
                info.size = len(zeros)
                tar.addfile(info, io.BytesIO(zeros))
        os.chmod(archive, 0o644)
        r = run_as(sarus.user, ["/usr/bin/time", "-f", "maxrss %M", sarus.binary, "load", archive, "filler"],
                   env={"SARUS_CONFIG_FILE": sarus.config_file})
        assert r.returncode == 0, r.stderr
        rss_kb = int(r.stderr.strip().splitlines()[-1].split()[1])
        assert rss_kb < 120 * 1024, f"load took {rss_kb} KB"
        assert sarus.ok("run", "load/library/filler", "echo", "ok").stdout == "ok\n"
    finally:
        os.remove(archive)


@pytest.mark.parametrize("first, second", [("ns/coll/latest.squashfs:x", "ns/coll"),
                                           ("ns/coll", "ns/coll/latest.squashfs:x")])
def test_a_name_whose_path_another_image_holds_is_refused_naming_it(sarus, test_images, first, second):
    """Sarus's layout makes a repository a directory and a tag a file, so
    these two names need one path: the second is refused before any work,
    in one line, and the first stays."""
    archive = os.path.join(test_images, "busybox.docker.tar")
    sarus.ok("load", archive, first)
    before = tree_snapshot(sarus.repository)
    r = sarus("load", archive, second)
    assert r.returncode == 1, r.stdout
    assert r.stderr.count("\n") == 1, r.stderr
    assert "cannot store image" in r.stderr and "belongs to another image" in r.stderr, r.stderr
    assert tree_snapshot(sarus.repository) == before
    assert sarus.ok("run", "load/" + first.split(":")[0] + ":" + (first.split(":") + ["latest"])[1],
                    "true").returncode == 0


def test_missing_archive_file(sarus):
    r = sarus("load", "/nonexistent/archive.tar", "x")
    assert r.returncode == 1
    assert "/nonexistent/archive.tar" in r.stderr and "No such file" in r.stderr


def test_two_concurrent_loads_both_land_in_the_index(sarus, test_images):
    binary = [sarus.binary]
    procs = []
    for archive, name in [("layered.docker.tar", "one"), ("busybox.oci.tar", "two"),
                          ("layered.oci.tar", "three")]:
        procs.append(threading.Thread(target=lambda a=archive, n=name: results.append(
            sarus("load", os.path.join(test_images, a), n))))
    results = []
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    listed = sorted(line.split()[0] for line in sarus.ok("images").stdout.splitlines()[1:])
    assert listed == ["load/library/one", "load/library/three", "load/library/two"]


def test_centralized_repository_is_separate(sarus, test_images):
    sarus.ok("load", "--centralized-repository", os.path.join(test_images, "busybox.docker.tar"), "shared")
    assert sarus.ok("images").stdout.strip().count("\n") == 0
    listed = sarus.ok("images", "--centralized-repository").stdout.splitlines()[1:]
    assert [line.split()[0] for line in listed] == ["load/library/shared"]
    sarus.ok("rmi", "--centralized-repository", "load/library/shared")
    assert sarus.ok("images", "--centralized-repository").stdout.strip().count("\n") == 0


def test_centralized_repository_is_readable_by_everyone_whatever_the_umask(sarus, test_images):
    """The admin's umask 077 keeps a private repository private, but every
    user must read a centralized one; nobody else may write to either."""
    archive = os.path.join(test_images, "busybox.docker.tar")
    for flag in ("--centralized-repository", None):
        r = run_as(sarus.user, ["sh", "-c", 'umask 077; exec "$@"', "sh", sarus.binary, "load",
                                *([flag] if flag else []), archive, "shared"],
                   env={"SARUS_CONFIG_FILE": sarus.config_file})
        assert r.returncode == 0, r.stderr
    import stat
    for repository, readable in ((sarus.config["centralizedRepositoryDir"], True), (sarus.repository, False)):
        for root, dirs, files in os.walk(repository):
            for path in [root] + [os.path.join(root, f) for f in files]:
                mode = os.lstat(path).st_mode
                need = 0o055 if stat.S_ISDIR(mode) else 0o044
                assert mode & 0o022 == 0, f"{path}: {oct(mode)}"
                assert (mode & need == need) == readable, f"{path}: {oct(mode)}"


def test_temp_dir_must_exist(sarus, test_images):
    r = sarus("load", "--temp-dir", "/nonexistent-dir", os.path.join(test_images, "busybox.docker.tar"), "x")
    assert r.returncode == 1
    assert 'Invalid temporary directory "/nonexistent-dir"' in r.stderr


def test_loaded_image_mounts_with_squashfuse(sarus, test_images):
    sarus.ok("load", os.path.join(test_images, "layered.oci.tar"), "img")
    mountpoint = os.path.join(sarus.workdir, "mnt")
    run_as(sarus.user, ["mkdir", mountpoint], check=True)
    r = run_as(sarus.user, ["squashfuse_ll", image_file(sarus, "img"), mountpoint])
    assert r.returncode == 0, r.stderr
    try:
        listing = run_as(sarus.user, ["ls", os.path.join(mountpoint, "data")]).stdout.split("\n")
        assert "keep.txt" in listing and "remove-me.txt" not in listing
        link = run_as(sarus.user, ["readlink", os.path.join(mountpoint, "opt", "app")])
        assert link.stdout.strip() == "/opt/app-v2"
    finally:
        run_as(sarus.user, ["fusermount3", "-u", mountpoint])


@pytest.mark.skipif(os.geteuid() != 0, reason="a kernel squashfs mount needs root")
def test_loaded_image_mounts_with_the_kernel(sarus, test_images):
    sarus.ok("load", os.path.join(test_images, "layered.docker.tar"), "img")
    mountpoint = os.path.join(sarus.workdir, "kmnt")
    os.mkdir(mountpoint)
    subprocess.run(["mount", "-t", "squashfs", "-o", "loop,ro", image_file(sarus, "img"), mountpoint],
                   check=True)
    try:
        st = os.lstat(os.path.join(mountpoint, "usr", "local", "bin", "suid-tool"))
        assert st.st_mode & 0o7777 == 0o4755
        assert os.path.islink(os.path.join(mountpoint, "opt", "app"))
        assert os.stat(os.path.join(mountpoint, "data", "hardlinks", "one.txt")).st_nlink == 2
    finally:
        subprocess.run(["umount", mountpoint], check=True)


def test_invalid_configuration_is_reported_with_the_key(sarus):
    sarus.config["ramFilesystemType"] = "diskfs"
    sarus.write_config()
    r = sarus("images")
    assert r.returncode == 1
    assert "key 'ramFilesystemType'" in r.stderr and sarus.config_file in r.stderr


def test_mksquashfs_options_of_a_sarus_configuration_choose_the_format(sarus, test_images):
    """Sarus 1.7 passes mksquashfsOptions to mksquashfs; this engine writes
    the same choices (-comp, -b) with libsquashfs when sarus.json has no
    `squashfs` key, so a Sarus site's configuration keeps its images' format."""
    sarus.config.pop("squashfs", None)
    sarus.config["mksquashfsOptions"] = "-comp lz4 -b 64K"
    sarus.write_config()
    sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "lz4")
    r = subprocess.run(["unsquashfs", "-s", image_file(sarus, "lz4")], capture_output=True, text=True, check=True)
    assert "Compression lz4" in r.stdout and "Block size 65536" in r.stdout, r.stdout
    assert sarus.ok("run", "load/library/lz4", "echo", "runs").stdout == "runs\n"


def test_a_new_repository_is_the_users_alone(sarus, test_images):
    """Images pulled with --login are private to the user, whatever the
    umask and however traversable the home directory is."""
    os.chmod(os.path.join(sarus.repo_base, sarus.user), 0o755)
    sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    assert os.stat(sarus.repository).st_mode & 0o777 == 0o700
    other = next(u for u in TEST_USERS if u != sarus.user)
    r = run_as(other, ["cat", image_file(sarus, "busybox")])
    assert r.returncode != 0, "another user read the user's image"
    assert sarus.ok("run", "load/library/busybox", "echo", "runs").stdout == "runs\n"


@pytest.fixture
def shared_scratch(sarus):
    """The repository base as a shared scratch (world-writable, sticky), the
    user's directory in it not made yet: any user may make it first."""
    shutil.rmtree(os.path.join(sarus.repo_base, sarus.user))
    os.chmod(sarus.repo_base, 0o1777)
    return sarus


def test_a_repository_made_first_by_another_user_is_refused(shared_scratch, test_images):
    """Another user who makes <base>/<user> first would choose the images
    the user runs: load and images refuse it, and nothing is written there."""
    sarus = shared_scratch
    other = next(u for u in TEST_USERS if u != sarus.user)
    taken = os.path.join(sarus.repo_base, sarus.user)
    run_as(other, ["mkdir", "-m", "777", taken], check=True)
    for args in (["load", os.path.join(test_images, "busybox.oci.tar"), "busybox"], ["images"]):
        r = sarus(*args)
        assert r.returncode != 0, r.stdout
        assert r.stderr.count("\n") == 1, r.stderr
        assert f"{taken} belongs to {other} (uid {pwd.getpwnam(other).pw_uid})" in r.stderr, r.stderr
    assert os.listdir(taken) == []


def test_a_repository_writable_by_every_user_is_refused(shared_scratch, test_images):
    sarus = shared_scratch
    repository = os.path.join(sarus.repo_base, sarus.user, ".sarus")
    run_as(sarus.user, ["mkdir", "-p", "-m", "777", repository], check=True)
    os.chmod(repository, 0o777)
    r = sarus("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    assert r.returncode != 0 and f"{repository} is writable by every user" in r.stderr, r.stderr
    assert os.listdir(repository) == []
    os.chmod(repository, 0o755)
    sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")


@pytest.mark.parametrize("mode", [0o777, 0o775])
def test_a_base_others_may_write_to_without_the_sticky_bit_is_refused(shared_scratch, test_images, mode):
    """There any user (of the group) may rename <base>/<user> and put their
    own in its place."""
    sarus = shared_scratch
    os.chmod(sarus.repo_base, mode)
    r = sarus("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    assert r.returncode != 0, r.stdout
    assert f"{sarus.repo_base} is writable by other users and not sticky" in r.stderr, r.stderr
    assert os.listdir(sarus.repo_base) == []


def test_a_base_of_another_user_is_refused(sarus, test_images):
    """Its owner could replace <base>/<user> at any time."""
    other = pwd.getpwnam(next(u for u in TEST_USERS if u != sarus.user))
    os.chown(sarus.repo_base, other.pw_uid, other.pw_gid)
    r = sarus("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    assert r.returncode != 0, r.stdout
    assert f"{sarus.repo_base} belongs to {other.pw_name} (uid {other.pw_uid}), who could replace" in r.stderr, r.stderr
