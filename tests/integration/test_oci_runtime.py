"""Slurm's native containers: `sarus bundle IMAGE DIR` and
<prefix>/libexec/sarus/sarus-oci-runtime, the OCI runtime commands that
oci.conf calls (etc/templates/oci.conf).

First the front end driven exactly as Slurm 22.05 drives it, in both modes
as both test users: `run --bundle` of a bundle made by `sarus bundle` after
Slurm's rewrite of config.json (args, env, cwd, an absolute root.path),
`state` before, during and after, `kill` and `delete` of a running one, exit
codes. Then the real thing on the multi-node test cluster (slurm_cluster.py)
with the installed oci.conf template: `srun -N2 --container=BUNDLE`,
`sbatch --container`, scancel, and Slurm 22.05's limit of one task per node."""

import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import TEST_USERS, cgroup_leftovers, popen_as, processes, run_as

BUSYBOX = "load/library/busybox"
LAYERED = "load/library/layered"
BUSYBOX_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "IMAGE_VAR=from-image"]


USED_IDS = []


@pytest.fixture(autouse=True)
def nothing_left_behind():
    """No process of a container these tests ran is left (by its id, which
    is in sarus's command line: other sessions may run containers of the
    same users meanwhile)."""
    yield
    ids = list(USED_IDS)
    USED_IDS.clear()
    found = lambda: [f"{pid}: {cmd}" for pid, cmd, _ in processes() if any(i in cmd for i in ids)]
    assert wait_for(lambda: found() == [], timeout=10), found()


def runtime_of(sarus):
    return os.path.join(sarus.prefix, "libexec", "sarus", "sarus-oci-runtime")


def oci(sarus, *args, env=None, **kw):
    """sarus-oci-runtime ARGS as the sarus's user, with the environment
    slurmstepd gives it (its own, not the job's)."""
    full_env = {"HOME": "/root", "SLURMD_NODENAME": "node1"}
    full_env.update(env or {})
    return run_as(sarus.user, [runtime_of(sarus), *args], env=full_env, **kw)


def new_id():
    USED_IDS.append(f"node1.test.{uuid.uuid4().hex[:8]}.0.0")
    return USED_IDS[-1]


def state_of(sarus, container_id):
    r = oci(sarus, "state", container_id)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return json.loads(r.stdout)


@pytest.fixture
def images(sarus, test_images):
    sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    return sarus


@pytest.fixture
def bundle(images):
    """A bundle of busybox made by `sarus bundle`, in the user's workdir."""
    path = os.path.join(images.workdir, "bundle")
    images.ok("bundle", BUSYBOX, path)
    return path


def slurm_rewrite(bundle, sarus, args=None, env=(), cwd=None):
    """What slurmstepd does before RunTimeRun: a copy of config.json in a
    spool directory of its own, with the srun command as process.args, the
    job's environment after the bundle's, root.path made absolute. Returns
    the spool directory (the %b Slurm passes)."""
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    if args is not None:
        config["process"]["args"] = list(args)
    job_env = [f"SARUS_CONFIG_FILE={sarus.config_file}", "HOME=/home/" + sarus.user, "SLURM_JOB_ID=7",
               "PATH=/usr/bin:/bin", *env]
    config["process"]["env"] = config["process"]["env"] + job_env
    if cwd is not None:
        config["process"]["cwd"] = cwd
    config["root"]["path"] = os.path.join(bundle, "rootfs")
    config["mounts"] = []
    spool = tempfile.mkdtemp(prefix="spool-", dir=sarus.workdir)
    with open(os.path.join(spool, "config.json"), "w") as f:
        json.dump(config, f)
    os.chmod(spool, 0o755)
    os.chmod(os.path.join(spool, "config.json"), 0o644)
    return spool


def uid_of(user):
    return pwd.getpwnam(user).pw_uid


def wait_for(predicate, timeout=20):
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            return False
        time.sleep(0.05)
    return True


# --- sarus bundle -----------------------------------------------------------

def test_bundle_is_a_config_and_an_empty_rootfs(images, bundle):
    assert sorted(os.listdir(bundle)) == ["config.json", "rootfs"]
    assert os.listdir(os.path.join(bundle, "rootfs")) == []
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    assert config["root"] == {"path": "rootfs", "readonly": True}
    assert config["annotations"] == {"com.sarus.image": "load/library/busybox:latest",
                                     "com.sarus.repository": "local"}
    process = config["process"]
    assert process["args"] == ["/bin/sh", "-c", "echo hello from busybox"]   # the image's Cmd
    assert process["env"] == BUSYBOX_ENV
    assert process["cwd"] == "/"
    # the bundle belongs to the user and holds no copy of the image
    assert os.stat(bundle).st_uid == os.stat(images.repository).st_uid
    assert sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(bundle) for f in fs) < 4096


def test_bundle_into_an_existing_empty_directory(images):
    path = os.path.join(images.workdir, "empty")
    run_as(images.user, ["mkdir", path], check=True)
    images.ok("bundle", BUSYBOX, path)
    assert sorted(os.listdir(path)) == ["config.json", "rootfs"]


def test_bundle_refusals_leave_nothing_behind(images, bundle):
    def error_of(*args):
        r = images("bundle", *args)
        assert r.returncode == 1, r.stdout
        assert r.stdout == ""
        return r.stderr.rstrip()

    afile = os.path.join(images.workdir, "a-file")
    run_as(images.user, ["touch", afile], check=True)
    before = sorted(os.listdir(images.workdir))
    missing = os.path.join(images.workdir, "missing")
    assert error_of("load/library/nope", missing) == "Image load/library/nope:latest is not available"
    assert error_of(BUSYBOX, bundle) == f"{bundle} is not empty: a bundle needs a new or empty directory"
    assert error_of(BUSYBOX, afile) == f"{afile} exists and is not a directory"
    deep = os.path.join(images.workdir, "no", "such")
    assert error_of(BUSYBOX, deep) == f"cannot create {deep}: No such file or directory"
    assert error_of("///", missing) == "Invalid image reference '///'\nSee 'sarus help bundle'"
    assert error_of(BUSYBOX) == "Too few arguments for command 'bundle'\nSee 'sarus help bundle'"
    assert error_of(BUSYBOX, missing, "extra") == "Too many arguments for command 'bundle'\nSee 'sarus help bundle'"
    assert sorted(os.listdir(images.workdir)) == before
    assert sorted(os.listdir(bundle)) == ["config.json", "rootfs"]


def test_bundle_of_the_centralized_repository(sarus, test_images):
    sarus.ok("load", "--centralized-repository", os.path.join(test_images, "busybox.oci.tar"), "shared")
    path = os.path.join(sarus.workdir, "bundle")
    assert sarus("bundle", "load/library/shared", path).returncode == 1    # not in the local one
    sarus.ok("bundle", "--centralized-repository", "load/library/shared", path)
    with open(os.path.join(path, "config.json")) as f:
        assert json.load(f)["annotations"]["com.sarus.repository"] == "centralized"
    spool = slurm_rewrite(path, sarus, args=["cat", "/etc/os-release"])
    r = oci(sarus, "run", "--bundle", spool, new_id())
    assert (r.returncode, r.stderr) == (0, "")
    assert 'NAME="sarus busybox test image"' in r.stdout


def test_bundle_help(images):
    out = images.ok("help", "bundle").stdout
    assert out.startswith("Usage: sarus bundle [OPTIONS] REPOSITORY[:TAG] DIR\n")
    assert "--centralized-repository" in out


# --- sarus-oci-runtime as Slurm drives it -----------------------------------

def test_run_of_the_bundle_as_made_runs_the_image_command(images, bundle):
    cid = new_id()
    r = oci(images, "run", "--bundle", bundle, cid, env={"SARUS_CONFIG_FILE": images.config_file})
    assert (r.returncode, r.stdout, r.stderr) == (0, "hello from busybox\n", "")
    assert state_of(images, cid)["status"] == "stopped"


def test_run_of_slurms_rewritten_config(images, bundle):
    spool = slurm_rewrite(bundle, images, cwd="/tmp", env=["FOO=from the job", "IMAGE_VAR=from-the-job"],
                          args=["sh", "-c", 'echo "$FOO|$IMAGE_VAR|$HOME|$SLURM_JOB_ID|$SLURMD_NODENAME"; pwd; '
                                            'echo "$PATH"; cat /etc/os-release; exit 5'])
    cid = new_id()
    r = oci(images, "run", "--bundle", spool, cid)
    assert r.returncode == 5, r.stderr
    lines = r.stdout.splitlines()
    # the job's variables; an image variable keeps the image's value (as `sarus run` has it,
    # and as Slurm merges a bundle's env over the job's); nothing of the runtime's own HOME=/root
    assert lines[0] == f"from the job|from-image|/home/{images.user}|7|node1"
    assert lines[1] == "/tmp"
    assert lines[2] == BUSYBOX_ENV[0][len("PATH="):]
    assert 'NAME="sarus busybox test image"' in lines


def test_state_kill_delete_of_a_running_container(images, bundle):
    spool = slurm_rewrite(bundle, images, args=[
        "sh", "-c", "trap 'echo got TERM; exit 42' TERM; echo ready; while true; do sleep 0.1; done"])
    cid = new_id()
    assert state_of(images, cid) == {"ociVersion": "1.0.2", "id": cid, "status": "stopped", "pid": 0,
                                     "bundle": ""}
    p = popen_as(images.user, [runtime_of(images), "run", "--bundle", spool, cid], env={"HOME": "/root"})
    try:
        assert p.stdout.readline() == "ready\n"
        state = state_of(images, cid)
        assert state["status"] == "running"
        assert state["pid"] == p.pid        # the runtime became sarus: Slurm's task is sarus
        assert state["bundle"] == spool
        assert state["annotations"] == {"com.sarus.image": "load/library/busybox:latest"}
        assert (cid + " ") in images.ok("ps").stdout      # the id is the container's name
        # Slurm 22.05 asks as root, naming the user (--user %u)
        as_root = subprocess.run([runtime_of(images), "--user", images.user, "state", cid],
                                 capture_output=True, text=True, env={"HOME": "/root"})
        assert json.loads(as_root.stdout) == state, as_root.stderr
        r = oci(images, "delete", cid)
        assert r.returncode == 1
        assert r.stderr == f"sarus-oci-runtime: container '{cid}' is running: kill it first, or delete --force\n"
        assert oci(images, "kill", "-a", cid, "SIGTERM").returncode == 0
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 42, err
    assert "got TERM" in out
    assert state_of(images, cid)["status"] == "stopped"
    r = oci(images, "kill", cid, "KILL")
    assert (r.returncode, r.stderr) == (1, f"sarus-oci-runtime: container '{cid}' is not running\n")
    records = [os.path.join(d, cid + ".json") for d in
               (f"/run/user/{uid_of(images.user)}/sarus-oci", f"/tmp/sarus-oci-{uid_of(images.user)}")]
    assert any(os.path.exists(r) for r in records)
    as_root = subprocess.run([runtime_of(images), "--user", images.user, "delete", "--force", cid])
    assert as_root.returncode == 0
    assert not any(os.path.exists(r) for r in records)
    assert oci(images, "delete", "--force", cid).returncode == 0    # deleting twice is no error


def test_a_fifo_as_the_record_does_not_hang_roots_commands(images):
    """Slurm runs state, kill and delete as root (--user %u): a FIFO the user
    put in place of the record kept root's open waiting for a writer."""
    cid = new_id()
    uid = uid_of(images.user)
    session = f"/run/user/{uid}"
    directory = f"{session}/sarus-oci" if os.path.isdir(session) else f"/tmp/sarus-oci-{uid}"
    run_as(images.user, ["sh", "-c", f'mkdir -p -m 700 {directory} && mkfifo {directory}/{cid}.json'], check=True)
    try:
        for command in (["state", cid], ["kill", "-a", cid, "SIGTERM"], ["delete", "--force", cid]):
            r = subprocess.run([runtime_of(images), "--user", images.user, *command], capture_output=True,
                               text=True, env={"HOME": "/root"}, timeout=10)
            assert "Traceback" not in r.stderr
        state = subprocess.run([runtime_of(images), "--user", images.user, "state", cid], capture_output=True,
                               text=True, env={"HOME": "/root"}, timeout=10)
        assert json.loads(state.stdout)["status"] == "stopped", state.stderr
    finally:
        fifo = os.path.join(directory, cid + ".json")
        if os.path.exists(fifo):
            os.remove(fifo)


def test_a_state_directory_made_by_another_user_leaves_slurm_working(images, bundle):
    """/tmp/sarus-oci-<uid> can be made first by anybody: the record goes to
    a private fallback, where root's state, kill and delete (Slurm's) find it."""
    uid = uid_of(images.user)
    assert not os.path.isdir(f"/run/user/{uid}"), "this test expects the records in /tmp"
    other = next(u for u in TEST_USERS if u != images.user)
    default = f"/tmp/sarus-oci-{uid}"
    shutil.rmtree(default, ignore_errors=True)
    run_as(other, ["mkdir", "-m", "755", default], check=True)
    spool = slurm_rewrite(bundle, images, args=["sh", "-c", "echo ready; sleep 1000"])
    cid = new_id()
    as_root = lambda *args: subprocess.run([runtime_of(images), "--user", images.user, *args],
                                           capture_output=True, text=True, env={"HOME": "/root"}, timeout=20)
    p = popen_as(images.user, [runtime_of(images), "run", "--bundle", spool, cid], env={"HOME": "/root"})
    try:
        assert p.stdout.readline() == "ready\n", p.stderr.read()
        state = as_root("state", cid)
        assert json.loads(state.stdout)["status"] == "running", state.stderr
        assert as_root("kill", cid, "KILL").returncode == 0
        _, err = p.communicate(timeout=20)
        assert f"{default} is not a private directory of yours: the record goes to {default}." in err, err
        assert json.loads(as_root("state", cid).stdout)["status"] == "stopped"
        fallbacks = glob.glob(f"{default}.*")
        assert len(fallbacks) == 1, fallbacks
        assert as_root("delete", cid).returncode == 0
        assert os.listdir(default) == [], "nothing was written in the other user's directory"
        assert os.listdir(fallbacks[0]) == [], "root's delete removed the record, and no directory"
        r = run_as(images.user, [runtime_of(images), "delete", cid], env={"HOME": "/root"})
        assert r.returncode == 0, r.stderr
        assert not os.path.exists(fallbacks[0]), "the user's own delete removed the empty fallback"
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
        shutil.rmtree(default, ignore_errors=True)
        for fallback in glob.glob(f"{default}.*"):
            shutil.rmtree(fallback, ignore_errors=True)


def test_empty_fallbacks_go_with_the_users_next_run_and_root_removes_none(images, bundle):
    """Root's delete (Slurm's) removes no directory by its name in /tmp,
    which the user may swap; the user's next run removes an empty
    /tmp/sarus-oci-<uid>.XXXXXX of the user's, and none of another user's."""
    uid = uid_of(images.user)
    other = next(u for u in TEST_USERS if u != images.user)
    mine, planted = f"/tmp/sarus-oci-{uid}.oldone", f"/tmp/sarus-oci-{uid}.planted"
    run_as(images.user, ["mkdir", "-m", "700", mine], check=True)
    run_as(other, ["mkdir", "-m", "700", planted], check=True)
    try:
        cid = new_id()
        as_root = subprocess.run([runtime_of(images), "--user", images.user, "delete", cid],
                                 capture_output=True, text=True, env={"HOME": "/root"})
        assert as_root.returncode == 0, as_root.stderr
        assert os.path.isdir(mine), "root removed a directory by its name in /tmp"
        spool = slurm_rewrite(bundle, images, args=["true"])
        r = run_as(images.user, [runtime_of(images), "run", "--bundle", spool, cid], env={"HOME": "/root"})
        assert r.returncode == 0, r.stderr
        assert not os.path.exists(mine), "the user's empty fallback went with the next run"
        assert os.path.isdir(planted), "another user's directory was removed"
    finally:
        shutil.rmtree(mine, ignore_errors=True)
        shutil.rmtree(planted, ignore_errors=True)


def test_delete_force_kills_a_running_container(images, bundle):
    spool = slurm_rewrite(bundle, images, args=["sh", "-c", "echo ready; sleep 1000"])
    cid = new_id()
    p = popen_as(images.user, [runtime_of(images), "run", "--bundle", spool, cid], env={"HOME": "/root"})
    try:
        assert p.stdout.readline() == "ready\n"
        assert oci(images, "delete", "--force", cid).returncode == 0
        p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == -signal.SIGKILL
    assert state_of(images, cid)["status"] == "stopped"


def test_a_second_run_with_a_running_id_is_refused(images, bundle):
    spool = slurm_rewrite(bundle, images, args=["sh", "-c", "echo ready; sleep 1000"])
    cid = new_id()
    p = popen_as(images.user, [runtime_of(images), "run", "--bundle", spool, cid], env={"HOME": "/root"})
    try:
        assert p.stdout.readline() == "ready\n"
        r = oci(images, "run", "--bundle", spool, cid)
        assert r.returncode == 1
        assert r.stderr == f"sarus-oci-runtime: a container with id '{cid}' is running already (pid {p.pid})\n"
    finally:
        oci(images, "delete", "--force", cid)
        p.communicate(timeout=20)


def test_errors_are_one_line(images, bundle):
    def error_of(*args):
        r = oci(images, *args)
        assert r.returncode == 1 and r.stdout == "", r
        assert r.stderr.count("\n") == 1, r.stderr
        return r.stderr.rstrip()

    cid = new_id()
    assert error_of("run", "--bundle", "/nonexistent", cid) == \
        "sarus-oci-runtime: cannot read /nonexistent/config.json: No such file or directory"
    spool = slurm_rewrite(bundle, images)
    with open(os.path.join(spool, "config.json")) as f:
        config = json.load(f)
    del config["annotations"]["com.sarus.image"]
    with open(os.path.join(spool, "config.json"), "w") as f:
        json.dump(config, f)
    assert error_of("run", "--bundle", spool, cid) == ("sarus-oci-runtime: config.json has no annotation "
                                                       "com.sarus.image: make the bundle with 'sarus bundle IMAGE DIR'")
    assert error_of("state", "../x") == \
        "sarus-oci-runtime: invalid container id '../x': use letters, digits, '_', '.', '-', '@'"
    assert error_of("kill", cid, "SIGNOPE") == "sarus-oci-runtime: unknown signal 'SIGNOPE'"
    assert error_of("kill", cid) == f"sarus-oci-runtime: container '{cid}' is not running"
    assert error_of("create", cid).startswith("sarus-oci-runtime: unknown command 'create'")
    assert error_of("state").startswith("sarus-oci-runtime: 'state' takes one ID")
    assert error_of("--user", "root", "state", cid) == \
        "sarus-oci-runtime: --user root: only root acts on the containers of another user"


def test_an_image_that_is_gone_fails_the_task(images, bundle):
    images.ok("rmi", BUSYBOX)
    spool = slurm_rewrite(bundle, images)
    r = oci(images, "run", "--bundle", spool, new_id())
    assert r.returncode == 1
    assert r.stderr == "Image load/library/busybox:latest is not available\n"


# --- on the Slurm test cluster (slurm_cluster.py) -----------------------------

NODES = ["node1", "node2", "node3"]


def failure(r):
    return f"rc {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"


def slurmd_log(cluster):
    text = ""
    for node in NODES:
        try:
            with open(os.path.join(cluster.state, "log", f"slurmd-{node}.log")) as f:
                text += f.read()
        except OSError:
            pass
    return text


@pytest.fixture
def on_cluster(slurm_cluster, sarus, test_images):
    """The sarus (both modes, both users) with busybox and layered loaded,
    a bundle of each in its workdir (which the nodes share, as /var/tmp),
    and the installed oci.conf template for its prefix on the cluster.
    Afterwards: nothing of the user is left on the nodes, and no step
    logged a JSON parsing error."""
    sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    sarus.ok("load", os.path.join(test_images, "layered.oci.tar"), "layered")
    bundles = {}
    for name, image in (("busybox", BUSYBOX), ("layered", LAYERED)):
        bundles[name] = os.path.join(sarus.workdir, f"bundle-{name}")
        sarus.ok("bundle", image, bundles[name])
    with open(os.path.join(sarus.prefix, "etc", "templates", "oci.conf")) as f:
        oci_conf = f.read().replace("@PREFIX@", sarus.prefix)
    log_before = slurmd_log(slurm_cluster).count("JSON parsing error")
    cgroups_before = set(cgroup_leftovers())
    with slurm_cluster.oci_conf(oci_conf):
        yield slurm_cluster, sarus, bundles
    found = slurm_cluster.wait_for_no_leftovers(sarus.user, timeout=20)
    for entry in sorted(set(cgroup_leftovers()) - cgroups_before, key=len, reverse=True):
        try:
            os.rmdir(entry.split(": ", 1)[1])    # an expected failure's leak must not fail later tests
        except OSError:
            pass
    assert not found, "left behind:\n" + "\n".join(found)
    assert slurmd_log(slurm_cluster).count("JSON parsing error") == log_before


def test_srun_container_on_two_nodes(on_cluster):
    cluster, sarus, bundles = on_cluster
    r = cluster.srun(sarus.user, "-N2", f"--container={bundles['busybox']}", "hostname", sarus=sarus)
    assert r.returncode == 0, failure(r)
    assert sorted(r.stdout.split()) == ["node1", "node2"], failure(r)
    assert "error" not in r.stderr, failure(r)
    r = cluster.srun(sarus.user, "-N2", f"--container={bundles['layered']}", "cat", "/etc/os-release", sarus=sarus)
    assert r.returncode == 0, failure(r)
    assert r.stdout == 'NAME="sarus layered test image"\nVERSION_ID=4\n' * 2, failure(r)


def test_srun_container_exit_code_environment_and_cwd(on_cluster):
    cluster, sarus, bundles = on_cluster
    r = cluster.srun(sarus.user, "-N1", "-w", "node3", f"--container={bundles['busybox']}", "sh", "-c",
                     'echo "$IMAGE_VAR|$SLURM_JOB_ID|$SLURMD_NODENAME|$HOME|$PATH|$SLURM_PROCID"; pwd; exit 3',
                     sarus=sarus)
    assert r.returncode == 3, failure(r)
    assert "task 0: Exited with exit code 3" in r.stderr, failure(r)
    values, cwd = r.stdout.splitlines()
    image_var, job_id, node, home, path, procid = values.split("|")
    assert (image_var, node, home) == ("from-image", "node3", pwd.getpwnam(sarus.user).pw_dir)
    assert job_id.isdigit()
    assert path == BUSYBOX_ENV[0][len("PATH="):]    # the image's, as with sarus run
    assert procid == ""     # Slurm 22.05 writes no task variables into config.json
    assert cwd == "/"


def test_sbatch_container(on_cluster):
    cluster, sarus, bundles = on_cluster
    out = os.path.join(sarus.workdir, "batch.out")
    r = cluster.run(sarus.user, ["sbatch", "--wait", "-w", "node2", f"--container={bundles['layered']}",
                                 f"--output={out}", "--wrap", "cat /etc/os-release; hostname; echo $0"],
                    sarus=sarus)
    assert r.returncode == 0, failure(r)
    with open(out) as f:
        # the batch script is bind-mounted at /tmp/slurm/startup (config.json's mounts)
        assert f.read() == 'NAME="sarus layered test image"\nVERSION_ID=4\nnode2\n/tmp/slurm/startup\n'


def test_scancel_of_a_container_step(on_cluster):
    cluster, sarus, bundles = on_cluster
    name = f"oci-scancel-{sarus.mode}-{sarus.user}"
    p = cluster.popen(sarus.user, ["srun", "-N2", f"--job-name={name}", f"--container={bundles['busybox']}",
                                   "sh", "-c", "echo started; sleep 1000"], sarus=sarus)
    try:
        assert p.stdout.readline() == "started\n"
        assert p.stdout.readline() == "started\n"
        job = subprocess.run(["squeue", "--noheader", f"--name={name}", "--format=%i"], capture_output=True,
                             text=True, env=cluster.env()).stdout.split()[0]
        # what Slurm's RunTimeQuery (as root, in the node) sees
        uid = pwd.getpwnam(sarus.user).pw_uid
        r = cluster.in_node("node1", [runtime_of(sarus), "--user", sarus.user, "state",
                                      f"node1.{sarus.user}.{job}.0.0"])
        state = json.loads(r.stdout)
        assert state["status"] == "running", r
        with open(f"/proc/{state['pid']}/status") as f:
            assert f"Uid:\t{uid}\t" in f.read()
        start = time.time()
        assert cluster.scancel(sarus.user, job).returncode == 0
        out, err = p.communicate(timeout=60)
        assert "CANCELLED" in err, err
        assert "Timed out waiting for job step to complete" not in err, err
        assert time.time() - start < 20
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


def test_one_task_per_node_and_what_to_use_instead(on_cluster):
    cluster, sarus, bundles = on_cluster
    # Slurm 22.05 refuses a second task of a --container step on a node
    refusal = "container setup failed: Task count specification invalid"
    before = slurmd_log(cluster).count(refusal)
    r = cluster.srun(sarus.user, "-N2", "-n4", "--ntasks-per-node=2", f"--container={bundles['busybox']}", "hostname",
                     sarus=sarus)
    assert r.returncode != 0, failure(r)
    assert "Application launch failed" in r.stderr, failure(r)
    assert slurmd_log(cluster).count(refusal) > before
    # srun of sarus run has every task
    r = cluster.srun(sarus.user, "-N2", "-n4", "--ntasks-per-node=2", "sarus", "run", BUSYBOX, "sh", "-c",
                     "echo $SLURM_PROCID $(hostname)", sarus=sarus)
    assert r.returncode == 0, failure(r)
    assert sorted(r.stdout.splitlines()) == ["0 node1", "1 node1", "2 node2", "3 node2"], failure(r)
