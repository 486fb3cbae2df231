"""Kept image mounts in userns mode (src/userns/image_keeper.hpp): one
squashfuse_ll per user and image, held by the user's image keeper and shared
by every container of that image, released after imageMountIdleTime, after
`rmi`, and after any process involved is killed."""

import os
import pwd
import shutil
import signal
import socket
import time

import pytest

from conftest import popen_as, processes, run_as, run_concurrently, wait_for_no_leftovers

BUSYBOX = "load/library/busybox"
LAYERED = "load/library/layered"


def uid_of(user):
    return pwd.getpwnam(user).pw_uid


def keeper_directory(sarus):
    return os.path.join(sarus.config["tempDir"], f"sarus-keeper-{uid_of(sarus.user)}@{socket.gethostname()}")


def user_processes(user, text):
    uid = uid_of(user)
    return [pid for pid, cmdline, owner in processes() if text in cmdline and owner == uid]


def keepers(sarus):
    return user_processes(sarus.user, "sarus image keeper")


def squashfuse_daemons(sarus):
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


@pytest.fixture
def kept(userns_sarus, test_images):
    """A userns sarus whose image mounts are kept for 30 s; no keeper of the
    user runs before, and nothing of one is left after."""
    s = userns_sarus
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
        assert len(squashfuse_daemons(kept)) == 1
        assert "sarus layered test image" in kept.ok("run", "--entrypoint", "", LAYERED, "cat", "/etc/os-release").stdout
        assert len(squashfuse_daemons(kept)) == 2, "each image has its own mount"
        assert len(keepers(kept)) == 1
    finally:
        running.send_signal(signal.SIGTERM)
        running.wait(timeout=30)


def test_each_container_still_writes_its_own_layer(kept):
    kept.ok("run", BUSYBOX, "sh", "-c", "echo first > /etc/written && touch /tmp/x")
    r = kept("run", BUSYBOX, "cat", "/etc/written")
    assert r.returncode != 0, "a container's writes must not reach the next container"


def test_concurrent_starts_share_one_keeper(kept):
    results = run_concurrently(kept, 8, "run", BUSYBOX, "echo", "{i}")
    assert [r.returncode for r in results] == [0] * 8, [r.stderr for r in results]
    assert sorted(r.stdout for r in results) == sorted(f"{i}\n" for i in range(8))
    assert len(keepers(kept)) == 1
    assert len(squashfuse_daemons(kept)) == 1


def test_the_mount_is_released_after_the_idle_time(kept):
    set_idle_time(kept, 2)
    kept.ok("run", BUSYBOX, "true")
    assert len(squashfuse_daemons(kept)) == 1, "the mount outlives its container"
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
        assert len(squashfuse_daemons(kept)) == 1
    finally:
        running.send_signal(signal.SIGTERM)
        running.wait(timeout=30)
    assert wait_for_no_leftovers(kept.user) == []


def test_rmi_releases_the_mount(kept):
    set_idle_time(kept, 600)
    kept.ok("run", BUSYBOX, "true")
    assert len(squashfuse_daemons(kept)) == 1
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
    assert wait_until(lambda: len(squashfuse_daemons(kept)) == 1), "the replaced image's mount is released"


def test_a_killed_keeper_takes_its_mounts_and_the_next_container_starts_anew(kept):
    running = start_sleeping_container(kept)
    try:
        [keeper] = keepers(kept)
        os.kill(keeper, signal.SIGKILL)
        assert wait_until(lambda: squashfuse_daemons(kept) == []), "the daemons die with their keeper"
    finally:
        running.send_signal(signal.SIGTERM)
        running.wait(timeout=30)
    assert wait_for_no_leftovers(kept.user) == []
    assert kept.ok("run", BUSYBOX, "echo", "again").stdout == "again\n"
    assert len(keepers(kept)) == 1


def test_a_killed_sarus_releases_its_claim(kept):
    set_idle_time(kept, 2)
    running = start_sleeping_container(kept)
    sarus_pid = [pid for pid in user_processes(kept.user, "sarus run")][0]
    os.kill(sarus_pid, signal.SIGKILL)
    running.wait(timeout=30)
    assert wait_for_no_leftovers(kept.user, timeout=15) == []


def test_a_keeper_directory_of_another_user_is_not_used(kept):
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
