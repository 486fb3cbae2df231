"""Kept image mounts (src/core/runtime/mount_keeper.hpp), both modes: one
mount per user and image (userns: a squashfuse_ll in the user's image
keeper's namespaces; suid: a loop device and a detached squashfs mount held
by a root keeper), shared by every container of that image, released after
imageMountIdleTime, after `rmi`, and after any process involved is killed."""

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import (leftovers, loaded_image_file, popen_as, processes, run_as, run_concurrently,
                      suid_keeper_directory, wait_for_no_leftovers)

BUSYBOX = "load/library/busybox"
LAYERED = "load/library/layered"


def uid_of(user):
    return pwd.getpwnam(user).pw_uid


def keeper_directory(sarus):
    uid = uid_of(sarus.user)
    if sarus.mode == "suid":
        return suid_keeper_directory(sarus)
    return os.path.join(sarus.config["tempDir"], f"sarus-keeper-{uid}@{socket.gethostname()}")


def user_processes(user, text):
    uid = uid_of(user)
    return [pid for pid, cmdline, owner in processes() if text in cmdline and owner == uid]


def keepers(sarus):
    """In suid mode a keeper is root's, named after its directory."""
    if sarus.mode == "suid":
        return [pid for pid, cmdline, owner in processes()
                if f"sarus image keeper {keeper_directory(sarus)}" in cmdline and owner == 0]
    return user_processes(sarus.user, "sarus image keeper")


def image_mounts(sarus):
    """userns: the user's squashfuse daemons; suid: the loop devices of the user's images."""
    if sarus.mode == "suid":
        r = subprocess.run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
                           stdout=subprocess.PIPE, text=True, check=True)
        return [line for line in r.stdout.splitlines() if sarus.repo_base in line]
    return user_processes(sarus.user, "squashfuse")


def end_keepers(sarus):
    for pid in keepers(sarus):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def wait_until(condition, timeout=10):
    deadline = time.time() + timeout
    while not condition() and time.time() < deadline:
        time.sleep(0.05)
    return condition()


def kept_mounts_of(s, test_images):
    """Generator: s with image mounts kept for 30 s; no keeper of the user
    runs before, and nothing of one is left after."""
    end_keepers(s)
    assert wait_for_no_leftovers(s.user) == []
    s.config["imageMountIdleTime"] = 30
    s.write_config()
    s.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    s.ok("load", os.path.join(test_images, "layered.docker.tar"), "layered")
    yield s
    end_keepers(s)
    assert wait_for_no_leftovers(s.user, timeout=10) == []
    assert not os.path.exists(keeper_directory(s)), "an ended keeper removes its directory"


@pytest.fixture
def kept(sarus, test_images):
    yield from kept_mounts_of(sarus, test_images)


@pytest.fixture
def userns_kept(userns_sarus, test_images):
    yield from kept_mounts_of(userns_sarus, test_images)


@pytest.fixture
def suid_kept(suid_sarus, test_images):
    yield from kept_mounts_of(suid_sarus, test_images)


def set_idle_time(sarus, seconds):
    sarus.config["imageMountIdleTime"] = seconds
    sarus.write_config()


def start_sleeping_container(sarus, image=BUSYBOX):
    p = popen_as(sarus.user, [sarus.binary, "run", image, "sh", "-c",
                                         "trap 'exit 0' TERM; echo ready; sleep 60 & wait"],
                 env={"SARUS_CONFIG_FILE": sarus.config_file})
    assert p.stdout.readline() == "ready\n", p.stderr.read()
    return p


def test_containers_of_one_image_share_one_mount(kept):
    running = start_sleeping_container(kept)
    try:
        assert kept.ok("run", BUSYBOX, "echo", "second").stdout == "second\n"
        assert len(keepers(kept)) == 1
        assert len(image_mounts(kept)) == 1
        assert "sarus layered test image" in kept.ok("run", "--entrypoint", "", LAYERED, "cat", "/etc/os-release").stdout
        assert len(image_mounts(kept)) == 2, "each image has its own mount"
        assert len(keepers(kept)) == 1
    finally:
        running.send_signal(signal.SIGTERM)
        running.wait(timeout=30)


def test_each_container_still_writes_its_own_layer(kept):
    kept.ok("run", BUSYBOX, "sh", "-c", "echo first > /etc/written && touch /tmp/x")
    r = kept.ok("run", BUSYBOX, "sh", "-c", "if test -e /etc/written; then echo present; else echo absent; fi")
    assert r.stdout == "absent\n", "a container's writes must not reach the next container"


def test_concurrent_starts_share_one_keeper(kept):
    results = run_concurrently(kept, 8, "run", BUSYBOX, "echo", "{i}")
    assert [r.returncode for r in results] == [0] * 8, [r.stderr for r in results]
    assert sorted(r.stdout for r in results) == sorted(f"{i}\n" for i in range(8))
    assert len(keepers(kept)) == 1
    assert len(image_mounts(kept)) == 1


def test_the_mount_is_released_after_the_idle_time(kept):
    set_idle_time(kept, 2)
    kept.ok("run", BUSYBOX, "true")
    assert len(image_mounts(kept)) == 1, "the mount outlives its container"
    assert len(keepers(kept)) == 1
    started = time.time()
    assert wait_for_no_leftovers(kept.user, timeout=10) == []
    assert time.time() - started >= 1, "released before its idle time"
    assert wait_until(lambda: not os.path.exists(keeper_directory(kept)))


def test_a_zero_idle_time_keeps_nothing(kept):
    set_idle_time(kept, 0)
    running = start_sleeping_container(kept)
    try:
        assert keepers(kept) == []
        assert len(image_mounts(kept)) == 1
    finally:
        running.send_signal(signal.SIGTERM)
        running.wait(timeout=30)
    assert wait_for_no_leftovers(kept.user) == []


def test_idle_mounts_beyond_the_limit_go_at_once(kept, test_images):
    """Each kept mount holds a loop device (suid) or a squashfuse_ll (userns):
    a user running many images in a row keeps at most 8 idle, the ones used
    last, instead of one per image for the idle time."""
    set_idle_time(kept, 600)
    names = [f"many{i}" for i in range(10)]
    for name in names:
        kept.ok("load", os.path.join(test_images, "busybox.oci.tar"), name)
    for name in names:
        kept.ok("run", f"load/library/{name}", "true")
    assert wait_until(lambda: len(image_mounts(kept)) == 8), image_mounts(kept)
    time.sleep(0.6)  # the keeper's next round: nothing more goes
    assert len(image_mounts(kept)) == 8
    last = kept.ok("--debug", "run", f"load/library/{names[-1]}", "true").stderr
    assert re.search(r"image (\S+ )?kept (by|at) ", last), last
    first = kept.ok("--debug", "run", f"load/library/{names[0]}", "true").stderr
    assert re.search(r"image (\S+ )?mounted (by|at) ", first), first


def test_rmi_releases_the_mount(kept):
    set_idle_time(kept, 600)
    kept.ok("run", BUSYBOX, "true")
    assert len(image_mounts(kept)) == 1
    kept.ok("rmi", BUSYBOX)
    assert wait_for_no_leftovers(kept.user, timeout=5) == []
    assert wait_until(lambda: not os.path.exists(keeper_directory(kept)))


def test_a_replaced_image_is_what_the_next_container_gets(kept, test_images):
    set_idle_time(kept, 600)
    kept.ok("load", os.path.join(test_images, "busybox.oci.tar"), "kept")
    assert "busybox test image" in kept.ok("run", "load/library/kept", "cat", "/etc/os-release").stdout
    kept.ok("load", os.path.join(test_images, "layered.docker.tar"), "kept")
    r = kept.ok("run", "--entrypoint", "", "load/library/kept", "cat", "/etc/os-release")
    assert "sarus layered test image" in r.stdout
    assert wait_until(lambda: len(image_mounts(kept)) == 1), "the replaced image's mount is released"


def test_an_image_rewritten_in_place_is_what_the_next_container_gets(kept, test_images):
    """The user's own image file, rewritten in place (the same inode; the
    modification time set back): suid mode's keeper compared the file with
    itself and went on serving the old mount to new containers."""
    set_idle_time(kept, 600)
    kept.ok("load", os.path.join(test_images, "busybox.oci.tar"), "kept")
    kept.ok("load", os.path.join(test_images, "layered.docker.tar"), "layered")
    assert "busybox test image" in kept.ok("run", "load/library/kept", "cat", "/etc/os-release").stdout
    image = loaded_image_file(kept, "kept")
    before = os.stat(image)
    with open(loaded_image_file(kept, "layered"), "rb") as f:
        replacement = f.read()
    with open(image, "r+b") as f:  # same inode
        f.truncate(0)
        f.write(replacement)
    os.utime(image, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(image).st_ino == before.st_ino
    r = kept.ok("run", "--entrypoint", "", "load/library/kept", "cat", "/etc/os-release")
    assert "sarus layered test image" in r.stdout, r.stdout


def test_the_keeper_keeps_no_directory_of_the_callers_busy(kept):
    """A keeper outlives its caller: in the caller's working directory it
    kept that directory (a home on NFS, an automount) busy."""
    set_idle_time(kept, 600)
    workdir = f"/var/tmp/sarus-cwd-{os.getpid()}"
    os.mkdir(workdir, 0o755)
    try:
        r = run_as(kept.user, [kept.binary, "run", BUSYBOX, "true"], cwd=workdir,
                   env={"SARUS_CONFIG_FILE": kept.config_file})
        assert r.returncode == 0, r.stderr
        (keeper,) = keepers(kept)
        assert os.readlink(f"/proc/{keeper}/cwd") == "/"
    finally:
        end_keepers(kept)
        os.rmdir(workdir)


def test_a_killed_keeper_takes_its_mounts_and_the_next_container_starts_anew(kept):
    running = start_sleeping_container(kept)
    try:
        [keeper] = keepers(kept)
        os.kill(keeper, signal.SIGKILL)
        if kept.mode == "userns":
            assert wait_until(lambda: image_mounts(kept) == []), "the daemons die with their keeper"
        assert kept.ok("run", BUSYBOX, "echo", "again").stdout == "again\n"
        assert len(keepers(kept)) == 1
    finally:
        running.send_signal(signal.SIGTERM)
        running.wait(timeout=30)
    end_keepers(kept)
    assert wait_for_no_leftovers(kept.user) == []


def test_a_killed_sarus_releases_its_claim(kept):
    set_idle_time(kept, 2)
    running = start_sleeping_container(kept)
    os.kill(running.pid, signal.SIGKILL)  # setpriv exec'd sarus
    running.wait(timeout=30)
    assert wait_for_no_leftovers(kept.user, timeout=15) == []


def test_a_killed_sarus_leaves_no_root_supervisor_waiting_for_a_stuck_keeper(suid_kept):
    """A keeper stuck on one image (a stalled parallel file system; here
    stopped) must not keep the root supervisor of a container whose sarus
    was killed, nor its cgroups: the claim watches for the caller's end."""
    suid_kept.ok("run", BUSYBOX, "true")
    [keeper] = keepers(suid_kept)
    os.kill(keeper, signal.SIGSTOP)
    try:
        p = popen_as(suid_kept.user, [suid_kept.binary, "run", BUSYBOX, "true"],
                     env={"SARUS_CONFIG_FILE": suid_kept.config_file})
        time.sleep(1.5)
        assert p.poll() is None, "the container started although the keeper is stopped"
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        stuck = lambda: [line for line in leftovers(suid_kept.user)
                         if "sarus image keeper" not in line and not line.startswith("loop device")]
        assert wait_until(lambda: stuck() == [], timeout=10), stuck()
    finally:
        os.kill(keeper, signal.SIGCONT)


def test_a_dead_image_daemon_is_not_handed_to_the_next_container(userns_kept):
    """The OOM killer may take a kept mount's squashfuse_ll while a
    container still holds the mount: the next container gets a new one."""
    running = start_sleeping_container(userns_kept)
    try:
        [daemon] = image_mounts(userns_kept)
        os.kill(daemon, signal.SIGKILL)
        r = userns_kept("run", BUSYBOX, "cat", "/etc/os-release")
        assert r.returncode == 0, r.stderr
        assert len(image_mounts(userns_kept)) == 1, "a new squashfuse_ll serves the next container"
    finally:
        running.send_signal(signal.SIGTERM)
        running.wait(timeout=30)


def fuse_mounts_of(pid):
    with open(f"/proc/{pid}/mountinfo") as f:
        return [line for line in f if " - fuse." in line]


def test_an_image_its_daemon_cannot_serve_leaves_no_mount_in_the_keeper(userns_kept):
    """The keeper lives on after a mount that failed: the dead FUSE mount
    must not stay in its namespace with the kept ones."""
    running = start_sleeping_container(userns_kept)
    try:
        [keeper] = keepers(userns_kept)
        assert len(fuse_mounts_of(keeper)) == 1
        with open(loaded_image_file(userns_kept, "layered"), "r+b") as f:
            f.write(b"not a squashfs superblock")
        r = userns_kept("run", LAYERED, "true")
        assert r.returncode == 1 and "could not serve" in r.stderr, r.stderr
        assert keepers(userns_kept) == [keeper]
        assert len(fuse_mounts_of(keeper)) == 1, "the failed mount stayed in the keeper"
    finally:
        running.send_signal(signal.SIGTERM)
        running.wait(timeout=30)


def test_a_keeper_directory_of_another_user_is_not_used(userns_kept):
    """suid mode: the keepers' directory is root's (see test_suid_attacks.py)."""
    kept = userns_kept
    directory = keeper_directory(kept)
    os.mkdir(directory, 0o700)
    try:
        r = kept.ok("run", BUSYBOX, "echo", "alone")
        assert r.stdout == "alone\n"
        assert "cannot keep the image mounted" in r.stderr
        assert directory in r.stderr
        assert os.listdir(directory) == [] and os.stat(directory).st_uid == 0
        assert keepers(kept) == []
    finally:
        shutil.rmtree(directory)


def test_each_slurm_step_has_a_keeper_of_its_own(userns_kept):
    """Slurm kills a step's processes when it ends: a keeper shared between
    steps would take the other steps' squashfuse_ll daemons along."""
    kept = userns_kept
    for step in ("0", "1", "1"):
        kept.ok("run", BUSYBOX, "true", env={"SLURM_JOB_ID": "77", "SLURM_STEP_ID": step})
    kept.ok("run", BUSYBOX, "true")
    assert len(keepers(kept)) == 3
    base = keeper_directory(kept)
    for step in ("0", "1"):
        assert os.path.isdir(base.replace("@", f"-slurm77.{step}@"))


def test_the_directory_of_a_killed_step_keeper_goes_with_the_next_keeper(userns_kept):
    """Slurm SIGKILLs a step's keeper with the step: its directory stays in
    tempDir, and the next keeper of the user on the node removes it."""
    kept = userns_kept
    stale = keeper_directory(kept).replace("@", "-slurm78.0@")
    kept.ok("run", BUSYBOX, "true", env={"SLURM_JOB_ID": "78", "SLURM_STEP_ID": "0"})
    assert os.path.isdir(stale)
    for keeper in keepers(kept):
        os.kill(keeper, signal.SIGKILL)
    assert wait_until(lambda: keepers(kept) == [])
    assert os.path.isdir(stale), "a killed keeper cannot remove its directory"
    kept.ok("run", BUSYBOX, "true", env={"SLURM_JOB_ID": "78", "SLURM_STEP_ID": "1"})
    assert not os.path.exists(stale), os.listdir(stale)
    assert os.path.isdir(keeper_directory(kept).replace("@", "-slurm78.1@")), "the running keeper's stays"
