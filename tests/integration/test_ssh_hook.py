"""sarus ssh-keygen and the SSH hook (run --ssh) on one node, in both modes
and as both test users. Each container runs in a network namespace of its
own with only loopback, so its daemon is reached on 127.0.0.1 and nothing
listens on the host's interfaces; tests/integration/test_slurm.py covers SSH
between the containers of several nodes."""

import os
import pwd
import shutil
import subprocess
import uuid

import pytest

from conftest import TEST_USERS, _as_user, busybox_with_layer, private_hooks_dir, run_as, symlink_entries

BUSYBOX = "load/library/busybox"
NO_KEYS = "Failed to check the SSH keys. Hint: try to generate the SSH keys with 'sarus ssh-keygen'."


@pytest.fixture
def ssh(sarus, test_images):
    sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    for _ in private_hooks_dir(sarus, "ssh"):
        sarus.keys_dir = os.path.join(sarus.repo_base, sarus.user, ".oci-hooks", "ssh", "keys")
        install_ssh_hook(sarus)
        yield sarus


def install_ssh_hook(sarus, extra_env=(), base=None):
    import json
    document = {
        "version": "1.0.0",
        "hook": {"path": os.path.join(sarus.prefix, "bin", "ssh_hook"),
                 "args": ["ssh_hook", "start-ssh-daemon"],
                 "env": [f"HOOK_BASE_DIR={base or sarus.repo_base}",
                         f"PASSWD_FILE={os.path.join(sarus.prefix, 'etc', 'passwd')}",
                         f"DROPBEAR_DIR={os.path.join(sarus.prefix, 'dropbear')}",
                         "SERVER_PORT_DEFAULT=15263", *extra_env]},
        "when": {"annotations": {"^com.hooks.ssh.enabled$": "^true$"}},
        "stages": ["createRuntime"],
    }
    path = os.path.join(sarus.hooks_dir, "07-ssh-hook.json")
    with open(path, "w") as f:
        json.dump(document, f)
    os.chmod(path, 0o644)


def in_netns(sarus, *args, timeout=120):
    """sarus ARGS as the test user inside a new network namespace (loopback only)."""
    prefix, env, pw = _as_user(sarus.user, {"SARUS_CONFIG_FILE": sarus.config_file})
    script = 'ip link set lo up && exec "$@"'
    return subprocess.run(["unshare", "--net", "sh", "-c", script, "--", *prefix, sarus.binary, *args],
                          env=env, cwd=pw.pw_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout)


def dropbear_processes(user):
    uid = pwd.getpwnam(user).pw_uid
    r = subprocess.run(["ps", "-u", str(uid), "-o", "comm="], stdout=subprocess.PIPE, text=True)
    return [line for line in r.stdout.split() if line.startswith("dropbear")]


def test_keygen_makes_the_keys_once_and_overwrite_replaces_them(ssh):
    r = ssh.ok("ssh-keygen")
    assert r.stdout == "Successfully generated SSH keys\n" and r.stderr == ""
    names = sorted(os.listdir(ssh.keys_dir))
    assert names == ["authorized_keys", "dropbear_ecdsa_host_key", "id_dropbear"]
    uid = pwd.getpwnam(ssh.user).pw_uid
    assert all(os.stat(os.path.join(ssh.keys_dir, n)).st_uid == uid for n in names)
    with open(os.path.join(ssh.keys_dir, "id_dropbear"), "rb") as f:
        first = f.read()
    r = ssh.ok("ssh-keygen")
    assert r.stdout == (f"SSH keys not generated because they already exist in {ssh.keys_dir}. "
                        "Use the '--overwrite' option to overwrite the existing keys.\n")
    with open(os.path.join(ssh.keys_dir, "id_dropbear"), "rb") as f:
        assert f.read() == first
    ssh.ok("ssh-keygen", "--overwrite")
    with open(os.path.join(ssh.keys_dir, "id_dropbear"), "rb") as f:
        assert f.read() != first
    with open(os.path.join(ssh.keys_dir, "authorized_keys")) as f:
        assert f.read().startswith("ecdsa-sha2-nistp256 ")


def test_run_ssh_without_keys_fails_with_sarus_hint(ssh):
    r = ssh("run", "--ssh", BUSYBOX, "true")
    assert r.returncode == 1
    assert r.stderr.strip() == NO_KEYS


def test_ssh_reaches_the_container_daemon_as_the_user(ssh):
    ssh.ok("ssh-keygen")
    uid = pwd.getpwnam(ssh.user).pw_uid
    r = in_netns(ssh, "run", "--ssh", BUSYBOX, "sh", "-c",
                 "ssh 127.0.0.1 'echo remote-$(id -u)' 2>/dev/null")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"remote-{uid}"
    assert dropbear_processes(ssh.user) == []  # the daemon ended with its container


def test_remote_command_exit_status_reaches_the_caller(ssh):
    ssh.ok("ssh-keygen")
    r = in_netns(ssh, "run", "--ssh", BUSYBOX, "sh", "-c", "ssh 127.0.0.1 'exit 7' 2>/dev/null")
    assert r.returncode == 7, r.stderr


def test_port_annotation_moves_daemon_and_client(ssh):
    ssh.ok("ssh-keygen")
    r = in_netns(ssh, "run", "--ssh", "--annotation", "com.hooks.ssh.port=15999", BUSYBOX, "sh", "-c",
                 "cat /opt/oci-hooks/ssh/dropbear/port; ssh 127.0.0.1 echo over-15999 2>/dev/null")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["15999", "over-15999"]


def test_login_environment_is_the_container_environment(ssh):
    ssh.ok("ssh-keygen")
    r = in_netns(ssh, "run", "--ssh", "-e", "MY_JOB_VAR=it's here", BUSYBOX, "sh", "-c",
                 ". /etc/profile.d/ssh-hook.sh; SSH_CONNECTION=x . /etc/profile.d/ssh-hook.sh; "
                 "echo \"$MY_JOB_VAR\"")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "it's here"


def test_the_hook_removes_nothing_in_a_host_directory(ssh):
    """A host directory the user may only read, bind-mounted at /usr/bin
    where the hook installs ssh, holds an entry `ssh` that is no regular
    file. The hook may not replace it, and in suid mode root must not
    delete it on the host either."""
    ssh.ok("ssh-keygen")
    bin_dir = f"/var/tmp/sarus-bin-{uuid.uuid4().hex[:8]}"
    os.mkdir(bin_dir, 0o755)
    os.symlink("/nonexistent", os.path.join(bin_dir, "ssh"))
    try:
        r = in_netns(ssh, "run", "--ssh", "--mount", f"type=bind,src={bin_dir},dst=/usr/bin", BUSYBOX, "true")
        assert os.path.islink(os.path.join(bin_dir, "ssh")), "the hook deleted a host file"
        assert r.returncode != 0
        assert "cannot write /usr/bin/ssh" in r.stderr, r.stderr
    finally:
        shutil.rmtree(bin_dir)


@pytest.mark.parametrize("destination", ["/opt/oci-hooks/ssh/dropbear/environment", "/opt/oci-hooks/ssh/dropbear/port",
                                         "/opt/oci-hooks/ssh/dropbear/bin/dropbear", "/usr/bin/ssh"])
def test_the_hook_writes_into_no_host_file_bound_where_it_writes(ssh, destination):
    """Attack: a host file the user may only read (here root's, as
    /etc/passwd is), bind-mounted onto a file the hook writes. Root opened
    the name, which crosses into the mount, and wrote the host file: the
    container's environment (the user's to choose, newlines included) or a
    program, owned by root."""
    ssh.ok("ssh-keygen")
    victim = f"/var/tmp/sarus-victim-{uuid.uuid4().hex[:8]}"
    with open(victim, "w") as f:
        f.write("root:x:0:0::/root:/bin/sh\n")
    os.chmod(victim, 0o644)
    try:
        r = in_netns(ssh, "run", "--ssh", "--mount", f"type=bind,src={victim},dst={destination}", BUSYBOX, "true")
        st = os.stat(victim)
        assert open(victim, "rb").read() == b"root:x:0:0::/root:/bin/sh\n", "the hook wrote a host file"
        assert (st.st_uid, oct(st.st_mode)) == (0, "0o100644")
        assert r.returncode != 0
        assert f"cannot write {destination} in the container" in r.stderr, r.stderr
    finally:
        os.remove(victim)


def test_the_hosts_home_ssh_directory_is_never_written(ssh):
    """Home bind-mounted from the host: the container sees the user's own
    ~/.ssh files, and the keys the hook adds stay in the container."""
    ssh.ok("ssh-keygen")
    pw = pwd.getpwnam(ssh.user)
    home_ssh = os.path.join(pw.pw_dir, ".ssh")
    made = not os.path.exists(home_ssh)
    os.makedirs(home_ssh, exist_ok=True)
    marker = os.path.join(home_ssh, "config")
    saved = open(marker).read() if os.path.exists(marker) else None  # the user's own, put back after
    with open(marker, "w") as f:
        f.write("# the user's own\n")
    for path in (home_ssh, marker):
        os.chown(path, pw.pw_uid, pw.pw_gid)
    before = sorted(os.listdir(home_ssh))
    try:
        r = in_netns(ssh, "run", "--ssh", "--mount", f"type=bind,src={pw.pw_dir},dst={pw.pw_dir}", BUSYBOX,
                     "sh", "-c", "cat ~/.ssh/config; ls ~/.ssh; ssh 127.0.0.1 echo ok 2>/dev/null")
        assert r.returncode == 0, r.stderr
        assert "# the user's own" in r.stdout and "id_dropbear" in r.stdout and r.stdout.endswith("ok\n")
        assert sorted(os.listdir(home_ssh)) == before
    finally:
        if saved is None:
            os.remove(marker)
        else:
            with open(marker, "w") as f:
                f.write(saved)
        if made:
            os.rmdir(home_ssh)


def test_a_pidfile_on_the_host_is_written_as_the_user(ssh):
    ssh.ok("ssh-keygen")
    pidfile = os.path.join(ssh.workdir, "dropbear.pid")
    r = in_netns(ssh, "run", "--ssh", "--annotation", f"com.hooks.ssh.pidfile_host={pidfile}", BUSYBOX, "true")
    assert r.returncode == 0, r.stderr
    assert os.stat(pidfile).st_uid == pwd.getpwnam(ssh.user).pw_uid
    with open(pidfile) as f:
        assert f.read().strip().isdigit()


@pytest.mark.parametrize("annotation", [
    "com.hooks.ssh.pidfile_host=/etc/sarus-ssh-attack.pid",
    "com.hooks.ssh.authorize_ssh_key=/etc/shadow",
])
def test_annotations_never_let_root_touch_a_host_path_for_the_user(ssh, annotation):
    """Attack (suid mode above all): paths in com.hooks.ssh.* annotations are
    opened as the user, so /etc stays unwritable and /etc/shadow unreadable."""
    ssh.ok("ssh-keygen")
    r = in_netns(ssh, "run", "--ssh", "--annotation", annotation, BUSYBOX, "sh", "-c", "cat ~/.ssh/authorized_keys")
    assert r.returncode != 0
    assert not os.path.exists("/etc/sarus-ssh-attack.pid")
    assert "root:" not in r.stdout
    assert dropbear_processes(ssh.user) == []
    # refused where the user was refused: the hook opened the path as the user
    path = annotation.split("=", 1)[1]
    assert "[SSH hook] [ERROR]" in r.stderr and path in r.stderr and "Permission denied" in r.stderr, r.stderr


def test_the_container_pidfile_is_read_as_the_user(ssh):
    """Attack: a host directory the user may only list, bind-mounted, holds a
    file only root may read; named as the daemon's pidfile in the container,
    root read it and copied it to the user's pidfile on the host."""
    ssh.ok("ssh-keygen")
    secret_dir = f"/var/tmp/sarus-secret-{uuid.uuid4().hex[:8]}"
    os.mkdir(secret_dir, 0o755)
    secret = os.path.join(secret_dir, "key")
    with open(secret, "w") as f:
        f.write("271828182845\n")  # digits: it would pass for a pid
    os.chmod(secret, 0o600)
    copy = os.path.join(ssh.workdir, f"copied-{uuid.uuid4().hex[:8]}.pid")
    try:
        r = in_netns(ssh, "run", "--ssh", "--mount", f"type=bind,src={secret_dir},dst=/mnt/s",
                     "--annotation", "com.hooks.ssh.pidfile_container=/mnt/s/key",
                     "--annotation", f"com.hooks.ssh.pidfile_host={copy}", BUSYBOX, "true")
        copied = open(copy).read() if os.path.exists(copy) else ""
        assert "271828182845" not in copied, "root copied a root-only file to the user"
        assert r.returncode != 0
        assert f"cannot copy the SSH daemon's pidfile to {copy}" in r.stderr, r.stderr
        assert dropbear_processes(ssh.user) == []
    finally:
        shutil.rmtree(secret_dir)
        if os.path.exists(copy):
            os.remove(copy)


def test_the_hooks_directory_as_an_image_symlink_is_refused(ssh, test_images):
    """An image whose /opt/oci-hooks/ssh/dropbear is a symlink to / would
    have the hook give the container's root directory to the user."""
    ssh.ok("ssh-keygen")
    entries = symlink_entries("opt/oci-hooks/ssh/dropbear", "/")
    archive = f"/var/tmp/sarus-sshlink-{uuid.uuid4().hex[:8]}.tar"
    try:
        busybox_with_layer(test_images, archive, entries)
        ssh.ok("load", archive, "sshlink")
        r = in_netns(ssh, "run", "--ssh", "load/library/sshlink", "stat", "-c", "%u", "/")
        assert r.stdout.strip() != str(pwd.getpwnam(ssh.user).pw_uid), "the user got the container's /"
        assert r.returncode != 0
        assert "not a directory of the SSH hook's own" in r.stderr, r.stderr
    finally:
        os.remove(archive)


def test_image_labels_cannot_switch_the_ssh_hook_on(ssh, test_images):
    """Attack by an image's author: labels that switch the SSH hook on and
    name the user's host files as the key to authorize (copied into the
    container, where the image's program reads it) and as the daemon's
    pidfile (truncated). Labels reach no hook switch and no SSH key."""
    ssh.ok("ssh-keygen")
    private = os.path.join(ssh.workdir, f"id-{uuid.uuid4().hex[:8]}")
    victim = os.path.join(ssh.workdir, f"bashrc-{uuid.uuid4().hex[:8]}")
    run_as(ssh.user, ["sh", "-c", f"echo ssh-ed25519 PRIVATE-KEY-MATERIAL > {private}; echo precious > {victim}"],
           check=True)
    labels = {"com.hooks.ssh.enabled": "true", "com.hooks.slurm-global-sync.enabled": "true",
              "com.hooks.ssh.authorize_ssh_key": private, "com.hooks.ssh.pidfile_host": victim}
    archive = f"/var/tmp/sarus-sshlabels-{uuid.uuid4().hex[:8]}.tar"
    try:
        busybox_with_layer(test_images, archive, [], labels=labels)
        ssh.ok("load", archive, "sshlabels")
        r = in_netns(ssh, "--verbose", "run", "load/library/sshlabels", "sh", "-c",
                     "cat ~/.ssh/authorized_keys 2>/dev/null; echo done")
        assert r.returncode == 0, r.stderr
        assert "PRIVATE-KEY-MATERIAL" not in r.stdout, "the image read a file of the user's host"
        assert open(victim).read() == "precious\n", "the image had the hook truncate a file of the user's"
        assert "image label 'com.hooks.ssh.enabled' ignored" in r.stderr, r.stderr
        assert dropbear_processes(ssh.user) == []
    finally:
        os.remove(archive)


def test_a_home_ssh_leading_onto_proc_is_refused(ssh, test_images):
    """An image whose ~/.ssh is a symlink to /proc would have the hook cover
    the container's /proc with a tmpfs of the user's, where the runtime
    writes as root."""
    ssh.ok("ssh-keygen")
    entries = symlink_entries(pwd.getpwnam(ssh.user).pw_dir + "/.ssh", "/proc")
    archive = f"/var/tmp/sarus-sshproc-{uuid.uuid4().hex[:8]}.tar"
    try:
        busybox_with_layer(test_images, archive, entries)
        ssh.ok("load", archive, "sshproc")
        r = in_netns(ssh, "run", "--ssh", "load/library/sshproc", "sh", "-c", "stat -f -c %T /proc")
        assert r.returncode != 0 and "tmpfs" not in r.stdout, (r.stdout, r.stderr)
        assert "resolves to /proc in the container, which the runtime provides" in r.stderr, r.stderr
        assert dropbear_processes(ssh.user) == []
    finally:
        os.remove(archive)


def test_keygen_refuses_a_directory_made_first_by_another_user(ssh):
    """In a shared scratch base, another user who makes <base>/<user> first
    would choose the keys the user's containers trust."""
    other = next(u for u in TEST_USERS if u != ssh.user)
    taken = os.path.join(ssh.repo_base, ssh.user)
    shutil.rmtree(taken)
    os.chmod(ssh.repo_base, 0o1777)
    run_as(other, ["mkdir", "-m", "777", taken], check=True)
    r = ssh("ssh-keygen")
    assert r.returncode != 0 and f"{taken} belongs to {other}" in r.stderr, r.stderr
    assert os.listdir(taken) == []


def test_the_hook_refuses_keys_another_user_put_in_place(ssh):
    """The hook's base a shared scratch (HOOK_BASE_DIR need not be the
    repository's): keys another user put at <base>/<user>/.oci-hooks/ssh/keys
    would let that user log in to the user's containers."""
    other = next(u for u in TEST_USERS if u != ssh.user)
    ssh.ok("ssh-keygen")
    scratch = os.path.join(ssh.workdir, "scratch")
    os.mkdir(scratch)
    os.chmod(scratch, 0o1777)
    planted = os.path.join(ssh.workdir, "planted")  # the other user's keys, say
    shutil.copytree(ssh.keys_dir, planted)
    other_pw = pwd.getpwnam(other)
    for name in [planted] + [os.path.join(planted, f) for f in os.listdir(planted)]:
        os.chown(name, other_pw.pw_uid, other_pw.pw_gid)
    keys = os.path.join(scratch, ssh.user, ".oci-hooks", "ssh", "keys")
    run_as(other, ["sh", "-c", f"mkdir -p {keys} && cp {planted}/* {keys} && chmod -R a+rX {scratch}/{ssh.user}"],
           check=True)
    install_ssh_hook(ssh, base=scratch)
    r = in_netns(ssh, "run", "--ssh", BUSYBOX, "true")
    assert r.returncode != 0, "the hook took keys another user put in place"
    assert f"{os.path.join(scratch, ssh.user)} belongs to " in r.stderr, r.stderr
    assert dropbear_processes(ssh.user) == []


def test_a_root_owned_symlink_below_the_hook_base_is_followed(ssh):
    """<HOOK_BASE_DIR>/<user> a root-owned symlink to the user's directory
    (a site's /home/alice -> /gpfs/alice): it cannot be replaced, so its
    owner does not matter; in userns mode the hook sees root as nobody."""
    ssh.ok("ssh-keygen")
    base = os.path.join(ssh.workdir, "hookbase")
    os.mkdir(base, 0o755)
    os.symlink(os.path.join(ssh.repo_base, ssh.user), os.path.join(base, ssh.user))
    install_ssh_hook(ssh, base=base)
    r = in_netns(ssh, "run", "--ssh", BUSYBOX, "sh", "-c", "ssh 127.0.0.1 echo remote 2>/dev/null")
    assert r.returncode == 0 and r.stdout.strip() == "remote", r.stderr
    assert dropbear_processes(ssh.user) == []


def test_a_daemon_that_cannot_start_in_the_container_is_not_blamed_on_the_port(ssh):
    """A failure of the daemon's set-up (here a Dropbear the container
    cannot execute) said "is the port in use?", which sent users after the
    wrong cause."""
    import shutil
    dropbear = os.path.join(ssh.prefix, f"dropbear-broken-{uuid.uuid4().hex[:8]}")
    try:
        os.makedirs(os.path.join(dropbear, "bin"))
        for path in (dropbear, os.path.join(dropbear, "bin")):
            os.chmod(path, 0o755)
        with open(os.path.join(dropbear, "bin", "dropbear"), "w") as f:
            f.write("#!/nonexistent/interpreter\n")
        os.chmod(os.path.join(dropbear, "bin", "dropbear"), 0o755)
        shutil.copy(os.path.join(ssh.prefix, "dropbear", "bin", "dbclient"), os.path.join(dropbear, "bin"))
        install_ssh_hook(ssh, extra_env=[f"DROPBEAR_DIR={dropbear}"])
        ssh.ok("ssh-keygen")
        r = in_netns(ssh, "run", "--ssh", BUSYBOX, "true")
        assert r.returncode != 0
        assert "cannot execute /opt/oci-hooks/ssh/dropbear/bin/dropbear in the container" in r.stderr, r.stderr
        assert "the SSH daemon was not started: its set-up in the container failed" in r.stderr, r.stderr
        assert "is the port in use" not in r.stderr, r.stderr
    finally:
        shutil.rmtree(dropbear, ignore_errors=True)


def test_keygen_makes_private_directories_whatever_the_umask(ssh):
    prefix, env, pw = _as_user(ssh.user, {"SARUS_CONFIG_FILE": ssh.config_file})
    r = subprocess.run(prefix + ["sh", "-c", 'umask 000 && exec "$0" ssh-keygen', ssh.binary], env=env,
                       cwd=pw.pw_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert r.returncode == 0, r.stderr
    hooks = os.path.join(ssh.repo_base, ssh.user, ".oci-hooks")
    for path in (hooks, os.path.join(hooks, "ssh"), ssh.keys_dir):
        assert os.stat(path).st_mode & 0o777 == 0o700, path


def test_ssh_implies_the_sync_hook_and_a_private_pid_namespace(ssh):
    from test_slurm_global_sync_hook import configure
    configure(ssh)
    ssh.ok("ssh-keygen")
    r = in_netns(ssh, "--verbose", "run", "--ssh", BUSYBOX, "sh", "-c", "echo $$")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"
    assert "[Slurm global sync hook] [INFO] the container does not run under Slurm" in r.stderr


@pytest.mark.parametrize("userns", [["--userns=keep-id"], []], ids=["keep-id", "default"])
def test_standalone_in_rootless_podman(test_images, userns):
    """The same ssh_hook from rootless Podman's --hooks-dir (a network
    namespace of its own): the daemon joins the container's namespaces and
    runs as the container's user. Under Podman's default user namespace that
    user is root inside, and the keys are still the user's who runs Podman."""
    import shutil
    import tempfile
    from conftest import busybox_in_podman, podman_hooks_dir, sarus_prefix
    prefix = sarus_prefix("userns")
    work = tempfile.mkdtemp(prefix="sarus-podman-ssh-", dir="/var/tmp")
    try:
        log = os.path.join(work, "hooks.log")
        hooks_dir = podman_hooks_dir(work, "ssh.json", {
            "version": "1.0.0",
            "hook": {"path": os.path.join(prefix, "bin", "ssh_hook"),
                     "args": ["ssh_hook", "start-ssh-daemon"],
                     "env": [f"HOOK_BASE_DIR={work}", "PASSWD_FILE=/etc/passwd",
                             f"DROPBEAR_DIR={prefix}/dropbear", "HOOK_ROOTLESS=true"]},
            "when": {"annotations": {"^com.hooks.ssh.enabled$": "^true$"}},
            "stages": ["createRuntime"]})
        os.chmod(work, 0o1777)  # a shared scratch as HOOK_BASE_DIR: sticky, or the hook refuses it
        keygen = run_as("sarustest", [os.path.join(prefix, "bin", "ssh_hook"), "keygen"],
                        env={"HOOK_BASE_DIR": work, "PASSWD_FILE": "/etc/passwd",
                             "DROPBEAR_DIR": f"{prefix}/dropbear"})
        assert keygen.returncode == 0, keygen.stderr
        with busybox_in_podman("sarustest", test_images) as image:
            r = run_as("sarustest", ["podman", "--hooks-dir", hooks_dir, "run", "--rm", "--network=none", *userns,
                                     "--annotation", "com.hooks.ssh.enabled=true",
                                     "--annotation", f"run.oci.hooks.stderr={log}", image,
                                     "sh", "-c", "ssh 127.0.0.1 'echo remote-$(id -u)' 2>/dev/null"], timeout=120)
        inside = pwd.getpwnam("sarustest").pw_uid if userns else 0
        assert r.stdout.strip() == f"remote-{inside}", (r.stderr, open(log).read())
    finally:
        shutil.rmtree(work, ignore_errors=True)
