"""Shared fixtures and helpers of sarus' integration tests.

* test_images (session fixture): directory holding the archives written by
  tests/images/make_images.py (see MANIFEST.txt there). Default location
  /var/tmp/sarus-test-images, readable by every user; override with
  SARUS_TEST_IMAGES=DIR.
* mpi_images (session fixture): directory holding the MPI and glibc hook
  images written by tests/images/make_mpi_images.py (mpich-older.tar,
  glibc-older.tar...; see MANIFEST.txt there). Default location
  /var/tmp/sarus-test-images/mpi; override with SARUS_TEST_MPI_IMAGES=DIR.
  Building them needs root (ldconfig -r, chroot).
* run_as(user, argv, ...): runs a command as one of the test users
  (sarustest / sarusnosub, made by setup_host.sh) when the tests run as
  root, or directly when they do not.
"""

import contextlib
import os
import pwd
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MAKE_IMAGES = os.path.join(REPO, "tests", "images", "make_images.py")
DEFAULT_IMAGES_DIR = "/var/tmp/sarus-test-images"
MAKE_MPI_IMAGES = os.path.join(REPO, "tests", "images", "make_mpi_images.py")
DEFAULT_MPI_IMAGES_DIR = os.path.join(DEFAULT_IMAGES_DIR, "mpi")
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

if HERE not in sys.path:        # make reference_flatten importable everywhere
    sys.path.insert(0, HERE)


def _make_images(outdir):
    r = subprocess.run(["/usr/bin/python3", MAKE_IMAGES, outdir],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return r.returncode == 0, r.stdout


def _readable_by_test_users(outdir):
    """make_images.py made outdir root's alone; still, a symlink is never
    followed here."""
    if os.geteuid() == 0:
        for dirpath, dirnames, filenames in os.walk(outdir):
            os.chmod(dirpath, 0o755)
            for f in filenames:
                path = os.path.join(dirpath, f)
                if not os.path.islink(path):
                    os.chmod(path, 0o644)


@pytest.fixture(scope="session")
def test_images():
    """Path of the directory with the test archives; (re)generates them when
    missing or older than make_images.py (cheap when up to date)."""
    outdir = os.environ.get("SARUS_TEST_IMAGES", DEFAULT_IMAGES_DIR)
    ok, log = _make_images(outdir)
    if not ok and "SARUS_TEST_IMAGES" not in os.environ and os.geteuid() != 0:
        # e.g. a stale root-owned default directory: use a per-user one
        outdir = f"{DEFAULT_IMAGES_DIR}-{os.geteuid()}"
        ok, log = _make_images(outdir)
    if not ok:
        pytest.fail(f"make_images.py {outdir} failed:\n{log}")
    _readable_by_test_users(outdir)
    return outdir


@pytest.fixture(scope="session")
def mpi_images():
    """Path of the directory with the MPI and glibc hook images; (re)builds
    them when missing or older than make_mpi_images.py, make_images.py,
    fetch_debs.sh or the .c sources (the script decides; cheap when up to
    date, and then it needs no root)."""
    outdir = os.environ.get("SARUS_TEST_MPI_IMAGES", DEFAULT_MPI_IMAGES_DIR)
    r = subprocess.run(["/usr/bin/python3", MAKE_MPI_IMAGES, outdir],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        pytest.fail(f"make_mpi_images.py {outdir} failed:\n{r.stdout}")
    _readable_by_test_users(outdir)
    return outdir


def _as_user(user, env):
    """The setpriv prefix, clean environment and passwd entry for running a
    command as `user` (as the current user when the tests are not root)."""
    if os.geteuid() == 0:
        pw = pwd.getpwnam(user)
        prefix = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
    else:
        pw = pwd.getpwuid(os.geteuid())
        prefix = []
    full_env = {"HOME": pw.pw_dir, "USER": pw.pw_name, "LOGNAME": pw.pw_name,
                "PATH": CLEAN_PATH, "LANG": "C.UTF-8"}
    if env:
        full_env.update({k: str(v) for k, v in env.items()})
    return prefix, full_env, pw


def run_as(user, argv, env=None, cwd=None, input=None, timeout=600, check=False, **kw):
    """Runs argv as `user` with a clean environment: HOME (the user's home),
    USER, LOGNAME, PATH, LANG=C.UTF-8, plus `env` (dict) on top.

    As root the command runs through `setpriv` with the user's uid, primary
    gid and supplementary groups; otherwise it runs as the current user
    (`user` is then only informative) with the current user's HOME. The
    default cwd is that home directory. Returns a CompletedProcess with text
    stdout and stderr. Extra keyword arguments go to subprocess.run."""
    prefix, full_env, pw = _as_user(user, env)
    return subprocess.run(prefix + [str(a) for a in argv], env=full_env,
                          cwd=cwd or pw.pw_dir, input=input, timeout=timeout,
                          check=check, stdout=kw.pop("stdout", subprocess.PIPE),
                          stderr=kw.pop("stderr", subprocess.PIPE), text=True, **kw)


# --- sarus under test ---------------------------------------------------------

import json
import socket
import shutil
import tempfile
import threading

TEST_USERS = ("sarustest", "sarusnosub")


def chown_tree(path, user):
    """path and everything in it given to user (symlinks themselves, not
    what they name)."""
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for name in [root] + [os.path.join(root, n) for n in dirs + files]:
            os.lchown(name, pw.pw_uid, pw.pw_gid)
MODES = ("userns", "suid")


def sarus_prefix(mode="userns"):
    """Installation prefix of the sarus under test in a mode (tools/run_tests.sh
    installs both); SARUS_PREFIX and SARUS_SUID_PREFIX override."""
    if mode == "suid":
        return os.environ.get("SARUS_SUID_PREFIX", "/opt/sarus-suid")
    return os.environ.get("SARUS_PREFIX", "/opt/sarus-test")


class Sarus:
    """One sarus installation with a private repository base directory, driven
    as an unprivileged user exactly as a user would drive it.

    userns mode: a private copy of sarus.json selected with SARUS_CONFIG_FILE.
    suid mode: a SUID sarus ignores SARUS_CONFIG_FILE, so the installed
    root-owned sarus.json itself is rewritten for the test and restored by
    restore()."""

    def __init__(self, prefix, workdir, user, mode):
        self.prefix = prefix
        self.mode = mode
        self.binary = os.path.join(prefix, "bin", "sarus")
        self.user = user
        self.workdir = workdir
        self.repo_base = os.path.join(workdir, "repos")
        os.makedirs(os.path.join(self.repo_base, user), exist_ok=True)
        installed = os.path.join(prefix, "etc", "sarus.json")
        with open(installed) as f:
            self.original_config = f.read()
        self.config = json.loads(self.original_config)
        self.config["localRepositoryBaseDir"] = self.repo_base
        self.config["centralizedRepositoryDir"] = os.path.join(workdir, "centralized")
        # A finished container leaves nothing behind at once; the tests of
        # kept image mounts (test_kept_image_mounts.py) turn them on.
        self.config["imageMountIdleTime"] = 0
        self.config_file = installed if mode == "suid" else os.path.join(workdir, "sarus.json")
        if os.geteuid() == 0:
            pw = pwd.getpwnam(user)
            for root, dirs, files in os.walk(workdir):
                os.chown(root, pw.pw_uid, pw.pw_gid)
                for name in files:
                    os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)
            os.chmod(workdir, 0o755)
        self.write_config()

    def write_config(self):
        with open(self.config_file, "w") as f:
            json.dump(self.config, f, indent=4)
        os.chmod(self.config_file, 0o644)

    def restore(self):
        if self.mode == "suid":
            with open(self.config_file, "w") as f:
                f.write(self.original_config)

    @property
    def runtime_key(self):
        return "runcPath" if self.mode == "suid" else "crunPath"

    @property
    def repository(self):
        return os.path.join(self.repo_base, self.user, ".sarus")

    def __call__(self, *args, env=None, **kw):
        full_env = {"SARUS_CONFIG_FILE": self.config_file}
        if env:
            full_env.update(env)
        return run_as(self.user, [self.binary, *args], env=full_env, **kw)

    def ok(self, *args, **kw):
        r = self(*args, **kw)
        assert r.returncode == 0, f"sarus {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        return r


def _installed(mode):
    prefix = sarus_prefix(mode)
    if not os.access(os.path.join(prefix, "bin", "sarus"), os.X_OK):
        pytest.fail(f"no sarus installed in {prefix} ({mode} mode): run tools/run_tests.sh")
    return prefix


def _make_sarus(mode, user):
    """A Sarus with a fresh private workdir (the caller cleans up)."""
    workdir = tempfile.mkdtemp(prefix="sarus-it-", dir="/var/tmp")
    return Sarus(_installed(mode), workdir, user, mode)


def _sarus_session(mode, user):
    """Yields a Sarus with a fresh private workdir; restores the installed
    configuration (suid mode) and removes the workdir afterwards."""
    s = _make_sarus(mode, user)
    try:
        yield s
    finally:
        s.restore()
        shutil.rmtree(s.workdir, ignore_errors=True)


@pytest.fixture(params=[(m, u) for m in MODES for u in TEST_USERS], ids=lambda p: f"{p[0]}-{p[1]}")
def sarus(request):
    """A sarus with an empty private repository, used as a test user (with and
    without a subordinate id range), in both execution modes."""
    yield from _sarus_session(*request.param)


@pytest.fixture(params=TEST_USERS)
def userns_sarus(request):
    """For behaviour that only exists in userns mode (e.g. fuse-overlayfs)."""
    yield from _sarus_session("userns", request.param)


@pytest.fixture(params=TEST_USERS)
def suid_sarus(request):
    """For behaviour that only exists in suid mode (privilege handling)."""
    yield from _sarus_session("suid", request.param)


def loaded_image_file(sarus, name, tag="latest"):
    """The squashfs of load/library/NAME:TAG in the sarus's repository."""
    return os.path.join(sarus.repository, "images", "load", "library", name, tag + ".squashfs")


def tree_snapshot(path):
    """Every entry under path with its mode, and for files their size, mtime
    and content hash: proves a failed command left a repository as it was.
    (Directory mtimes are left out: creating and removing a partial file
    touches them without changing what the directory holds.)"""
    import hashlib
    snapshot = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            st = os.lstat(full)
            if os.path.isdir(full):
                snapshot[os.path.relpath(full, path)] = ("dir", st.st_mode)
                continue
            with open(full, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            snapshot[os.path.relpath(full, path)] = (st.st_size, st.st_mtime_ns, st.st_mode, digest)
    return snapshot


def popen_as(user, argv, env=None, **kw):
    """Like run_as, but returns a running Popen (for signal tests)."""
    prefix, full_env, pw = _as_user(user, env)
    return subprocess.Popen(prefix + [str(a) for a in argv], env=full_env, cwd=pw.pw_dir,
                            stdout=kw.pop("stdout", subprocess.PIPE),
                            stderr=kw.pop("stderr", subprocess.PIPE), text=True, **kw)


def process_tree(pid):
    """pid and all its descendants (as Slurm's proctrack/linuxproc finds a
    step's processes); a process that ends meanwhile has no descendants."""
    tree = [pid]
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return tree
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in f.read().split():
                    tree += process_tree(int(child))
        except OSError:
            pass
    return tree


def run_in_a_terminal(sarus, *args, rows=None):
    """Starts sarus ARGS in a new session whose controlling terminal is a pty
    (rows: its height, 101 columns), as an interactive shell would; returns
    (process, master fd)."""
    import fcntl
    import pty
    import struct
    import termios
    master, slave = pty.openpty()
    if rows:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, 101, 0, 0))

    def make_controlling_terminal():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    p = popen_as(sarus.user, [sarus.binary, *args], env={"SARUS_CONFIG_FILE": sarus.config_file},
                 stdin=slave, stdout=slave, stderr=slave, preexec_fn=make_controlling_terminal)
    os.close(slave)
    return p, master


def read_until(master, pattern, timeout=10):
    """What the pty master gives until the regular expression pattern (bytes)
    matches it, the terminal closes or timeout s pass."""
    import re
    import select
    import time
    data = b""
    deadline = time.time() + timeout
    while not re.search(pattern, data) and time.time() < deadline:
        if select.select([master], [], [], 0.1)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data


def processes():
    """(pid, command line with spaces, owner uid) of every live process."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            st = os.stat(f"/proc/{pid}")
        except OSError:
            continue
        yield int(pid), cmdline, st.st_uid


def run_concurrently(sarus, count, *args):
    """`sarus ARGS...` from count threads at once, "{i}" in ARGS replaced by
    the thread's number; the results in completion order."""
    results = []

    def one(i):
        results.append(sarus(*[a.replace("{i}", str(i)) for a in args]))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


HOST_DEVICE_NODES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")


def host_device_nodes():
    """Owner, group and mode of the host's common device nodes."""
    return {path: (st.st_uid, st.st_gid, oct(st.st_mode)) for path in HOST_DEVICE_NODES
            for st in [os.stat(path)]}


@pytest.fixture(autouse=True)
def host_device_nodes_stay_roots():
    """crun chowns the container's standard streams to its user: run as
    root with a host device as a stream (< /dev/zero), that would give the
    device to the caller. Every test leaves these nodes root's, as it found
    them; a node that is not root's before a test fails it too, so that what
    an earlier process did is seen."""
    before = host_device_nodes()
    assert all(uid == 0 for uid, _, _ in before.values()), f"a host device node is not root's: {before}"
    yield
    after = host_device_nodes()
    assert after == before, f"a host device node changed during the test: {before} -> {after}"


def cgroup_leftovers():
    """Cgroups that sarus made for containers (named sarus-*), anywhere in
    any hierarchy."""
    found = []
    with open("/proc/self/mountinfo") as f:
        mountpoints = [line.split()[4] for line in f if line.split(" - ")[1].startswith(("cgroup ", "cgroup2 "))]
    for mountpoint in mountpoints:
        for root, dirs, _ in os.walk(mountpoint):
            for name in dirs:
                if name.startswith("sarus-") and not name.startswith("sarus-test-"):
                    found.append("cgroup: " + os.path.join(root, name))
    return found


def leftovers(user):
    """Processes, mounts, loop devices and cgroups that a finished container
    must not leave behind."""
    found = []
    uid = pwd.getpwnam(user).pw_uid
    for pid, cmdline, owner in processes():
        helper = any(t in cmdline for t in ("squashfuse", "fuse-overlayfs", "crun ", "runc ", "sarus run",
                                            "sarus-rank-agent", "sarus image keeper"))
        if helper and (owner in (uid, 0) or owner >= 100000):
            found.append(f"process {pid}: {cmdline}")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if "squashfuse" in line or "fuse-overlayfs" in line or "OCIBundleDir" in line:
                found.append("mount: " + line.strip())
    losetup = subprocess.run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
                             stdout=subprocess.PIPE, text=True)
    for line in losetup.stdout.splitlines():
        if ".squashfs" in line:
            found.append("loop device: " + line.strip())
    return found + cgroup_leftovers()


def name_hash(text):
    """src/core/common/name_hash.hpp: 64-bit FNV-1a as 16 hex digits."""
    h = 14695981039346656037
    for byte in text.encode():
        h = ((h ^ byte) * 1099511628211) % 2**64
    return f"{h:016x}"


def explicit_rank_group_name(group):
    """The directory name of the ranks group SARUS_RANK_GROUP=group of a
    sarus started from this process (src/core/jobs/rank_group.cpp: the key,
    the caller's cgroups without Slurm's task_N level, the node)."""
    step = ""
    with open("/proc/self/cgroup") as f:
        for line in f.read().splitlines():
            head, _, last = line.rpartition("/")
            step += (head if last.startswith("task_") else line) + "\n"
    return name_hash(f"explicit:{group}-cgroups-{name_hash(step)}@{socket.gethostname()}")


def suid_keeper_directory(sarus):
    """Where the root image keeper of sarus.user serves (src/suid/loop_keeper.cpp)."""
    return f"/run/sarus/{pwd.getpwnam(sarus.user).pw_uid}-{name_hash(sarus.config_file)}"


def wait_for_no_leftovers(user, timeout=5):
    """leftovers(user) once they are gone, or as they are after timeout s."""
    import time
    deadline = time.time() + timeout
    while leftovers(user) and time.time() < deadline:
        time.sleep(0.1)
    return leftovers(user)


def private_hooks_dir(sarus, label):
    """Generator: an empty hooksDir under the prefix, root-owned like its
    ancestors (the suid security checks want it so), set in sarus.json as
    sarus.hooks_dir, removed afterwards. For `yield from` in fixtures."""
    import uuid
    directory = os.path.join(sarus.prefix, "etc", f"hooks.d.{label}-{uuid.uuid4().hex[:8]}")
    os.mkdir(directory, 0o755)
    sarus.hooks_dir = directory
    sarus.config["hooksDir"] = directory
    sarus.write_config()
    try:
        yield sarus
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run_rootless_crun_bundle(bundle, user, args, hooks):
    """Runs the hand-made bundle (its rootfs in bundle/rootfs) as `user` with
    rootless crun and no sarus: `crun spec --rootless`, then args, a writable
    root, the given config.json "hooks", whose output goes to
    bundle/hooks.log. Returns (CompletedProcess, text of hooks.log)."""
    uid = pwd.getpwnam(user).pw_uid
    for root, dirs, files in os.walk(bundle):
        for name in [root] + [os.path.join(root, n) for n in dirs + files]:
            os.lchown(name, uid, -1)
    run_as(user, ["crun", "spec", "--rootless"], cwd=bundle, check=True)
    config_file = os.path.join(bundle, "config.json")
    with open(config_file) as f:
        config = json.load(f)
    config["process"].update(args=list(args), terminal=False)
    config["root"]["readonly"] = False
    hooks_log = os.path.join(bundle, "hooks.log")
    config.setdefault("annotations", {})["run.oci.hooks.stderr"] = hooks_log
    config["hooks"] = hooks
    with open(config_file, "w") as f:
        json.dump(config, f)
    name = f"standalone-{os.getpid()}-{os.path.basename(bundle)}"
    r = run_as(user, ["crun", "--root", os.path.join(bundle, "state"), "run", "--bundle", bundle, name],
               cwd=bundle, env={"XDG_RUNTIME_DIR": ""})
    log = open(hooks_log).read() if os.path.exists(hooks_log) else ""
    return r, log


# --- the Slurm test cluster ---------------------------------------------------

@pytest.fixture(scope="session")
def slurm_cluster():
    """A running multi-node Slurm cluster (slurm_cluster.SlurmCluster: one
    slurmctld on the host, slurmd node1..node3 in their own network, UTS and
    mount namespaces), started once per session and stopped at its end.
    Helpers: srun/sbatch/scancel(user, *args, sarus=None, env=None) run as a
    test user with SLURM_CONF set and, with sarus=, that installation's bin
    first in PATH and its SARUS_CONFIG_FILE; leftovers(user) and
    wait_for_no_leftovers(user) look on every node. Needs root."""
    if os.geteuid() != 0:
        pytest.skip("the Slurm test cluster needs root (namespaces, a bridge, slurmd)")
    from slurm_cluster import SlurmCluster, exclusive
    with exclusive():     # another test session on this machine waits for this one's end
        cluster = SlurmCluster()
        try:
            cluster.start()
        except RuntimeError as e:
            pytest.fail(f"the Slurm test cluster did not start: {e}")
        try:
            yield cluster
        finally:
            cluster.stop()


def symlink_entries(path, target):
    """Layer entries for a symlink path -> target: its parent directories
    (0755), then the symlink."""
    import tarfile
    parts = path.strip("/").split("/")
    entries = []
    for i in range(1, len(parts)):
        directory = tarfile.TarInfo("/".join(parts[:i]))
        directory.type, directory.mode = tarfile.DIRTYPE, 0o755
        entries.append(directory)
    link = tarfile.TarInfo("/".join(parts))
    link.type, link.linkname = tarfile.SYMTYPE, target
    return entries + [link]


def podman_hooks_dir(work, name, hook):
    """<work>/hooks.d holding the one hook file name (a hook JSON document),
    for rootless Podman's --hooks-dir: every user who runs Podman reads it."""
    hooks_dir = os.path.join(work, "hooks.d")
    os.makedirs(hooks_dir)
    with open(os.path.join(hooks_dir, name), "w") as f:
        json.dump(hook, f)
    os.chmod(hooks_dir, 0o755)
    os.chmod(os.path.join(hooks_dir, name), 0o644)
    return hooks_dir


@contextlib.contextmanager
def busybox_in_podman(user, test_images):
    """busybox.docker.tar in user's Podman storage (as sarus-tests/busybox)
    while the block runs; not kept there afterwards."""
    loaded = run_as(user, ["podman", "load", "-q", "-i", os.path.join(test_images, "busybox.docker.tar")])
    assert loaded.returncode == 0, loaded.stderr
    try:
        yield "sarus-tests/busybox"
    finally:
        run_as(user, ["podman", "rmi", "-f", "sarus-tests/busybox"])


def busybox_with_layer(test_images, out_path, entries, labels=None):
    """busybox.docker.tar with one more layer holding entries (TarInfo
    without data: nodes, symlinks, directories; or (TarInfo, bytes) for a
    file), and labels (a dict) when
    given, written to out_path as a docker-archive the test users can read;
    tagged sarus-tests/extra."""
    import hashlib
    import io
    import tarfile
    with tarfile.open(os.path.join(test_images, "busybox.docker.tar")) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    manifest = json.loads(members["manifest.json"])
    config = json.loads(members[manifest[0]["Config"]])
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for entry in entries:
            if isinstance(entry, tuple):  # (TarInfo of a file, its bytes)
                entry[0].size = len(entry[1])
                tar.addfile(entry[0], io.BytesIO(entry[1]))
            else:
                tar.addfile(entry)
    layer = layer.getvalue()
    config["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(layer).hexdigest())
    if labels is not None:
        config.setdefault("config", {})["Labels"] = labels
    members["extra-layer/layer.tar"] = layer
    members["extra.json"] = json.dumps(config).encode()
    manifest[0].update(Config="extra.json", RepoTags=["sarus-tests/extra:latest"])
    manifest[0]["Layers"].append("extra-layer/layer.tar")
    members["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(out_path, "w") as tar:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    os.chmod(out_path, 0o644)


def pytest_sessionfinish(session, exitstatus):
    """A skipped test is not a passed one: the suite fails when any test was
    skipped, unless SARUS_TESTS_ALLOW_SKIPS=1 (a subset run by hand on a host
    that lacks something)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    # an expected failure passes as vacuously as a skip
    skipped = sum(len(reporter.stats.get(kind, [])) for kind in ("skipped", "xfailed", "xpassed")) if reporter else 0
    if skipped and session.exitstatus == 0 and os.environ.get("SARUS_TESTS_ALLOW_SKIPS") != "1":
        reporter.write_line(f"{skipped} test(s) skipped: a skip is not a pass (SARUS_TESTS_ALLOW_SKIPS=1 allows it)",
                            red=True)
        session.exitstatus = 1
