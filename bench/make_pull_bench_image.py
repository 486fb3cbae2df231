#!/usr/bin/python3
"""Builds the pull benchmark's large image as an OCI image layout directory:
Debian bookworm with python3 and numpy (the rootfs of make_python_image.sh)
as the first layer, then scipy, then sympy and pandas, each a gzip layer as
registries usually serve them. About 370 MB unpacked in three layers.

   sudo bench/make_pull_bench_image.py [OUTDIR]    (default /var/tmp/sarus-bench-images)

Writes OUTDIR/python-scipy.oci/ (skopeo's `oci:DIR:latest`). Packages come
from Debian's repositories (`apt-get download`, `dpkg-deb -x`). Skips the
work when the layout exists.
"""

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
LAYER_PACKAGES = [
    ["python3-scipy"],
    ["python3-sympy", "python3-mpmath", "python3-pandas", "python3-pandas-lib"],
]


def log(message):
    print(f"make_pull_bench_image: {message}", flush=True)


def write_gzip_layer(source_argv, blobs):
    """Runs source_argv (writing a tar to stdout), gzips it with gzip -6 into
    blobs/; returns (descriptor, diff_id, unpacked size)."""
    tmp = os.path.join(blobs, "incoming.gz")
    uncompressed = hashlib.sha256()
    size = 0
    with open(tmp, "wb") as out:
        tar = subprocess.Popen(source_argv, stdout=subprocess.PIPE)
        gz = subprocess.Popen(["gzip", "-6", "-n"], stdin=subprocess.PIPE, stdout=out)
        for chunk in iter(lambda: tar.stdout.read(1 << 20), b""):
            uncompressed.update(chunk)
            size += len(chunk)
            gz.stdin.write(chunk)
        gz.stdin.close()
        if tar.wait() != 0 or gz.wait() != 0:
            sys.exit(f"make_pull_bench_image: {' '.join(source_argv)} failed")
    compressed = hashlib.sha256()
    with open(tmp, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            compressed.update(chunk)
    digest = compressed.hexdigest()
    os.rename(tmp, os.path.join(blobs, digest))
    descriptor = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                  "digest": "sha256:" + digest, "size": os.path.getsize(os.path.join(blobs, digest))}
    return descriptor, "sha256:" + uncompressed.hexdigest(), size


def put_json(blobs, document):
    data = json.dumps(document, sort_keys=True).encode()
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def base_layer_member(docker_archive):
    with tarfile.open(docker_archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    return manifest[0]["Layers"][0]


def main(outdir):
    layout = os.path.join(outdir, "python-scipy.oci")
    if os.path.exists(os.path.join(layout, "index.json")):
        log(f"{layout} exists")
        return
    base = os.path.join(outdir, "python-numpy.docker.tar")
    if not os.path.exists(base):
        subprocess.run([os.path.join(HERE, "make_python_image.sh"), outdir], check=True)
    work = tempfile.mkdtemp(prefix="sarus-bench-layout-", dir=outdir)
    try:
        blobs = os.path.join(work, "blobs", "sha256")
        os.makedirs(blobs)
        layers, diff_ids, unpacked = [], [], 0
        log("layer 1: the python3+numpy rootfs of python-numpy.docker.tar")
        member = base_layer_member(base)
        d, diff, size = write_gzip_layer(["tar", "-xOf", base, member], blobs)
        layers.append(d), diff_ids.append(diff)
        unpacked += size
        debs = os.path.join(outdir, "debs")
        os.makedirs(debs, exist_ok=True)
        for number, packages in enumerate(LAYER_PACKAGES, start=2):
            log(f"layer {number}: {' '.join(packages)}")
            subprocess.run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root"] + packages, cwd=debs, check=True,
                           stdout=subprocess.DEVNULL)
            root = os.path.join(work, f"root{number}")
            os.makedirs(root)
            for package in packages:
                (deb,) = glob.glob(os.path.join(debs, f"{package}_*.deb"))
                subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
            d, diff, size = write_gzip_layer(["tar", "--numeric-owner", "--owner=0", "--group=0",
                                              "--sort=name", "--mtime=@1700000000", "-C", root, "-cf", "-", "."],
                                             blobs)
            layers.append(d), diff_ids.append(diff)
            unpacked += size
            shutil.rmtree(root)
        config = {"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
                  "config": {"Cmd": ["python3"], "WorkingDir": "/",
                             "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        config_digest, config_size = put_json(blobs, config)
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": config_digest, "size": config_size},
                    "layers": layers}
        manifest_digest, manifest_size = put_json(blobs, manifest)
        with open(os.path.join(work, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                "size": manifest_size, "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, f)
        with open(os.path.join(work, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion": "1.0.0"}')
        os.chmod(work, 0o755)
        os.rename(work, layout)
        log(f"{layout}: {len(layers)} layers, {unpacked / 1e6:.0f} MB unpacked, "
            f"{sum(l['size'] for l in layers) / 1e6:.0f} MB compressed")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/var/tmp/sarus-bench-images")
