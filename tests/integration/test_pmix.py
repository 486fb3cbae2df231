"""PMIx v3 support (enablePMIxv3Support): the server's rendezvous directory
and Slurm's step directories reach the container, and the server's
components become PMIX_MCA_* variables. Slurm is simulated by a fake
`scontrol` in the caller's PATH; in both modes and as both test users."""

import os
import pwd
import shutil
import tempfile

import pytest

from conftest import CLEAN_PATH

BUSYBOX = "load/library/busybox"


@pytest.fixture
def pmix(sarus, test_images):
    sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    sarus.config["enablePMIxv3Support"] = True
    sarus.write_config()
    return sarus


@pytest.fixture
def scratch(sarus):
    """A directory tree the test user owns, outside /var (a userMounts prefix
    that sarus.json forbids) unless a test wants it there."""
    directory = tempfile.mkdtemp(prefix="sarus-pmix-", dir="/tmp")
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def owned_dir(path, user, content=None):
    os.makedirs(path, exist_ok=True)
    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, 0o700)
    if content is not None:
        with open(os.path.join(path, "rendezvous"), "w") as f:
            f.write(content)
        os.chown(os.path.join(path, "rendezvous"), pw.pw_uid, pw.pw_gid)


def test_server_tmpdir_is_mounted_and_mca_variables_are_set(pmix, scratch):
    server = os.path.join(scratch, "prte.host.1", "dvm.42")
    owned_dir(server, pmix.user, "server socket\n")
    env = {"PMIX_SERVER_TMPDIR": server, "PMIX_PTL_MODULE": "tcp,usock", "PMIX_SECURITY_MODE": "native",
           "PMIX_GDS_MODULE": "ds21,ds12,hash"}
    r = pmix.ok("--verbose", "run", "-e", "PMIX_MCA_gds=hash", BUSYBOX, "sh", "-c",
                f"cat {server}/rendezvous; echo client > {server}/client; env | grep ^PMIX_MCA | sort",
                env=env)
    assert r.stdout.splitlines() == ["server socket", "PMIX_MCA_gds=hash", "PMIX_MCA_psec=native",
                                     "PMIX_MCA_ptl=tcp,usock"]
    assert f"PMIx: PMIX_SERVER_TMPDIR {server} mounted" in r.stderr
    with open(os.path.join(server, "client")) as f:
        assert f.read() == "client\n"
    assert os.stat(os.path.join(server, "client")).st_uid == pwd.getpwnam(pmix.user).pw_uid


def test_nothing_happens_when_disabled(pmix, scratch):
    pmix.config["enablePMIxv3Support"] = False
    pmix.write_config()
    server = os.path.join(scratch, "dvm")
    owned_dir(server, pmix.user, "x")
    r = pmix.ok("run", BUSYBOX, "sh", "-c", f"test -e {server} && echo MOUNTED; env | grep ^PMIX_MCA; true",
                env={"PMIX_SERVER_TMPDIR": server, "PMIX_PTL_MODULE": "tcp"})
    assert r.stdout == ""


def test_server_tmpdir_of_the_launcher_is_mounted_under_var(pmix):
    # /var is forbidden to --mount by the shipped sarus.json; a launcher's
    # directory there (Slurm's spool) is not the user's choice of a mount.
    server = tempfile.mkdtemp(prefix="sarus-pmix-", dir="/var/tmp")
    try:
        owned_dir(server, pmix.user, "under var\n")
        r = pmix.ok("run", BUSYBOX, "cat", f"{server}/rendezvous", env={"PMIX_SERVER_TMPDIR": server})
        assert r.stdout == "under var\n"
    finally:
        shutil.rmtree(server, ignore_errors=True)


def test_server_tmpdir_must_be_the_callers(pmix):
    r = pmix("run", BUSYBOX, "true", env={"PMIX_SERVER_TMPDIR": "/etc/ssl"})
    assert r.returncode != 0
    assert "PMIX_SERVER_TMPDIR '/etc/ssl' belongs to uid 0: only a directory of yours" in r.stderr
    r = pmix("run", BUSYBOX, "true", env={"PMIX_SERVER_TMPDIR": "/no/such/dir"})
    assert r.returncode != 0
    assert "PMIX_SERVER_TMPDIR '/no/such/dir' is not a directory" in r.stderr


FAKE_SCONTROL = """#!/bin/sh
# the uid it ran as, to check a SUID sarus did not run it as root
id -u > {log}
[ "$1 $2" = "show config" ] || exit 2
cat <<'END'
Configuration data as of 2026-11-22T10:00:00
SlurmdSpoolDir          = {base}/spool/%n
TmpFS                   = {base}/tmpfs
MPI Plugins Configuration:
PMIxCliTmpDirBase       = (null)
END
exit {status}
"""


def fake_slurm(scratch, status=0):
    bindir = os.path.join(scratch, "bin")
    os.makedirs(bindir)
    script = os.path.join(bindir, "scontrol")
    with open(script, "w") as f:
        f.write(FAKE_SCONTROL.format(log=os.path.join(scratch, "log", "scontrol-uid"), base=scratch, status=status))
    os.chmod(script, 0o755)
    os.makedirs(os.path.join(scratch, "log"))
    os.chmod(os.path.join(scratch, "log"), 0o777)
    return {"PATH": f"{bindir}:{CLEAN_PATH}", "SLURM_MPI_TYPE": "pmix_v3", "SLURM_JOB_ID": "77",
            "SLURM_STEP_ID": "3", "SLURMD_NODENAME": "nodeA"}


def test_slurm_step_directories_are_mounted(pmix, scratch):
    uid = pwd.getpwnam(pmix.user).pw_uid
    env = fake_slurm(scratch)
    server = os.path.join(scratch, "spool", "nodeA", "pmix.77.3")
    client = os.path.join(scratch, "tmpfs", f"spmix_appdir_{uid}_77.3")
    owned_dir(server, pmix.user, "server\n")
    owned_dir(client, pmix.user, "client\n")
    env["PMIX_SERVER_TMPDIR"] = server
    r = pmix.ok("--verbose", "run", BUSYBOX, "sh", "-c",
                f"cat {server}/rendezvous {client}/rendezvous; test -e {scratch}/tmpfs/spmix_appdir_77.3 || echo NO-OLD-NAME",
                env=env)
    assert r.stdout.splitlines() == ["server", "client", "NO-OLD-NAME"]
    assert f"PMIx: Slurm step directory {server} mounted" in r.stderr
    assert f"PMIx: PMIX_SERVER_TMPDIR {server} is in a mounted Slurm directory" in r.stderr
    with open(os.path.join(scratch, "log", "scontrol-uid")) as f:
        assert int(f.read()) == uid


def test_a_slurm_step_directory_name_another_user_made_a_symlink_is_not_mounted(pmix, scratch):
    """The names of Slurm's step directories in a shared /tmp are known in
    advance. Another user's symlink there to a directory of the caller's
    passed the owner check (stat followed it), and the link, retargeted
    after the check, could have had the other user's directory mounted."""
    other = "sarusnosub" if pmix.user == "sarustest" else "sarustest"
    uid = pwd.getpwnam(pmix.user).pw_uid
    env = fake_slurm(scratch)
    tmpfs = os.path.join(scratch, "tmpfs")
    os.makedirs(tmpfs)
    os.chmod(tmpfs, 0o1777)
    own = os.path.join(scratch, "own")
    owned_dir(own, pmix.user, "the caller's own\n")
    client = os.path.join(tmpfs, f"spmix_appdir_{uid}_77.3")
    os.symlink(own, client)
    pw = pwd.getpwnam(other)
    os.lchown(client, pw.pw_uid, pw.pw_gid)
    r = pmix("--verbose", "run", BUSYBOX, "sh", "-c", f"cat {client}/rendezvous 2>/dev/null || echo NOT-MOUNTED",
             env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "NOT-MOUNTED\n", r.stdout
    assert f"PMIx: no Slurm step directory {client}" in r.stderr, r.stderr


def test_failing_scontrol_is_a_warning(pmix, scratch):
    env = fake_slurm(scratch, status=1)
    r = pmix.ok("run", BUSYBOX, "echo", "ran", env=env)
    assert r.stdout == "ran\n"
    assert "show config' failed (exit code 1): the step's PMIx directories are not mounted" in r.stderr


def test_outside_the_pmix_plugin_scontrol_is_not_run(pmix, scratch):
    env = fake_slurm(scratch)
    env["SLURM_MPI_TYPE"] = "pmi2"
    pmix.ok("run", BUSYBOX, "true", env=env)
    assert not os.path.exists(os.path.join(scratch, "log", "scontrol-uid"))
