"""A local repository written by Sarus 1.7, used as-is: `sarus images`, `run`
and `rmi` on its metadata.json and .meta files, with squashfs images made by
mksquashfs as Sarus makes them (from an unpacked rootfs, as the user).

The files are laid out as Sarus 1.7 writes them (ImageStore::createImageJSON,
ImageMetadata::write, rapidjson's PrettyWriter with a 3-space indent):
images/<server>/<namespace>/<image>/<tag>.squashfs and .meta, a digest-only
image named <algorithm>-<hex>, "digest" always "", the registry's digest in
"registryDigest", the image ID as bare hex, datasize and created as strings.
"""

import json
import os
import pwd
import shutil
import subprocess
import tempfile


from conftest import run_as

ALPINE_ID = "7e01a0d0a1dcd9e539f8e9bbd80106d59efbdf97293b3d38f5d7a34501526cdb"
ALPINE_DIGEST = "sha256:7144f7bab3d4c2648d7e59409f15ec52a18006a128c733fcff20d3a4a54ba44a"
HPC_ID = "aaaabbbbccccddddeeeeffff0000111122223333444455556666777788889999"
HPC_DIGEST = "sha256:" + "0123456789abcdef" * 4
BUSYBOX = "/usr/bin/busybox"


def sarus_size(n):
    """Sarus's SarusImage::createSizeString for what `images` shows."""
    units = ["B", "KB", "MB", "GB", "TB"]
    value, unit = float(n), 0
    while value >= 1024 and unit < 4:
        value /= 1024
        unit += 1
    return f"{value:.0f}B" if unit == 0 else f"{value:.2f}{units[unit]}"


def make_squashfs(user, target):
    """A busybox rootfs squashed by mksquashfs run as the user, as Sarus 1.7
    does after umoci's rootless unpack (the files are the user's)."""
    work = tempfile.mkdtemp(prefix="sarus17-rootfs-", dir="/var/tmp")
    try:
        rootfs = os.path.join(work, "rootfs")
        for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "work"):
            os.makedirs(os.path.join(rootfs, d))
        shutil.copy(BUSYBOX, os.path.join(rootfs, "bin", "busybox"))
        for applet in ("sh", "echo", "cat", "pwd", "env", "true"):
            os.symlink("busybox", os.path.join(rootfs, "bin", applet))
        with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\n")
        with open(os.path.join(rootfs, "etc", "group"), "w") as f:
            f.write("root:x:0:\n")
        if os.geteuid() == 0:
            pw = pwd.getpwnam(user)
            subprocess.run(["chown", "-R", f"{pw.pw_uid}:{pw.pw_gid}", work], check=True)
        out = os.path.join(work, "image.squashfs")
        run_as(user, ["mksquashfs", rootfs, out, "-noappend", "-quiet", "-no-progress"], check=True)
        shutil.copy(out, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


SARUS_META = {
    "Cmd": ["/bin/sh", "-c", "echo from-sarus-cmd"],
    "Entrypoint": [],
    "WorkingDir": "/work",
    "Env": ["PATH=/bin", "FROM_SARUS=yes"],
    "Labels": {"org.opencontainers.image.title": "sarus17"},
}


def entry(repo, server, namespace, image, tag, registry_digest, image_id, created, stem, datasize):
    e = {"uniqueKey": f"{server}/{namespace}/{image}/{stem}", "server": server, "namespace": namespace,
         "image": image, "tag": tag, "digest": ""}
    if registry_digest is not None:
        e["registryDigest"] = registry_digest
    if image_id is not None:
        e["id"] = image_id
    base = os.path.join(repo, "images", server, namespace, image, stem)
    e.update({"imagePath": base + ".squashfs", "metadataPath": base + ".meta", "datasize": datasize,
              "created": created})
    return e


def lay_out_sarus17_repository(sarus, extra_entries=()):
    """The user's repository as Sarus 1.7 leaves it: alpine:3.18 pulled by tag,
    quay.io/ns/sub/hpc pulled by digest, ubuntu:20.04 pulled by Sarus 1.4 under
    index.docker.io (no "id", no "registryDigest"). Returns the index."""
    repo = sarus.repository
    os.makedirs(repo)
    squashfs = os.path.join(sarus.workdir, "sarus17.squashfs")
    make_squashfs(sarus.user, squashfs)
    size = sarus_size(os.path.getsize(squashfs))
    hpc_stem = HPC_DIGEST.replace(":", "-")
    entries = [
        entry(repo, "docker.io", "library", "alpine", "3.18", ALPINE_DIGEST, ALPINE_ID,
              "2024-03-05T10:11:12", "3.18", size),
        entry(repo, "quay.io", "ns/sub", "hpc", "", HPC_DIGEST, HPC_ID, "2024-03-06T08:00:00", hpc_stem, size),
        entry(repo, "index.docker.io", "library", "ubuntu", "20.04", None, None,
              "2021-11-30T17:45:01", "20.04", size),
    ]
    for e in entries:
        os.makedirs(os.path.dirname(e["imagePath"]), exist_ok=True)
        shutil.copy(squashfs, e["imagePath"])
        with open(e["metadataPath"], "w") as f:
            json.dump(SARUS_META, f, indent=3)
    index = {"images": entries + list(extra_entries)}
    with open(os.path.join(repo, "metadata.json"), "w") as f:
        json.dump(index, f, indent=3)
    if os.geteuid() == 0:
        pw = pwd.getpwnam(sarus.user)
        subprocess.run(["chown", "-R", f"{pw.pw_uid}:{pw.pw_gid}", repo], check=True)
    return index


def read_index(sarus):
    with open(os.path.join(sarus.repository, "metadata.json")) as f:
        return json.load(f)


def test_images_run_and_rmi_on_a_sarus_17_repository(sarus):
    index = lay_out_sarus17_repository(sarus)
    size = index["images"][0]["datasize"]

    lines = sarus.ok("images").stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE", "SERVER"]
    assert [line.split() for line in lines[1:]] == [
        ["alpine", "3.18", ALPINE_ID[:12], "2024-03-05T10:11:12", size, "docker.io"],
        ["ubuntu", "20.04", "<none>", "2021-11-30T17:45:01", size, "docker.io"],
        ["quay.io/ns/sub/hpc", "<none>", HPC_ID[:12], "2024-03-06T08:00:00", size, "quay.io"],
    ]
    digests = [line.split() for line in sarus.ok("images", "--digests").stdout.splitlines()[1:]]
    assert [row[2] for row in digests] == [ALPINE_DIGEST, "<none>", HPC_DIGEST]

    # The image's Cmd, Env and WorkingDir from Sarus's .meta.
    assert sarus.ok("run", "alpine:3.18").stdout == "from-sarus-cmd\n"
    r = sarus.ok("run", "alpine:3.18", "sh", "-c", "echo $FROM_SARUS; pwd")
    assert r.stdout == "yes\n/work\n"
    assert sarus.ok("run", f"quay.io/ns/sub/hpc@{HPC_DIGEST}", "echo", "by-digest").stdout == "by-digest\n"
    # Pulled by Sarus 1.4 as index.docker.io/library/ubuntu: found as Docker Hub's.
    assert sarus.ok("run", "ubuntu:20.04", "echo", "legacy").stdout == "legacy\n"

    r = sarus.ok("rmi", "alpine:3.18")
    assert r.stdout == "removed image docker.io/library/alpine:3.18\n"
    assert not os.path.exists(index["images"][0]["imagePath"])
    assert not os.path.exists(index["images"][0]["metadataPath"])
    # The other entries stay exactly as Sarus wrote them.
    assert read_index(sarus)["images"] == index["images"][1:]

    sarus.ok("rmi", f"quay.io/ns/sub/hpc@{HPC_DIGEST}")
    sarus.ok("rmi", "ubuntu:20.04")
    assert read_index(sarus) == {"images": []}
    assert sarus.ok("images").stdout.split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE", "SERVER"]
    r = sarus("rmi", "alpine:3.18")
    assert r.returncode == 1 and r.stderr.strip() == "Cannot find image 'docker.io/library/alpine:3.18'"


def test_an_unreadable_entry_is_one_warning_and_is_kept(sarus):
    odd = {"uniqueKey": "what/is/this", "server": 5}
    index = lay_out_sarus17_repository(sarus, extra_entries=[odd])
    r = sarus.ok("images")
    assert len(r.stdout.splitlines()) == 4
    warnings = r.stderr.strip().splitlines()
    assert len(warnings) == 1 and "entry 4 of" in warnings[0] and "metadata.json" in warnings[0], r.stderr
    sarus.ok("rmi", "alpine:3.18")
    assert read_index(sarus)["images"] == index["images"][1:]


def test_an_image_loaded_into_a_sarus_17_repository_is_written_as_sarus_writes_it(sarus, test_images):
    index = lay_out_sarus17_repository(sarus)
    sarus.ok("load", os.path.join(test_images, "busybox.docker.tar"), "mine")
    entries = read_index(sarus)["images"]
    assert entries[:3] == index["images"]
    new = entries[3]
    # Sarus 1.7 reads every one of these with GetString().
    for key in ("uniqueKey", "server", "namespace", "image", "tag", "digest", "registryDigest", "id",
                "imagePath", "metadataPath", "datasize", "created"):
        assert isinstance(new[key], str), key
    assert new["uniqueKey"] == "load/library/mine/latest"
    assert (new["server"], new["namespace"], new["image"], new["tag"]) == ("load", "library", "mine", "latest")
    assert len(new["id"]) == 64 and all(c in "0123456789abcdef" for c in new["id"])
    assert new["imagePath"] == os.path.join(sarus.repository, "images/load/library/mine/latest.squashfs")
    assert new["datasize"] == sarus_size(os.path.getsize(new["imagePath"]))
    assert sarus.ok("run", "load/library/mine", "echo", "ok").stdout == "ok\n"
    assert sarus.ok("run", "alpine:3.18", "true").returncode == 0
