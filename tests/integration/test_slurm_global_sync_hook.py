"""slurm_global_sync_hook on one node: the Slurm task of each container comes
from its environment (SLURM_JOB_ID, SLURM_STEP_ID, SLURM_PROCID,
SLURM_NTASKS), so concurrent `sarus run -e ...` stand in for the tasks of a
step here; tests/integration/test_slurm.py runs it under a real srun."""

import os
import random
import threading
import time

import pytest

from conftest import private_hooks_dir
from test_hooks import add_hook

BUSYBOX = "load/library/busybox"


@pytest.fixture
def synced(sarus, test_images):
    sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    for _ in private_hooks_dir(sarus, "sync"):
        sarus.sync_dir = os.path.join(sarus.repo_base, sarus.user, ".oci-hooks", "slurm-global-sync")
        yield sarus


def configure(sarus, timeout=30):
    passwd = os.path.join(sarus.prefix, "etc", "passwd")
    add_hook(sarus, "slurm_global_sync_hook.json", "slurm_global_sync_hook",
             env=[f"HOOK_BASE_DIR={sarus.repo_base}",
                  f"PASSWD_FILE={passwd if os.path.exists(passwd) else '/etc/passwd'}",
                  f"SLURM_GLOBAL_SYNC_TIMEOUT={timeout}"],
             when={"annotations": {"^com.hooks.slurm-global-sync.enabled$": "^true$"}},
             stages=["createContainer"])


def task(sarus, job, procid, ntasks, *command, step="0"):
    return sarus("run", "--annotation", "com.hooks.slurm-global-sync.enabled=true",
                 "-e", f"SLURM_JOB_ID={job}", "-e", f"SLURM_STEP_ID={step}",
                 "-e", f"SLURM_PROCID={procid}", "-e", f"SLURM_NTASKS={ntasks}",
                 BUSYBOX, *(command or ["true"]))


def in_thread(function):
    result = {}
    thread = threading.Thread(target=lambda: result.update(r=function()))
    thread.start()
    return thread, result


def test_containers_wait_for_the_last_task(synced):
    configure(synced)
    job = str(random.randrange(10**6, 10**7))
    started = time.time()
    threads = [in_thread(lambda i=i: task(synced, job, i, 3, "busybox", "date", "+%s")) for i in (0, 1)]
    time.sleep(2.5)
    last = task(synced, job, 2, 3, "busybox", "date", "+%s")
    assert last.returncode == 0, last.stderr
    for thread, result in threads:
        thread.join(60)
        r = result["r"]
        assert r.returncode == 0, r.stderr
        # the command ran only after the last task's container existed
        assert int(r.stdout.strip()) >= int(started + 2), (started, r.stdout)
    assert not os.path.exists(os.path.join(synced.sync_dir, f"job-{job}-step-0"))


def test_consecutive_steps_do_not_collide(synced):
    configure(synced)
    job = str(random.randrange(10**6, 10**7))
    for step in ("0", "1"):
        threads = [in_thread(lambda i=i: task(synced, job, i, 2, step=step)) for i in (0, 1)]
        for thread, result in threads:
            thread.join(60)
            assert result["r"].returncode == 0, result["r"].stderr
    assert os.listdir(synced.sync_dir) == []


def test_timeout_names_the_missing_tasks_and_leaves_nothing(synced):
    configure(synced, timeout=2)
    job = str(random.randrange(10**6, 10**7))
    r = task(synced, job, 0, 4)
    assert r.returncode != 0
    assert f"timed out after 2 s waiting for the arrival of tasks 1-3 of Slurm job {job} step 0" in r.stderr, r.stderr
    assert os.listdir(synced.sync_dir) == []


def test_outside_slurm_the_hook_lets_the_container_run(synced):
    configure(synced)
    r = synced("--verbose", "run", "--annotation", "com.hooks.slurm-global-sync.enabled=true", BUSYBOX, "true")
    assert r.returncode == 0, r.stderr
    assert "does not run under Slurm" in r.stderr


def test_ids_that_would_escape_the_sync_directory_are_refused(synced):
    configure(synced)
    r = task(synced, "../../x", 0, 1)
    assert r.returncode != 0
    assert "SLURM_JOB_ID='../../x' in the container's environment is not a Slurm id" in r.stderr, r.stderr


@pytest.mark.parametrize("user", ["sarustest", "sarusnosub"])
def test_standalone_in_rootless_podman_the_task_is_the_users(test_images, user):
    """From rootless Podman's default user namespace the container's user is
    root inside: the hook's directory is still that of the user who runs
    Podman (not HOOK_BASE_DIR/root, which a second user could not use)."""
    import pwd
    import shutil
    import tempfile
    from conftest import busybox_in_podman, podman_hooks_dir, run_as, sarus_prefix
    work = tempfile.mkdtemp(prefix="sarus-podman-sync-", dir="/var/tmp")
    try:
        base = os.path.join(work, "base")
        os.makedirs(base)
        hooks_dir = podman_hooks_dir(work, "sync.json", {
            "version": "1.0.0",
            "hook": {"path": os.path.join(sarus_prefix("userns"), "bin", "slurm_global_sync_hook"),
                     "args": ["slurm_global_sync_hook"],
                     "env": [f"HOOK_BASE_DIR={base}", "PASSWD_FILE=/etc/passwd",
                             "SLURM_GLOBAL_SYNC_TIMEOUT=10", "HOOK_LOG_LEVEL=debug"]},
            "when": {"always": True}, "stages": ["createRuntime"]})
        os.chmod(work, 0o755)
        os.chmod(base, 0o1777)
        log = os.path.join(work, f"hooks-{user}.log")
        open(log, "w").close()
        os.chown(log, pwd.getpwnam(user).pw_uid, -1)
        with busybox_in_podman(user, test_images) as image:
            for job in ("71", "72"):  # a second task finds the directory the first made
                r = run_as(user, ["podman", "--hooks-dir", hooks_dir, "run", "--rm", "--network=none",
                                  "-e", f"SLURM_JOB_ID={job}", "-e", "SLURM_STEP_ID=0", "-e", "SLURM_PROCID=0",
                                  "-e", "SLURM_NTASKS=1", "--annotation", f"run.oci.hooks.stderr={log}",
                                  image, "true"], timeout=120)
                assert r.returncode == 0, (r.stderr, open(log).read() if os.path.exists(log) else "")
        assert sorted(os.listdir(base)) == [user]
        assert os.stat(os.path.join(base, user)).st_uid == pwd.getpwnam(user).pw_uid
        with open(log) as f:
            assert f.read().count(f"arrives in {base}/{user}/.oci-hooks/slurm-global-sync/job-7") == 2
    finally:
        shutil.rmtree(work, ignore_errors=True)
