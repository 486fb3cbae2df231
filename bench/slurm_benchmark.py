#!/usr/bin/python3
"""Multi-node start-up under Slurm: `srun -N3 -n6 sarus run IMAGE true`
against `srun -N3 -n6 true` on the test cluster of
tests/integration/slurm_cluster.py (3 nodes, each in its own network, UTS
and mount namespace). Run as root; the steps run as an unprivileged user.
The commands alternate within one run (this VM's speed drifts); printed:
medians, the ratio to native srun and the overhead per step.

   sudo bench/slurm_benchmark.py [--repeat 15] [--user sarustest] [--nodes 3] [--tasks 6]

Needs tools/run_tests.sh's installations (/opt/sarus-test in userns mode,
/opt/sarus-suid in suid mode; SARUS_PREFIX / SARUS_SUID_PREFIX override).
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(os.path.dirname(HERE), "tests", "integration")
sys.path.insert(0, TESTS)

import conftest  # noqa: E402  (run_as, Sarus, test images)
from slurm_cluster import SlurmCluster, exclusive  # noqa: E402


def timed(cluster, user, argv, sarus=None):
    start = time.perf_counter()
    r = cluster.srun(user, *argv, sarus=sarus, timeout=300)
    elapsed = time.perf_counter() - start
    if r.returncode != 0:
        sys.exit(f"srun {' '.join(argv)} failed ({r.returncode}):\n{r.stderr}")
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--user", default="sarustest")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument("--image-mount-idle-time", type=int, default=60,
                        help="imageMountIdleTime of both installations (0: each container mounts its image)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("slurm_benchmark.py: run as root (it starts the test cluster)")
    images = os.environ.get("SARUS_TEST_IMAGES", conftest.DEFAULT_IMAGES_DIR)
    busybox = os.path.join(images, "busybox.oci.tar")
    if not os.path.exists(busybox):
        sys.exit(f"no {busybox}: run tools/run_tests.sh (or tests/images/make_images.py {images}) first")
    with exclusive():  # a test session using the cluster finishes first
        run(args, busybox)


def run(args, busybox):
    cluster = SlurmCluster(nodes=args.nodes)
    cluster.start()
    sessions = {}
    try:
        for mode in ("userns", "suid"):
            workdir = tempfile.mkdtemp(prefix="sarus-bench-slurm-", dir="/var/tmp")
            sarus = conftest.Sarus(conftest.sarus_prefix(mode), workdir, args.user, mode)
            sarus.config["imageMountIdleTime"] = args.image_mount_idle_time  # the tests' Sarus turns it off
            sarus.write_config()
            sarus.ok("load", busybox, "busybox")
            sessions[mode] = sarus
        shape = [f"-N{args.nodes}", f"-n{args.tasks}"]
        commands = {"native": (shape + ["true"], None)}
        for mode, sarus in sessions.items():
            commands[f"sarus {mode}"] = (shape + ["sarus", "run", "load/library/busybox", "true"], sarus)
        times = {name: [] for name in commands}
        for name, (argv, sarus) in commands.items():  # warm-up
            timed(cluster, args.user, argv, sarus)
        for _ in range(args.repeat):
            for name, (argv, sarus) in commands.items():
                times[name].append(timed(cluster, args.user, argv, sarus))
        native = statistics.median(times["native"])
        print(f"srun {' '.join(shape)} on {args.nodes} nodes, {args.repeat} alternated runs, user {args.user}")
        print(f"{'command':<14} {'median':>10} {'ratio':>8} {'overhead':>10}")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"{name:<14} {median * 1000:>8.0f}ms {median / native:>7.2f}x {(median - native) * 1000:>8.0f}ms")
    finally:
        for sarus in sessions.values():
            sarus.restore()
            shutil.rmtree(sarus.workdir, ignore_errors=True)
        cluster.stop()  # kills every process of the nodes, image keepers included


if __name__ == "__main__":
    main()
