"""The SSH hook and the Slurm global sync hook across the nodes of the Slurm
test cluster (slurm_cluster.py: node1..node3, each in its own network, UTS
and mount namespace), in both modes and as both test users: `ssh nodeX` from
one container into the containers of the other nodes, and the sync hook
holding every container of a step until the last task has one."""

import os
import pwd
import time

import pytest

from conftest import MODES, TEST_USERS, _sarus_session, private_hooks_dir
from test_slurm_global_sync_hook import configure as configure_sync_hook
from test_ssh_hook import install_ssh_hook

BUSYBOX = "load/library/busybox"
NODES = ["node1", "node2", "node3"]


@pytest.fixture(params=[(m, u) for m in MODES for u in TEST_USERS], ids=lambda p: f"{p[0]}-{p[1]}")
def multinode(request, slurm_cluster, test_images):
    """A sarus with busybox, keys, and the SSH and sync hooks configured,
    plus a directory all nodes share (/var/tmp is the host's) for the tasks
    to meet in."""
    for sarus in _sarus_session(*request.param):
        sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
        for _ in private_hooks_dir(sarus, "multinode"):
            install_ssh_hook(sarus)
            configure_sync_hook(sarus, timeout=30)
            sarus.ok("ssh-keygen")
            shared = os.path.join(sarus.workdir, "shared")
            os.mkdir(shared)
            pw = pwd.getpwnam(sarus.user)
            os.chown(shared, pw.pw_uid, pw.pw_gid)
            sarus.shared = shared
            sarus.sync_dir = os.path.join(sarus.repo_base, sarus.user, ".oci-hooks", "slurm-global-sync")
            sarus.cluster = slurm_cluster
            yield sarus


def srun(sarus, *args, env=None, timeout=120):
    return sarus.cluster.srun(sarus.user, *args, sarus=sarus, env=env, timeout=timeout)


def test_ssh_from_one_container_into_the_others(multinode):
    # Task 0 reaches every node's container; the others stay until it is done.
    script = ("if [ \"$SLURM_PROCID\" = 0 ]; then"
              "  for n in node1 node2 node3; do ssh $n 'echo $(hostname) $(id -u) $SSH_CONNECTION'; done"
              "  2>/dev/null; touch /shared/done;"
              " else i=0; while [ ! -e /shared/done ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; fi")
    r = srun(multinode, "-N3", "--ntasks-per-node=1", "sarus", "run", "--ssh",
             "--mount", f"type=bind,src={multinode.shared},dst=/shared", BUSYBOX, "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    uid = pwd.getpwnam(multinode.user).pw_uid
    lines = sorted(r.stdout.split("\n"))[1:]
    assert [line.split()[:2] for line in lines] == [[n, str(uid)] for n in NODES], r.stdout
    # every session came in over the cluster's network, not through loopback
    assert all(line.split()[2].startswith("10.77.0.") for line in lines), r.stdout
    assert multinode.cluster.wait_for_no_leftovers(multinode.user) == []


def test_sync_hook_holds_every_container_until_the_last_task(multinode):
    started = time.time()
    r = srun(multinode, "-N3", "--ntasks-per-node=1", "sh", "-c",
             "[ \"$SLURM_PROCID\" = 2 ] && sleep 3; exec sarus run --annotation "
             "com.hooks.slurm-global-sync.enabled=true " + BUSYBOX + " busybox date +%s")
    assert r.returncode == 0, r.stderr
    stamps = [int(x) for x in r.stdout.split()]
    assert len(stamps) == 3, r.stdout
    assert min(stamps) >= int(started) + 3, (started, stamps)
    assert os.listdir(multinode.sync_dir) == []


def test_sync_hook_times_out_naming_the_task_that_never_came(multinode):
    configure_sync_hook(multinode, timeout=3)
    r = srun(multinode, "-N3", "--ntasks-per-node=1", "sh", "-c",
             "[ \"$SLURM_PROCID\" = 1 ] && exit 0; exec sarus run --annotation "
             "com.hooks.slurm-global-sync.enabled=true " + BUSYBOX + " true")
    assert r.returncode != 0
    assert "timed out after 3 s waiting for the arrival of tasks 1 of Slurm job" in r.stderr, r.stderr
    assert os.listdir(multinode.sync_dir) == []
    assert multinode.cluster.wait_for_no_leftovers(multinode.user) == []
