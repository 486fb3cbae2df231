#!/usr/bin/python3
"""Container start-up benchmark of sarus (issue: start adds only milliseconds
over raw crun). Run as root; the containers run as an unprivileged user.

Prints, for `sarus run IMAGE true`: median and p90 over --runs runs after
warm-up; next to it, measured in the same run, the floor (rootless `crun run`
of a ready bundle on a plain directory) and rootless `podman run --rm` when
podman is installed. Also `python3 -c 'import numpy'` in a Debian+numpy
image against the host, and 16 concurrent starts. Commands are timed from a
process that already runs as the user, as the user's shell would start them.

   sudo bench/startup_benchmark.py [--prefix /opt/sarus-test] [--runs 30] [--user sarustest]
"""

import argparse
import contextlib
import json
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
IMAGES = "/var/tmp/sarus-test-images"
BENCH_IMAGES = "/var/tmp/sarus-bench-images"


class User:
    def __init__(self, name):
        self.pw = pwd.getpwnam(name)

    def argv(self, argv):
        return ["setpriv", f"--reuid={self.pw.pw_uid}", f"--regid={self.pw.pw_gid}", "--init-groups", "--"] + argv

    def env(self, extra=None):
        env = {"HOME": self.pw.pw_dir, "USER": self.pw.pw_name,
               "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        env.update(extra or {})
        return env

    def run(self, argv, env=None, check=True, **kw):
        return subprocess.run(self.argv(argv), env=self.env(env), cwd="/", check=check,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)

    def timed(self, argv, env=None):
        start = time.perf_counter()
        r = self.run(argv, env=env, check=False)
        elapsed = time.perf_counter() - start
        if r.returncode != 0:
            sys.exit(f"benchmark command failed: {' '.join(argv)}\n{r.stderr}")
        return elapsed, r


def percentile(values, p):
    values = sorted(values)
    k = (len(values) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


# Timing runs inside one process that already is the user, so that what is
# measured is what the user's shell would see (fork, exec, the command), not
# also setpriv's exec and its initgroups (about 2 ms per run on this VM).
IN_USER_TIMER = r"""
import json, subprocess, sys, time
mode, commands, runs, warmup = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def once(argv, env, out=None):
    # out: None (/dev/null), "pipe", or a file to append to
    target = {None: subprocess.DEVNULL, "pipe": subprocess.PIPE}.get(out) or open(out, "a")
    start = time.perf_counter()
    r = subprocess.run(argv, env=env, cwd="/", stdout=target, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if out not in (None, "pipe"):
        target.close()
    if r.returncode != 0:
        sys.exit("benchmark command failed: " + " ".join(argv) + "\n" + r.stderr.decode(errors="replace"))
    return elapsed
if mode == "alternate":
    for command in commands.values():
        for _ in range(warmup):
            once(*command)
    times = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            times[name].append(once(*command))
    print(json.dumps(times))
else:  # concurrent: `runs` copies of the one command at once
    (argv, env), = commands.values()
    start = time.perf_counter()
    children = [subprocess.Popen(argv, env=env, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                for _ in range(runs)]
    errors = [c.stderr.read().decode(errors="replace") for c in children if c.wait() != 0]
    print(json.dumps({"total": time.perf_counter() - start, "errors": errors}))
"""


def in_user_timer(user, mode, commands, runs, warmup=3):
    """commands: {name: (argv, extra env[, stdout])}; the environment is the
    user's; stdout is /dev/null unless "pipe" or a file is given."""
    spec = {name: [c[0], user.env(c[1])] + list(c[2:]) for name, c in commands.items()}
    r = user.run(["/usr/bin/python3", "-c", IN_USER_TIMER, mode, json.dumps(spec), str(runs), str(warmup)],
                 check=False)
    if r.returncode != 0:
        sys.exit(r.stderr)
    return json.loads(r.stdout)


def measure_alternating(user, commands, runs, warmup=3):
    """Runs the commands ({name: (argv, env)}) in turn, run after run, so that
    a burst of noise on the machine weighs on all of them alike; returns
    {name: (median, p90)} in seconds."""
    times = in_user_timer(user, "alternate", commands, runs, warmup)
    return {name: (statistics.median(t), percentile(t, 0.9)) for name, t in times.items()}


def measure(user, argv, runs, warmup=3, env=None):
    return measure_alternating(user, {"one": (argv, env)}, runs, warmup)["one"]


def cgroup_favordynmods():
    """Whether cgroup moves skip the RCU grace period (tools/prepare_host.sh)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" - ")
            if len(fields) == 2 and fields[1].startswith("cgroup2 "):
                return "favordynmods" in fields[1].split()[2].split(",")
    return False


# `python3 -c 'import numpy'` run again and again in one place, once warm:
# inside one container (one mount) or on the host.
WARM_IMPORTS = """
import statistics, subprocess, sys, time
def once():
    start = time.perf_counter()
    subprocess.run([sys.executable, '-c', 'import numpy'], check=True)
    return time.perf_counter() - start
for _ in range(3):
    once()
print(statistics.median(once() for _ in range(10)))
"""


def ms(seconds):
    return f"{seconds * 1000:7.1f} ms"


def setup_sarus(prefix, user, workdir, idle_time=60, name="sarus.json"):
    """The environment of a userns sarus with a repository in workdir whose
    image mounts are kept for idle_time s (0: every container mounts anew)."""
    with open(os.path.join(prefix, "etc", "sarus.json")) as f:
        config = json.load(f)
    config["localRepositoryBaseDir"] = os.path.join(workdir, "repos")
    config["imageMountIdleTime"] = idle_time
    os.makedirs(os.path.join(workdir, "repos", user.pw.pw_name), exist_ok=True)
    config_file = os.path.join(workdir, name)
    with open(config_file, "w") as f:
        json.dump(config, f)
    for root, dirs, files in os.walk(workdir):
        for entry in dirs + files + ["."]:
            os.chown(os.path.join(root, entry), user.pw.pw_uid, user.pw.pw_gid)
    return {"SARUS_CONFIG_FILE": config_file}


def end_image_keepers(user):
    """Kept image mounts end with their keeper: leave none behind."""
    subprocess.run(["pkill", "-TERM", "-u", str(user.pw.pw_uid), "-f", "sarus image keeper"], check=False)


def crun_floor_bundle(user, workdir):
    """A ready bundle on a plain directory: what `crun run` alone costs."""
    bundle = os.path.join(workdir, "floor-bundle")
    os.makedirs(os.path.join(bundle, "rootfs"))
    subprocess.run(["tar", "-C", os.path.join(bundle, "rootfs"), "-xf", "-"], check=True,
                   input=subprocess.run(["/usr/bin/python3", "-c", f"""
import tarfile, json, sys
t = tarfile.open('{IMAGES}/busybox.docker.tar')
m = json.load(t.extractfile('manifest.json'))
sys.stdout.buffer.write(t.extractfile(m[0]['Layers'][0]).read())
"""], check=True, stdout=subprocess.PIPE).stdout)
    subprocess.run(["crun", "spec", "--rootless"], cwd=bundle, check=True)
    with open(os.path.join(bundle, "config.json")) as f:
        spec = json.load(f)
    spec["process"]["args"] = ["/bin/true"]
    spec["process"]["terminal"] = False
    spec["linux"].pop("resources", None)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f)
    for root, dirs, files in os.walk(workdir):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), user.pw.pw_uid, user.pw.pw_gid)
    state = os.path.join(workdir, "crun-state")
    return ["crun", "--cgroup-manager=disabled", "--root", state, "run", "--bundle", bundle, "floor"]



@contextlib.contextmanager
def suid_config(prefix, workdir, security_checks=True):
    """A SUID sarus only reads its installed configuration: point its
    repository into the benchmark's directory for the duration, then restore.
    Yields a function that switches securityChecks on or off meanwhile."""
    path = os.path.join(prefix, "etc", "sarus.json")
    with open(path) as f:
        original = f.read()
    config = json.loads(original)
    config["localRepositoryBaseDir"] = os.path.join(workdir, "repos")

    def set_security_checks(enabled):
        config["securityChecks"] = enabled
        with open(path, "w") as f:
            json.dump(config, f)
    try:
        set_security_checks(security_checks)
        yield set_security_checks
    finally:
        with open(path, "w") as f:
            f.write(original)


def print_security_checks_cost(user, prefix, workdir, runs):
    """With and without the checks in turn, run after run (see measure_alternating)."""
    sarus = os.path.join(prefix, "bin", "sarus")
    argv = [sarus, "run", "load/library/busybox", "true"]
    times = {True: [], False: []}
    with suid_config(prefix, workdir) as set_security_checks:
        for _ in range(runs):
            for enabled in (True, False):
                set_security_checks(enabled)
                times[enabled].append(user.timed(argv)[0])
    cost = statistics.median(times[True]) - statistics.median(times[False])
    print(f"  suid mode: cost of the security checks (securityChecks true - false, alternating): {ms(cost)}")


def print_stream_relay_cost(user, suid, workdir, runs):
    """What the standard-stream relay of suid mode costs: crun, as root,
    would chown its stdio to the caller, so it gets the caller's stream only
    where that changes nothing (a pipe), a private null node for /dev/null,
    and a pipe copied by a relay process for anything else, e.g. a file of
    the caller's in a project group. The three alternate run after run."""
    argv = [suid, "run", "load/library/busybox", "true"]
    commands = {"pipe": (argv, None, "pipe"), "null": (argv, None)}
    groups = [g for g in os.getgrouplist(user.pw.pw_name, user.pw.pw_gid) if g != user.pw.pw_gid]
    if groups:
        relayed = os.path.join(workdir, "relayed-output")
        open(relayed, "w").close()
        os.chown(relayed, user.pw.pw_uid, groups[0])
        commands["relayed"] = (argv, None, relayed)
    results = measure_alternating(user, commands, runs)
    pipe = results["pipe"][0]
    line = (f"  suid mode, stdout of sarus run busybox true: on a pipe (crun gets it) {ms(pipe)}   "
            f"on /dev/null (a private null node) {ms(results['null'][0])} ({results['null'][0] / pipe:.2f}x)")
    if groups:
        line += f"   on a file of a project group (relayed) {ms(results['relayed'][0])} " \
                f"({results['relayed'][0] / pipe:.2f}x)"
    else:
        line += f"   (no relayed case: {user.pw.pw_name} has no supplementary group)"
    print(line)


def concurrent(user, argv, env, count):
    result = in_user_timer(user, "concurrent", {"one": (argv, env)}, count, 0)
    return result["total"], result["errors"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix", default=os.environ.get("SARUS_PREFIX", "/opt/sarus-test"))
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--suid-prefix", default=os.environ.get("SARUS_SUID_PREFIX", "/opt/sarus-suid"))
    parser.add_argument("--user", default="sarustest")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("startup_benchmark.py: run as root (containers run as --user)")
    sarus = os.path.join(args.prefix, "bin", "sarus")
    user = User(args.user)
    subprocess.run(["/usr/bin/python3", os.path.join(REPO, "tests/images/make_images.py"), IMAGES],
                   check=True, stdout=subprocess.DEVNULL)
    workdir = tempfile.mkdtemp(prefix="sarus-bench-", dir="/var/tmp")
    os.chmod(workdir, 0o755)
    try:
        env = setup_sarus(args.prefix, user, workdir)
        unkept = setup_sarus(args.prefix, user, workdir, idle_time=0, name="sarus-unkept.json")
        user.run([sarus, "load", f"{IMAGES}/busybox.oci.tar", "busybox"], env=env)
        print(f"sarus start-up benchmark: {args.runs} runs after 3 warm-up runs, as {args.user}, "
              f"{os.cpu_count()} CPUs")
        suid = os.path.join(args.suid_prefix, "bin", "sarus")
        has_suid = os.path.exists(suid) and bool(os.stat(suid).st_mode & 0o4000)
        floor = crun_floor_bundle(user, workdir)
        commands = {"userns": ([sarus, "run", "load/library/busybox", "true"], env),
                    "userns unkept": ([sarus, "run", "load/library/busybox", "true"], unkept),
                    "floor": (floor, None)}
        static_crun = os.path.join(args.prefix, "libexec", "sarus", "crun")
        if os.access(static_crun, os.X_OK):  # the same bundle, another state directory
            commands["static floor"] = ([static_crun] + floor[1:3] + [floor[3] + "-static"] + floor[4:], None)
        with suid_config(args.suid_prefix, workdir) if has_suid else contextlib.nullcontext():
            if has_suid:
                user.run([suid, "load", f"{IMAGES}/busybox.oci.tar", "busybox"])
                commands["suid"] = ([suid, "run", "load/library/busybox", "true"], None)
            results = measure_alternating(user, commands, args.runs)
        med, p90 = results["userns"]
        floor_med, floor_p90 = results["floor"]
        print(f"  (the commands below alternate run after run; cgroup2 favordynmods: "
              f"{'on' if cgroup_favordynmods() else 'off'})")
        print(f"  sarus run busybox true        median {ms(med)}   p90 {ms(p90)}")
        print(f"  crun run (floor, ready bundle) median {ms(floor_med)}   p90 {ms(floor_p90)}")
        print(f"  sarus overhead over the floor  {ms(med - floor_med)}   ratio {med / floor_med:.2f} "
              f"(target: <= 1.3; the image mount kept by the user's image keeper)")
        unkept_med, unkept_p90 = results["userns unkept"]
        print(f"  same, imageMountIdleTime 0 (the image mounted by each container) median {ms(unkept_med)}   "
              f"p90 {ms(unkept_p90)}   ratio to the floor {unkept_med / floor_med:.2f}")
        if "static floor" in results:
            static_med, static_p90 = results["static floor"]
            print(f"  crun run with {static_crun} (same bundle) median {ms(static_med)}   p90 {ms(static_p90)}   "
                  f"ratio to the floor {static_med / floor_med:.2f}")
        suid_med = None
        if has_suid:
            suid_med, suid_p90 = results["suid"]
            print(f"  suid mode: sarus run busybox true median {ms(suid_med)}   p90 {ms(suid_p90)}   "
                  f"ratio to the floor {suid_med / floor_med:.2f} (target: <= 1.1)")
            print_security_checks_cost(user, args.suid_prefix, workdir, args.runs)
            with suid_config(args.suid_prefix, workdir):
                print_stream_relay_cost(user, suid, workdir, args.runs)
        else:
            print(f"  suid mode: no SUID installation in {args.suid_prefix} (tools/run_tests.sh makes one)")
        if shutil.which("podman"):
            user.run(["podman", "load", "-i", f"{IMAGES}/busybox.docker.tar"], check=False)
            pmed, pp90 = measure(user, ["podman", "run", "--rm", "--network=none", "sarus-tests/busybox", "true"], 10)
            print(f"  podman run --rm busybox true  median {ms(pmed)}   p90 {ms(pp90)}")
        else:
            print("  podman run --rm: podman is not installed (apt-get install podman to compare)")

        totals = {"sarus": [], "floor": []}
        failures = 0
        for round in range(3):  # alternating, like the single starts
            for name, argv, e in (("sarus", [sarus, "run", "load/library/busybox", "true"], env),
                                  ("floor", None, None)):
                if argv is None:  # crun needs a state directory per container
                    argv = ["/bin/sh", "-c", f"exec {' '.join(floor[:-1])} floor-$$"]
                total, errors = concurrent(user, argv, e, 16)
                totals[name].append(total)
                failures += len(errors)
        total, floor_total = statistics.median(totals["sarus"]), statistics.median(totals["floor"])
        print(f"  16 concurrent starts           total {ms(total)}   16 concurrent crun (floor) {ms(floor_total)}   "
              f"ratio {total / floor_total:.2f} (target: <= 1.3); failures: {failures}")

        archive = f"{BENCH_IMAGES}/python-numpy.docker.tar"
        if not os.path.exists(archive):
            print(f"  numpy import: {archive} missing (bench/make_python_image.sh {BENCH_IMAGES} builds it)")
            return
        start = time.perf_counter()
        user.run([sarus, "load", archive, "python"], env=env)
        print(f"  load of the python+numpy image (docker-archive): {time.perf_counter() - start:.2f} s")
        code = "import numpy"
        inner = "import time; t = time.perf_counter(); import numpy; print(time.perf_counter() - t)"
        # host, userns and suid in turn, round after round, like the start-ups
        places = {"host": ([], None), "userns kept": ([sarus, "run", "load/library/python"], env),
                  "userns first": ([sarus, "run", "load/library/python"], unkept)}
        with suid_config(args.suid_prefix, workdir) if suid_med is not None else contextlib.nullcontext():
            if suid_med is not None:
                user.run([suid, "load", archive, "python"])
                places["suid"] = ([suid, "run", "load/library/python"], None)
            cold = measure_alternating(user, {name: (run + ["python3", "-c", code], e)
                                              for name, (run, e) in places.items()}, 10)
            alone = {name: [] for name in places}
            warm = {name: [] for name in places}
            for _ in range(10):
                for name, (run, e) in places.items():
                    alone[name].append(float(user.run(run + ["python3", "-c", inner], env=e).stdout))
            for _ in range(3):
                for name, (run, e) in places.items():
                    warm[name].append(float(user.run(run + ["python3", "-c", WARM_IMPORTS], env=e).stdout))

        def compare(figures):
            host = figures["host"]
            return f"host {ms(host)}" + "".join(f"   {name} {ms(value)} ({value / host:.2f}x)"
                                                for name, value in figures.items() if name != "host")
        print("  python3 -c 'import numpy', each in a new container (userns kept and suid: the image mount kept "
              "by the keeper, as installed; userns first: mounted anew, as for the first container of an image): "
              + compare({name: median for name, (median, _) in cold.items()})
              + "   (targets: kept <= 1.2x in both modes, first <= 2x)")
        print("  import numpy alone (in-process), new container: "
              + compare({name: statistics.median(t) for name, t in alone.items()}))
        print("  python3 -c 'import numpy' warm (10 runs in one container after 3; median of 3 rounds): "
              + compare({name: statistics.median(t) for name, t in warm.items()}) + "   (target: within 1.2x)")
    finally:
        end_image_keepers(user)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
