#!/usr/bin/python3
"""Packs a root filesystem directory into a one-layer image, written both as
a docker-archive (PREFIX.docker.tar, plain layer) and an OCI archive
(PREFIX.oci.tar, gzip layer), with Cmd python3 and Debian's PATH.
   rootfs_to_archives.py ROOTFS PREFIX"""

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def add_bytes(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def main(rootfs, prefix):
    work = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(prefix)))
    try:
        layer = os.path.join(work, "layer.tar")
        subprocess.run(["tar", "--numeric-owner", "--xattrs", "-C", rootfs, "-cf", layer, "."], check=True)
        diff_id = sha256_file(layer)
        config = {
            "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
            "config": {"Cmd": ["python3"], "WorkingDir": "/",
                       "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id]},
        }
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_digest = hashlib.sha256(config_bytes).hexdigest()

        with tarfile.open(prefix + ".docker.tar.tmp", "w") as tar:
            add_bytes(tar, "manifest.json", json.dumps([{
                "Config": config_digest + ".json", "RepoTags": ["sarus-bench/python-numpy:latest"],
                "Layers": [diff_id + "/layer.tar"]}]).encode())
            add_bytes(tar, config_digest + ".json", config_bytes)
            tar.add(layer, diff_id + "/layer.tar")
        os.rename(prefix + ".docker.tar.tmp", prefix + ".docker.tar")

        gz = layer + ".gz"
        with open(layer, "rb") as src, gzip.open(gz, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        gz_digest = sha256_file(gz)
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": "sha256:" + config_digest, "size": len(config_bytes)},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                "digest": "sha256:" + gz_digest, "size": os.path.getsize(gz)}]}
        manifest_bytes = json.dumps(manifest).encode()
        manifest_digest = hashlib.sha256(manifest_bytes).hexdigest()
        index = {"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + manifest_digest,
            "size": len(manifest_bytes), "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
        with tarfile.open(prefix + ".oci.tar.tmp", "w") as tar:
            add_bytes(tar, "index.json", json.dumps(index).encode())
            add_bytes(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
            add_bytes(tar, "blobs/sha256/" + config_digest, config_bytes)
            add_bytes(tar, "blobs/sha256/" + manifest_digest, manifest_bytes)
            tar.add(gz, "blobs/sha256/" + gz_digest)
        os.rename(prefix + ".oci.tar.tmp", prefix + ".oci.tar")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
