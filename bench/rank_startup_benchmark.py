#!/usr/bin/python3
"""Start-up of the ranks of one job step on one node (userns mode shares
one container between them, src/core/jobs/rank_group.hpp). Run as root; the
ranks run as an unprivileged user.

For N = 1, 2, 4, 8, 16 it times `mpiexec.mpich -n N true` (native) and
`mpiexec.mpich -n N sarus run busybox true`, alternating the two run after
run, and prints the medians, the ratio sarus/native, the cost of each rank
beyond the first over native ((sarus(N) - sarus(1)) - (native(N) -
native(1))) / (N - 1), and sarus(16)/sarus(1). A single rank has a container
of its own; the first joining rank also pays for making the container
shared (the agent, a second process of the leader): so it also times one
rank in a shared container (SARUS_RANK_GROUP set), prints that fixed cost,
and the cost of a joining rank measured from there. Then, when the python+numpy
image exists (bench/make_python_image.sh /var/tmp/sarus-bench-images), each
rank of `mpiexec.mpich -n 4` times `python3 -c 'import numpy'` as a process
of its own, on the host and in the ranks' shared container, alternated; it
prints the median over all ranks and runs and the ratio to the host.
Targets (issue "Parallel jobs"): a joining rank <= 10 ms over a native
process start, 16 ranks <= 2x the time of one, `import numpy` in a rank
<= 1.2x the host.

   sudo bench/rank_startup_benchmark.py [--prefix /opt/sarus-test] [--user sarustest] [--repeat 9]
"""

import argparse
import json
import os
import pwd
import shutil
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
IMAGES = "/var/tmp/sarus-test-images"
BENCH_IMAGES = "/var/tmp/sarus-bench-images"
COUNTS = [1, 2, 4, 8, 16]
# Run by each rank: the time of a whole `python3 -c 'import numpy'` process.
TIMED_IMPORT = ("import subprocess, sys, time; t = time.perf_counter(); "
                "subprocess.run([sys.executable, '-c', 'import numpy'], check=True); "
                "print(time.perf_counter() - t)")


def as_user(user, argv):
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--"] + argv


def timed(argv, env):
    start = time.perf_counter()
    r = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"rank_startup_benchmark: {' '.join(argv)} failed:\n{r.stderr}")
    return elapsed, r.stdout


def numpy_in_ranks(user, sarus, env, ranks, repeat):
    archive = f"{BENCH_IMAGES}/python-numpy.docker.tar"
    if not os.path.exists(archive):
        print(f"import numpy in a rank: {archive} missing (bench/make_python_image.sh {BENCH_IMAGES} builds it)")
        return
    subprocess.run(as_user(user, [sarus, "load", archive, "python"]), env=env, check=True,
                   stdout=subprocess.DEVNULL)
    launch = ["mpiexec.mpich", "-n", str(ranks)]
    commands = {"host": as_user(user, launch + ["python3", "-c", TIMED_IMPORT]),
                "sarus": as_user(user, launch + [sarus, "run", "load/library/python", "python3", "-c", TIMED_IMPORT])}
    times = {name: [] for name in commands}
    for argv in commands.values():  # warm-up
        timed(argv, env)
    for _ in range(repeat):
        for name, argv in commands.items():
            times[name] += [float(line) for line in timed(argv, env)[1].split()]
    host, ours = statistics.median(times["host"]), statistics.median(times["sarus"])
    print(f"import numpy in each rank of mpiexec.mpich -n {ranks} (python3 process, median of "
          f"{len(times['sarus'])} rank runs): host {host * 1000:.0f} ms, shared container {ours * 1000:.0f} ms, "
          f"{ours / host:.2f}x the host (target <= 1.2)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", default="/opt/sarus-test")
    parser.add_argument("--user", default="sarustest")
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--numpy-ranks", type=int, default=4)
    args = parser.parse_args()
    user = pwd.getpwnam(args.user)
    sarus = os.path.join(args.prefix, "bin", "sarus")
    subprocess.run(["/usr/bin/python3", os.path.join(REPO, "tests/images/make_images.py"), IMAGES],
                   check=True, stdout=subprocess.DEVNULL)
    workdir = tempfile.mkdtemp(prefix="sarus-rank-bench-", dir="/var/tmp")
    try:
        with open(os.path.join(args.prefix, "etc", "sarus.json")) as f:
            config = json.load(f)
        config["localRepositoryBaseDir"] = workdir
        config_file = os.path.join(workdir, "sarus.json")
        with open(config_file, "w") as f:
            json.dump(config, f)
        os.makedirs(os.path.join(workdir, args.user))
        for root, dirs, files in os.walk(workdir):
            for name in [root] + [os.path.join(root, f) for f in files]:
                os.chown(name, user.pw_uid, user.pw_gid)
        os.chmod(workdir, 0o755)
        env = {"HOME": user.pw_dir, "USER": args.user, "PATH": "/usr/local/bin:/usr/bin:/bin",
               "SARUS_CONFIG_FILE": config_file}
        subprocess.run(as_user(user, [sarus, "load", f"{IMAGES}/busybox.oci.tar", "busybox"]), env=env,
                       check=True, stdout=subprocess.DEVNULL)
        commands = {("shared", 1): as_user(user, ["env", "SARUS_RANK_GROUP=bench", "mpiexec.mpich", "-n", "1",
                                                  sarus, "run", "load/library/busybox", "true"])}
        for n in COUNTS:
            commands[("native", n)] = as_user(user, ["mpiexec.mpich", "-n", str(n), "true"])
            commands[("sarus", n)] = as_user(user, ["mpiexec.mpich", "-n", str(n), sarus, "run",
                                                    "load/library/busybox", "true"])
        times = {key: [] for key in commands}
        for key, argv in commands.items():  # warm-up
            timed(argv, env)
        for _ in range(args.repeat):
            for key, argv in commands.items():
                times[key].append(timed(argv, env)[0])
        median = {key: statistics.median(values) for key, values in times.items()}
        print(f"ranks of one job step on one node: mpiexec.mpich -n N, median of {args.repeat} alternated runs, "
              f"as {args.user}, {os.cpu_count()} CPUs")
        shared = median[("shared", 1)]
        print(f"{'N':>4}{'native':>10}{'sarus':>10}{'ratio':>8}{'per joining rank over native':>32}"
              f"{'same, from a shared 1-rank container':>40}")
        for n in COUNTS:
            native, ours = median[("native", n)], median[("sarus", n)]
            joining = from_shared = ""
            if n > 1:
                native_extra = native - median[("native", 1)]
                joining = f"{((ours - median[('sarus', 1)]) - native_extra) / (n - 1) * 1000:.1f} ms"
                from_shared = f"{((ours - shared) - native_extra) / (n - 1) * 1000:.1f} ms"
            print(f"{n:>4}{native * 1000:>8.0f}ms{ours * 1000:>8.0f}ms{ours / native:>8.2f}{joining:>32}"
                  f"{from_shared:>40}")
        print(f"one rank in a shared container: {shared * 1000:.0f} ms, "
              f"{(shared - median[('sarus', 1)]) * 1000:.1f} ms more than in a container of its own")
        ratio = median[("sarus", 16)] / median[("sarus", 1)]
        print(f"sarus: 16 ranks / 1 rank {ratio:.2f} (target <= 2); native: "
              f"{median[('native', 16)] / median[('native', 1)]:.2f}")
        numpy_in_ranks(user, sarus, env, args.numpy_ranks, args.repeat)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
