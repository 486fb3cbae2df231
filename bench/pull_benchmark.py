#!/usr/bin/python3
"""Pull benchmark: `sarus pull` from a local registry, end to end, against
the pipeline Sarus 1.7 runs for the same pull (skopeo copy to an OCI layout,
umoci raw unpack --rootless, mksquashfs with the same compression), against
`sarus load` of the same image as a docker-archive (the same flattening
without the registry), and against the floor of just decompressing every
layer blob (gzip -dc > /dev/null), all measured in the same run on the same
warm page cache.

   sudo bench/pull_benchmark.py [--prefix /opt/sarus-test] [--repeat 3] [--images busybox,layered,python-scipy]

Images: the test images (busybox, layered; tests/images/make_images.py) and
Debian bookworm with python3, numpy, scipy, sympy and pandas, 370 MB
unpacked in three gzip layers (bench/make_pull_bench_image.py, built on
first use). The registry is Debian's docker-registry on 127.0.0.1. Every run
of `sarus pull` starts from an empty repository and blob cache. Prints the
median wall time of each, the ratios set as targets (pull <= 0.5x the
pipeline, <= 1.5x gzip -dc, <= 1.1x load) and peak memory (max RSS), which must not
grow with the image size.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import registry_helpers as rh  # noqa: E402

TEST_IMAGES = "/var/tmp/sarus-test-images"
BENCH_IMAGES = "/var/tmp/sarus-bench-images"
TOOLS = ["docker-registry", "skopeo", "umoci", "mksquashfs", "gzip"]


def die(message):
    sys.exit(f"pull_benchmark: {message}")


def timed(argv, **kw):
    """Runs argv; returns (wall seconds, peak RSS in MiB of it and its children)."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=kw.pop("stdout", subprocess.DEVNULL),
                               stderr=subprocess.PIPE, **kw)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    stderr = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        die(f"{' '.join(argv)} failed:\n{stderr}")
    return elapsed, usage.ru_maxrss / 1024


def images(selected):
    if not os.path.exists(os.path.join(TEST_IMAGES, "layered.docker.tar")):
        subprocess.run(["/usr/bin/python3", os.path.join(REPO, "tests", "images", "make_images.py"), TEST_IMAGES],
                       check=True)
    available = {
        "busybox": os.path.join(TEST_IMAGES, "busybox.docker.tar"),
        "layered": os.path.join(TEST_IMAGES, "layered.docker.tar"),
        "python-scipy": "oci:" + os.path.join(BENCH_IMAGES, "python-scipy.oci") + ":latest",
    }
    if "python-scipy" in selected:
        subprocess.run([os.path.join(HERE, "make_pull_bench_image.py"), BENCH_IMAGES], check=True)
    return [(name, available[name]) for name in selected]


def squashfs_settings(prefix):
    with open(os.path.join(prefix, "etc", "sarus.json")) as f:
        config = json.load(f)
    settings = config.get("squashfs", {})
    compressor = settings.get("compression", "zstd")
    level = settings.get("level", 3)
    block = settings.get("blockSize", 131072)
    options = ["-comp", compressor, "-b", str(block)]
    if compressor in ("zstd", "gzip", "lz4") and level:
        options += ["-Xcompression-level", str(level)] if compressor != "lz4" else ["-Xhc"] if level > 1 else []
    return config, f"{compressor} level {level}, {block // 1024} KiB blocks", options


def layer_blobs(registry, repository):
    manifest = json.loads(registry.get_manifest(repository, "latest")[0])
    return [(registry.blob_data_path(layer["digest"]), layer["mediaType"]) for layer in manifest["layers"]]


def decompress_floor(blobs):
    """gzip -dc of every gzip layer blob to /dev/null (cat for plain tar)."""
    start = time.perf_counter()
    for path, media_type in blobs:
        tool = ["gzip", "-dc"] if "gzip" in media_type else ["zstd", "-dc"] if "zstd" in media_type else ["cat"]
        with open(path, "rb") as src:
            subprocess.run(tool, stdin=src, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def unpacked_size(blobs):
    total = 0
    for path, media_type in blobs:
        tool = ["gzip", "-dc"] if "gzip" in media_type else ["zstd", "-dc"] if "zstd" in media_type else ["cat"]
        with open(path, "rb") as src:
            p = subprocess.Popen(tool, stdin=src, stdout=subprocess.PIPE)
            for chunk in iter(lambda: p.stdout.read(1 << 20), b""):
                total += len(chunk)
            p.wait()
    return total


def sarus_in_empty_repository(binary, config, workdir, arguments):
    base = tempfile.mkdtemp(dir=workdir, prefix="sarus-")
    config = dict(config, localRepositoryBaseDir=base)
    config_file = os.path.join(base, "sarus.json")
    with open(config_file, "w") as f:
        json.dump(config, f)
    env = dict(os.environ, SARUS_CONFIG_FILE=config_file)
    env.pop("HTTP_PROXY", None), env.pop("http_proxy", None)
    elapsed, rss = timed([binary] + arguments, env=env)
    shutil.rmtree(base)
    return elapsed, rss


def docker_archive(source, workdir):
    """The image as a docker-archive for `sarus load`, made once with skopeo."""
    if not source.startswith("oci:"):
        return source
    path = os.path.join(workdir, "load-" + os.path.basename(source.split(":")[1]) + ".tar")
    subprocess.run(["skopeo", "copy", "--quiet", source, f"docker-archive:{path}"], check=True)
    return path


def sarus_pipeline(workdir, reference, mksquashfs_options):
    """What Sarus 1.7 does for `sarus pull`: three passes over the data."""
    base = tempfile.mkdtemp(dir=workdir, prefix="pipeline-")
    layout = os.path.join(base, "oci")
    rootfs = os.path.join(base, "rootfs")
    steps = [
        ["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{reference}", f"oci:{layout}:latest"],
        ["umoci", "raw", "unpack", "--rootless", "--image", f"{layout}:latest", rootfs],
        ["mksquashfs", rootfs, os.path.join(base, "image.squashfs"), "-noappend", "-no-progress",
         "-quiet"] + mksquashfs_options,
    ]
    times, peak = [], 0.0
    for argv in steps:
        elapsed, rss = timed(argv)
        times.append(elapsed)
        peak = max(peak, rss)
    subprocess.run(["rm", "-rf", base], check=True)
    return sum(times), times, peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", default="/opt/sarus-test", help="sarus installation (default /opt/sarus-test)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; medians are shown")
    parser.add_argument("--images", default="busybox,layered,python-scipy")
    args = parser.parse_args()
    for tool in TOOLS:
        if shutil.which(tool) is None and not os.path.exists(rh.REGISTRY_BINARY):
            die(f"{tool} is missing (apt-get install docker-registry skopeo umoci squashfs-tools gzip)")
    binary = os.path.join(args.prefix, "bin", "sarus")
    if not os.access(binary, os.X_OK):
        die(f"no sarus in {args.prefix}")
    selected = images(args.images.split(","))
    config, compression, mksquashfs_options = squashfs_settings(args.prefix)
    workdir = tempfile.mkdtemp(prefix="sarus-pull-bench-", dir="/var/tmp")
    registry = None
    try:
        registry = rh.Registry(os.path.join(workdir, "registry"))
        config["insecureRegistries"] = [registry.address]
        config["tempDir"] = workdir
        print(f"sarus pull benchmark: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
              f"squashfs {compression} (mksquashfs {' '.join(mksquashfs_options)}), "
              f"median of {args.repeat} runs, warm page cache, registry {registry.address}")
        rows = []
        for name, source in selected:
            repository = f"bench/{name}"
            registry.push_archive(source, repository)
            blobs = layer_blobs(registry, repository)
            for path, _ in blobs:  # warm the page cache for everyone alike
                with open(path, "rb") as f:
                    while f.read(1 << 22):
                        pass
            reference = f"{registry.address}/{repository}:latest"
            archive = docker_archive(source, workdir)
            floor, ours, ours_rss, pipeline, stages, pipeline_rss, loads = [], [], [], [], [], [], []
            for _ in range(args.repeat):
                floor.append(decompress_floor(blobs))
                t, rss = sarus_in_empty_repository(binary, config, workdir, ["pull", reference])
                ours.append(t)
                ours_rss.append(rss)
                loads.append(sarus_in_empty_repository(binary, config, workdir, ["load", archive, name])[0])
                total, parts, rss = sarus_pipeline(workdir, reference, mksquashfs_options)
                pipeline.append(total)
                stages.append(parts)
                pipeline_rss.append(rss)
            rows.append({
                "image": name, "layers": len(blobs), "unpacked": unpacked_size(blobs) / 1e6,
                "compressed": sum(os.path.getsize(p) for p, _ in blobs) / 1e6,
                "pull": statistics.median(ours), "pipeline": statistics.median(pipeline),
                "stages": [statistics.median(s) for s in zip(*stages)], "floor": statistics.median(floor),
                "load": statistics.median(loads),
                "pull_rss": max(ours_rss), "pipeline_rss": max(pipeline_rss)})
        report(rows)
    finally:
        if registry:
            registry.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def report(rows):
    header = (f"{'image':<14}{'layers':>7}{'unpacked':>10}{'blobs':>9}{'sarus pull':>12}"
              f"{'Sarus 1.7 pipeline':>21}{'(skopeo/umoci/mksquashfs)':>27}{'ratio':>7}"
              f"{'gzip -dc':>10}{'ratio':>7}{'sarus load':>12}{'ratio':>7}{'peak RSS pull':>15}{'pipeline':>10}")
    print(header)
    for r in rows:
        stages = "/".join(f"{s:.2f}" for s in r["stages"])
        print(f"{r['image']:<14}{r['layers']:>7}{r['unpacked']:>8.0f}MB{r['compressed']:>7.0f}MB"
              f"{r['pull']:>10.2f} s{r['pipeline']:>19.2f} s{stages:>27}{r['pull'] / r['pipeline']:>7.2f}"
              f"{r['floor']:>8.2f} s{r['pull'] / r['floor']:>7.2f}{r['load']:>10.2f} s{r['pull'] / r['load']:>7.2f}"
              f"{r['pull_rss']:>12.0f} MB{r['pipeline_rss']:>7.0f} MB")
    big = max(rows, key=lambda r: r["unpacked"])
    print(f"targets on {big['image']} ({big['unpacked']:.0f} MB): pull/pipeline {big['pull'] / big['pipeline']:.2f} "
          f"(<= 0.5: {'met' if big['pull'] <= 0.5 * big['pipeline'] else 'NOT met'}), "
          f"pull/gzip -dc {big['pull'] / big['floor']:.2f} "
          f"(<= 1.5: {'met' if big['pull'] <= 1.5 * big['floor'] else 'NOT met'}), "
          f"pull/load {big['pull'] / big['load']:.2f} (<= 1.1: {'met' if big['pull'] <= 1.1 * big['load'] else 'NOT met'}); "
          f"peak RSS of sarus pull {min(r['pull_rss'] for r in rows):.0f}-{max(r['pull_rss'] for r in rows):.0f} MB "
          f"for images of {min(r['unpacked'] for r in rows):.0f}-{max(r['unpacked'] for r in rows):.0f} MB")


if __name__ == "__main__":
    main()
