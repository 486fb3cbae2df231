"""The scripts an admin runs as root: configure_installation.sh and the
image builders. Root writes by path there, so a user who owns or made a
directory on the way must not be able to lead those writes, and a site's
configuration must survive the reruns every upgrade needs."""

import json
import os
import shutil
import stat
import subprocess
import uuid

import pytest

from conftest import MAKE_IMAGES, REPO, chown_tree, run_as

BUILD = os.path.join(REPO, "build")


def install(prefix):
    subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix], stdout=subprocess.DEVNULL, check=True)
    os.chmod(prefix, 0o755)


def configure(prefix, *args, via=None):
    return subprocess.run([os.path.join(prefix, "configure_installation.sh"), *args, via or prefix],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def prefix():
    path = f"/opt/sarus-tools-test-{uuid.uuid4().hex[:8]}"
    install(path)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def victim():
    """A root-only file that nothing here may touch."""
    path = f"/var/tmp/sarus-victim-{uuid.uuid4().hex[:8]}"
    with open(path, "w") as f:
        f.write("root's\n")
    os.chmod(path, 0o600)
    yield path
    os.remove(path)


def untouched(path):
    st = os.stat(path)
    return stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0 and open(path).read() == "root's\n"


def test_the_mode_may_come_after_the_prefix(prefix):
    r = subprocess.run([os.path.join(prefix, "configure_installation.sh"), prefix, "--mode", "userns"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert r.returncode == 0, r.stderr
    assert not os.stat(os.path.join(prefix, "bin", "sarus")).st_mode & stat.S_ISUID, "a userns request made SUID"
    assert json.load(open(os.path.join(prefix, "etc", "sarus.json")))["mode"] == "userns"
    r = subprocess.run([os.path.join(prefix, "configure_installation.sh"), prefix, "--mode", "userns", "extra"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert r.returncode == 1 and "one PREFIX only" in r.stderr, r.stderr


def test_root_writes_nothing_through_a_users_prefix(prefix, victim):
    """A userns prefix a user owns: root's configure would write the passwd
    cache wherever the user's symlink leads."""
    chown_tree(prefix, "sarustest")
    run_as("sarustest", ["ln", "-s", victim, os.path.join(prefix, "etc", "passwd")], check=True)
    r = configure(prefix, "--mode", "userns")
    assert untouched(victim), "root wrote through the user's symlink"
    assert r.returncode == 1 and "run this as its owner" in r.stderr, r.stderr
    # its owner may configure it, without any privilege
    r = run_as("sarustest", [os.path.join(prefix, "configure_installation.sh"), "--mode", "userns", prefix])
    assert r.returncode == 0, r.stderr
    assert untouched(victim) and not os.path.islink(os.path.join(prefix, "etc", "passwd"))


def test_a_symlinked_prefix_becomes_roots_before_it_is_made_suid(prefix):
    """chown -R does not follow the symlink it is given: sarus became SUID
    to the account that had installed it."""
    chown_tree(prefix, "sarustest")
    link = prefix + "-link"
    os.symlink(prefix, link)
    try:
        r = configure(prefix, via=link)
        assert r.returncode == 0, r.stderr
        sarus = os.stat(os.path.join(prefix, "bin", "sarus"))
        assert sarus.st_uid == 0 and sarus.st_mode & stat.S_ISUID, "sarus is SUID to another user"
        for dirpath, dirnames, filenames in os.walk(prefix):
            for name in [dirpath] + [os.path.join(dirpath, n) for n in filenames]:
                assert os.lstat(name).st_uid == 0, f"{name} is not root's"
    finally:
        os.remove(link)


def test_a_sites_configuration_survives_an_upgrade(prefix):
    """Every `cmake --install` clears the SUID bit, so configure runs after
    every upgrade: it must not put the template back over the site's file."""
    assert configure(prefix).returncode == 0
    config = os.path.join(prefix, "etc", "sarus.json")
    site = json.load(open(config))
    site["seccompProfile"] = "/etc/site-seccomp.json"
    with open(config, "w") as f:
        json.dump(site, f)
    install(prefix)  # the upgrade
    assert not os.stat(os.path.join(prefix, "bin", "sarus")).st_mode & stat.S_ISUID
    for _ in range(2):
        r = configure(prefix)
        assert r.returncode == 0 and "Kept the existing" in r.stdout, r.stdout + r.stderr
    assert json.load(open(config))["seccompProfile"] == "/etc/site-seccomp.json", "the site's setting is gone"
    assert os.stat(os.path.join(prefix, "bin", "sarus")).st_mode & stat.S_ISUID
    r = configure(prefix, "--mode", "userns")  # another mode: a new file, the old one kept
    assert r.returncode == 0, r.stderr
    assert json.load(open(config))["mode"] == "userns"
    backups = [n for n in os.listdir(os.path.dirname(config)) if n.startswith("sarus.json.bak-")]
    assert len(backups) == 1
    assert json.load(open(os.path.join(prefix, "etc", backups[0])))["seccompProfile"] == "/etc/site-seccomp.json"


def test_image_builders_refuse_a_directory_another_user_made(victim):
    """/var/tmp is everyone's: a directory of the images made first by a
    user, with a symlink in it, had root chmod what the link names (and
    load the user's archives in the quickstart)."""
    outdir = f"/var/tmp/sarus-images-{uuid.uuid4().hex[:8]}"
    run_as("sarustest", ["mkdir", "-m", "755", outdir], check=True)
    run_as("sarustest", ["mkdir", "-m", "755", os.path.join(outdir, "debs")], check=True)
    run_as("sarustest", ["ln", "-s", victim, os.path.join(outdir, "debs", "busybox-static_9_amd64.deb")], check=True)
    try:
        r = subprocess.run(["/usr/bin/python3", MAKE_IMAGES, outdir], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        assert untouched(victim), "root changed a file through the user's directory"
        assert r.returncode != 0 and f"{outdir} belongs to sarustest" in r.stdout, r.stdout
    finally:
        shutil.rmtree(outdir)


def test_a_sarus_set_user_id_to_another_account_refuses_to_run(prefix):
    """An installation never made root's (a configure that failed, or was
    forgotten) but with the SUID bit: every caller's sarus ran as the
    account that had installed it."""
    sarus = os.path.join(prefix, "bin", "sarus")
    chown_tree(prefix, "sarustest")
    os.chmod(sarus, 0o4755)
    r = run_as("sarusnosub", [sarus, "version"])
    assert r.returncode == 1 and r.stdout == "", r.stdout
    assert "set-user-ID or set-group-ID to another account than root" in r.stderr, r.stderr


def test_a_kept_configuration_naming_a_runtime_that_is_gone_is_refused(prefix):
    """SARUS_WITH_CRUN=0 removes the prefix's static crun (to take Debian's
    security update): the sarus.json configure keeps must not name it."""
    assert configure(prefix).returncode == 0
    config = os.path.join(prefix, "etc", "sarus.json")
    static = os.path.join(prefix, "libexec", "sarus", "crun")
    assert json.load(open(config))["runcPath"] == static
    os.remove(static)
    r = configure(prefix)
    assert r.returncode == 1 and f"names the runtime {static} (runcPath), which is gone" in r.stderr, r.stderr
    r = configure(prefix, "--reset-config")
    assert r.returncode == 0, r.stderr
    assert json.load(open(config))["runcPath"] == "/usr/bin/crun"


def test_prepare_host_says_when_it_could_not_open_dev_fuse():
    """/dev/fuse it cannot make 0666 (read-only here) leaves userns mode
    unable to mount images: the script must fail, not say 'host ready'."""
    node = f"/var/tmp/sarus-fuse-{uuid.uuid4().hex[:8]}"
    os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(10, 229))
    try:
        script = (f"mount --bind {node} /dev/fuse && mount -o remount,bind,ro /dev/fuse && "
                  f"exec {os.path.join(REPO, 'tools', 'prepare_host.sh')}")
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "chmod 0666 /dev/fuse failed" in r.stderr and "host ready" not in r.stdout, r.stdout + r.stderr
    finally:
        os.remove(node)
    assert stat.S_IMODE(os.stat("/dev/fuse").st_mode) == 0o666


def test_a_skipped_unit_test_fails_the_run(tmp_path):
    """GTEST_SKIP exits 0, which CTest counts as a pass."""
    (tmp_path / "CTestTestfile.cmake").write_text(
        'add_test(skips "/bin/sh" "-c" "echo \'[  SKIPPED ] Suite.Name (0 ms)\'")\n'
        'add_test(passes "/bin/true")\n')
    script = os.path.join(REPO, "tools", "run_ctest.sh")
    env = {k: v for k, v in os.environ.items() if k != "SARUS_TESTS_ALLOW_SKIPS"}
    r = subprocess.run([script, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert r.returncode == 1 and "Suite.Name" in r.stderr, r.stdout + r.stderr
    r = subprocess.run([script, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env={**env, "SARUS_TESTS_ALLOW_SKIPS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_kept_configuration_is_read_whatever_its_layout(prefix):
    """A sarus.json without "mode" (Sarus 1.7's) is userns mode, as sarus
    reads it; compact JSON is read as well as the template's layout; one
    without containersPolicy on a host without a system policy is said."""
    config = os.path.join(prefix, "etc", "sarus.json")
    assert configure(prefix, "--mode", "userns").returncode == 0
    site = json.load(open(config))
    del site["mode"], site["containersPolicy"]
    with open(config, "w") as f:
        json.dump(site, f, separators=(",", ":"))
    saved = "/etc/containers/policy.json.sarus-tools-test"
    os.rename("/etc/containers/policy.json", saved)
    try:
        r = configure(prefix, "--mode", "userns")
    finally:
        os.rename(saved, "/etc/containers/policy.json")
    assert r.returncode == 0 and "Kept the existing" in r.stdout, r.stdout + r.stderr
    assert f"runtime {os.path.join(prefix, 'libexec', 'sarus', 'crun')}" in r.stdout, r.stdout
    assert "has no containersPolicy" in r.stderr and "pull and load will refuse" in r.stderr, r.stderr
    kept = open(config).read()
    r = configure(prefix)  # suid: the file may be a Sarus 1.7 one, meant for suid mode
    assert r.returncode == 1 and 'has no "mode" (a Sarus 1.7 file?)' in r.stderr, r.stdout + r.stderr
    assert open(config).read() == kept


def test_a_suid_prefix_below_a_directory_others_may_write_to_is_refused():
    """The SUID sarus refuses to run below such a directory, sticky or not:
    the script must not make it SUID there."""
    prefix = f"/var/tmp/sarus-tools-test-{uuid.uuid4().hex[:8]}"
    install(prefix)
    try:
        r = configure(prefix)
        assert r.returncode == 1 and "/var/tmp is writable by group or others" in r.stderr, r.stdout + r.stderr
        assert not os.stat(os.path.join(prefix, "bin", "sarus")).st_mode & stat.S_ISUID
    finally:
        shutil.rmtree(prefix)
