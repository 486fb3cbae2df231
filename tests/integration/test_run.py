"""`sarus run` as an unprivileged user, with and without a subordinate id
range (the `sarus` fixture runs every test as both users)."""

import calendar
import contextlib
import fcntl
import grp
import hashlib
import json
import os
import pty
import pwd
import random
import re
import socket
import shutil
import signal
import struct
import subprocess
import tempfile
import termios
import time
import uuid

import pytest

from conftest import (TEST_USERS, leftovers, loaded_image_file, popen_as, process_tree, processes, read_until,
                      run_as, run_concurrently, run_in_a_terminal, wait_for_no_leftovers)

BUSYBOX = "load/library/busybox"
LAYERED = "load/library/layered"


@pytest.fixture
def images(sarus, test_images):
    sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    sarus.ok("load", os.path.join(test_images, "layered.docker.tar"), "layered")
    return sarus


@pytest.fixture(autouse=True)
def nothing_left_behind(request):
    yield
    for name in ("sarus", "userns_sarus"):
        if name in request.fixturenames:
            s = request.node.funcargs[name]
            assert wait_for_no_leftovers(s.user) == []
            assert os.listdir(s.config["OCIBundleDir"]) == [], "the host's OCIBundleDir must stay empty"


def uid_of(user):
    return pwd.getpwnam(user).pw_uid


def test_command_output(images):
    r = images.ok("run", BUSYBOX, "echo", "hello", "world")
    assert r.stdout == "hello world\n"


def test_options_after_the_image_belong_to_the_container(images):
    r = images.ok("run", BUSYBOX, "echo", "--verbose", "-t", "--mount")
    assert r.stdout == "--verbose -t --mount\n"
    # an empty `--option=` is sarus' own only before the image
    r = images.ok("run", "--entrypoint=", "-e", "--env=X", BUSYBOX, "echo", "--mpi-type=", "--env=", "-w")
    assert r.stdout == "--mpi-type= --env= -w\n"


@pytest.mark.parametrize("script, code", [("exit 0", 0), ("exit 3", 3)])
def test_exit_code(images, script, code):
    assert images("run", BUSYBOX, "sh", "-c", script).returncode == code


@pytest.mark.parametrize("options", [["--pid", "host"], ["--init"]])
def test_killed_container_gives_128_plus_signal(images, options):
    # Not as PID 1 of its namespace: PID 1 ignores its own SIGKILL, as in Docker.
    r = images("run", *options, BUSYBOX, "sh", "-c", "kill -9 $$")
    assert r.returncode == 137


def test_identity_is_the_caller(images):
    pw = pwd.getpwnam(images.user)
    r = images.ok("run", BUSYBOX, "sh", "-c", "id -u; id -g; id -un; grep ^%s: /etc/passwd" % pw.pw_name)
    uid, gid, name, entry = r.stdout.split("\n")[:4]
    assert (int(uid), int(gid), name) == (pw.pw_uid, pw.pw_gid, pw.pw_name)
    assert entry.startswith(f"{pw.pw_name}:x:{pw.pw_uid}:{pw.pw_gid}:")


def test_the_hosts_users_and_groups_are_known_in_the_container(images):
    """As in Sarus, which copies the installation's cached passwd and group
    (configure_installation.sh: getent) and its nsswitch.conf into the
    container: the other users of the host have names inside."""
    other = [u for u in TEST_USERS if u != images.user][0]
    other_pw = pwd.getpwnam(other)
    r = images.ok("run", BUSYBOX, "sh", "-c",
                  f"grep ^{other}: /etc/passwd; grep ^sarusgrp: /etc/group; grep -E '^(passwd|group|hosts):' "
                  "/etc/nsswitch.conf; tail -n 1 /etc/passwd")
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"{other}:x:{other_pw.pw_uid}:"), r.stdout
    assert lines[1].startswith(f"sarusgrp:x:{grp.getgrnam('sarusgrp').gr_gid}:"), r.stdout
    assert [line.split() for line in lines[2:5]] == [["group:", "files"], ["hosts:", "files", "dns"],
                                                      ["passwd:", "files"]], r.stdout
    assert lines[5].startswith(f"{images.user}:x:{pwd.getpwnam(images.user).pw_uid}:"), r.stdout


def test_the_whole_image_belongs_to_the_caller(images):
    """As in Sarus: whatever owners the layers record (root, 1234:5678)."""
    pw = pwd.getpwnam(images.user)
    r = images.ok("--verbose", "run", "--entrypoint", "", LAYERED, "stat", "-c", "%u:%g", "/bin/busybox", "/etc",
                  "/", "/home/user1234", "/usr/local/bin/suid-tool")
    assert r.stdout.split() == [f"{pw.pw_uid}:{pw.pw_gid}"] * 5
    if images.mode == "userns":  # with either id map
        assert ("keep-id" if images.user == "sarustest" else "single-id map") in r.stderr


def test_the_user_can_write_anywhere_in_the_rootfs(images):
    script = ("set -e; touch /file /etc/file /home/user1234/file; mkdir /usr/lib/newdir; "
              "echo appended >> /home/user1234/owned.txt; ls -d /file /etc/file /usr/lib/newdir; "
              "cat /home/user1234/owned.txt")
    r = images("run", "--entrypoint", "", LAYERED, "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:4] == ["/etc/file", "/file", "/usr/lib/newdir", "owned by 1234:5678"]
    assert r.stdout.split("\n")[4] == "appended"
    # the image itself is untouched: the next container starts clean
    r = images("run", "--entrypoint", "", LAYERED, "sh", "-c", "ls /file 2>&1; true")
    assert "No such file" in r.stdout


def test_what_sarus_makes_in_the_container_is_the_users(images):
    """As in Sarus: /etc/hosts and the other files sarus writes, and the
    directories it makes for a mount, belong to the user, so a job script
    may add to /etc/hosts or write beside a mount point."""
    import tempfile
    data = tempfile.mkdtemp(prefix="sarus-mount-owner-", dir="/var/tmp")
    try:
        os.chmod(data, 0o755)
        r = images("run", f"--mount=type=bind,src={data},dst=/newdir/sub", BUSYBOX, "sh", "-c",
                   "set -e; echo '10.0.0.1 node1' >> /etc/hosts; grep node1 /etc/hosts; touch /newdir/beside; "
                   "echo ok >> /etc/passwd; stat -c %u /etc/resolv.conf /etc/group /newdir")
    finally:
        shutil.rmtree(data)
    assert r.returncode == 0, r.stderr
    uid = str(pwd.getpwnam(images.user).pw_uid)
    assert r.stdout.split() == ["10.0.0.1", "node1", uid, uid, uid], r.stdout


@pytest.fixture
def host_mqueue():
    """/dev/mqueue with the host's message queues, as a systemd host mounts
    it; mounted for the test where this host has none."""
    mounted = False
    if not os.path.ismount("/dev/mqueue"):
        os.makedirs("/dev/mqueue", exist_ok=True)
        subprocess.run(["mount", "-t", "mqueue", "mqueue", "/dev/mqueue"], check=True)
        mounted = True
    yield "/dev/mqueue"
    if mounted:
        subprocess.run(["umount", "/dev/mqueue"], check=True)
        os.rmdir("/dev/mqueue")


def test_posix_message_queues_are_the_hosts(images, host_mqueue):
    """As in Sarus: /dev/mqueue shows the queues of the IPC namespace the
    container shares with the host (a file made there is a queue)."""
    queue = f"sarus-test-{uuid.uuid4().hex[:8]}"
    try:
        r = images("run", BUSYBOX, "sh", "-c", f"touch /dev/mqueue/{queue} && ls /dev/mqueue")
        on_host = os.path.exists(os.path.join(host_mqueue, queue))
    finally:
        if os.path.exists(os.path.join(host_mqueue, queue)):
            os.remove(os.path.join(host_mqueue, queue))
    assert r.returncode == 0, r.stderr
    assert queue in r.stdout.split()
    assert on_host


def test_a_mount_onto_dev_mqueue_is_never_silently_covered(images):
    """The runtime mounts /dev/mqueue after the user's mounts in suid mode
    (the sandbox attaches them first): a --mount there would have been
    hidden without a word, so it is refused; in userns mode it comes after
    the runtime's and is what the container sees."""
    source = tempfile.mkdtemp(prefix="sarus-mqueue-", dir="/var/tmp")
    try:
        os.chmod(source, 0o755)
        open(os.path.join(source, "mine"), "w").close()
        r = images("run", "--mount", f"type=bind,src={source},dst=/dev/mqueue", BUSYBOX, "ls", "/dev/mqueue")
    finally:
        shutil.rmtree(source)
    if images.mode == "suid":
        assert r.returncode != 0
        assert "the runtime mounts /dev/mqueue over it" in r.stderr, r.stderr
    else:
        assert (r.returncode, r.stdout) == (0, "mine\n"), r.stderr


def test_kernel_interfaces_are_masked_or_read_only_as_in_sarus(images):
    r = images("run", BUSYBOX, "sh", "-c",
               "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; "
               "grep -E ' /proc/(sys|sysrq-trigger|bus|fs|irq) ' /proc/self/mountinfo | cut -d' ' -f5,6")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().split("\n")
    assert lines[:2] == ["0", "0"], r.stdout  # /proc/timer_list and /sys/firmware masked
    read_only = {line.split()[0]: line.split()[1].split(",")[0] for line in lines[2:]}
    # those of them this kernel has
    assert read_only == {path: "ro" for path in ("/proc/sys", "/proc/sysrq-trigger", "/proc/bus", "/proc/fs",
                                                 "/proc/irq") if os.path.exists(path)}, r.stdout


def test_no_capabilities_and_no_new_privileges(images):
    # as Sarus's test_capabilities.py: every set empty, the bounding set too
    r = images.ok("run", BUSYBOX, "grep", "-E", "^(Cap[A-Za-z]+|NoNewPrivs):", "/proc/self/status")
    fields = dict(line.split(":\t") for line in r.stdout.strip().split("\n"))
    for capabilities in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert fields[capabilities] == "0000000000000000", (capabilities, fields)
    assert fields["NoNewPrivs"] == "1"


def test_signals_are_forwarded(images):
    p = popen_as(images.user, [images.binary, "run", BUSYBOX, "sh", "-c",
                               "trap 'echo got TERM; exit 42' TERM; echo ready; while true; do sleep 0.1; done"],
                 env={"SARUS_CONFIG_FILE": images.config_file})
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=20)
    assert p.returncode == 42
    assert "got TERM" in out


@pytest.mark.parametrize("name", ["ALRM", "XCPU", "PWR", "TSTP", "USR2"])
def test_every_signal_a_job_may_get_is_forwarded(images, name):
    """As Sarus, which forwards every signal but SIGCHLD and SIGPIPE: Slurm's
    `--signal=ALRM@60` (a checkpoint trigger), SIGXCPU of a CPU limit, a
    terminal's SIGTSTP. Before, sarus died of the signal or stopped, and the
    container never saw it."""
    p = popen_as(images.user, [images.binary, "run", BUSYBOX, "sh", "-c",
                               f"trap 'echo got {name}; exit 42' {name}; echo ready; "
                               "while true; do sleep 0.1; done"],
                 env={"SARUS_CONFIG_FILE": images.config_file})
    try:
        assert p.stdout.readline() == "ready\n"
        p.send_signal(getattr(signal, "SIG" + name))
        out, _ = p.communicate(timeout=20)
        assert (p.returncode, out) == (42, f"got {name}\n")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_a_forwarded_signal_without_a_handler_ends_the_container_as_it_would_a_process(images):
    # SIGALRM ends a process by default: so the container's PID 1, with the
    # exit code of the signal, as under Sarus's host PID namespace
    p = popen_as(images.user, [images.binary, "run", BUSYBOX, "sh", "-c", "echo ready; exec sleep 60"],
                 env={"SARUS_CONFIG_FILE": images.config_file})
    try:
        assert p.stdout.readline() == "ready\n"
        time.sleep(0.2)  # exec'd
        p.send_signal(signal.SIGALRM)
        p.communicate(timeout=20)
        assert p.returncode == 128 + signal.SIGALRM
        assert wait_for_no_leftovers(images.user, timeout=5) == []
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _wait_for_process(tag, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [pid for pid, command, _ in processes() if command.strip() == f"sleep {tag}"]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"sleep {tag} never started")


def test_with_the_hosts_pid_namespace_the_container_ends_with_its_first_process(images):
    """As runc ends them through the container's cgroup for Sarus: crun,
    without a cgroup manager, waited for a background process of the
    container, and sarus with it, however long it ran."""
    tag = str(random.randint(100000, 999999))
    p = popen_as(images.user, [images.binary, "run", "--pid=host", BUSYBOX, "sh", "-c", f"sleep {tag} & echo started"],
                 env={"SARUS_CONFIG_FILE": images.config_file})
    try:
        out, err = p.communicate(timeout=20)
        assert (p.returncode, out) == (0, "started\n"), err
        assert not [pid for pid, command, _ in processes() if command.strip() == f"sleep {tag}"]
        assert wait_for_no_leftovers(images.user, timeout=5) == []
    except subprocess.TimeoutExpired:
        raise AssertionError("sarus run waited for the container's background process")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for pid, command, _ in processes():
            if command.strip() == f"sleep {tag}":
                os.kill(pid, signal.SIGKILL)


def test_with_the_hosts_pid_namespace_a_killed_runtime_leaves_no_process(images):
    tag = str(random.randint(100000, 999999))
    p = popen_as(images.user, [images.binary, "run", "--pid=host", BUSYBOX, "sleep", tag],
                 env={"SARUS_CONFIG_FILE": images.config_file})
    try:
        container = _wait_for_process(tag)
        with open(f"/proc/{container}/stat") as f:
            runtime = int(f.read().rsplit(")", 1)[1].split()[1])
        with open(f"/proc/{runtime}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[0].endswith(b"crun")
        os.kill(runtime, signal.SIGKILL)
        p.communicate(timeout=20)
        deadline = time.time() + 5
        while _alive(container) and time.time() < deadline:
            time.sleep(0.05)
        assert not _alive(container)
        assert wait_for_no_leftovers(images.user, timeout=5) == []
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("options, command, sig", [
    ([], ["sleep", "{tag}"], signal.SIGTERM),
    (["--init"], ["sleep", "{tag}"], signal.SIGTERM),
    (["-t"], ["sh"], signal.SIGHUP),
    (["-t", "--init"], ["sh"], signal.SIGHUP),
], ids=["terminate", "init-terminate", "terminal-hangup", "init-terminal-hangup"])
def test_a_signal_to_sarus_ends_the_container_and_every_process(images, options, command, sig):
    """Sarus's test_termination_cleanup: SIGTERM or SIGHUP to sarus reaches
    the container's process (an interactive shell ignores SIGTERM, hence
    SIGHUP with a terminal), and within a second nothing of the container is
    left: no process, mount or cgroup."""
    tag = str(random.randint(100000, 999999))
    master, slave = pty.openpty()
    p = popen_as(images.user, [images.binary, "run", *options, BUSYBOX, *[a.replace("{tag}", tag) for a in command]],
                 env={"SARUS_CONFIG_FILE": images.config_file}, stdin=slave, stdout=slave, stderr=slave,
                 start_new_session=True)
    os.close(slave)
    try:
        deadline = time.time() + 20
        if "-t" in options:  # the shell's prompt
            read_until(master, rb"[$#] $", timeout=20)
        else:
            while not any(c.strip() == f"sleep {tag}" for _, c, _ in processes()) and time.time() < deadline:
                time.sleep(0.05)
        tree = process_tree(p.pid)
        assert len(tree) >= 2, tree  # sarus and the container's process at least
        p.send_signal(sig)
        p.wait(timeout=5)
        deadline = time.time() + 1
        while [pid for pid in tree if _alive(pid)] and time.time() < deadline:
            time.sleep(0.05)
        assert [pid for pid in tree if _alive(pid)] == []
        assert wait_for_no_leftovers(images.user, timeout=1) == []
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)


@pytest.mark.parametrize("script, code", [
    ("echo ready; exec sleep {tag}", 130),  # no handler: ended as SIGINT would end it, not as PID 1 ignores it
    ("trap 'echo caught; exit 7' INT; echo ready; while true; do sleep 0.1; done", 7),
], ids=["no-handler", "handler"])
def test_ctrl_c_in_a_terminal_reaches_the_container(images, script, code):
    """Sarus (host PID namespace) lets Ctrl-C end `sarus run -t IMAGE sleep`;
    here the container's process is PID 1, which the kernel spares from a
    signal it has no handler for."""
    tag = str(random.randint(100000, 999999))
    p, master = run_in_a_terminal(images, "run", "-t", BUSYBOX, "sh", "-c", script.replace("{tag}", tag))
    try:
        assert b"ready" in read_until(master, b"ready", timeout=20)
        deadline = time.time() + 10
        while ("{tag}" in script and time.time() < deadline
               and not any(c.strip() == f"sleep {tag}" for _, c, _ in processes())):
            time.sleep(0.05)
        os.write(master, b"\x03")
        assert p.wait(timeout=5) == code
        if code == 7:
            assert b"caught" in read_until(master, b"caught", timeout=2)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)


def test_the_container_terminal_has_the_callers_size_and_follows_it(images):
    p, master = run_in_a_terminal(images, "run", "-t", BUSYBOX, "sh", "-c",
                                   "busybox stty size; echo ready; read line; busybox stty size", rows=37)
    try:
        assert b"37 101" in read_until(master, b"ready", timeout=20)
        # the caller's terminal grows: its foreground group (sarus) gets SIGWINCH
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 120, 0, 0))
        time.sleep(0.5)
        os.write(master, b"\r")
        assert b"50 120" in read_until(master, b"50 120", timeout=20)
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)


def test_stdin_is_passed_through(images):
    r = images.ok("run", BUSYBOX, "cat", input="data from stdin\n")
    assert r.stdout == "data from stdin\n"


def test_tty_under_script(images):
    cmd = f"SARUS_CONFIG_FILE={images.config_file} {images.binary} run -t {BUSYBOX} sh -c 'tty; test -t 0 && echo interactive'"
    r = run_as(images.user, ["script", "-qec", cmd, "/dev/null"])
    assert r.returncode == 0, r.stderr
    assert "/dev/pts/" in r.stdout and "interactive" in r.stdout


def test_init_is_pid_1(images):
    r = images.ok("run", "--init", BUSYBOX, "ps", "-o", "pid,args")
    assert any(line.split()[:2] == ["1", "/dev/init"] for line in r.stdout.splitlines()[1:]), r.stdout
    r = images.ok("run", BUSYBOX, "ps", "-o", "pid,args")
    assert any(line.split()[:2] == ["1", "ps"] for line in r.stdout.splitlines()[1:]), r.stdout


def test_pid_host_sees_host_processes(images):
    private = images.ok("run", BUSYBOX, "ps").stdout.count("\n")
    host = images.ok("run", "--pid", "host", BUSYBOX, "ps").stdout.count("\n")
    assert private <= 3 < host


@pytest.mark.parametrize("children", [0, 2])
def test_kill_9_of_sarus_with_pid_host_leaves_no_container_process(images, children):
    """With --pid=host no PID namespace ends the container with its sandbox.
    In userns mode, where no cgroup holds it either, the container's
    processes lived on after `kill -9` of sarus."""
    tag = str(random.randint(100000, 999999))
    script = f"for i in $(seq {children}); do sleep {tag} & done; echo ready; exec sleep {tag}"
    p = popen_as(images.user, [images.binary, "run", "--pid=host", BUSYBOX, "sh", "-c", script],
                 env={"SARUS_CONFIG_FILE": images.config_file})
    try:
        assert p.stdout.readline() == "ready\n"
        deadline = time.time() + 5  # the background ones may not have run sleep yet
        while len([c for _, c, _ in processes() if c.split() == ["sleep", tag]]) < children + 1:
            assert time.time() < deadline, "the container's sleeps did not start"
            time.sleep(0.02)
    finally:
        p.kill()
        p.wait()
    deadline = time.time() + 5
    while [c for _, c, _ in processes() if c.split() == ["sleep", tag]] and time.time() < deadline:
        time.sleep(0.05)
    left = [(pid, c) for pid, c, _ in processes() if c.split() == ["sleep", tag]]
    for pid, _ in left:
        os.kill(pid, signal.SIGKILL)
    assert left == []
    assert wait_for_no_leftovers(images.user) == []


# --- environment -----------------------------------------------------------

def env_of(images, *args, env=None):
    r = images.ok("run", *args, BUSYBOX, "env", env=env)
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def test_host_environment_is_transferred(images):
    assert env_of(images, env={"FROM_HOST": "h1"})["FROM_HOST"] == "h1"


def test_what_glibc_keeps_from_set_user_id_programs_stays_on_the_host(images):
    """In both modes, as in Sarus, whose set-user-ID binary never sees them:
    a host LD_PRELOAD or LD_LIBRARY_PATH would load host libraries into the
    image's programs, a job's TMPDIR names a host directory."""
    env = env_of(images, env={"LD_PRELOAD": "/host/lib.so", "LD_LIBRARY_PATH": "/host/lib", "TMPDIR": "/scratch/job",
                              "MALLOC_CHECK_": "3", "FROM_HOST": "h1"})
    assert env["FROM_HOST"] == "h1"
    assert [name for name in ("LD_PRELOAD", "LD_LIBRARY_PATH", "TMPDIR", "MALLOC_CHECK_") if name in env] == []


def test_init_is_a_subreaper_in_the_hosts_pid_namespace(images):
    r = images("run", "--init", "--pid=host", BUSYBOX, "sh", "-c", "echo $TINI_SUBREAPER")
    assert (r.returncode, r.stdout) == (0, "1\n"), r.stderr
    assert "Tini is not running as PID 1 and isn't registered as a child subreaper" not in r.stderr, r.stderr


def test_image_environment_overrides_host(images):
    env = env_of(images, env={"IMAGE_VAR": "from-host"})
    assert env["IMAGE_VAR"] == "from-image"


def test_config_environment_set_prepend_append_unset(images):
    images.config["environment"] = {"set": {"SET_VAR": "set", "IMAGE_VAR": "set-by-config"},
                                    "prepend": {"PATH": "/site/bin"},
                                    "append": {"LIST": "/appended"},
                                    "unset": ["DROP_ME"]}
    images.write_config()
    env = env_of(images, env={"LIST": "/first", "DROP_ME": "x"})
    assert env["SET_VAR"] == "set"
    assert env["IMAGE_VAR"] == "set-by-config"        # config over image
    assert env["PATH"].startswith("/site/bin:/usr/local/sbin")
    assert env["LIST"] == "/first:/appended"
    assert "DROP_ME" not in env


def test_old_style_environment_lists_are_accepted(images):
    images.config["environment"] = {"set": [{"OLD_STYLE": "yes"}]}
    images.write_config()
    assert env_of(images)["OLD_STYLE"] == "yes"


def test_cli_env_overrides_everything(images):
    images.config["environment"] = {"set": {"SET_VAR": "config"}}
    images.write_config()
    env = env_of(images, "-e", "SET_VAR=cli", "--env", "IMAGE_VAR=cli2", "-e", "PASS_ME",
                 env={"PASS_ME": "from-host-by-name"})
    assert env["SET_VAR"] == "cli"
    assert env["IMAGE_VAR"] == "cli2"
    assert env["PASS_ME"] == "from-host-by-name"


def test_cuda_visible_devices_become_nvidia_visible_devices(images):
    env = env_of(images, env={"CUDA_VISIBLE_DEVICES": "3,1"})
    assert env["NVIDIA_VISIBLE_DEVICES"] == "3,1"
    assert env["CUDA_VISIBLE_DEVICES"] == "1,0"
    assert "NVIDIA_VISIBLE_DEVICES" not in env_of(images)


# --- entrypoint, cmd, workdir ----------------------------------------------

def test_image_cmd_runs_by_default(images):
    assert images.ok("run", BUSYBOX).stdout == "hello from busybox\n"


def test_entrypoint_gets_default_args(images):
    assert images.ok("run", LAYERED).stdout == "default args\n"


def test_arguments_replace_cmd_but_keep_entrypoint(images):
    assert images.ok("run", LAYERED, "new", "args").stdout == "new args\n"


def test_new_entrypoint_discards_default_args(images):
    r = images.ok("run", "--entrypoint", "cat", LAYERED, "/etc/os-release")
    assert 'NAME="sarus layered test image"' in r.stdout


def test_empty_entrypoint_runs_the_command_alone(images):
    assert images.ok("run", "--entrypoint", "", LAYERED, "pwd").stdout == "/opt\n"
    # the bare form of the Sarus documentation: "--entrypoint -t IMAGE CMD"
    # (-t without a terminal is ignored with a warning)
    r = images.ok("run", "--entrypoint", "-t", LAYERED, "sh", "-c", "echo $0")
    assert r.stdout.strip() == "sh"
    assert "] [CLI] [WARN] -t/--tty ignored" in r.stderr


SARUS_LOG_LINE = re.compile(r"\[(\d+)\.\d{9}\] \[(.+)-(\d+)\] \[(CLI|Config|ImageStore|Registry|Runtime)\] "
                            r"\[(DEBUG|INFO|WARN|ERROR)\] \S")


def test_verbose_and_debug_write_saruss_log_lines_to_stderr(images):
    """Sarus's line format, so what sites grep for ([INFO], [DEBUG], [Runtime])
    is there; on stderr, so the program's stdout stays its own."""
    quiet = images.ok("run", BUSYBOX, "echo", "out")
    verbose = images.ok("--verbose", "run", BUSYBOX, "echo", "out")
    debug = images.ok("--debug", "run", BUSYBOX, "echo", "out")
    assert quiet.stdout == verbose.stdout == debug.stdout == "out\n"
    assert quiet.stderr == ""
    for r, expected_levels in ((verbose, {"INFO"}), (debug, {"INFO", "DEBUG"})):
        matches = [SARUS_LOG_LINE.match(line) for line in r.stderr.splitlines()]
        assert matches and all(matches), r.stderr
        assert {m.group(5) for m in matches} == expected_levels, r.stderr
        assert {m.group(2) for m in matches} == {socket.gethostname()}, r.stderr
        # Sarus's instance id: the pid of the sarus process, also in lines of its helpers
        assert len({m.group(3) for m in matches}) == 1, r.stderr
    subsystems = {m.group(4) for m in map(SARUS_LOG_LINE.match, debug.stderr.splitlines())}
    assert {"CLI", "Runtime"} <= subsystems, debug.stderr
    # Sarus's milestones of `run`, in its order and words
    messages = [line.split("] ", 4)[4] for line in verbose.stderr.splitlines()]
    milestones = [m for m in messages if re.fullmatch(r"Executing run command|Processed CLI arguments in \d+\.\d{6} seconds|"
                                                      r"Successfully set up container in \d+\.\d{6} seconds|"
                                                      r"Successfully executed run command", m)]
    assert [m.split(" in ")[0] for m in milestones] == ["Executing run command", "Processed CLI arguments",
                                                        "Successfully set up container",
                                                        "Successfully executed run command"], verbose.stderr
    # the time is the monotonic clock's, in order within one process
    times = [int(m.group(1)) for m in map(SARUS_LOG_LINE.match, debug.stderr.splitlines())]
    assert times == sorted(times) and abs(times[0] - time.monotonic()) < 60, debug.stderr


def test_workdir_rules(images):
    assert images.ok("run", "--entrypoint", "", LAYERED, "pwd").stdout == "/opt\n"   # image WorkingDir
    assert images.ok("run", BUSYBOX, "pwd").stdout == "/\n"                           # default
    r = images.ok("run", "-w", "/new/work/dir", BUSYBOX, "sh", "-c", "pwd; touch ok")  # created, writable
    assert r.stdout == "/new/work/dir\n"
    r = images("run", "--workdir", "relative", BUSYBOX, "pwd")
    assert r.returncode == 1 and "The working directory 'relative' is invalid, it needs to be an absolute path." \
        in r.stderr


# --- filesystem ------------------------------------------------------------

def test_writes_to_the_rootfs_succeed_and_vanish(images):
    images.ok("run", BUSYBOX, "sh", "-c", "echo x > /tmp/written && mkdir -p /tmp/d && cat /tmp/written")
    # sarus's own failures are exit code 1 too: the container says what it saw
    r = images.ok("run", BUSYBOX, "sh", "-c", "if test -e /tmp/written; then echo present; else echo absent; fi")
    assert r.stdout == "absent\n"


@pytest.fixture
def host_dir(images):
    path = os.path.join(images.workdir, "data")
    run_as(images.user, ["mkdir", "-p", path], check=True)
    run_as(images.user, ["sh", "-c", f"echo from-host > {path}/input"], check=True)
    return path


def test_mount_points_inside_an_earlier_mount_are_the_users_on_the_host(images):
    """A mount inside another bind mount has its mount point in the earlier
    mount's host directory: what is made there must be the user's, who can
    then remove it (not a subordinate id of the user namespace)."""
    outer = os.path.join(images.workdir, "outer")
    inner = os.path.join(images.workdir, "inner")
    single = os.path.join(images.workdir, "single-file")
    run_as(images.user, ["sh", "-c", f"mkdir -p {outer} {inner} && echo one > {single}"], check=True)
    r = images("run", "--mount", f"type=bind,src={outer},dst=/base",
               "--mount", f"type=bind,src={inner},dst=/base/x/y",
               "--mount", f"type=bind,src={single},dst=/base/x/f", BUSYBOX, "cat", "/base/x/f")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "one\n"
    uid = pwd.getpwnam(images.user).pw_uid
    made = {os.path.relpath(os.path.join(root, name), outer): os.lstat(os.path.join(root, name)).st_uid
            for root, dirs, files in os.walk(outer) for name in dirs + files}
    assert made == {"x": uid, "x/y": uid, "x/f": uid}, made
    removed = run_as(images.user, ["rm", "-r", os.path.join(outer, "x")])
    assert removed.returncode == 0, removed.stderr


def test_supplementary_groups_are_the_callers(images):
    """Sarus's CI test_process_identity.py: uid, gid and supplementary gids of
    the host process. suid mode shows them as they are; in userns mode an
    unprivileged user cannot map groups outside its subordinate range, so they
    show as the overflow gid, and still grant what they grant on the host."""
    pw = pwd.getpwnam(images.user)
    groups = {g.gr_gid for g in grp.getgrall() if images.user in g.gr_mem} | {pw.pw_gid}
    shared = os.path.join(images.workdir, "for-the-group")
    os.mkdir(shared, 0o755)
    secret = os.path.join(shared, "secret")
    with open(secret, "w") as f:
        f.write("group-only\n")
    extra = sorted(groups - {pw.pw_gid})
    os.chown(secret, 0, extra[0] if extra else pw.pw_gid)
    os.chmod(secret, 0o640)
    r = images.ok("run", "--mount", f"type=bind,src={shared},dst=/shared", BUSYBOX,
                  "sh", "-c", "id -G; cat /shared/secret")
    shown, content = r.stdout.splitlines()
    assert content == "group-only"  # the group grants access in both modes
    if images.mode == "suid":
        assert {int(g) for g in shown.split()} == groups, r.stdout
    else:
        assert int(shown.split()[0]) == pw.pw_gid
        assert {int(g) for g in shown.split()[1:]} <= {65534}, r.stdout


def test_bind_mount_files_belong_to_the_caller(images, host_dir):
    images.ok("run", "--mount", f"type=bind,source={host_dir},destination=/data", BUSYBOX,
              "sh", "-c", "cat /data/input && echo out > /data/output")
    st = os.stat(os.path.join(host_dir, "output"))
    pw = pwd.getpwnam(images.user)
    assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid)


def test_readonly_mount_is_read_only(images, host_dir):
    r = images("run", "--mount", f"type=bind,src={host_dir},dst=/data,readonly", BUSYBOX,
               "sh", "-c", "cat /data/input; touch /data/new")
    assert r.stdout == "from-host\n"
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    assert not os.path.exists(os.path.join(host_dir, "new"))


def test_several_mounts_and_missing_destinations_are_created(images, host_dir):
    r = images.ok("run", "--mount", f"type=bind,src={host_dir},dst=/a/b/c",
                  "--mount", f"src={host_dir},target=/x,type=bind", BUSYBOX, "cat", "/a/b/c/input", "/x/input")
    assert r.stdout == "from-host\nfrom-host\n"


@pytest.mark.parametrize("destination, rule", [
    ("/etc/conf", "destination cannot be a subdirectory of '/etc'"),
    ("/var/x", "destination cannot be a subdirectory of '/var'"),
    ("/opt", "'/opt' is not allowed as mount destination"),
    ("/scratch/inside", "destination cannot be a subdirectory of '/etc'"),  # /scratch -> /etc in the image
    ("/opt/work-link", "destination cannot be a subdirectory of '/etc'"),   # relative link ../etc/sub
])
def test_disallowed_destinations_are_refused(images, host_dir, destination, rule):
    r = images("run", "--mount", f"type=bind,src={host_dir},dst={destination}", BUSYBOX, "true")
    assert r.returncode == 1
    assert rule in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_symlink_destination_stays_inside_the_rootfs(images, host_dir):
    target = "/tmp/sarus-escape-target"
    shutil.rmtree(target, ignore_errors=True)
    r = images.ok("run", "--mount", f"type=bind,src={host_dir},dst=/outside", BUSYBOX,
                  "sh", "-c", f"cat {target}/input")
    assert r.stdout == "from-host\n"
    assert not os.path.exists(target), "the mount escaped to the host"


@pytest.mark.parametrize("mount, message", [
    # Sarus 1.7's words (its CI/src/integration_tests/test_error_messages.py and MountParser)
    ("type=volume,src=/tmp,dst=/x", "'volume' is not a valid mount type"),
    ("src=/tmp,dst=/x", "'type' must be specified"),
    ("type=bind,dst=/x", "no source specified. Use either 'source' or 'src'."),
    ("type=bind,src=/tmp", "no destination specified. Use either 'destination', 'dst' or 'target'."),
    ("type=bind,src=tmp,dst=/x", "source must be an absolute path"),
    ("type=bind,src=/tmp,dst=/x,color=red", "'color' is not a valid bind mount option"),
    ("type=bind,src=/src,dst=/dst,bind-propagation=slave", "'bind-propagation' is not a valid bind mount option"),
    ("type=bind,src=/nonexistent-src,dst=/x", "Failed to bind mount /nonexistent-src on container's /x: "
                                              "Failed to find real path for mount source: No such file or directory"),
])
def test_bad_mount_options(images, mount, message):
    r = images("run", "--mount", mount, BUSYBOX, "true")
    assert r.returncode == 1
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_mounts_under_dev_are_visible(images, host_dir):
    r = images.ok("run", "--mount", f"type=bind,src={host_dir},dst=/dev/mydata",
                  "--mount", f"type=bind,src={host_dir}/input,dst=/dev/input-file", BUSYBOX,
                  "sh", "-c", "cat /dev/mydata/input /dev/input-file; ls /dev/null")
    assert r.stdout == "from-host\nfrom-host\n/dev/null\n"


@pytest.fixture
def site_dir():
    """A root-owned directory, as a site mount's source must be in suid mode."""
    path = f"/var/tmp/sarus-site-{uuid.uuid4().hex[:8]}"
    os.mkdir(path, 0o755)
    with open(os.path.join(path, "input"), "w") as f:
        f.write("from-host\n")
    yield path
    shutil.rmtree(path)


def test_site_mounts(images, site_dir):
    images.config["siteMounts"] = [{"type": "bind", "source": site_dir, "destination": "/etc/site",
                                    "flags": {"readonly": ""}}]
    images.write_config()
    r = images("run", BUSYBOX, "sh", "-c", "cat /etc/site/input; touch /etc/site/x")
    assert r.stdout == "from-host\n" and "Read-only" in r.stderr


def test_device_is_available(images):
    r = images.ok("run", "--device", "/dev/fuse:/dev/myfuse:rw", BUSYBOX, "ls", "-l", "/dev/myfuse")
    assert r.stdout.startswith("c")
    r = images("run", "--device", "/etc/passwd", BUSYBOX, "true")
    assert r.returncode == 1 and "is not a device file" in r.stderr


def test_site_devices_are_there_and_a_users_request_for_one_is_skipped(images):
    images.config["siteDevices"] = [{"source": "/dev/fuse", "destination": "/dev/sitefuse", "access": "rw"}]
    images.write_config()
    r = images.ok("run", BUSYBOX, "ls", "-l", "/dev/sitefuse")
    assert r.stdout.startswith("c")
    # as in Sarus: the administrator's device wins, with a warning
    r = images.ok("run", "--device", "/dev/fuse:/dev/myfuse:r", BUSYBOX, "sh", "-c",
                  "ls /dev/sitefuse; ls /dev/myfuse 2>/dev/null || echo no-myfuse")
    assert r.stdout == "/dev/sitefuse\nno-myfuse\n"
    assert ("Device /dev/fuse already added by the system administrator at container path /dev/sitefuse "
            "with access rw. Skipping request from the command line") in r.stderr


def test_fuse_overlayfs_can_be_forced(userns_sarus, test_images):
    images = userns_sarus
    images.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    images.config["overlayType"] = "fuse"
    images.write_config()
    r = images.ok("--verbose", "run", BUSYBOX, "sh", "-c", "echo x > /tmp/f && cat /tmp/f")
    assert r.stdout == "x\n"
    assert "fuse-overlayfs" in r.stderr


# --- userns: the image through squashfuse_ll -------------------------------

@pytest.fixture
def userns_busybox(userns_sarus, test_images):
    userns_sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    return userns_sarus


def _squashfuse(sarus):
    return sarus.config.get("squashfusePath", "/usr/bin/squashfuse_ll")


def _busybox_md5_line(sarus):
    """md5sum's line for /bin/busybox as the image holds it."""
    busybox = subprocess.run(["unsquashfs", "-cat", loaded_image_file(sarus, "busybox"), "bin/busybox"],
                             stdout=subprocess.PIPE, check=True).stdout
    return f"{hashlib.md5(busybox).hexdigest()}  /bin/busybox"


def _symlinks_in_image(image_file, directory):
    listing = subprocess.run(["unsquashfs", "-lls", image_file], stdout=subprocess.PIPE, text=True,
                             check=True).stdout
    links = {}
    for line in listing.splitlines():
        path, arrow, target = line.partition(" -> ")
        name = path.split()[-1].removeprefix("squashfs-root")
        if arrow and os.path.dirname(name) == directory:
            links[name] = target
    return links


def test_squashfuse_is_spared_opens_and_serves_the_same_bytes(userns_busybox):
    # squashfuse_preload.so answers OPEN/OPENDIR with ENOSYS and asks the
    # kernel to cache symlinks; reads and listings must be what the image holds.
    images = userns_busybox
    script = ("for i in 1 2 3; do md5sum /bin/busybox; done; "
              "for pass in 1 2; do for f in /bin/*; do [ -L $f ] && echo \"$f -> $(readlink $f)\"; done; done")
    r = images.ok("--debug", "run", BUSYBOX, "sh", "-c", script)
    assert ("squashfuse preload: files read without OPEN: yes, directories without OPENDIR: yes, "
            "symlinks cached: yes") in r.stderr
    lines = r.stdout.splitlines()
    assert lines[:3] == [_busybox_md5_line(images)] * 3
    links = lines[3:]
    expected = sorted(f"{name} -> {target}" for name, target in
                      _symlinks_in_image(loaded_image_file(images, "busybox"), "/bin").items())
    assert len(expected) > 10
    assert links == expected + expected


def test_plain_squashfuse_serves_the_image_too(userns_busybox):
    # The fallback daemon (libfuse's high-level layer): the preload library
    # leaves it alone, and it is given the mounted connection all the same.
    images = userns_busybox
    images.config["squashfusePath"] = "/usr/bin/squashfuse"
    images.write_config()
    r = images.ok("--debug", "run", BUSYBOX, "sh", "-c", "md5sum /bin/busybox; ls /bin | wc -l")
    assert "squashfuse preload: operations of libfuse's high-level layer, left as they are" in r.stderr
    assert r.stdout.splitlines()[0] == _busybox_md5_line(images)
    assert int(r.stdout.splitlines()[1]) > 10


def test_squashfuse_runs_as_the_caller_without_capabilities(userns_busybox):
    # sarus mounts /dev/fuse itself: the daemon only serves the connection.
    images = userns_busybox
    p = popen_as(images.user, [images.binary, "run", "--name", "capless", BUSYBOX, "sh", "-c",
                               "echo ready; sleep 1000"], env={"SARUS_CONFIG_FILE": images.config_file})
    try:
        assert p.stdout.readline() == "ready\n"
        pid = _process_of(f"{_squashfuse(images)} -f {loaded_image_file(images, 'busybox')} /dev/fd/3")
        assert pid is not None, [c for _, c, _ in processes() if "squashfuse" in c]
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        assert int(status["Uid"].split()[0]) == uid_of(images.user)
        if images.user == "sarustest":
            # With a subordinate range the caller is not root of the namespace:
            # nothing gives the daemon a capability (before, CAP_SYS_ADMIN to mount).
            assert int(status["CapEff"], 16) == 0 and int(status["CapAmb"], 16) == 0, status
    finally:
        images.ok("kill", "capless")
        p.wait(timeout=20)


def test_dev_fuse_without_access_is_named(userns_busybox):
    images = userns_busybox
    mode = os.stat("/dev/fuse").st_mode & 0o7777
    os.chmod("/dev/fuse", 0o600)
    try:
        r = images("run", BUSYBOX, "true")
    finally:
        os.chmod("/dev/fuse", mode)
    assert r.returncode == 1
    assert "cannot open /dev/fuse: Permission denied" in r.stderr and "0666" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_unusable_image_file_names_the_daemon(userns_busybox):
    images = userns_busybox
    image = loaded_image_file(images, "busybox")
    with open(image, "r+b") as f:
        f.write(b"not a squashfs superblock")
    r = images("run", BUSYBOX, "true")
    assert r.returncode == 1
    assert f"{_squashfuse(images)} could not serve {image}" in r.stderr, r.stderr


# --- errors ----------------------------------------------------------------

@pytest.mark.parametrize("filesystem", ["ramfs", "tmpfs"])
def test_ram_filesystem_of_the_bundle(images, filesystem):
    # Sarus's CI test_ram_filesystems.py: containers run with either ramFilesystemType
    images.config["ramFilesystemType"] = filesystem
    images.write_config()
    r = images.ok("run", BUSYBOX, "sh", "-c", "echo written > /file; cat /file; stat -f -c %b /")
    written, blocks = r.stdout.split()
    assert written == "written"
    # the writable layer is on that filesystem: overlayfs reports its size, and ramfs has none
    assert (blocks == "0") == (filesystem == "ramfs"), r.stdout


def test_missing_image(images):
    r = images("run", "load/library/nothere", "true")
    assert r.returncode == 1
    assert r.stderr == "Image load/library/nothere:latest is not available\n"


def test_missing_command_in_container(images):
    r = images("run", BUSYBOX, "no-such-command")
    assert r.returncode == 127
    # the runtime's line, then the one Sarus shows (runc's), which Sarus's CI and site scripts look for
    runtime, sarus = r.stderr.strip().splitlines()
    assert "no-such-command" in runtime and "not found" in runtime, r.stderr
    assert sarus == 'level=error msg="exec: \\"no-such-command\\": executable file not found in $PATH"', r.stderr


def test_missing_runtime_is_named(images):
    images.config[images.runtime_key] = "/nonexistent/runtime"
    images.write_config()
    r = images("run", BUSYBOX, "true")
    assert r.returncode == 1
    assert "/nonexistent/runtime" in r.stderr and images.runtime_key in r.stderr, r.stderr


# --- concurrency and teardown ----------------------------------------------

def test_16_concurrent_containers(images):
    results = run_concurrently(images, 16, "run", BUSYBOX, "sh", "-c", "echo {i}")
    assert sorted(r.returncode for r in results) == [0] * 16, [r.stderr for r in results if r.returncode]
    assert sorted(int(r.stdout) for r in results) == list(range(16))


def test_kill_9_of_sarus_leaves_nothing_and_next_run_works(images):
    p = popen_as(images.user, [images.binary, "run", BUSYBOX, "sh", "-c", "echo ready; sleep 1000"],
                 env={"SARUS_CONFIG_FILE": images.config_file})
    assert p.stdout.readline() == "ready\n"
    assert leftovers(images.user) != []      # the check below is not vacuous
    p.kill()
    p.wait()
    assert wait_for_no_leftovers(images.user) == []
    assert images.ok("run", BUSYBOX, "echo", "again").stdout == "again\n"


def _process_of(cmdline_part):
    return next((pid for pid, cmdline, _ in processes() if cmdline_part in cmdline), None)


def test_containers_start_with_the_installations_static_crun(images):
    """tools/build_crun.sh's crun: Debian's source, linked statically, with
    seccomp and capabilities; configure_installation.sh makes it the runtime."""
    prefix = os.path.dirname(os.path.dirname(images.binary))
    crun = os.path.join(prefix, "libexec", "sarus", "crun")
    assert images.config[images.runtime_key] == crun
    dynamic = subprocess.run(["readelf", "-d", crun], capture_output=True, text=True).stdout
    assert "NEEDED" not in dynamic
    version = subprocess.run([crun, "--version"], capture_output=True, text=True, check=True).stdout
    debian = subprocess.run(["/usr/bin/crun", "--version"], capture_output=True, text=True, check=True).stdout
    assert version.split("\n")[0] == debian.split("\n")[0]       # the same crun version as Debian's
    assert "+SECCOMP" in version and "+CAP" in version
    r = images.ok("--debug", "run", BUSYBOX, "true")
    assert f"starting {crun}" in r.stderr or f"{crun} exited with 0" in r.stderr, r.stderr


def test_runtime_runs_from_a_read_only_bind_not_a_copy(images):
    # crun/runc skip their self-copy (CVE-2019-5736) only on a read-only
    # binary: sarus binds the runtime read-only in the sandbox's namespace.
    runtime = os.path.realpath(images.config.get(images.runtime_key, "/usr/bin/crun"))
    p = popen_as(images.user, [images.binary, "run", "--name", "robind", BUSYBOX, "sh", "-c",
                               "echo ready; sleep 1000"], env={"SARUS_CONFIG_FILE": images.config_file})
    try:
        assert p.stdout.readline() == "ready\n"
        pid = _process_of(f"run --bundle {images.config['OCIBundleDir']} robind")
        assert pid is not None
        assert os.readlink(f"/proc/{pid}/exe") == runtime       # not "/memfd:... (deleted)"
        with open(f"/proc/{pid}/environ", "rb") as f:
            assert b"_LIBCONTAINER_CLONED_BINARY=1" in f.read().split(b"\0")
        with open(f"/proc/{pid}/mountinfo") as f:
            binds = [line.split() for line in f if line.split()[4] == runtime]
        assert binds, "no bind mount of the runtime in its mount namespace"
        assert "ro" in binds[-1][5].split(","), binds[-1]
    finally:
        images.ok("kill", "robind")
        p.wait(timeout=20)


def test_entrypoint_is_read_ahead_and_the_helper_is_gone(images):
    r = images.ok("--debug", "run", BUSYBOX, "true")
    # /bin/true is a link to busybox: the file itself is read, as the caller.
    assert "reading ahead bin/busybox" in r.stderr
    r = images("--debug", "run", BUSYBOX, "no-such-program")
    assert r.returncode != 0
    assert "reading ahead" not in r.stderr


def zombies_below(pid):
    found = []
    for process in process_tree(pid):
        try:
            with open(f"/proc/{process}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] == "Z":
            found.append(stat)
    return found


def test_no_helper_stays_defunct_while_the_container_runs(images):
    """The read-ahead helper, the process entering the image keeper's
    namespaces (userns) and the one orphaning the cgroup reaper (suid) end
    early: each is reaped then, not when the container ends."""
    p = popen_as(images.user, [images.binary, "--debug", "run", BUSYBOX, "sh", "-c", "echo ready; sleep 1000"],
                 env={"SARUS_CONFIG_FILE": images.config_file})
    try:
        assert p.stdout.readline() == "ready\n"
        # A helper is a zombie for the moment between its end and its reaping:
        # only one that stays is wrong. The last sample taken is the verdict.
        time.sleep(0.5)
        deadline = time.monotonic() + 5
        found = zombies_below(p.pid)
        while found and time.monotonic() < deadline:
            time.sleep(0.05)
            found = zombies_below(p.pid)
        checked_at = time.monotonic()
        assert found == []
    finally:
        p.terminate()
        _, stderr = p.communicate()
    # The helper ran in this container, and had ended before that sample
    # (sarus's log lines carry CLOCK_MONOTONIC, as time.monotonic()).
    done = [line for line in stderr.splitlines() if line.endswith("sandbox: read ahead done")]
    assert len(done) == 1, stderr
    assert float(done[0][1:done[0].index("]")]) < checked_at, stderr


def test_e_name_takes_the_hosts_value_and_says_so_at_verbose(images):
    r = images.ok("--verbose", "run", "-e", "FROM_HOST", "-e", "NOT_ON_HOST", BUSYBOX, "sh", "-c",
                  "echo $FROM_HOST ${NOT_ON_HOST-unset}", env={"FROM_HOST": "host value"})
    assert r.stdout == "host value unset\n"
    for name in ("FROM_HOST", "NOT_ON_HOST"):
        assert (f"[CLI] [INFO] Environment variable requested from CLI '{name}' does not feature '=' separator. "
                "Treating string as variable name and attempting to source value from host environment") in r.stderr
    assert ("[CLI] [INFO] Environment variable requested from CLI 'NOT_ON_HOST' does not correspond to a variable "
            "present in the host environment. Skipping request.") in r.stderr
    assert "'FROM_HOST' does not correspond" not in r.stderr


def test_a_parent_that_ignores_sigchld_does_not_break_the_run(images):
    # An ignored SIGCHLD is inherited across exec; sarus must still wait for its children.
    ignoring = "import os, signal, sys; signal.signal(signal.SIGCHLD, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])"
    r = run_as(images.user, ["/usr/bin/python3", "-c", ignoring, images.binary, "run", BUSYBOX, "echo", "hello"],
               env={"SARUS_CONFIG_FILE": images.config_file})
    assert (r.returncode, r.stdout) == (0, "hello\n"), r.stderr


def test_ps_and_kill(images):
    with open(images.config_file) as f:
        bundle = json.load(f)["OCIBundleDir"]
    p = popen_as(images.user, [images.binary, "run", "--name", "job1", BUSYBOX, "sh", "-c", "echo ready; sleep 1000"],
                 env={"SARUS_CONFIG_FILE": images.config_file})
    try:
        assert p.stdout.readline() == "ready\n"
        rows = images.ok("ps").stdout.splitlines()
        # Sarus prints runc's `list`: its columns, laid out by Go's tabwriter (cells at
        # least 12 wide, 3 spaces after the longest).
        name, pid, status, shown_bundle, created, owner = rows[1].split()
        header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED"]
        widths = [max(12, len(cell) + 3) for cell in rows[1].split()[:5]]
        assert rows[0] == "".join(h.ljust(w) for h, w in zip(header, widths)) + "OWNER", rows
        assert rows[1] == "".join(c.ljust(w) for c, w in zip(rows[1].split(), widths)) + owner, rows
        assert (name, status, shown_bundle, owner) == ("job1", "running", bundle, images.user), rows
        # PID: the container's first process (runc's list shows it), below the `sarus run` process
        with open(f"/proc/{pid}/status") as f:
            nspid = next(line.split()[1:] for line in f if line.startswith("NSpid:"))
        assert nspid[0] == pid and nspid[-1] == "1", nspid   # PID 1 of the container's PID namespace
        assert int(pid) in process_tree(p.pid), (pid, process_tree(p.pid))
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", created), created
        assert abs(calendar.timegm(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S")) - time.time()) < 60, created
        duplicate = images("run", "--name", "job1", BUSYBOX, "true")
        assert duplicate.returncode == 1 and "already running" in duplicate.stderr
        started = time.time()
        images.ok("kill", "job1")
        p.wait(timeout=20)
        # Sarus's containers are gone within a second of `sarus kill`.
        assert time.time() - started < 1.5
        assert p.returncode != 0
        assert len(images.ok("ps").stdout.splitlines()) == 1
    finally:
        if p.poll() is None:  # a failed check leaves no container for the next tests
            p.kill()
            p.wait(timeout=20)
    r = images("kill", "job1")
    assert r.returncode == 1 and "no running container named 'job1'" in r.stderr


def test_the_default_name_is_sarus_container_and_a_random_part(images):
    env = {"SARUS_CONFIG_FILE": images.config_file}
    names = []
    for _ in range(2):
        p = popen_as(images.user, [images.binary, "run", BUSYBOX, "sh", "-c", "echo ready; sleep 1000"], env=env)
        try:
            assert p.stdout.readline() == "ready\n"
            rows = images.ok("ps").stdout.splitlines()[1:]
            assert len(rows) == 1, rows
            names.append(rows[0].split()[0])
            assert re.fullmatch(r"sarus-container-[0-9a-f]{16}", names[-1]), rows
            images.ok("kill", names[-1])
        finally:
            p.kill()
            p.wait(timeout=20)
    assert names[0] != names[1]


@contextlib.contextmanager
def named_container(images, name):
    """`sarus run --name NAME` of a busybox that sleeps, past its "ready"
    line; killed with `sarus kill` afterwards."""
    p = popen_as(images.user, [images.binary, "run", "--name", name, BUSYBOX, "sh", "-c", "echo ready; sleep 1000"],
                 env={"SARUS_CONFIG_FILE": images.config_file})
    try:
        assert p.stdout.readline() == "ready\n"
        yield p
    finally:
        images.ok("kill", name)
        p.wait(timeout=20)


def test_ps_and_kill_see_only_the_callers_containers(images):
    # Sarus's CI test_command_ps.py: another user's ps does not show them; nor can kill reach them
    other = next(u for u in TEST_USERS if u != images.user)
    env = {"SARUS_CONFIG_FILE": images.config_file}
    with named_container(images, "mine") as p:
        theirs = run_as(other, [images.binary, "ps"], env=env)
        assert theirs.returncode == 0 and len(theirs.stdout.splitlines()) == 1, theirs.stdout + theirs.stderr
        r = run_as(other, [images.binary, "kill", "mine"], env=env)
        assert r.returncode == 1 and "no running container named 'mine'" in r.stderr
        assert p.poll() is None, "another user's kill reached the container"
        assert "mine" in images.ok("ps").stdout


def test_ps_and_kill_trust_only_records_the_caller_wrote(images):
    """In a shared /tmp another user could swap a directory of theirs into
    the registry's name between sarus's check and its reading: a record of
    theirs naming another sarus of the caller's was listed, and `sarus
    kill` signalled that process. Planted here directly (as root), owned by
    the other user."""
    other = next(u for u in TEST_USERS if u != images.user)
    uid = pwd.getpwnam(images.user).pw_uid
    with named_container(images, "mine") as p:
        registry = next(d for d in (f"/run/user/{uid}/sarus", f"/tmp/sarus-{uid}")
                        if os.path.exists(os.path.join(d, "mine.json")))
        with open(os.path.join(registry, "mine.json")) as f:
            record = json.load(f)
        planted = os.path.join(registry, "planted.json")
        with open(planted, "w") as f:
            json.dump({"name": "planted", "pid": record["pid"], "startTime": record["startTime"]}, f)
        try:
            pw = pwd.getpwnam(other)
            os.chown(planted, pw.pw_uid, pw.pw_gid)
            assert "planted" not in images.ok("ps").stdout
            r = images("kill", "planted")
            assert r.returncode == 1 and "no running container named 'planted'" in r.stderr, r.stderr
            assert p.poll() is None, "sarus kill followed a record of another user"
        finally:
            os.remove(planted)


def test_a_registry_directory_made_by_another_user_leaves_runs_working(images):
    """/tmp/sarus-<uid> (no /run/user/<uid> here) can be made first by
    anybody: the container runs all the same, unlisted, and says so."""
    other = next(u for u in TEST_USERS if u != images.user)
    uid = pwd.getpwnam(images.user).pw_uid
    assert not os.path.isdir(f"/run/user/{uid}"), "this test expects the registry in /tmp"
    registry = f"/tmp/sarus-{uid}"
    shutil.rmtree(registry, ignore_errors=True)
    run_as(other, ["mkdir", "-m", "755", registry], check=True)
    try:
        r = images("run", BUSYBOX, "echo", "ran")
        assert r.returncode == 0 and r.stdout == "ran\n", r.stderr
        assert f"{registry} is not a private directory of yours" in r.stderr
        assert len(images.ok("ps").stdout.splitlines()) == 1
        # The name also names the runtime's state: checked all the same.
        r = images("run", "--name", "../../../tmp/sarus-escape", BUSYBOX, "true")
        assert r.returncode != 0 and "invalid container name '../../../tmp/sarus-escape'" in r.stderr, r.stderr
    finally:
        shutil.rmtree(registry)


@pytest.mark.parametrize("workdir", ["/proc/1/root/etc", "/sys/kernel"])
def test_a_working_directory_in_proc_or_sys_is_refused(images, workdir):
    """The runtime enters the working directory after it has mounted /proc:
    with --pid=host, /proc/1/root is the host's root."""
    r = images("run", "--pid=host", "-w", workdir, BUSYBOX, "pwd")
    assert r.returncode == 1 and r.stdout == "", r.stdout
    assert f"invalid --workdir '{workdir}': {workdir} is in /{workdir.split('/')[1]}" in r.stderr, r.stderr


def test_cpu_affinity_of_the_caller_is_kept(images):
    # Slurm pins ranks with an affinity mask: the container must keep it.
    r = run_as(images.user, ["taskset", "-c", "1", images.binary, "run", BUSYBOX, "grep",
                             "Cpus_allowed_list", "/proc/self/status"],
               env={"SARUS_CONFIG_FILE": images.config_file})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["Cpus_allowed_list:", "1"]


@pytest.fixture
def profile_file(images):
    """A root-owned file under the prefix's etc (the suid checks want it so)."""
    import json as json_module
    import uuid

    path = os.path.join(images.prefix, "etc", f"seccomp-test-{uuid.uuid4().hex[:8]}.json")

    def write(document):
        with open(path, "w") as f:
            f.write(document if isinstance(document, str) else json_module.dumps(document))
        os.chmod(path, 0o644)
        images.config["seccompProfile"] = path
        images.write_config()
        return path

    yield write
    if os.path.exists(path):
        os.unlink(path)


def test_seccomp_profile_is_enforced(images, profile_file):
    """seccompProfile of sarus.json goes into linux.seccomp: a profile that
    makes chdir fail with EPERM stops `cd` in the container, not the rest."""
    profile_file({"defaultAction": "SCMP_ACT_ALLOW",
                  "syscalls": [{"names": ["chdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]})
    r = images("run", BUSYBOX, "sh", "-c", "echo before; cd /tmp || echo cd-refused")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "before\ncd-refused\n"
    assert "Operation not permitted" in r.stderr


def test_bad_seccomp_profile_is_a_clear_error(images, profile_file):
    path = profile_file({"syscalls": []})
    r = images("run", BUSYBOX, "true")
    assert r.returncode != 0
    assert f"seccompProfile {path}: no \"defaultAction\" string" in r.stderr, r.stderr
    path = profile_file("{")
    r = images("run", BUSYBOX, "true")
    assert r.returncode != 0 and path in r.stderr and "invalid JSON" in r.stderr, r.stderr


def test_apparmor_profile_must_be_loaded(images):
    images.config["apparmorProfile"] = "sarus-test-profile"
    images.write_config()
    r = images("run", BUSYBOX, "true")
    assert r.returncode != 0
    if os.path.exists("/sys/kernel/security/apparmor/profiles"):
        assert "apparmorProfile 'sarus-test-profile' is not loaded on this host" in r.stderr, r.stderr
    else:
        assert "AppArmor is not enabled on this host" in r.stderr, r.stderr
