#!/usr/bin/python3
"""MPI ping-pong through sarus against native (issue: the container within
2% of native). Run as root; the ranks run as an unprivileged user.

Two ranks on this node (shared memory) run tests/images/mpi/mpi_pingpong.c:
natively (built here with the host's MPICH: mpicc.mpich and mpiexec.mpich,
since Open MPI, installed for the Slurm tests, takes the plain names), and with
`mpiexec.mpich -n 2 sarus run --mpi mpich-older /usr/local/bin/mpi_pingpong`, the
image's MPICH 3.4.1 replaced by the host's through mpi_hook (hook files
written by configure_mpi_hooks.sh): in userns mode, in suid mode, and in
suid mode with --pid=host. All variants alternate, --repeat times; per
message size the median latency of each is printed with the ratio
container/native (1.00 = same speed).

   sudo bench/mpi_benchmark.py [--prefix /opt/sarus-test] [--suid-prefix /opt/sarus-suid]
                               [--user sarustest] [--repeat 5] [--multiplier 1]
"""

import argparse
import json
import os
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MPI_IMAGES = "/var/tmp/sarus-test-images/mpi"
PINGPONG_SOURCE = os.path.join(REPO, "tests", "images", "mpi", "mpi_pingpong.c")
sys.path.insert(0, HERE)
from startup_benchmark import User  # noqa: E402  (setpriv as the benchmark user)


def as_user(user, argv, env):
    """stdout of argv run as user (startup_benchmark's User); exits on failure."""
    r = user.run(argv, env=env, check=False)
    if r.returncode != 0:
        sys.exit(f"benchmark command failed: {' '.join(argv)}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def parse_pingpong(output):
    """{size: (latency_us, bandwidth_MBps)} from mpi_pingpong's lines."""
    results = {}
    for line in output.splitlines():
        fields = line.split()
        if len(fields) == 3 and not line.startswith("#"):
            results[int(fields[0])] = (float(fields[1]), float(fields[2]))
    if not results:
        sys.exit(f"no ping-pong figures in:\n{output}")
    return results


class Installation:
    """A sarus prefix set up for the benchmark: hook files written by its
    configure_mpi_hooks.sh, the repository in the work directory. A SUID
    sarus reads only its installed sarus.json: that one is rewritten for the
    duration and restored by close()."""

    def __init__(self, prefix, user, workdir, bind_mounts):  # user: a pwd entry
        self.prefix = prefix
        self.sarus = os.path.join(prefix, "bin", "sarus")
        self.suid = os.stat(self.sarus).st_mode & stat.S_ISUID != 0
        self.hooks_dir = os.path.join(prefix, "etc", f"hooks.d.bench-{uuid.uuid4().hex[:8]}")
        subprocess.run([os.path.join(prefix, "configure_mpi_hooks.sh"), "--hooks-dir", self.hooks_dir,
                        "--bind-mounts", bind_mounts, prefix], check=True, stdout=subprocess.DEVNULL)
        self.installed = os.path.join(prefix, "etc", "sarus.json")
        with open(self.installed) as f:
            self.original = f.read()
        config = json.loads(self.original)
        config["localRepositoryBaseDir"] = os.path.join(workdir, "suid" if self.suid else "userns")
        config["hooksDir"] = self.hooks_dir
        os.makedirs(os.path.join(config["localRepositoryBaseDir"], user.pw_name))
        self.config_file = self.installed if self.suid else os.path.join(workdir, "sarus.json")
        with open(self.config_file, "w") as f:
            json.dump(config, f)
        os.chmod(self.config_file, 0o644)
        self.env = {"SARUS_CONFIG_FILE": self.config_file}

    def close(self):
        if self.suid:
            with open(self.installed, "w") as f:
                f.write(self.original)
        shutil.rmtree(self.hooks_dir, ignore_errors=True)


def chown_tree(path, user):
    for root, dirs, files in os.walk(path):
        for name in dirs + files + ["."]:
            os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", default="/opt/sarus-test", help="userns-mode installation")
    parser.add_argument("--suid-prefix", default="/opt/sarus-suid", help="suid-mode installation ('' to skip)")
    parser.add_argument("--user", default="sarustest")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--multiplier", default="1", help="scales mpi_pingpong's iteration counts")
    parser.add_argument("--bind-mounts", default="/usr/lib/x86_64-linux-gnu/ucx",
                        help="BIND_MOUNTS of the MPI hook (default: the host UCX's transport plugins)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (the ranks run as --user)")
    user = User(args.user)
    subprocess.run([sys.executable, os.path.join(REPO, "tests", "images", "make_mpi_images.py"), MPI_IMAGES],
                   check=True, stdout=subprocess.DEVNULL)
    workdir = tempfile.mkdtemp(prefix="sarus-mpi-bench-", dir="/var/tmp")
    installations = []
    try:
        native = os.path.join(workdir, "mpi_pingpong")
        subprocess.run(["mpicc.mpich", "-O2", "-o", native, PINGPONG_SOURCE], check=True)
        variants = {"native": (["mpiexec.mpich", "-n", "2", native, args.multiplier], {})}
        for label, prefix, options in [("userns", args.prefix, []), ("suid", args.suid_prefix, []),
                                       ("suid --pid=host", args.suid_prefix, ["--pid=host"])]:
            if not prefix or not os.path.exists(os.path.join(prefix, "bin", "sarus")):
                continue
            installation = next((i for i in installations if i.prefix == prefix), None)
            if installation is None:
                installation = Installation(prefix, user.pw, workdir, args.bind_mounts)
                installations.append(installation)
            variants[label] = (["mpiexec.mpich", "-n", "2", installation.sarus, "run", "--mpi", *options,
                                "load/library/mpich-older", "/usr/local/bin/mpi_pingpong", args.multiplier],
                               installation.env)
        chown_tree(workdir, user.pw)
        for installation in installations:
            as_user(user, [installation.sarus, "load", os.path.join(MPI_IMAGES, "mpich-older.tar"), "mpich-older"],
                    installation.env)
        runs = {label: [] for label in variants}
        for label, (argv, env) in variants.items():
            as_user(user, argv, env)  # warm-up: page cache, image mount paths
        for _ in range(args.repeat):
            for label, (argv, env) in variants.items():
                runs[label].append(parse_pingpong(as_user(user, argv, env)))
        report(runs, args)
    finally:
        for installation in installations:
            installation.close()
        shutil.rmtree(workdir, ignore_errors=True)


def report(runs, args):
    version = subprocess.run(["mpichversion"], stdout=subprocess.PIPE, text=True).stdout.split()[2]
    print(f"MPI ping-pong, 2 ranks on one node (shared memory), host MPICH {version}, "
          f"container image MPICH 3.4.1 replaced by it (--mpi); median latency in us over "
          f"{args.repeat} alternating runs; ratio = container / native")
    labels = [label for label in runs if label != "native"]
    print(f"{'size (B)':>10} {'native':>8}" + "".join(f" {label:>16} {'ratio':>6}" for label in labels))
    ratios = {label: [] for label in labels}
    for size in sorted(runs["native"][0]):
        native = statistics.median(r[size][0] for r in runs["native"])
        line = f"{size:>10} {native:>8.2f}"
        for label in labels:
            latency = statistics.median(r[size][0] for r in runs[label])
            ratios[label].append(latency / native)
            line += f" {latency:>16.2f} {latency / native:>6.2f}"
        print(line)
    for label in labels:
        print(f"{label:>16}: latency ratio geometric mean {statistics.geometric_mean(ratios[label]):.3f}, "
              f"worst {max(ratios[label]):.3f} (target <= 1.02)")


if __name__ == "__main__":
    main()
