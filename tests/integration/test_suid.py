"""What only the SUID installation must guarantee: root is never usable by
the caller, no user input steers a privileged path, the installation is
checked before it is trusted, and concurrent ranks share the node safely."""

import json
import os
import shutil
import stat
import subprocess
import uuid

import pytest

from conftest import loaded_image_file, popen_as, private_hooks_dir, run_as, run_concurrently, wait_for_no_leftovers

BUSYBOX = "load/library/busybox"


@pytest.fixture
def suid(suid_sarus, test_images):
    suid_sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    yield suid_sarus
    assert wait_for_no_leftovers(suid_sarus.user) == []


def test_the_binary_really_is_suid_root(suid):
    st = os.stat(suid.binary)
    assert st.st_uid == 0 and st.st_mode & stat.S_ISUID


def test_container_has_no_capabilities(suid):
    r = suid.ok("run", BUSYBOX, "grep", "-E", "^(CapEff|CapPrm|CapBnd|NoNewPrivs)", "/proc/self/status")
    fields = dict(line.split(":\t") for line in r.stdout.strip().split("\n"))
    assert fields["CapEff"] == fields["CapPrm"] == fields["CapBnd"] == "0000000000000000"
    assert fields["NoNewPrivs"] == "1"


def test_setuid_root_binary_in_the_image_does_not_give_root(suid, tmp_path):
    # sarus stores an image as its importer's, but the squashfs is the
    # user's own file: the user can put root-owned setuid programs in it.
    image = loaded_image_file(suid, "busybox")
    tree = tmp_path / "tree"
    subprocess.run(["unsquashfs", "-q", "-n", "-d", str(tree), image], check=True,
                   stdout=subprocess.DEVNULL)
    os.chmod(tree / "bin" / "show-euid", 0o4755)
    crafted = tmp_path / "crafted.squashfs"
    subprocess.run(["mksquashfs", str(tree), str(crafted), "-all-root", "-noappend", "-quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    shutil.copyfile(crafted, image)
    r = suid.ok("run", BUSYBOX, "sh", "-c", "ls -ln /bin/show-euid; /bin/show-euid")
    mode, _, owner = r.stdout.split("\n")[0].split()[:3]
    assert mode.startswith("-rws") and owner == "0"     # the image really has it
    import pwd
    assert r.stdout.split("\n")[1] == str(pwd.getpwnam(suid.user).pw_uid)


def test_other_commands_run_as_the_caller(suid, test_images):
    # load drops root before doing anything: it cannot read what the caller
    # cannot read, and everything it writes belongs to the caller.
    secret = "/root/sarus-test-secret.tar"
    shutil.copy(os.path.join(test_images, "busybox.docker.tar"), secret)
    os.chmod(secret, 0o600)
    try:
        r = suid("load", secret, "secret")
        assert r.returncode == 1 and "Permission denied" in r.stderr
    finally:
        os.remove(secret)
    import pwd
    uid = pwd.getpwnam(suid.user).pw_uid
    for root, dirs, files in os.walk(suid.repository):
        for name in dirs + files:
            assert os.lstat(os.path.join(root, name)).st_uid == uid, name


@pytest.mark.parametrize("source", ["/root", "/etc/shadow"])
def test_mount_of_a_path_the_user_cannot_read_is_refused(suid, source):
    r = suid("run", "--mount", f"type=bind,src={source},dst=/data", BUSYBOX, "true")
    assert r.returncode == 1
    assert f"mount source '{source}' is not readable by you" in r.stderr


@pytest.fixture
def restore_installation(suid):
    changed = []
    yield changed
    for path, mode in changed:
        os.chmod(path, mode)


@pytest.mark.parametrize("relative", ["etc/sarus.json", "etc/sarus.schema.json", "bin", "bin/sarus",
                                      "bin/ssh_hook", "libexec/sarus/ssh", "libexec/sarus/sarus-workdir",
                                      "dropbear/bin", "dropbear/bin/dropbear", "dropbear/bin/dbclient"])
def test_group_writable_installation_files_are_refused(suid, restore_installation, relative):
    path = os.path.join(suid.prefix, relative)
    mode = os.stat(path).st_mode
    restore_installation.append((path, stat.S_IMODE(mode)))
    os.chmod(path, stat.S_IMODE(mode) | stat.S_IWGRP | (stat.S_ISUID if relative == "bin/sarus" else 0))
    command = ["images"] if relative.startswith("etc/") else ["run", BUSYBOX, "true"]
    r = suid(*command)
    assert r.returncode == 1
    assert path in r.stderr and "cannot be group- or world-writable" in r.stderr, r.stderr


@pytest.mark.parametrize("helper", ["sarus-rank-agent", "sarus-workdir"])
def test_the_helpers_next_to_sarus_are_checked_when_prefix_dir_is_elsewhere(suid, restore_installation, helper):
    """Root mounts sarus-rank-agent into shared containers and runs
    sarus-workdir from the directory of the running sarus, not from
    prefixDir: with prefixDir set elsewhere, only prefixDir's files were
    checked, and a helper anyone could write was used as root."""
    elsewhere = "/opt/sarus-test-prefix"
    for directory in ("bin", "libexec/sarus", "dropbear/bin"):
        os.makedirs(os.path.join(elsewhere, directory), mode=0o755, exist_ok=True)
    path = os.path.join(suid.prefix, "libexec", "sarus", helper)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    restore_installation.append((path, mode))
    try:
        suid.config["prefixDir"] = elsewhere
        suid.write_config()
        assert suid("run", BUSYBOX, "true").returncode == 0  # only prefixDir changed: fine
        os.chmod(path, mode | stat.S_IWOTH)
        r = suid("run", BUSYBOX, "true")
        assert r.returncode == 1
        assert path in r.stderr and "cannot be group- or world-writable" in r.stderr, r.stderr
    finally:
        shutil.rmtree(elsewhere)


def test_group_writable_runtime_is_refused(suid, tmp_path):
    runtime = "/opt/sarus-test-runtime/runc"
    os.makedirs(os.path.dirname(runtime), exist_ok=True)
    shutil.copy2(suid.config["runcPath"], runtime)
    os.chmod(runtime, 0o775)
    try:
        suid.config["runcPath"] = runtime
        suid.write_config()
        r = suid("run", BUSYBOX, "true")
        assert r.returncode == 1
        assert runtime in r.stderr and "cannot be group- or world-writable" in r.stderr and "runcPath" in r.stderr
    finally:
        shutil.rmtree(os.path.dirname(runtime))


@pytest.mark.parametrize("args", [["--version"], ["version"], ["help"], ["images"], ["no-such-command"]])
def test_configuration_is_checked_on_every_invocation_and_for_root_too(suid, restore_installation, args):
    config = os.path.join(suid.prefix, "etc", "sarus.json")
    restore_installation.append((config, stat.S_IMODE(os.stat(config).st_mode)))
    os.chmod(config, 0o666)
    expected = (f'Path "{config}" cannot be group- or world-writable in order to prevent other users '
                "from tampering its contents.")
    r = suid(*args)
    assert r.returncode == 1 and r.stderr.strip() == expected, r.stderr
    root = subprocess.run([suid.binary, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert root.returncode == 1 and root.stderr.strip() == expected, root.stderr


def test_configuration_owned_by_a_user_is_refused_in_sarus_words(suid):
    config = os.path.join(suid.prefix, "etc", "sarus.json")
    import pwd
    pw = pwd.getpwnam(suid.user)
    os.chown(config, pw.pw_uid, pw.pw_gid)
    try:
        r = suid("--version")
        assert r.returncode == 1
        assert r.stderr.strip() == (f'Path "{config}" must be owned by root in order to prevent other users from '
                                    f"tampering its contents. Found uid={pw.pw_uid}, gid={pw.pw_gid}.")
    finally:
        os.chown(config, 0, 0)


def test_runtime_owned_by_a_user_is_refused(suid):
    runtime = os.path.join(suid.workdir, "runc")
    shutil.copy2(suid.config["runcPath"], runtime)
    suid.config["runcPath"] = runtime
    suid.write_config()
    r = suid("run", BUSYBOX, "true")
    assert r.returncode == 1
    assert "must be owned by root in order to prevent other users from tampering its contents" in r.stderr


def test_config_file_cannot_be_chosen_by_the_user(suid):
    fake = os.path.join(suid.workdir, "evil.json")
    with open(fake, "w") as f:
        f.write('{"securityChecks": false}')
    r = suid("images", env={"SARUS_CONFIG_FILE": fake})
    assert r.returncode == 0, r.stderr     # the installed configuration was used


def test_annotations_and_env_naming_host_files_write_nothing(suid):
    """The timestamp hook (root, in suid mode) writes where the admin's hook
    file says, never where the caller's annotations or environment do."""
    target = "/etc/sarus-test-must-not-exist"
    admin_log = os.path.join(suid.prefix, "var", f"timestamps-{uuid.uuid4().hex[:8]}.log")
    open(admin_log, "w").close()
    try:
        for sarus in private_hooks_dir(suid, "timestamp"):
            with open(os.path.join(sarus.hooks_dir, "timestamp.json"), "w") as f:
                json.dump({"version": "1.0.0",
                           "hook": {"path": os.path.join(sarus.prefix, "bin", "timestamp_hook"),
                                    "args": ["timestamp_hook"],
                                    "env": [f"TIMESTAMP_HOOK_LOGFILE={admin_log}", "TIMESTAMP_HOOK_MESSAGE=ran"]},
                           "when": {"always": True}, "stages": ["createRuntime"]}, f)
            r = sarus("run", "--annotation", f"com.hooks.logging.file={target}",
                      "--annotation", f"com.hooks.timestamp.logfile={target}",
                      "-e", f"TIMESTAMP_HOOK_LOGFILE={target}", "-e", f"HOOK_LOGFILE={target}",
                      BUSYBOX, "true", env={"TIMESTAMP_HOOK_LOGFILE": target})
            assert r.returncode == 0, r.stderr
            assert "Timestamp hook: ran" in open(admin_log).read(), "the hook did not run"
            assert not os.path.exists(target)
    finally:
        os.remove(admin_log)
        if os.path.exists(target):
            os.remove(target)


def test_symlink_planted_in_the_repository_is_not_followed_by_root(suid, test_images):
    victim = "/etc/sarus-test-victim"
    with open(victim, "w") as f:
        f.write("precious\n")
    try:
        image_dir = os.path.join(suid.repository, "images", "load", "library", "planted")
        run_as(suid.user, ["mkdir", "-p", image_dir], check=True)
        run_as(suid.user, ["ln", "-s", victim, os.path.join(image_dir, "latest.squashfs")], check=True)
        run_as(suid.user, ["ln", "-s", victim, os.path.join(image_dir, "latest.meta")], check=True)
        r = suid("load", os.path.join(test_images, "busybox.docker.tar"), "planted")
        assert r.returncode == 0, r.stderr  # the image is written next to the links, which it replaces
        assert not os.path.islink(os.path.join(image_dir, "latest.squashfs"))
        index = os.path.join(suid.repository, "metadata.json")
        os.rename(index, index + ".orig")
        run_as(suid.user, ["ln", "-s", victim, index], check=True)
        r = suid("load", os.path.join(test_images, "busybox.docker.tar"), "other")
        assert r.returncode == 1 and "metadata.json" in r.stderr, r.stderr
        with open(victim) as f:
            assert f.read() == "precious\n"
        assert os.stat(victim).st_uid == 0
    finally:
        os.remove(victim)


def test_32_concurrent_ranks_on_one_node(suid):
    results = run_concurrently(suid, 32, "run", BUSYBOX, "sh", "-c", "echo {i}")
    failed = [r.stderr for r in results if r.returncode]
    assert failed == []
    assert sorted(int(r.stdout) for r in results) == list(range(32))


def test_kill_9_leaves_no_loop_device_or_mount(suid):
    p = popen_as(suid.user, [suid.binary, "run", BUSYBOX, "sh", "-c", "echo ready; sleep 1000"])
    assert p.stdout.readline() == "ready\n"
    loops = subprocess.run(["losetup", "--list", "--noheadings", "-O", "BACK-FILE"], stdout=subprocess.PIPE,
                           text=True).stdout
    assert ".squashfs" in loops          # there was one while it ran
    p.kill()
    p.wait()
    assert wait_for_no_leftovers(suid.user) == []


def test_a_working_directory_only_the_images_owner_may_enter_works_for_another_user(suid, test_images):
    """A shared (centralized) image of another user, whose WorkingDir the
    caller may not enter (its /root, 0700): the runtime enters a path the
    caller cannot change by name, before it takes the caller's identity, as
    Sarus's runc does; only what the caller can change goes through
    sarus-workdir."""
    from conftest import TEST_USERS
    other = next(u for u in TEST_USERS if u != suid.user)
    suid.ok("load", "--centralized-repository", os.path.join(test_images, "busybox.docker.tar"), "shared")
    try:
        r = run_as(other, [suid.binary, "run", "--centralized-repository", "-w", "/root", "load/library/shared",
                           "sh", "-c", "pwd; ls /root >/dev/null 2>&1 || echo cannot-list"],
                   env={"SARUS_CONFIG_FILE": suid.config_file})
        assert r.returncode == 0, r.stderr
        assert r.stdout == "/root\ncannot-list\n", r.stdout
    finally:
        suid.ok("rmi", "--centralized-repository", "load/library/shared")
