"""Attacks on the SUID installation, run as the unprivileged test users.

Each test is something a user could try to make root act for them: a mount
that lands on a host path where root then executes something, a race that
makes root create directories in root-only places, annotations or image
labels that the runtime acts on as root, image content that a runtime
follows on the host, a cgroup outside the caller's limits, a container that
outlives a killed sarus. A marker that only root can write (in /root)
tells whether root ever ran the user's program."""

import contextlib
import hashlib
import json
import os
import pwd
import random
import shutil
import signal
import socket
import stat
import subprocess
import tarfile
import time
import uuid

import pytest

from conftest import (busybox_with_layer, cgroup_leftovers, popen_as, private_hooks_dir, process_tree, read_until,
                      run_as, run_in_a_terminal, explicit_rank_group_name, suid_keeper_directory, symlink_entries,
                      wait_for_no_leftovers)

BUSYBOX = "load/library/busybox"
HOSTILE = "load/library/hostile"
HOSTILE_DIR = "/var/tmp/sarus-hostile"


@pytest.fixture
def suid(suid_sarus, test_images):
    suid_sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    yield suid_sarus
    assert wait_for_no_leftovers(suid_sarus.user) == []


@pytest.fixture
def marker():
    """A path only root can create; removed afterwards if an attack worked."""
    path = f"/root/sarus-owned-{uuid.uuid4().hex[:8]}"
    yield path
    if os.path.exists(path):
        os.remove(path)


def user_file(sarus, relative, content, mode=0o644):
    """A file of the test user's in its workdir."""
    path = os.path.join(sarus.workdir, relative)
    run_as(sarus.user, ["mkdir", "-p", os.path.dirname(path)], check=True)
    run_as(sarus.user, ["sh", "-c", 'cat > "$0" && chmod "$1" "$0"', path, oct(mode)[2:]],
           input=content, check=True)
    return path


def user_dir(sarus, relative):
    path = os.path.join(sarus.workdir, relative)
    run_as(sarus.user, ["mkdir", "-p", path], check=True)
    return path


def user_symlink(sarus, target, relative):
    path = os.path.join(sarus.workdir, relative)
    run_as(sarus.user, ["ln", "-sfn", target, path], check=True)
    return path


def evil_program(sarus, marker):
    """A script that proves, if root runs it, that root ran it."""
    return user_file(sarus, "evil", f"#!/bin/sh\nid -u > {marker}\necho evil-was-run\n", 0o755)


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# --- 1. a mount through a symlink of an earlier mount --------------------------

def runtime_dir_and_name(sarus):
    runtime = os.path.realpath(sarus.config["runcPath"])
    return os.path.dirname(runtime), os.path.basename(runtime)


def mounts_absolute(sarus, evil, bin_dir, runtime):
    d = user_dir(sarus, "x/d")
    user_symlink(sarus, bin_dir, "x/d/b")
    return [f"type=bind,src={d},dst=/a", f"type=bind,src={evil},dst=/a/b/{runtime}"], f"{bin_dir}/{runtime}"


def mounts_relative(sarus, evil, bin_dir, runtime):
    d = user_dir(sarus, "x/d")
    user_symlink(sarus, "../" * 12 + bin_dir.lstrip("/"), "x/d/b")
    return [f"type=bind,src={d},dst=/a", f"type=bind,src={evil},dst=/a/b/{runtime}"], f"{bin_dir}/{runtime}"


def mounts_dotdot_after_mount(sarus, evil, bin_dir, runtime):
    d = user_dir(sarus, "x/d")
    user_symlink(sarus, "../" * 12, "x/d/up")
    return ([f"type=bind,src={d},dst=/a", f"type=bind,src={evil},dst=/a/up{bin_dir}/{runtime}"],
            f"{bin_dir}/{runtime}")


def mounts_through_several_mounts(sarus, evil, bin_dir, runtime):
    x1 = user_dir(sarus, "x1")
    x2 = user_dir(sarus, "x2")
    user_symlink(sarus, "/b", "x1/c")
    user_symlink(sarus, bin_dir, "x2/d")
    return ([f"type=bind,src={x1},dst=/a", f"type=bind,src={x2},dst=/b",
             f"type=bind,src={evil},dst=/a/c/d/{runtime}"], f"{bin_dir}/{runtime}")


@pytest.mark.parametrize("layout", [mounts_absolute, mounts_relative, mounts_dotdot_after_mount,
                                    mounts_through_several_mounts],
                         ids=["absolute-symlink", "relative-symlink", "dotdot-after-mount", "several-mounts"])
def test_a_mount_through_an_earlier_mount_stays_in_the_container(suid, marker, layout):
    bin_dir, runtime = runtime_dir_and_name(suid)
    before = sha256_of(os.path.join(bin_dir, runtime))
    evil = evil_program(suid, marker)
    mounts, inside = layout(suid, evil, bin_dir, runtime)
    args = [a for m in mounts for a in ("--mount", m)]
    r = suid("run", *args, BUSYBOX, "cat", inside)
    assert not os.path.exists(marker), "root executed the user's program"
    assert r.returncode == 0, r.stderr
    assert "evil-was-run" in r.stdout      # the mount landed inside the container
    assert sha256_of(os.path.join(bin_dir, runtime)) == before


def configure_site_mount(suid, source):
    """sarus.json with one site mount, of source on /site."""
    suid.config["siteMounts"] = [{"type": "bind", "source": source, "destination": "/site"}]
    suid.write_config()


def test_a_symlink_inside_a_site_mount_stays_in_the_container(suid, marker):
    bin_dir, runtime = runtime_dir_and_name(suid)
    site = f"/var/tmp/sarus-site-{uuid.uuid4().hex[:8]}"
    os.makedirs(os.path.join(site, "user"))
    os.chmod(site, 0o755)
    import pwd
    pw = pwd.getpwnam(suid.user)
    os.chown(os.path.join(site, "user"), pw.pw_uid, pw.pw_gid)
    try:
        run_as(suid.user, ["ln", "-s", bin_dir, os.path.join(site, "user", "b")], check=True)
        configure_site_mount(suid, site)
        evil = evil_program(suid, marker)
        r = suid("run", "--mount", f"type=bind,src={evil},dst=/site/user/b/{runtime}", BUSYBOX,
                 "cat", f"{bin_dir}/{runtime}")
        assert not os.path.exists(marker), "root executed the user's program"
        assert r.returncode == 0, r.stderr
        assert "evil-was-run" in r.stdout
        assert not os.path.exists(os.path.join(bin_dir, runtime + ".sarus")), "nothing new on the host"
    finally:
        shutil.rmtree(site)


@pytest.fixture
def hidden_public(suid):
    """A directory "public" (0755) with a readable file "secret" in it, below
    a root-only directory: the test user cannot reach either. Yields
    (public, secret text)."""
    hidden = f"/var/tmp/sarus-hidden-{uuid.uuid4().hex[:8]}"
    public = os.path.join(hidden, "public")
    os.makedirs(public)
    os.chmod(hidden, 0o700)
    os.chmod(public, 0o755)
    text = uuid.uuid4().hex
    with open(os.path.join(public, "secret"), "w") as f:
        f.write(text + "\n")
    os.chmod(os.path.join(public, "secret"), 0o644)
    assert run_as(suid.user, ["cat", os.path.join(public, "secret")]).returncode != 0
    yield public, text
    shutil.rmtree(hidden)


def test_a_site_mount_a_user_can_replace_is_refused(suid, hidden_public):
    """Root clones a siteMounts source by its path: in a directory of a
    user's, the source can become a symlink to any directory, such as one
    below a directory the user cannot enter, which every container then
    gets."""
    public, secret = hidden_public
    parent = user_dir(suid, "site")
    source = user_symlink(suid, public, "site/data")
    configure_site_mount(suid, source)
    r = suid("run", BUSYBOX, "cat", "/site/secret")
    assert secret not in r.stdout, "the user chose what root bound into the container"
    assert r.returncode == 1, r.stderr
    # the first of the user's directories on the way: the workdir, in /var/tmp
    assert f'Path "{suid.workdir}" must be owned by root' in r.stderr, r.stderr
    assert "siteMounts source" in r.stderr and os.path.dirname(parent) == suid.workdir


def test_a_site_mount_below_a_sticky_directory_must_be_roots(suid):
    """/var/tmp is world-writable and sticky: a root-owned source there stays
    root's; a source there that does not exist yet, anybody may make."""
    missing = f"/var/tmp/sarus-site-missing-{uuid.uuid4().hex[:8]}"
    configure_site_mount(suid, missing)
    r = suid("run", BUSYBOX, "true")
    assert r.returncode == 1, r.stderr
    assert f'Path "{missing}" does not exist, and any user may create it in "/var/tmp"' in r.stderr, r.stderr


def test_a_hard_linked_site_source_in_a_sticky_directory_is_refused(suid):
    """Without fs.protected_hardlinks a user may link a root file there under
    the configured name before root makes it."""
    source = f"/var/tmp/sarus-hardlink-{uuid.uuid4().hex[:8]}"
    with open(source, "w") as f:
        f.write("root's\n")
    os.link(source, source + ".other")
    try:
        configure_site_mount(suid, source)
        r = suid("run", BUSYBOX, "true")
        assert r.returncode == 1, r.stderr
        assert f'Path "{source}" has other hard links and is in "/var/tmp"' in r.stderr, r.stderr
    finally:
        os.remove(source)
        os.remove(source + ".other")


def test_a_site_mount_through_a_symlink_to_a_sticky_directory(suid):
    """A root-owned /scratch -> /lus/scratch (sticky, world-writable): a
    root-owned source in it is accepted, a user's entry there is not."""
    tag = uuid.uuid4().hex[:8]
    sticky = f"/var/tmp/sarus-sticky-{tag}"
    link = f"/var/tmp/sarus-stlink-{tag}"
    os.makedirs(os.path.join(sticky, "shared"))
    os.chmod(sticky, 0o1777)
    with open(os.path.join(sticky, "shared", "file"), "w") as f:
        f.write("shared\n")
    os.symlink(sticky, link)
    try:
        configure_site_mount(suid, f"{link}/shared")
        r = suid("run", BUSYBOX, "cat", "/site/file")
        assert r.returncode == 0 and r.stdout == "shared\n", r.stderr
        run_as(suid.user, ["mkdir", os.path.join(sticky, "mine")], check=True)
        configure_site_mount(suid, f"{link}/mine")
        r = suid("run", BUSYBOX, "true")
        assert r.returncode == 1, r.stderr
        assert f'Path "{sticky}/mine" must be owned by root: it is in "{sticky}"' in r.stderr, r.stderr
    finally:
        os.remove(link)
        shutil.rmtree(sticky)


def test_a_mount_point_in_a_host_directory_is_created_as_the_caller(suid):
    # /usr is readable but not writable by the user: bind it read-write and
    # ask for a mount inside it. Root must not create anything in the host's /usr.
    name = f"sarus-mp-{uuid.uuid4().hex[:8]}"
    data = user_dir(suid, "data")
    r = suid("run", "--mount", "type=bind,src=/usr,dst=/hostusr",
             "--mount", f"type=bind,src={data},dst=/hostusr/{name}", BUSYBOX, "true")
    created = os.path.exists(f"/usr/{name}")
    if created:
        os.rmdir(f"/usr/{name}")
    assert not created, "root created a directory in the host's /usr"
    assert r.returncode == 1 and "Permission denied" in r.stderr


@pytest.mark.parametrize("destination, message", [
    ("/proc/mine", "the runtime mounts /proc over it"),
    ("/sys/mine", "the runtime mounts /sys over it"),
    ("/dev/pts/mine", "the runtime mounts /dev/pts over it"),
    ("/dev", "which the runtime provides"),
])
def test_a_mount_where_the_runtime_mounts_is_refused(suid, destination, message):
    # Mounted over by the runtime, such a mount would be hidden, or would
    # make the runtime create its device nodes in a host directory.
    data = user_dir(suid, "data")
    r = suid("run", "--mount", f"type=bind,src={data},dst={destination}", BUSYBOX, "true")
    assert r.returncode == 1 and message in r.stderr and destination in r.stderr, r.stderr
    assert os.listdir(data) == []


# --- 2. the working directory race ---------------------------------------------

RACER = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = sys.argv[1].encode(), sys.argv[2].encode()
while True:
    libc.renameat2(-100, a, -100, b, 2)   # RENAME_EXCHANGE
"""


def test_working_directory_race_never_creates_on_the_host(suid):
    target = f"/root/sarus-race-{uuid.uuid4().hex[:8]}"
    os.mkdir(target, 0o700)
    w = user_dir(suid, "w")
    user_dir(suid, "w/d")
    user_symlink(suid, target, "w/l")
    racer = popen_as(suid.user, ["/usr/bin/python3", "-c", RACER, os.path.join(w, "d"), os.path.join(w, "l")])
    outcomes = []
    try:
        deadline = time.time() + 60
        while len(outcomes) < 200 and time.time() < deadline:
            r = suid("run", "--mount", f"type=bind,src={w},dst=/w", "-w", f"/w/d/new{len(outcomes)}", BUSYBOX, "true")
            outcomes.append("entered" if r.returncode == 0 else
                            "refused" if "cannot enter the working directory" in r.stderr or
                                         "Permission denied" in r.stderr else r.stderr)
        assert racer.poll() is None, "the racer stopped: nothing was raced"
    finally:
        racer.kill()
        racer.wait()
        created = os.listdir(target)
        shutil.rmtree(target)
    assert len(outcomes) >= 50
    assert created == [], f"root created {created} in a root-only directory"
    # both states of the swapped name were met, and nothing else happened
    assert set(outcomes) == {"entered", "refused"}, set(outcomes)


def test_working_directory_in_a_bind_mount_is_entered_as_the_caller(suid):
    w = user_dir(suid, "w")
    r = suid.ok("run", "--mount", f"type=bind,src={w},dst=/w", "-w", "/w/new/deeper", BUSYBOX,
                "sh", "-c", "pwd; touch here")
    assert r.stdout.strip() == "/w/new/deeper"
    import pwd
    assert os.stat(os.path.join(w, "new", "deeper", "here")).st_uid == pwd.getpwnam(suid.user).pw_uid
    assert os.stat(os.path.join(w, "new")).st_uid == pwd.getpwnam(suid.user).pw_uid


def test_working_directory_the_caller_cannot_create_is_refused(suid):
    name = f"sarus-wd-{uuid.uuid4().hex[:8]}"
    r = suid("run", "--mount", "type=bind,src=/usr,dst=/hostusr", "-w", f"/hostusr/{name}", BUSYBOX, "true")
    created = os.path.exists(f"/usr/{name}")
    if created:
        os.rmdir(f"/usr/{name}")
    assert not created, "root created the working directory in the host's /usr"
    assert r.returncode == 1 and name in r.stderr and "Permission denied" in r.stderr


def test_a_working_directory_through_an_image_symlink_into_proc_is_refused(suid, test_images):
    archive = f"/var/tmp/sarus-workproc-{uuid.uuid4().hex[:8]}.tar"
    try:
        busybox_with_layer(test_images, archive, symlink_entries("work", "/proc/1/root"))
        suid.ok("load", archive, "workproc")
        r = suid("run", "--pid=host", "-w", "/work/etc", "load/library/workproc", "pwd")
        assert r.returncode == 1 and r.stdout == "", r.stdout
        assert "working directory '/work/etc': /proc/1/root/etc is in /proc" in r.stderr, r.stderr
    finally:
        os.remove(archive)


# --- 3. annotations and labels --------------------------------------------------

DUMP_HOOK = r"""#!/usr/bin/python3
import json, os, sys
state = json.load(sys.stdin)
out = sys.argv[1]
def fds(pid):
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return found
def environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return [e.decode(errors="replace") for e in f.read().split(b"\0") if e]
with open(os.path.join(state["bundle"], "config.json")) as f:
    config = json.load(f)
report = {"annotations": config.get("annotations", {}), "hook_env": environ(os.getpid()),
          "runtime_env": environ(os.getppid()), "hook_fds": fds(os.getpid()),
          "runtime_fds": fds(os.getppid()), "uid": os.getuid()}
with open(out, "w") as f:
    json.dump(report, f)
"""


@pytest.fixture
def dumping(suid):
    """suid with a createRuntime hook that writes what the runtime got
    (config.json's annotations, its environment and descriptors) to
    dumping.report_file, a root-only place."""
    gen = private_hooks_dir(suid, "dump")
    sarus = next(gen)
    hook = os.path.join(sarus.hooks_dir, "dump.py")
    with open(hook, "w") as f:
        f.write(DUMP_HOOK)
    os.chmod(hook, 0o755)
    report = f"/root/sarus-dump-{uuid.uuid4().hex[:8]}.json"
    with open(os.path.join(sarus.hooks_dir, "dump.json"), "w") as f:
        json.dump({"version": "1.0.0", "hook": {"path": hook, "args": ["dump.py", report]},
                   "when": {"always": True}, "stages": ["createRuntime"]}, f)
    sarus.report_file = report

    def report_of(r):
        assert r.returncode == 0, r.stderr
        with open(report) as f:
            return json.load(f)
    sarus.report_of = report_of
    yield sarus
    if os.path.exists(report):
        os.remove(report)
    next(gen, None)


# Every annotation that crun (1.8) or runc acts on, and a few beyond.
RUNTIME_ANNOTATIONS = [
    "run.oci.seccomp.plugins", "run.oci.seccomp.receiver", "run.oci.seccomp_bpf_data",
    "run.oci.seccomp_fail_unknown_syscall", "run.oci.pidfd_receiver", "run.oci.delegate-cgroup",
    "run.oci.hooks.stdout", "run.oci.hooks.stderr", "run.oci.keep_original_groups",
    "run.oci.systemd.subgroup", "run.oci.systemd.force_cgroup_v1", "run.oci.timens_offset",
    "run.oci.mount_context_type", "run.oci.handler", "module.wasm.image/variant",
    "io.kubernetes.cri.container-type", "org.systemd.property.ExecStopPost", "org.criu.config",
    "io.crun.anything", "org.opencontainers.image.title",
]


def test_only_hook_annotations_reach_the_runtime(dumping):
    args = []
    for key in RUNTIME_ANNOTATIONS:
        args += ["--annotation", f"{key}=/var/tmp/attacker-chosen"]
    report = dumping.report_of(dumping("run", *args, "--annotation", "com.hooks.example=kept", BUSYBOX, "true"))
    for key in RUNTIME_ANNOTATIONS:
        value = report["annotations"].get(key)
        assert value is None or "attacker-chosen" not in value, key
    assert report["annotations"]["com.hooks.example"] == "kept"


def test_image_labels_reach_the_runtime_only_as_hook_annotations(dumping, test_images):
    dumping.ok("load", os.path.join(test_images, "hostile.docker.tar"), "hostile")
    prepare_hostile_targets()
    try:
        report = dumping.report_of(dumping("run", HOSTILE, "true"))
    finally:
        shutil.rmtree(HOSTILE_DIR)
    keys = set(report["annotations"])
    assert "com.hooks.test.label" in keys
    assert not {k for k in keys if k.startswith(("run.oci.", "org.criu")) and
                k not in ("run.oci.hooks.stdout", "run.oci.hooks.stderr")}
    for key in ("run.oci.hooks.stdout", "run.oci.hooks.stderr"):
        assert not report["annotations"].get(key, "").startswith(HOSTILE_DIR), key


@pytest.mark.parametrize("runtime", ["installed", "/usr/bin/crun"])
def test_seccomp_plugin_annotation_loads_nothing_as_root(suid, marker, runtime):
    """crun dlopens the libraries of run.oci.seccomp.plugins (Debian's crun;
    the installation's static one has no dlopen and fails the container
    instead): the annotation must never reach it."""
    profile = os.path.join(suid.prefix, "etc", f"seccomp-test-{uuid.uuid4().hex[:8]}.json")
    with open(profile, "w") as f:
        json.dump({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}, f)
    os.chmod(profile, 0o644)
    source = user_file(suid, "evil.c", "#include <stdio.h>\n__attribute__((constructor)) static void owned(void) "
                       f"{{ FILE* f = fopen(\"{marker}\", \"w\"); if (f) fclose(f); }}\n")
    library = os.path.join(suid.workdir, "evil.so")
    run_as(suid.user, ["gcc", "-shared", "-fPIC", "-o", library, source], check=True)
    try:
        suid.config["seccompProfile"] = profile
        if runtime != "installed":
            suid.config["runcPath"] = runtime
        suid.write_config()
        r = suid("run", "--annotation", f"run.oci.seccomp.plugins={library}", BUSYBOX, "true")
        assert not os.path.exists(marker), "root loaded the user's library"
        assert r.returncode == 0, r.stderr  # the runtime never saw the annotation
    finally:
        os.remove(profile)


def test_pidfd_receiver_annotation_connects_nowhere(suid):
    path = os.path.join(suid.workdir, "receiver.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o777)
    listener.listen(4)
    listener.settimeout(0.5)
    try:
        r = suid("run", "--annotation", f"run.oci.pidfd_receiver={path}", BUSYBOX, "true")
        assert r.returncode == 0, r.stderr
        with pytest.raises(socket.timeout):
            listener.accept()
    finally:
        listener.close()


# --- 4. nosuid and nodev ------------------------------------------------------------

def test_rootfs_and_every_bind_mount_are_nosuid_nodev(sarus, test_images):
    sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    data = user_dir(sarus, "data")
    r = sarus.ok("run", "--mount", f"type=bind,src={data},dst=/data",
                 "--mount", f"type=bind,src={data},dst=/ro,readonly", BUSYBOX, "cat", "/proc/self/mountinfo")
    options = {}
    for line in r.stdout.splitlines():
        fields = line.split()
        options[fields[4]] = fields[5].split(",")
    for mountpoint in ("/", "/data", "/ro"):
        assert "nosuid" in options[mountpoint] and "nodev" in options[mountpoint], (mountpoint, options)
    assert "ro" in options["/ro"]


def test_a_device_node_in_the_image_cannot_be_opened(suid, test_images):
    # /dev/null of the host copied into a user's bind-mounted directory is
    # a real node on the host filesystem; the container must not use it.
    node_dir = f"/var/tmp/sarus-node-{uuid.uuid4().hex[:8]}"
    os.mkdir(node_dir, 0o755)
    os.mknod(os.path.join(node_dir, "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    try:
        r = suid("run", "--mount", f"type=bind,src={node_dir},dst=/nodes", BUSYBOX,
                 "sh", "-c", "echo x > /nodes/null && echo opened")
        assert "opened" not in r.stdout
        assert "Permission denied" in r.stderr
    finally:
        shutil.rmtree(node_dir)


# --- devices ------------------------------------------------------------------------

def test_device_through_a_symlink_is_the_node_the_caller_sees(suid):
    link = user_symlink(suid, "/dev/null", "mynull")
    r = suid.ok("run", f"--device={link}:/dev/mynull", BUSYBOX, "sh", "-c",
                "ls -l /dev/mynull; echo x > /dev/mynull && echo written")
    assert r.stdout.startswith("c") and "1,   3" in r.stdout and "written" in r.stdout


def wait_for_process(argv, timeout=10):
    """The pid of the process running exactly argv, once it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p, c, _ in _processes() if c.split() == argv]
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"no process {argv} within {timeout} s")


def test_a_device_node_from_an_image_is_refused_as_a_device(suid, test_images, tmp_path):
    """The node in an image is unusable (its mount is nodev), but a running
    container shows it to its owner at /proc/PID/root. Recreated by root for
    --device it would open the host's disk: here a loop device over a file
    only root can read."""
    secret = "sarus-disk-secret-" + uuid.uuid4().hex
    backing = tmp_path / "disk.img"
    backing.write_bytes(secret.encode().ljust(4096, b"\0"))
    os.chmod(backing, 0o600)
    loop = subprocess.run(["losetup", "--find", "--show", "--read-only", str(backing)],
                          stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    archive = f"/var/tmp/sarus-devimage-{uuid.uuid4().hex[:8]}.tar"
    container = None
    try:
        assert run_as(suid.user, ["head", "-c", "64", loop]).returncode != 0, "the user can read the disk anyway"
        node = tarfile.TarInfo("disk")
        node.type, node.mode = tarfile.BLKTYPE, 0o666  # anybody may put one in an image
        node.devmajor, node.devminor = os.major(os.stat(loop).st_rdev), os.minor(os.stat(loop).st_rdev)
        busybox_with_layer(test_images, archive, [node])
        suid.ok("load", archive, "devimage")
        tag = str(random.randint(100000, 999999))
        container = popen_as(suid.user, [suid.binary, "run", "load/library/devimage", "sh", "-c",
                                         f"echo ready; exec sleep {tag}"])
        assert container.stdout.readline() == "ready\n"
        pid = wait_for_process(["sleep", tag])
        r = suid("run", f"--device=/proc/{pid}/root/disk:/dev/disk", BUSYBOX, "head", "-c", "64", "/dev/disk")
        assert secret not in r.stdout, "root gave the user the host's disk"
        assert r.returncode != 0
        assert "mounted nodev" in r.stderr, r.stderr
    finally:
        if container is not None:
            container.kill()
            container.wait()
        subprocess.run(["losetup", "-d", loop])
        if os.path.exists(archive):
            os.remove(archive)


def test_device_destination_through_a_symlink_stays_in_the_container(suid):
    name = f"sarus-dev-{uuid.uuid4().hex[:8]}"
    x = user_dir(suid, "x")
    user_symlink(suid, "/root", "x/b")
    r = suid("run", "--mount", f"type=bind,src={x},dst=/a", f"--device=/dev/null:/a/b/{name}", BUSYBOX,
             "true")
    assert not os.path.exists(f"/root/{name}"), "root made a device node on the host"
    assert r.returncode == 0, r.stderr


# --- image content ------------------------------------------------------------------

def prepare_hostile_targets():
    for name in ("dev", "proc", "sys"):
        os.makedirs(os.path.join(HOSTILE_DIR, name), exist_ok=True)
    os.chmod(HOSTILE_DIR, 0o755)


def test_image_symlinks_on_dev_proc_sys_are_not_followed_on_the_host(sarus, test_images):
    sarus.ok("load", os.path.join(test_images, "hostile.docker.tar"), "hostile")
    prepare_hostile_targets()
    try:
        r = sarus("run", HOSTILE, "sh", "-c", "echo x > /dev/null && ls /proc/self/status")
        created = {name: os.listdir(os.path.join(HOSTILE_DIR, name)) for name in ("dev", "proc", "sys")}
    finally:
        shutil.rmtree(HOSTILE_DIR)
    assert created == {"dev": [], "proc": [], "sys": []}
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "/proc/self/status"


ETC_FILES_SARUS_WRITES = ["hosts", "resolv.conf", "passwd", "group", "nsswitch.conf"]


def etc_symlink_layers(victims, layout):
    """Layer entries of an image whose /etc files (layout "files"), or /etc
    itself ("directory"), are symlinks to victims on the host: absolute
    and climbing with .. in turn."""
    climb = "../" * 12 + victims.lstrip("/")
    if layout == "directory":
        return symlink_entries("etc", victims)
    etc = tarfile.TarInfo("etc")
    etc.type, etc.mode = tarfile.DIRTYPE, 0o755
    entries = [etc]
    for i, name in enumerate(ETC_FILES_SARUS_WRITES):
        link = tarfile.TarInfo(f"etc/{name}")
        link.type, link.linkname = tarfile.SYMTYPE, f"{victims}/{name}" if i % 2 else f"{climb}/{name}"
        entries.append(link)
    return entries


@pytest.mark.parametrize("layout", ["files", "directory"])
def test_image_symlinks_at_the_etc_files_root_writes_lead_nowhere_on_the_host(suid, test_images, layout):
    """Root writes /etc/hosts, resolv.conf, passwd, group and nsswitch.conf
    into the container and gives them to the caller: with an image whose
    files there lead to host files, root must neither write nor chown those."""
    tag = uuid.uuid4().hex[:8]
    victims = f"/var/tmp/sarus-etcvictim-{tag}"
    archive = f"/var/tmp/sarus-etclinks-{tag}.tar"
    os.makedirs(victims)
    os.chmod(victims, 0o755)
    for name in ETC_FILES_SARUS_WRITES:
        with open(os.path.join(victims, name), "w") as f:
            f.write("root's own\n")
        os.chmod(os.path.join(victims, name), 0o644)
    try:
        busybox_with_layer(test_images, archive, etc_symlink_layers(victims, layout))
        suid.ok("load", archive, f"etclinks{layout}")
        r = suid("run", f"load/library/etclinks{layout}", "sh", "-c",
                 "stat -c %u /etc/hosts /etc/passwd && grep -c . /etc/passwd")
        found = {name: (os.stat(os.path.join(victims, name)).st_uid, open(os.path.join(victims, name)).read())
                 for name in sorted(os.listdir(victims))}
    finally:
        shutil.rmtree(victims)
        if os.path.exists(archive):
            os.remove(archive)
    assert found == {name: (0, "root's own\n") for name in ETC_FILES_SARUS_WRITES}, found
    assert r.returncode == 0, r.stderr
    uid = str(pwd.getpwnam(suid.user).pw_uid)
    assert r.stdout.split()[:2] == [uid, uid], r.stdout


# --- hooks --------------------------------------------------------------------------

@pytest.fixture
def ldconfig_hook(suid):
    """suid with the mount hook configured as the shipped template does:
    LDCONFIG_PATH set, so root runs ldconfig in every container."""
    gen = private_hooks_dir(suid, "ldconfig")
    sarus = next(gen)
    with open(os.path.join(sarus.hooks_dir, "mount.json"), "w") as f:
        json.dump({"version": "1.0.0",
                   "hook": {"path": os.path.join(sarus.prefix, "bin", "mount_hook"), "args": ["mount_hook"],
                            "env": ["LDCONFIG_PATH=/sbin/ldconfig"]},
                   "when": {"always": True}, "stages": ["createRuntime"]}, f)
    yield sarus
    next(gen, None)


def test_ldconfig_of_a_hook_writes_nothing_in_a_host_directory(ldconfig_hook):
    """A host directory the user may only read, bind-mounted where ldconfig
    looks (/usr/lib), holding a library without its soname link: root's
    ldconfig would create the link there, on the host."""
    libs = f"/var/tmp/sarus-libs-{uuid.uuid4().hex[:8]}"
    os.mkdir(libs, 0o755)
    shutil.copy("/lib/x86_64-linux-gnu/libz.so.1.2.13", libs)
    try:
        assert run_as(ldconfig_hook.user, ["touch", os.path.join(libs, "x")]).returncode != 0
        r = ldconfig_hook("run", "--mount", f"type=bind,src={libs},dst=/usr/lib", BUSYBOX,
                          "sh", "-c", "test -s /etc/ld.so.cache && echo cached")
        assert os.listdir(libs) == ["libz.so.1.2.13"], "root's ldconfig wrote in a host directory"
        assert r.returncode == 0 and r.stdout == "cached\n", r.stderr
    finally:
        shutil.rmtree(libs)


def test_ldconfig_of_a_hook_cannot_reach_the_host_through_proc(ldconfig_hook, test_images):
    """chroot does not hold procfs' magic links: with the image's /etc a
    symlink through /proc/1/root (the runtime has mounted the container's
    /proc by then, and its PID 1 is still on the host's root), root's
    ldconfig wrote its cache into a host directory."""
    target = f"/var/tmp/sarus-ldtarget-{uuid.uuid4().hex[:8]}"
    os.makedirs(os.path.join(target, "etc"), 0o755)
    archive = f"/var/tmp/sarus-procetc-{uuid.uuid4().hex[:8]}.tar"
    try:
        busybox_with_layer(test_images, archive, symlink_entries("etc", f"/proc/1/root{target}/etc"))
        ldconfig_hook.ok("load", archive, "procetc")
        r = ldconfig_hook("run", "load/library/procetc", "true")
        assert os.listdir(os.path.join(target, "etc")) == [], "root's ldconfig wrote on the host"
        # What the symlink names exists in the image (sarus made /etc/passwd
        # there): the cache lands inside the container.
        assert r.returncode == 0, r.stderr
    finally:
        shutil.rmtree(target)
        os.remove(archive)


@pytest.mark.parametrize("stacked", [False, True])
def test_ldconfig_of_a_hook_cannot_reach_the_host_through_a_bound_proc(ldconfig_hook, test_images, stacked):
    """The host's /proc bound into the container (its source is readable),
    with the image's ld.so.conf including a root-only host file through
    /PID/root of a process on the host's root. The hook detached proc
    mounts by path, which takes only the topmost mount there: a second
    --mount on the same destination kept procfs in the view of root's
    ldconfig, which read the file and cached the libraries of the directory
    it names, for the user to read."""
    tag = uuid.uuid4().hex[:8]
    secret_conf = f"/var/tmp/sarus-secretconf-{tag}"
    with open(secret_conf, "w") as f:
        f.write(f"/opt/leak{tag}\n")
    os.chmod(secret_conf, 0o600)
    libs = f"/var/tmp/sarus-libs-{tag}"
    os.mkdir(libs, 0o755)
    shutil.copy("/lib/x86_64-linux-gnu/libz.so.1.2.13", os.path.join(libs, "libz.so.1"))
    empty = f"/var/tmp/sarus-empty-{tag}"
    os.mkdir(empty, 0o755)
    archive = f"/var/tmp/sarus-procconf-{tag}.tar"
    conf = tarfile.TarInfo("etc/ld.so.conf")
    conf.mode = 0o644
    host_process = popen_as(ldconfig_hook.user, ["sleep", "60"])
    try:
        assert run_as(ldconfig_hook.user, ["cat", secret_conf]).returncode != 0
        busybox_with_layer(test_images, archive,
                           [(conf, f"include /mnt/p/{host_process.pid}/root{secret_conf}\n".encode())])
        ldconfig_hook.ok("load", archive, "procconf")
        mounts = ["--mount", f"type=bind,src={libs},dst=/opt/leak{tag}", "--mount", "type=bind,src=/proc,dst=/mnt/p"]
        if stacked:
            mounts += ["--mount", f"type=bind,src={empty},dst=/mnt/p"]
        r = ldconfig_hook("run", *mounts, "load/library/procconf", "sh", "-c",
                          f"grep -q {tag} /etc/ld.so.cache && echo leaked; echo ran")
        assert "leaked" not in r.stdout, "root's ldconfig read a host file through a bound /proc"
        assert r.returncode == 0 and r.stdout == "ran\n", r.stdout + r.stderr
    finally:
        host_process.kill()
        host_process.wait()
        os.remove(secret_conf)
        shutil.rmtree(libs)
        os.rmdir(empty)
        os.remove(archive)


@pytest.fixture
def root_only_device():
    """A loop device only root may open, whose content is an ld.so.conf
    naming a secret directory: (device, secret directory)."""
    secret = f"/opt/leak{uuid.uuid4().hex[:8]}"
    backing = f"/var/tmp/sarus-device-{uuid.uuid4().hex[:8]}.img"
    with open(backing, "wb") as f:
        f.write((secret + "\n").encode().ljust(4096, b"\n"))
    os.chmod(backing, 0o600)
    device = subprocess.run(["losetup", "--find", "--show", backing], stdout=subprocess.PIPE, text=True,
                            check=True).stdout.strip()
    os.chmod(device, 0o600)
    try:
        yield device, secret
    finally:
        subprocess.run(["losetup", "-d", device], check=True)
        os.remove(backing)


def test_ldconfig_of_a_hook_opens_no_device_node(ldconfig_hook, root_only_device):
    """--device puts a host node anywhere in the container, with its mode,
    and allows it in the container's cgroup, which the hooks run in: root's
    ldconfig read a device the user may not open as /etc/ld.so.conf, and
    the container's cache showed what it says."""
    device, secret = root_only_device
    assert run_as(ldconfig_hook.user, ["dd", f"if={device}", "of=/dev/null", "count=1"]).returncode != 0
    libs = f"/var/tmp/sarus-libs-{uuid.uuid4().hex[:8]}"
    os.mkdir(libs, 0o755)
    shutil.copy("/lib/x86_64-linux-gnu/libz.so.1.2.13", os.path.join(libs, "libz.so.1"))
    try:
        r = ldconfig_hook("run", f"--device={device}:/etc/ld.so.conf", "--mount",
                          f"type=bind,src={libs},dst={secret}", BUSYBOX,
                          "sh", "-c", f"grep -q {secret} /etc/ld.so.cache && echo leaked; echo ran")
        assert "leaked" not in r.stdout, "root's ldconfig read a device the user may not open"
        assert r.returncode == 0 and r.stdout == "ran\n", r.stdout + r.stderr
    finally:
        shutil.rmtree(libs)


def test_ldconfig_listing_of_a_hook_cannot_reach_the_host_through_proc(suid, test_images):
    """The mount hook's <FI_PROVIDER_PATH> lists the cache with `ldconfig
    -p` as root: with the image's /etc/ld.so.cache a symlink through
    /proc/1/root (the runtime's PID 1 is still on the host's root), root
    opened a host FIFO and hung on it."""
    fifo = f"/var/tmp/sarus-fifo-{uuid.uuid4().hex[:8]}"
    os.mkfifo(fifo, 0o644)
    archive = f"/var/tmp/sarus-proccache-{uuid.uuid4().hex[:8]}.tar"
    same_path = tarfile.TarInfo(fifo.lstrip("/"))  # passes the hook's check that the cache exists
    opened = []
    try:
        busybox_with_layer(test_images, archive, symlink_entries("etc/ld.so.cache", f"/proc/1/root{fifo}") +
                           [(same_path, b"")])
        for sarus in private_hooks_dir(suid, "ldconfiglist"):
            hook_json(sarus, "mount.json", {"path": os.path.join(sarus.prefix, "bin", "mount_hook"),
                                            "args": ["mount_hook", "--mount=type=bind,src=/usr/share/zoneinfo,"
                                                     "dst=<FI_PROVIDER_PATH>/zoneinfo"],
                                            "env": ["LDCONFIG_PATH=/sbin/ldconfig"]})
            sarus.ok("load", archive, "proccache")
            p = popen_as(sarus.user, [sarus.binary, "run", "load/library/proccache", "true"],
                         env={"SARUS_CONFIG_FILE": sarus.config_file})
            while p.poll() is None:
                try:  # succeeds only while a reader has the FIFO open
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                    opened.append(True)
                except OSError:
                    time.sleep(0.01)
            out, err = p.communicate()
            assert not opened, "root's ldconfig opened a host FIFO through the container's /proc"
            # the hook got as far as the listing, which failed there (no /proc)
            assert p.returncode != 0 and "[Mount hook] [ERROR] /sbin/ldconfig failed" in err, err
    finally:
        os.remove(fifo)
        os.remove(archive)


def hook_json(sarus, name, hook):
    with open(os.path.join(sarus.hooks_dir, name), "w") as f:
        json.dump({"version": "1.0.0", "hook": hook, "when": {"always": True}, "stages": ["createRuntime"]}, f)


def test_a_hooks_ldconfig_of_the_users_is_refused(suid, marker):
    """LDCONFIG_PATH of a hook names a program root runs: one a user may
    change is refused like a hook's own program."""
    evil = evil_program(suid, marker)
    for sarus in private_hooks_dir(suid, "userldconfig"):
        hook_json(sarus, "mount.json", {"path": os.path.join(sarus.prefix, "bin", "mount_hook"),
                                        "args": ["mount_hook"], "env": [f"LDCONFIG_PATH={evil}"]})
        r = sarus("run", BUSYBOX, "true")
        assert not os.path.exists(marker), "root ran the user's ldconfig"
        assert r.returncode == 1, r.stderr
        assert f'Path "{evil}" must be owned by root' in r.stderr and "LDCONFIG_PATH" in r.stderr, r.stderr


def test_a_hooks_mount_source_is_resolved_as_the_containers_user(suid, hidden_public):
    """The hooks' own mounts (the mount hook's --mount, MPI_LIBS, GLIBC_LIBS)
    are not put through the security checks: a site's MPI may belong to a
    service account. Whoever may change a directory on a source's way can
    point it anywhere, so root resolves it as the container's user: a
    directory below one that user cannot enter is not bound."""
    public, secret = hidden_public
    user_dir(suid, "mpi")
    source = user_symlink(suid, public, "mpi/lib")
    for sarus in private_hooks_dir(suid, "hooksource"):
        hook_json(sarus, "mount.json", {"path": os.path.join(sarus.prefix, "bin", "mount_hook"),
                                        "args": ["mount_hook", f"--mount=type=bind,src={source},dst=/site"]})
        r = sarus("run", BUSYBOX, "cat", "/site/secret")
        assert secret not in r.stdout, "the user chose what root bound into the container"
        assert r.returncode != 0, r.stderr
        assert "as the container's user" in r.stderr and "Permission denied" in r.stderr, r.stderr
        # what the user may reach is bound as before
        run_as(suid.user, ["ln", "-sfn", "/etc", source], check=True)
        r = sarus("run", BUSYBOX, "cat", "/site/hostname")
        assert r.returncode == 0 and r.stdout == open("/etc/hostname").read(), r.stderr


# A createRuntime hook standing in for what the caller can do through
# /proc/PID/root of a process of theirs that runs in the container's mount
# namespace before the container starts (the SSH hook's daemon, a hook's
# readelf): as root it makes a directory only root may enter, then, as the
# caller, it replaces the working directory with a symlink to it.
SWAP_WORKDIR_HOOK = r"""
import json, os, sys
uid, gid = int(sys.argv[1]), int(sys.argv[2])
bundle = json.load(sys.stdin)["bundle"]
with open(os.path.join(bundle, "config.json")) as f:
    root = json.load(f)["root"]["path"]
work = os.open(os.path.join(bundle, root, "work"), os.O_RDONLY | os.O_DIRECTORY)
os.mkdir("secret", 0o700, dir_fd=work)
os.setgid(gid)
os.setuid(uid)
os.rename("d", "d.old", src_dir_fd=work, dst_dir_fd=work)
os.symlink("/work/secret", "d", dir_fd=work)
"""


def test_the_runtime_never_enters_the_working_directory_by_name(suid):
    """The working directory is the caller's to change until the container
    starts, also on the container's own root: root (the runtime) must not
    enter it by name, or the container starts in a directory its user
    cannot enter."""
    pw = pwd.getpwnam(suid.user)
    for sarus in private_hooks_dir(suid, "swapworkdir"):
        hook = os.path.join(sarus.hooks_dir, "swap.py")
        with open(hook, "w") as f:
            f.write(SWAP_WORKDIR_HOOK)
        os.chmod(hook, 0o644)
        hook_json(sarus, "swap.json", {"path": "/usr/bin/python3",
                                       "args": ["python3", hook, str(pw.pw_uid), str(pw.pw_gid)]})
        r = sarus("run", "-w", "/work/d", BUSYBOX, "pwd", "-P")
        assert "/work/secret" not in r.stdout, "root entered the directory the caller chose"
        assert r.returncode == 127, r.stderr
        assert "sarus: cannot enter the working directory /work/d: Permission denied" in r.stderr, r.stderr


def test_user_mount_rules_hold_where_an_image_leads_etc(suid, test_images):
    """userMounts refuses /etc; an image whose /etc is a symlink to /mnt/u
    would let a --mount on /mnt/u replace the container's /etc (the passwd
    and group files sarus writes, which the SSH hook reads as root)."""
    mnt = tarfile.TarInfo("mnt")
    mnt.type, mnt.mode = tarfile.DIRTYPE, 0o755
    archive = f"/var/tmp/sarus-etclink-{uuid.uuid4().hex[:8]}.tar"
    mine = user_dir(suid, "myetc")
    user_file(suid, "myetc/passwd", "root::0:0:mine:/root:/bin/sh\n", 0o644)
    try:
        busybox_with_layer(test_images, archive, [mnt, *symlink_entries("etc", "/mnt/u")])
        suid.ok("load", archive, "etclink")
        for destination, covered in (("/mnt/u", "/mnt/u"), ("/mnt", "/mnt")):
            r = suid("run", "--mount", f"type=bind,src={mine},dst={destination}", "load/library/etclink",
                     "cat", "/etc/passwd")
            assert "mine" not in r.stdout, "the user replaced the container's /etc"
            assert r.returncode != 0, r.stderr
            assert (f"'/etc' leads to /mnt/u in this image, and destination {covered} would mount over it there"
                    in r.stderr), r.stderr
        r = suid("run", "load/library/etclink", "cat", "/etc/passwd")
        assert r.returncode == 0 and "mine" not in r.stdout, r.stderr
    finally:
        os.remove(archive)


def test_a_timestamp_log_file_in_a_users_directory_is_refused(suid):
    """The timestamp hook appends to its log file as root: in a directory of
    a user's, a symlink there would have root create or append to any file."""
    log_dir = user_dir(suid, "logs")
    for sarus in private_hooks_dir(suid, "userlog"):
        hook_json(sarus, "timestamp.json", {"path": os.path.join(sarus.prefix, "bin", "timestamp_hook"),
                                            "args": ["timestamp_hook"],
                                            "env": [f"TIMESTAMP_HOOK_LOGFILE={log_dir}/hook.log"]})
        r = sarus("run", BUSYBOX, "true")
        assert r.returncode == 1, r.stderr
        # the first of the user's directories on the way: the workdir, in /var/tmp
        assert f'Path "{suid.workdir}" must be owned by root' in r.stderr, r.stderr
        assert "TIMESTAMP_HOOK_LOGFILE" in r.stderr and os.path.dirname(log_dir) == suid.workdir
        assert os.listdir(log_dir) == []


def test_a_legacy_oci_hook_of_the_users_is_refused(suid, marker):
    """Sarus's OCIHooks in sarus.json name programs root runs, as hooksDir's
    files do."""
    evil = evil_program(suid, marker)
    suid.config["OCIHooks"] = {"prestart": [{"path": evil, "args": ["evil"]}]}
    suid.write_config()
    r = suid("run", BUSYBOX, "true")
    assert not os.path.exists(marker), "root ran the user's hook"
    assert r.returncode == 1, r.stderr
    assert f'Path "{evil}" must be owned by root' in r.stderr and "OCIHooks.prestart" in r.stderr, r.stderr


def test_a_runtime_behind_a_symlink_of_the_users_is_refused(suid):
    """runcPath a root-owned symlink to a symlink in a directory of the
    user's, to the root-owned runtime: the user can point the middle link at
    any program between the check and the start. The path as written and
    its canonical form are both root's; the middle of the chain is not."""
    runtime = os.path.realpath(suid.config["runcPath"])
    middle = user_symlink(suid, runtime, "runtime-link")
    entry = os.path.join(suid.prefix, "etc", f"chain-{uuid.uuid4().hex[:8]}")  # root's, like its ancestors
    os.mkdir(entry, 0o755)
    try:
        os.symlink(middle, os.path.join(entry, "runc"))
        suid.config["runcPath"] = os.path.join(entry, "runc")
        suid.write_config()
        r = suid("run", BUSYBOX, "true")
        assert r.returncode == 1, "a runtime the user can redirect was accepted"
        assert f'Path "{middle}" must be owned by root' in r.stderr and "runcPath" in r.stderr, r.stderr
    finally:
        shutil.rmtree(entry)


# --- 5. cgroups ---------------------------------------------------------------------

def cgroup_hierarchies():
    """(mount point, is v2) of every cgroup hierarchy."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            dash = fields.index("-")
            fstype = fields[dash + 1]
            if fstype in ("cgroup", "cgroup2"):
                found.append((fields[4], fstype == "cgroup2"))
    return found


class JobCgroup:
    """A cgroup made by the test in every hierarchy, as a Slurm job's would be."""

    def __init__(self, memory_limit=None):
        self.name = f"sarus-test-job-{uuid.uuid4().hex[:8]}"
        self.dirs = []
        for mountpoint, _ in cgroup_hierarchies():
            path = os.path.join(mountpoint, self.name)
            os.mkdir(path)
            self.dirs.append(path)
            if os.path.basename(mountpoint) == "cpuset":
                for f in ("cpuset.cpus", "cpuset.mems"):
                    with open(os.path.join(mountpoint, f)) as src, open(os.path.join(path, f), "w") as dst:
                        dst.write(src.read())
            if memory_limit and os.path.basename(mountpoint) == "memory":
                with open(os.path.join(path, "memory.limit_in_bytes"), "w") as f:
                    f.write(str(memory_limit))

    def enter(self):
        """For preexec_fn: moves the new process into the cgroups."""
        for path in self.dirs:
            with open(os.path.join(path, "cgroup.procs"), "w") as f:
                f.write("0")

    def remove(self):
        for path in self.dirs:
            for _ in range(100):
                try:
                    os.rmdir(path)
                    break
                except OSError:
                    time.sleep(0.05)


@pytest.fixture
def job_cgroup():
    cgroups = []

    def make(**kw):
        cgroups.append(JobCgroup(**kw))
        return cgroups[-1]
    yield make
    for c in cgroups:
        c.remove()


def test_container_cgroups_are_below_the_callers(suid, job_cgroup):
    job = job_cgroup()
    r = suid("run", BUSYBOX, "cat", "/proc/self/cgroup", preexec_fn=job.enter)
    assert r.returncode == 0, r.stderr
    own = 0
    for line in r.stdout.splitlines():
        _, controllers, path = line.split(":", 2)
        # a cgroup of its own where sarus acts (devices, v2), else the caller's
        assert path == f"/{job.name}" or path.startswith(f"/{job.name}/"), line
        if controllers in ("devices", "") and path.startswith(f"/{job.name}/sarus-"):
            own += 1
    assert own == 2, r.stdout


def test_runc_as_the_runtime_keeps_the_same_guarantees(suid, job_cgroup):
    """runc, Sarus's own runtime (runcPath), not only the installation's
    crun: the container is below the caller's cgroups, its exit code is the
    program's, and kill -9 of sarus leaves nothing. (On this hybrid host
    runc puts the container at /sarus of the unified hierarchy, whatever its
    own cgroup there: a known limit of runc, in SECURITY.md; the v1
    hierarchies hold the controllers.)"""
    suid.config["runcPath"] = "/usr/bin/runc"
    suid.write_config()
    job = job_cgroup()
    r = suid("run", BUSYBOX, "sh", "-c", "cat /proc/self/cgroup; exit 3", preexec_fn=job.enter)
    assert r.returncode == 3, r.stderr
    for line in r.stdout.splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers:
            assert path == f"/{job.name}" or path.startswith(f"/{job.name}/"), line
    p = popen_as(suid.user, [suid.binary, "run", BUSYBOX, "sh", "-c", "echo ready; exec sleep 1000"],
                 preexec_fn=job.enter)
    assert p.stdout.readline() == "ready\n", p.stderr.read()
    p.kill()
    p.wait()
    assert wait_for_no_leftovers(suid.user) == []


def test_the_callers_memory_limit_holds_in_the_container(sarus, test_images, job_cgroup):
    sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    command = ["run", BUSYBOX, "dd", "if=/dev/zero", "of=/dev/null", "bs=300M", "count=1"]
    unlimited = sarus(*command, preexec_fn=job_cgroup().enter)
    assert unlimited.returncode == 0 and "records out" in unlimited.stderr, unlimited.stderr
    job = job_cgroup(memory_limit=100 * 1024 * 1024)
    r = sarus(*command, preexec_fn=job.enter)
    # the kernel's OOM killer ended dd in the container: 128 + SIGKILL
    assert r.returncode == 137 and "records out" not in r.stderr, (r.returncode, r.stderr)


def test_kill_9_leaves_no_cgroup(suid, job_cgroup):
    job = job_cgroup()
    p = popen_as(suid.user, [suid.binary, "run", BUSYBOX, "sh", "-c", "echo ready; exec sleep 1000"],
                 preexec_fn=job.enter)
    assert p.stdout.readline() == "ready\n"
    assert cgroup_leftovers() != []       # the container's cgroups exist while it runs
    p.kill()
    p.wait()
    assert wait_for_no_leftovers(suid.user) == []


def test_sigkill_of_the_whole_process_tree_leaves_no_cgroup(suid, job_cgroup):
    """A batch system that SIGKILLs every process of a step at once kills the
    supervisor with its container; the cgroups must go all the same."""
    job = job_cgroup()
    p = popen_as(suid.user, [suid.binary, "run", BUSYBOX, "sh", "-c", "echo ready; exec sleep 1000"],
                 preexec_fn=job.enter)
    assert p.stdout.readline() == "ready\n"
    assert cgroup_leftovers() != []
    tree = process_tree(p.pid)
    assert len(tree) >= 3, tree  # sarus, the supervisor, the sandbox, the container...
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    p.wait()
    assert wait_for_no_leftovers(suid.user) == []


# --- 6. --pid=host and kill -9 --------------------------------------------------------

def test_kill_9_with_pid_host_leaves_no_process_or_loop_device(suid):
    tag = str(random.randint(100000, 999999))
    p = popen_as(suid.user, [suid.binary, "run", "--pid=host", BUSYBOX, "sh", "-c",
                             f"echo ready; exec sleep {tag}"])
    assert p.stdout.readline() == "ready\n"
    p.kill()
    p.wait()
    assert wait_for_no_leftovers(suid.user) == []
    assert not [c for _, c, _ in _processes() if f"sleep {tag}" in c]


def _processes():
    from conftest import processes
    return list(processes())


# --- 7. the terminal hangs up ----------------------------------------------------------

def test_hung_up_terminal_ends_the_container(sarus, test_images):
    sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    tag = str(random.randint(100000, 999999))
    p, master = run_in_a_terminal(sarus, "run", "-t", BUSYBOX, "sh", "-c", f"echo ready; exec sleep {tag}")
    assert b"ready" in read_until(master, b"ready")
    os.close(master)          # the terminal hangs up
    try:
        p.wait(timeout=3)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("sarus still runs 3 s after its terminal hung up")
    deadline = time.time() + 3
    while [c for _, c, _ in _processes() if f"sleep {tag}" in c] and time.time() < deadline:
        time.sleep(0.1)
    assert not [c for _, c, _ in _processes() if f"sleep {tag}" in c]
    assert wait_for_no_leftovers(sarus.user) == []


def test_a_terminal_gets_no_stray_bytes(sarus, test_images):
    sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    p, master = run_in_a_terminal(sarus, "run", "-t", BUSYBOX, "echo", "hello")
    output = read_until(master, b"hello\r\n")
    p.wait(timeout=10)
    output += read_until(master, b"(?!)", timeout=2)  # what came after, until the terminal closed
    os.close(master)
    assert output == b"hello\r\n"


# --- standard streams ------------------------------------------------------------------

def suid_shell(sarus, script):
    """script run by the test user's shell, with "$@" the suid sarus and
    the config file's variable set: the redirections are the user's own."""
    return run_as(sarus.user, ["sh", "-c", script, "sh", sarus.binary],
                  env={"SARUS_CONFIG_FILE": sarus.config_file})


@pytest.fixture
def roots_files():
    """A root-owned directory with a root-owned file (0644) that any user
    can open for reading."""
    path = f"/var/tmp/sarus-roots-{uuid.uuid4().hex[:8]}"
    os.makedirs(os.path.join(path, "dir"))
    os.chmod(path, 0o755)
    os.chmod(os.path.join(path, "dir"), 0o755)
    with open(os.path.join(path, "file"), "w") as f:
        f.write("root's own\n")
    os.chmod(os.path.join(path, "file"), 0o644)
    yield path
    shutil.rmtree(path)


@pytest.mark.parametrize("runtime", ["installed", "/usr/bin/runc"])
@pytest.mark.parametrize("redirection", ["< {root}/file", "3< {root}/file >&3", "3< {root}/file 2>&3",
                                         "< {root}/dir"], ids=["stdin", "stdout", "stderr", "directory"])
def test_the_runtime_gives_the_caller_none_of_roots_files_on_its_streams(suid, roots_files, redirection, runtime):
    """crun and runc chown the standard streams to the container's user; as
    root, with the caller's own streams, that gave the caller any file or
    directory it could open for reading (< /etc/passwd)."""
    if runtime != "installed":
        suid.config["runcPath"] = runtime
        suid.write_config()
    r = suid_shell(suid, f'"$1" run {BUSYBOX} true ' + redirection.format(root=roots_files))
    owners = {name: (os.stat(os.path.join(roots_files, name)).st_uid, os.stat(os.path.join(roots_files, name)).st_gid)
              for name in ("file", "dir")}
    assert owners == {"file": (0, 0), "dir": (0, 0)}, owners
    assert r.returncode == 0, r.stderr


def test_streams_the_runtime_cannot_have_still_reach_the_container(suid, roots_files):
    r = suid_shell(suid, f'"$1" run {BUSYBOX} sh -c "cat; echo to-stderr >&2; exit 7" '
                   f'< {roots_files}/file 2>&1 | tr a-z A-Z')
    assert r.stdout == "ROOT'S OWN\nTO-STDERR\n", (r.stdout, r.stderr)
    # input that never ends holds up nothing once the container is done
    r = suid_shell(suid, f'"$1" run {BUSYBOX} sh -c "head -c 5 | wc -c; exit 7" < /dev/zero')
    assert r.returncode == 7 and r.stdout.strip() == "5", (r.returncode, r.stdout, r.stderr)


def test_dev_null_on_the_streams_stays_roots(suid):
    r = suid_shell(suid, f'"$1" run {BUSYBOX} sh -c "echo out; echo err >&2; cat" < /dev/null > /dev/null 2>&1')
    st = os.stat("/dev/null")
    assert (st.st_uid, st.st_gid, oct(st.st_mode & 0o777)) == (0, 0, "0o666")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_the_callers_own_output_file_keeps_its_group(suid, roots_files):
    """A file of the caller's in another group (a project directory's) stays
    in that group: the runtime would chown it to the caller's primary group."""
    out = os.path.join(roots_files, "out")
    with open(out, "w"):
        pass
    os.chown(out, pwd.getpwnam(suid.user).pw_uid, 0)
    os.chmod(out, 0o644)
    r = suid_shell(suid, f'"$1" run {BUSYBOX} echo appended >> {out}')
    assert r.returncode == 0, r.stderr
    with open(out) as f:
        assert (os.stat(out).st_gid, f.read()) == (0, "appended\n")


@pytest.mark.parametrize("group", ["own", "project"])
def test_input_the_container_leaves_unread_stays_for_the_next_command(suid, roots_files, group):
    """A list read line by line around sarus, as batch scripts do: with a
    file crun gets itself (the caller's group) the container reads only
    what it reads; a relayed one (a project group's) lost everything the
    relay had read ahead."""
    path = os.path.join(roots_files, "list")
    with open(path, "w") as f:
        f.write("a\nb\nc\n")
    pw = pwd.getpwnam(suid.user)
    os.chown(path, pw.pw_uid, pw.pw_gid if group == "own" else 0)
    r = suid_shell(suid, f"{{ \"$1\" run {BUSYBOX} sh -c 'read x; echo got $x'; cat; }} < {path}; "
                         f"while read l; do echo \"line $l\"; \"$1\" run {BUSYBOX} true; done < {path}")
    assert (r.returncode, r.stdout) == (0, "got a\nb\nc\nline a\nline b\nline c\n"), r.stderr


def test_the_stream_relay_is_not_traceable_by_the_caller(suid, roots_files):
    """The relay was root's, with root's descriptors, before it took the
    caller's ids: the caller must not trace it, whatever fs.suid_dumpable
    says (with 1 the kernel leaves such a process dumpable)."""
    out = os.path.join(roots_files, "out")
    with open(out, "w"):
        pass
    uid = pwd.getpwnam(suid.user).pw_uid
    os.chown(out, uid, 0)  # the caller's file in another group: relayed
    with open("/proc/sys/fs/suid_dumpable") as f:
        dumpable = f.read().strip()
    with open("/proc/sys/fs/suid_dumpable", "w") as f:
        f.write("1")
    try:
        p = popen_as(suid.user, ["sh", "-c", f'exec "$0" run {BUSYBOX} sleep 3 >> {out}', suid.binary],
                     env={"SARUS_CONFIG_FILE": suid.config_file})
        time.sleep(1.5)  # the container runs; short-lived helpers (read-ahead) are gone
        callers = f"{uid}\t{uid}\t{uid}\t{uid}"
        relays = [pid for pid in process_tree(p.pid)[1:]
                  if process_status(pid).startswith("sarus ") and process_status(pid).endswith(callers)]
        owners = {pid: os.stat(f"/proc/{pid}/fd").st_uid for pid in relays}  # root's when not dumpable
        p.wait()
    finally:
        with open("/proc/sys/fs/suid_dumpable", "w") as f:
            f.write(dumpable)
    assert relays, "no relay process seen"
    assert set(owners.values()) == {0}, f"the caller owns the relay's /proc entries: {owners}"


# --- hygiene ------------------------------------------------------------------------------

CALLER_ENVIRONMENT = {"LD_PRELOAD": "/var/tmp/evil.so", "LD_LIBRARY_PATH": "/var/tmp/evil",
                      "GCONV_PATH": "/var/tmp/gconv", "LOCPATH": "/var/tmp/locale", "LC_ALL": "xx_XX.EVIL",
                      "TMPDIR": "/var/tmp/evil-tmp", "NLSPATH": "/var/tmp/nls", "HOSTALIASES": "/var/tmp/h",
                      "SARUS_CALLER_SECRET": "from-the-caller"}


def test_nothing_of_the_callers_environment_reaches_root(dumping):
    report = dumping.report_of(dumping("run", BUSYBOX, "true", env=CALLER_ENVIRONMENT))
    for key in ("hook_env", "runtime_env"):
        names = {entry.split("=", 1)[0] for entry in report[key]}
        assert not names & set(CALLER_ENVIRONMENT), (key, report[key])
    assert report["uid"] == 0


def test_no_descriptor_of_the_caller_reaches_root(dumping):
    secret = user_file(dumping, "secret.txt", "secret\n")
    fd = os.open(secret, os.O_RDONLY)
    try:
        r = dumping("run", BUSYBOX, "true", pass_fds=(fd,))
    finally:
        os.close(fd)
    report = dumping.report_of(r)
    assert secret not in report["hook_fds"] + report["runtime_fds"]


def test_the_caller_cannot_trace_or_read_a_running_suid_sarus(suid):
    p = popen_as(suid.user, [suid.binary, "run", BUSYBOX, "sh", "-c", "echo ready; sleep 1000"])
    try:
        assert p.stdout.readline() == "ready\n"
        r = run_as(suid.user, ["cat", f"/proc/{p.pid}/environ"])
        # p.pid is setpriv's exec of sarus: the same process
        assert r.returncode != 0
        assert os.stat(f"/proc/{p.pid}").st_uid == 0
        r = run_as(suid.user, ["strace", "-p", str(p.pid), "-e", "trace=none"], timeout=10)
        assert r.returncode != 0 and "Operation not permitted" in r.stderr, r.stderr
    finally:
        p.kill()
        p.wait()


def test_signals_at_any_moment_of_the_start_leave_nothing(suid):
    rng = random.Random(42)
    for i in range(25):
        p = popen_as(suid.user, [suid.binary, "run", BUSYBOX, "true"])
        time.sleep(rng.uniform(0, 0.06))
        p.send_signal(rng.choice([signal.SIGKILL, signal.SIGTERM, signal.SIGINT]))
        p.wait()
    assert wait_for_no_leftovers(suid.user) == []


def process_status(pid):
    """Name, ids and parent of a process, for a message."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return " ".join(line.split(":")[1].strip() for line in f
                            if line.startswith(("Name:", "Uid:", "PPid:", "State:")))
    except OSError:
        return "gone"


def process_state(pid):
    """R, S, T (stopped)...; "" for a process that is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


@pytest.mark.parametrize("signals", [(signal.SIGUSR1, signal.SIGUSR2), (signal.SIGALRM, signal.SIGXCPU)],
                         ids=["usr", "alrm-xcpu"])
def test_a_barrage_of_forwarded_signals_during_the_start_leaves_nothing(suid, signals):
    """sarus relays every forwarded signal to the root supervisor from the
    moment it exists; the default action of most ends a process, and ended
    the supervisor between making the container's cgroups and starting the
    reaper that removes them (a window of about a millisecond: many runs)."""
    for i in range(40):
        p = popen_as(suid.user, [suid.binary, "run", BUSYBOX, "true"])
        deadline = time.monotonic() + 10
        # From the moment the supervisor exists (sarus's own start is not
        # at stake here).
        while p.poll() is None and len(process_tree(p.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.0005)
        while p.poll() is None and time.monotonic() < deadline:
            try:
                p.send_signal(signals[i % 2])
            except ProcessLookupError:
                break
            time.sleep(0.001)
        p.wait()
        assert wait_for_no_leftovers(suid.user) == [], f"run {i}"


def test_stop_signals_during_the_start_stop_no_root_process(suid):
    """SIGTSTP, SIGTTIN and SIGTTOU stop a process by default, and sarus
    relays them too: they stopped the root supervisor, which then stayed,
    with its cgroups, after the caller killed its sarus, for as long as the
    caller's process group lived (this test's)."""
    for i in range(12):
        p = popen_as(suid.user, [suid.binary, "run", BUSYBOX, "sleep", "1"])
        deadline = time.monotonic() + 10
        while p.poll() is None and len(process_tree(p.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.0005)
        barrage = time.monotonic() + 0.05
        while p.poll() is None and time.monotonic() < barrage:
            try:
                p.send_signal((signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)[i % 3])
            except ProcessLookupError:
                break
            time.sleep(0.001)
        # A root helper stopped on its way to exec the runtime is fine: it
        # goes with the container. What must not be is one that outlives it.
        stopped = [(pid, process_status(pid)) for pid in process_tree(p.pid)[1:] if process_state(pid) == "T"]
        p.kill()  # the caller's own sarus, stopped or not
        p.wait()
        left = wait_for_no_leftovers(suid.user)
        for pid, _ in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)  # lets a stopped supervisor clean up for the next run
        assert left == [], f"run {i}: stopped before sarus was killed: {stopped}"


def test_a_planted_shared_container_index_cannot_remove_root_files(suid, tmp_path):
    """The caller writes the directory where the ranks of a job step meet
    (src/core/jobs/rank_group.cpp). A leader.json naming a root-owned directory
    as its generation must neither make sarus remove it (a dead leader's
    directory is removed) nor stop the rank."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("root's\n")
    os.chmod(tmp_path, 0o755)
    group = f"planted-{uuid.uuid4().hex[:8]}"
    key = explicit_rank_group_name(group)
    uid = pwd.getpwnam(suid.user).pw_uid
    group_dir = os.path.join(suid.config.get("tempDir", "/tmp"), f"sarus-ranks-{uid}", key)
    run_as(suid.user, ["mkdir", "-p", "-m", "700", os.path.dirname(group_dir), group_dir], check=True)
    index = json.dumps({"generation": os.path.relpath(victim, group_dir), "identity": "x"})
    run_as(suid.user, ["sh", "-c", 'cat > "$0"', os.path.join(group_dir, "leader.json")], input=index,
           check=True)
    try:
        r = suid("run", BUSYBOX, "echo", "ran", env={"SARUS_RANK_GROUP": group})
        assert (r.returncode, r.stdout) == (0, "ran\n"), r.stderr
        assert (victim / "precious").read_text() == "root's\n"
        assert not os.path.exists(group_dir), "the job step's directory was left behind"
    finally:
        shutil.rmtree(group_dir, ignore_errors=True)  # later tests must not meet it


KEEPER_CLIENT = r"""
import os, socket, sys
path, image = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(path)
except PermissionError:
    print("refused")
    sys.exit(0)
try:
    socket.send_fds(s, [b"MOUNT image\n"], [os.open(image, os.O_RDONLY)])
    message, fds, flags, address = socket.recv_fds(s, 4096, 4)
except ConnectionError:
    message, fds = b"", []
print("answer", message, len(fds))
"""


def test_users_cannot_get_a_mount_from_an_image_keeper(suid, test_images):
    """The root keeper of kept image mounts (src/suid/loop_keeper.hpp) mounts
    what it is sent: its socket lies in a root-only directory, and it answers
    root alone. Either rule alone keeps a user from getting a mount of a
    squashfs of theirs (a descriptor they could attach elsewhere)."""
    suid.config["imageMountIdleTime"] = 30
    suid.write_config()
    suid.ok("run", BUSYBOX, "true")
    directory = suid_keeper_directory(suid)
    socket_path = os.path.join(directory, "keeper.sock")
    image = os.path.join(suid.repository, "images", "load", "library", "busybox", "latest.squashfs")
    try:
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700 and os.stat(directory).st_uid == 0
        r = run_as(suid.user, ["/usr/bin/python3", "-c", KEEPER_CLIENT, socket_path, image], check=True)
        assert r.stdout == "refused\n"
        # Were the directories and the socket open to all, the keeper still answers nothing.
        os.chmod("/run/sarus", 0o711)
        os.chmod(directory, 0o711)
        os.chmod(socket_path, 0o777)
        r = run_as(suid.user, ["/usr/bin/python3", "-c", KEEPER_CLIENT, socket_path, image], check=True)
        assert r.stdout == "answer b'' 0\n", r.stderr
    finally:
        os.chmod("/run/sarus", 0o700)
        if os.path.isdir(directory):
            os.chmod(directory, 0o700)
        subprocess.run(["pkill", "-TERM", "-f", f"sarus image keeper {directory}"])
    assert wait_for_no_leftovers(suid.user, timeout=10) == []
