"""Open MPI in sarus containers across the nodes of the Slurm test cluster
(slurm_cluster.py: node1..node3, each in its own network, UTS and mount
namespace; /var/tmp shared), in both modes and as both test users.

The image is tests/images/make_openmpi_image.py's openmpi.tar: the host's
Debian Open MPI 4.1.4 with its PMIx 4.2.2 at the host's paths (prefix /usr),
busybox, and /usr/local/bin/ring, which prints one line per rank, passes a
message round all ranks (each appends RANK@HOST) and does an MPI_Allreduce.

Two ways to start it:

* PMIx: `srun --mpi=pmix sarus run IMAGE ring`, one container per rank,
  wired up by the PMIx servers of Slurm's slurmstepd. Needs
  "enablePMIxv3Support": true (without it the clients cannot open the
  server's shared-memory store and print PMIX ERRORs, then fall back).
  With two ranks of a node in two containers Open MPI's shared-memory BTL
  (vader) needs `--pid=host`: in sarus' default private PID namespaces every
  rank is PID 1 and opal's mmap shmem takes the peer's segment for its own.
* SSH (Sarus' "OpenMPI communication through SSH"): `srun sarus run --ssh`
  on every node, mpirun in task 0's container starts orted in the others
  through the SSH hook's Dropbear; the other tasks wait for a file that
  task 0 writes on a shared bind-mounted directory when mpirun is done.
  Debian's Open MPI is built with Slurm support and would use srun inside
  the container: `--mca plm rsh --mca ras ^slurm` make it use ssh and the
  hostfile's slots (Sarus' example image had Open MPI built --with-slurm=no).
  orted is /usr/bin/orted, found on Dropbear's PATH without --prefix."""

import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import MODES, REPO, TEST_USERS, _sarus_session, cgroup_leftovers, private_hooks_dir

MAKE_OPENMPI_IMAGE = os.path.join(REPO, "tests", "images", "make_openmpi_image.py")
DEFAULT_OPENMPI_IMAGE_DIR = "/var/tmp/sarus-test-images/openmpi"
IMAGE = "load/library/openmpi"
NODES = ["node1", "node2", "node3"]
SHARED = "/shared"          # container path of the job's shared directory (SSH tests)
# userns: every container has a user namespace of its own, so the vader
# BTL's cross-memory attach (CMA) between ranks of two containers is refused
# with a warning and copies go through the shared segment; "none" says so
# up front (suid containers share the host's user namespace: CMA works).
NO_CMA = ["-e", "OMPI_MCA_btl_vader_single_copy_mechanism=none"]


@pytest.fixture(scope="session")
def openmpi_image():
    """Path of openmpi.tar, (re)built when missing or stale (the script
    decides; cheap when up to date, and then it needs no root)."""
    outdir = os.environ.get("SARUS_TEST_OPENMPI_IMAGES", DEFAULT_OPENMPI_IMAGE_DIR)
    r = subprocess.run(["/usr/bin/python3", MAKE_OPENMPI_IMAGE, outdir],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        pytest.fail(f"make_openmpi_image.py {outdir} failed:\n{r.stdout}")
    path = os.path.join(outdir, "openmpi.tar")
    if os.geteuid() == 0:
        os.chmod(outdir, 0o755)
        os.chmod(path, 0o644)       # for the test users
    return path


def install_hook_from_template(s, name, **env):
    """<prefix>/etc/templates/hooks.d/NAME.json into the private hooks dir,
    with @PREFIX@ expanded and `env` replacing the template's settings."""
    with open(os.path.join(s.prefix, "etc", "templates", "hooks.d", f"{name}.json")) as f:
        document = json.loads(f.read().replace("@PREFIX@", s.prefix))
    settings = dict(e.split("=", 1) for e in document["hook"]["env"])
    settings.update(env)
    document["hook"]["env"] = [f"{k}={v}" for k, v in settings.items()]
    path = os.path.join(s.hooks_dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(document, f)
    os.chmod(path, 0o644)


@pytest.fixture(scope="module", params=[(m, u) for m in MODES for u in TEST_USERS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def ompi(request, openmpi_image):
    """A sarus with the Open MPI image loaded, enablePMIxv3Support, SSH keys,
    and the SSH and Slurm global sync hooks (from the installed templates,
    HOOK_BASE_DIR its repository base) in a private hooks dir."""
    for s in _sarus_session(*request.param):
        s.ok("load", openmpi_image, "openmpi")
        s.config["enablePMIxv3Support"] = True
        s.write_config()
        for _ in private_hooks_dir(s, "openmpi"):
            install_hook_from_template(s, "ssh_hook", HOOK_BASE_DIR=s.repo_base)
            install_hook_from_template(s, "slurm_global_sync_hook", HOOK_BASE_DIR=s.repo_base,
                                       SLURM_GLOBAL_SYNC_TIMEOUT="60")
            s.ok("ssh-keygen")
            yield s


def failure(r):
    return f"rc {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"


def check_ring(out, hosts, what):
    """The ring's output for len(hosts) ranks, rank i on hosts[i]."""
    n = len(hosts)
    lines = out.splitlines()
    ranks = sorted(line for line in lines if line.startswith("rank "))
    assert ranks == sorted(f"rank {i} of {n} on {h} library: Open MPI v4.1.4" for i, h in enumerate(hosts)), what
    ring = " ".join(f"{i}@{h}" for i, h in enumerate(hosts))
    assert f"ring ok: {n} ranks: {ring}" in lines, what
    assert f"allreduce ok: sum {n * (n - 1) // 2}" in lines, what


def assert_no_leftovers(cluster, user):
    found = cluster.wait_for_no_leftovers(user, timeout=15)
    assert not found, "left behind:\n" + "\n".join(found)


def crashed_in_open_mpis_start_up(r):
    """Open MPI 4.1.4 (Debian 12's), directly launched over PMIx, now and
    then segfaults inside MPI_Init, with or without containers: a fragment
    from a faster peer meets a NULL callback (see
    test_slurm.py::test_openmpi_wires_up_over_pmix_across_nodes). Its
    signal handler's backtrace then names ompi_mpi_init."""
    return r.returncode != 0 and "Segmentation fault" in r.stderr and "ompi_mpi_init" in r.stderr


def srun_sarus(cluster, s, *args):
    """srun ARGS as the sarus' user, `sarus` being that sarus; a step that
    hangs ends at the job's time limit (1 min, Slurm's least), before the
    timeout. A step hit by Open MPI's start-up crash is run once more; any
    other failure, or that crash twice, is the test's result."""
    for attempt in (1, 2):
        begin = time.time()
        r = cluster.srun(s.user, "--time=1", *args, sarus=s, timeout=100)
        took = time.time() - begin
        if attempt == 2 or not crashed_in_open_mpis_start_up(r):
            return r, took
        print(f"Open MPI crashed in MPI_Init, running the step again:\n{failure(r)}")


# --- one container, one node --------------------------------------------------

def test_mpirun_in_one_container(ompi):
    # no ssh in a plain container: mpirun's rsh launcher would refuse to
    # start ("plm_rsh_agent: ssh : rsh" not found) even for local ranks;
    # the isolated launcher starts them without one
    r = ompi("run", IMAGE, "mpirun", "--mca", "plm", "isolated", "-n", "2", "ring")
    assert r.returncode == 0, failure(r)
    host = os.uname().nodename
    check_ring(r.stdout, [host, host], failure(r))


# --- PMIx: srun --mpi=pmix, one container per rank -----------------------------

def test_pmix_one_rank_per_node(slurm_cluster, ompi):
    r, took = srun_sarus(slurm_cluster, ompi, "--mpi=pmix", "-N3", "-n3", "sarus", "run", IMAGE, "ring")
    assert r.returncode == 0, failure(r)
    check_ring(r.stdout, NODES, failure(r))
    assert "PMIX ERROR" not in r.stderr and "WARNING" not in r.stderr, failure(r)
    assert took < 60, took
    assert_no_leftovers(slurm_cluster, ompi.user)


def test_pmix_two_ranks_per_node_with_pid_host(slurm_cluster, ompi):
    extra = NO_CMA if ompi.mode == "userns" else []
    r, took = srun_sarus(slurm_cluster, ompi, "--mpi=pmix", "-N3", "--ntasks-per-node=2", "sarus", "run",
                         "--pid=host", *extra, IMAGE, "ring")
    assert r.returncode == 0, failure(r)
    check_ring(r.stdout, [n for n in NODES for _ in (0, 1)], failure(r))
    assert "PMIX ERROR" not in r.stderr and "WARNING" not in r.stderr, failure(r)
    assert took < 60, took
    assert_no_leftovers(slurm_cluster, ompi.user)


@pytest.fixture
def reclaim_cgroups():
    """rmdir the empty sarus-* cgroups a test made (a step killed by Slurm
    may leave the suid supervisor's behind): not for later tests to find."""
    before = set(cgroup_leftovers())
    yield
    for entry in sorted(set(cgroup_leftovers()) - before, key=len, reverse=True):
        for root, _, _ in os.walk(entry.split(": ", 1)[1], topdown=False):
            try:
                os.rmdir(root)
            except OSError:
                pass


def test_pmix_two_ranks_per_node_in_private_pid_namespaces(slurm_cluster, ompi, reclaim_cgroups):
    """The ranks of a node share one container (one PID namespace; in userns
    mode one user namespace): Open MPI's vader and its cross-memory attach
    work as natively. (A container per rank, each rank PID 1 of its own
    namespace, made vader take a peer's segment for its own: SIGSEGV in
    mca_btl_vader_sendi, or a ring that hangs.)"""
    name = f"ompi-private-pid-{ompi.mode}-{ompi.user}"
    p = slurm_cluster.popen(ompi.user, ["srun", "--time=1", f"--job-name={name}", "--mpi=pmix", "-N3",
                                        "--ntasks-per-node=2", "sarus", "run", IMAGE, "ring"], sarus=ompi)
    try:
        out, err = p.communicate(timeout=20)
        hung = False
    except subprocess.TimeoutExpired:
        slurm_cluster.scancel(ompi.user, f"--name={name}")
        out, err = p.communicate(timeout=60)
        hung = True
    r = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    assert not hung, "hung: " + failure(r)
    assert r.returncode == 0, failure(r)
    check_ring(r.stdout, [n for n in NODES for _ in (0, 1)], failure(r))


def test_pmix_without_enablePMIxv3Support_falls_back_with_errors(slurm_cluster, ompi):
    """Without the key sarus does not mount the step's PMIx directory
    (PMIX_SERVER_TMPDIR, in slurmd's spool): the clients cannot lock the
    server's shared-memory store (gds ds12), say so, and use the hash store.
    The ring still works; the errors are why sites enable the key."""
    ompi.config["enablePMIxv3Support"] = False
    ompi.write_config()
    try:
        r, _ = srun_sarus(slurm_cluster, ompi, "--mpi=pmix", "-N3", "-n3", "sarus", "run", IMAGE, "ring")
    finally:
        ompi.config["enablePMIxv3Support"] = True
        ompi.write_config()
    assert r.returncode == 0, failure(r)
    check_ring(r.stdout, NODES, failure(r))
    assert len(re.findall(r"PMIX ERROR: ERROR in file \S*/gds_ds12_lock_pthread\.c", r.stderr)) == 3, failure(r)
    assert_no_leftovers(slurm_cluster, ompi.user)


# --- SSH: mpirun in task 0's container, orted over the SSH hook ------------------

# Task 0 runs each mpirun given as $1, $2... in turn, then writes done; the
# other tasks wait (at most 90 s) for done, so every container ends with
# task 0's. mpirun's exit status becomes task 0's.
SSH_SCRIPT = r"""
if [ "$SLURM_PROCID" -eq 0 ]; then
    rc=0
    for command in "$@"; do
        echo "== $command"
        sh -c "$command" || rc=$?
    done
    touch {shared}/done
    exit $rc
fi
i=0
while [ ! -e {shared}/done ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i + 1)); done
[ -e {shared}/done ]
""".replace("{shared}", SHARED)


@pytest.fixture
def shared_dir(ompi):
    """A directory of the user's on /var/tmp (which the nodes share), bound
    into the containers at /shared: the hostfile, and task 0's done."""
    path = tempfile.mkdtemp(prefix="shared-", dir=ompi.workdir)
    pw = pwd.getpwnam(ompi.user)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_ssh_mpirun_inside_the_containers(slurm_cluster, ompi, shared_dir):
    # srun hostname > hostfile, sorted: mpirun places ranks in the hostfile's
    # order, and srun prints the nodes' lines in the order they come
    r = slurm_cluster.srun(ompi.user, "-N3", "hostname")
    assert r.returncode == 0 and sorted(r.stdout.split()) == NODES, failure(r)
    with open(os.path.join(shared_dir, "hostfile"), "w") as f:
        f.write("".join(f"{node}\n" for node in sorted(r.stdout.split())))
    mpirun = f"mpirun --mca plm rsh --mca ras ^slurm --hostfile {SHARED}/hostfile"
    r, took = srun_sarus(slurm_cluster, ompi, "-N3", "sarus", "run", "--ssh",
                         f"--mount=type=bind,src={shared_dir},dst={SHARED}", IMAGE,
                         "sh", "-c", SSH_SCRIPT, "ring-over-ssh",
                         f"{mpirun} -npernode 1 ring",
                         f"{mpirun} -npernode 2 ring")
    assert r.returncode == 0, failure(r)
    assert os.path.exists(os.path.join(shared_dir, "done")), failure(r)
    first, second = r.stdout.split("== ")[1:]
    check_ring(first, NODES, failure(r))
    # two ranks per node share their container (children of one orted): vader works
    check_ring(second, [n for n in NODES for _ in (0, 1)], failure(r))
    # the remote ranks really came through Dropbear
    assert "Host 'node2' key accepted unconditionally" in r.stderr, failure(r)
    assert took < 60, took
    assert_no_leftovers(slurm_cluster, ompi.user)
