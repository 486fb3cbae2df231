"""The ranks of one job step on a node share one container
(src/core/jobs/rank_group.hpp): under MPICH's mpiexec, with an explicit
SARUS_RANK_GROUP, in both modes and for both test users. (Under srun: test_slurm.py and
test_multinode_openmpi.py.)"""

import contextlib
import glob
import os
import pwd
import shutil
import signal
import tempfile
import time

import pytest

from conftest import popen_as, process_tree, run_as, wait_for_no_leftovers

BUSYBOX = "load/library/busybox"
NAMESPACES = 'echo "$PMI_RANK $$ $(readlink /proc/self/ns/pid) $(readlink /proc/self/ns/user)"'


@pytest.fixture
def ranks(sarus, test_images):
    sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    yield sarus
    assert wait_for_no_leftovers(sarus.user) == []
    base = groups_directory(sarus)
    if os.path.exists(base):  # the caller's directory of groups stays, empty and private
        st = os.lstat(base)
        assert (os.listdir(base), st.st_uid, oct(st.st_mode)) == ([], pwd.getpwnam(sarus.user).pw_uid, "0o40700")


def groups_directory(sarus):
    return os.path.join(sarus.config.get("tempDir", "/tmp"), f"sarus-ranks-{pwd.getpwnam(sarus.user).pw_uid}")


def mpiexec(sarus, count, *command, env=None):
    full_env = {"SARUS_CONFIG_FILE": sarus.config_file}
    full_env.update(env or {})
    return run_as(sarus.user, ["mpiexec.mpich", "-n", str(count), *command], env=full_env, timeout=120)


def rows(stdout):
    return sorted(line.split() for line in stdout.splitlines() if line.strip())


@pytest.mark.parametrize("count", [1, 2, 4, 8])
def test_the_ranks_of_an_mpiexec_share_one_container(ranks, count):
    r = mpiexec(ranks, count, ranks.binary, "run", BUSYBOX, "sh", "-c", NAMESPACES)
    assert r.returncode == 0, r.stderr
    found = rows(r.stdout)
    assert sorted(int(row[0]) for row in found) == list(range(count))
    assert len({row[2] for row in found}) == 1, found      # one PID namespace
    assert len({row[3] for row in found}) == 1, found      # one user namespace
    assert len({row[1] for row in found}) == count, found  # each rank its own process


def test_ranks_are_found_through_a_wrapper_of_the_launcher(ranks):
    # Hydra's proxy is not sarus' parent here: the PMI socket still names it
    script = f'{ranks.binary} run {BUSYBOX} sh -c \'{NAMESPACES}\''
    r = mpiexec(ranks, 3, "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    assert len({row[2] for row in rows(r.stdout)}) == 1, r.stdout


def test_each_rank_has_its_own_exit_code_environment_and_directory(ranks):
    script = (f'{ranks.binary} run -w /tmp/rank$PMI_RANK -e MINE=$PMI_RANK {BUSYBOX} sh -c '
              f'\'echo "$PMI_RANK $MINE $(pwd)"; exit $((PMI_RANK + 3))\'; echo "rc $PMI_RANK $?"')
    r = mpiexec(ranks, 3, "sh", "-c", script)
    lines = r.stdout.splitlines()
    for rank in range(3):
        assert f"{rank} {rank} /tmp/rank{rank}" in lines, r.stdout + r.stderr
        assert f"rc {rank} {rank + 3}" in lines, r.stdout + r.stderr


def test_each_rank_keeps_the_cpus_its_launcher_bound_it_to(ranks):
    """The agent forks every rank from the leader's process: Hydra's
    -bind-to (as Slurm's --cpu-bind) must still hold for each rank."""
    show = NAMESPACES.replace('"$PMI_RANK', '"$PMI_RANK $(grep Cpus_allowed_list /proc/self/status | cut -f2)')
    host = run_as(ranks.user, ["mpiexec.mpich", "-n", "2", "-bind-to", "core", "sh", "-c",
                               'echo "$PMI_RANK $(grep Cpus_allowed_list /proc/self/status | cut -f2)"'])
    expected = sorted(line.split() for line in host.stdout.splitlines())
    assert len({cpus for _, cpus in expected}) == 2, host.stdout  # the VM's two cores, one per rank
    r = mpiexec(ranks, 2, "-bind-to", "core", ranks.binary, "run", BUSYBOX, "sh", "-c", show)
    assert r.returncode == 0, r.stderr
    found = rows(r.stdout)
    assert len({row[3] for row in found}) == 1, found  # one shared container
    assert sorted(row[:2] for row in found) == expected, "a rank ran on the leader's CPUs"


@pytest.mark.parametrize("policies", [("", "--membind=0"), ("--preferred=0", "")])
def test_each_rank_keeps_the_memory_policy_its_launcher_gave_it(ranks, policies):
    """numactl (as Slurm's --mem-bind) sets each rank's NUMA memory policy:
    a rank forked from the leader's process must not keep the leader's."""
    show = NAMESPACES.replace('"$PMI_RANK', '"$PMI_RANK $(grep stack /proc/self/numa_maps | cut -d" " -f2)')
    command = [ranks.binary, "run", BUSYBOX, "sh", "-c", show]
    mpmd = []
    for policy in policies:
        mpmd += [":", "-n", "1"] + (["numactl", policy] if policy else []) + command
    r = mpiexec(ranks, 1, *mpmd[3:])
    assert r.returncode == 0, r.stderr
    found = rows(r.stdout)
    assert len({row[3] for row in found}) == 1, found  # one shared container
    expected = [[str(rank), {"": "default", "--membind=0": "bind:0", "--preferred=0": "prefer:0"}[policy]]
                for rank, policy in enumerate(policies)]
    assert [row[:2] for row in found] == expected, "a rank ran with the leader's memory policy"


def test_ranks_that_see_other_gpus_get_a_container_of_their_own(ranks):
    """The hooks set a container's devices up once, for its leader: ranks
    given other GPUs (Slurm's --gpus-per-task) do not join it."""
    script = f'CUDA_VISIBLE_DEVICES=$((PMI_RANK % 2)) exec {ranks.binary} run {BUSYBOX} sh -c \'{NAMESPACES}\''
    r = mpiexec(ranks, 4, "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    found = rows(r.stdout)
    namespaces = {int(row[0]) % 2: set() for row in found}
    for row in found:
        namespaces[int(row[0]) % 2].add(row[2])
    assert all(len(ns) == 1 for ns in namespaces.values()), found   # the ranks of one GPU share
    assert namespaces[0] != namespaces[1], found                     # those of another GPU do not


def test_turned_off_every_rank_has_a_container_of_its_own(ranks):
    r = mpiexec(ranks, 2, ranks.binary, "run", BUSYBOX, "sh", "-c", NAMESPACES,
                env={"SARUS_SHARED_CONTAINER": "0"})
    assert r.returncode == 0, r.stderr
    assert len({row[2] for row in rows(r.stdout)}) == 2, r.stdout


def test_a_groups_directory_made_by_another_user_leaves_each_rank_a_container_of_its_own(ranks):
    """tempDir is /tmp: another user may take the name of the caller's
    directory first. The job runs on, a container per rank, and says why."""
    other = "sarusnosub" if ranks.user == "sarustest" else "sarustest"
    base = groups_directory(ranks)
    if os.path.exists(base):
        os.rmdir(base)  # an earlier test's: the name is free again, as before the user's first job
    run_as(other, ["mkdir", "-m", "755", base], check=True)
    try:
        r = mpiexec(ranks, 2, ranks.binary, "run", BUSYBOX, "sh", "-c", NAMESPACES)
        assert r.returncode == 0, r.stderr
        assert len({row[2] for row in rows(r.stdout)}) == 2, r.stdout
        assert r.stderr.count("is not a private directory of yours") == 2, r.stderr
    finally:
        os.rmdir(base)


def test_the_callers_directory_of_groups_stays_so_no_one_else_takes_its_name(ranks):
    """The last group to end removed the caller's directory of groups too:
    another user could make it again at once (inotify on /tmp), and the
    ranks about to meet there failed. It stays now, empty, and the name
    cannot be taken."""
    other = "sarusnosub" if ranks.user == "sarustest" else "sarustest"
    base = groups_directory(ranks)
    r = mpiexec(ranks, 2, ranks.binary, "run", BUSYBOX, "true")
    assert r.returncode == 0, r.stderr
    taken = run_as(other, ["mkdir", "-m", "755", base])
    if taken.returncode == 0:
        os.rmdir(base)
    assert taken.returncode != 0, f"{other} made {base} after the job"
    r = mpiexec(ranks, 2, ranks.binary, "run", BUSYBOX, "sh", "-c", NAMESPACES)
    assert r.returncode == 0 and "is not a private directory" not in r.stderr, r.stderr
    assert len({row[2] for row in rows(r.stdout)}) == 1, r.stdout


def start_rank(sarus, group, *args, **kw):
    env = {"SARUS_CONFIG_FILE": sarus.config_file, "SARUS_RANK_GROUP": group}
    return popen_as(sarus.user, [sarus.binary, "run", *args], env=env, **kw)


@contextlib.contextmanager
def leader_and_member(sarus, group, script):
    """A leader and a member of one group, each running `script` in busybox
    and past its "ready" line; killed afterwards if still running."""
    started = []
    try:
        for _ in range(2):
            started.append(start_rank(sarus, group, BUSYBOX, "sh", "-c", script))
            assert started[-1].stdout.readline() == "ready\n"
        yield started
    finally:
        for p in started:
            if p.poll() is None:
                p.kill()
                p.wait()


def signal_every_process_of(processes, sig):
    """As Slurm signals a step: every process of each tree, container and ranks included."""
    for pid in [pid for p in processes for pid in process_tree(p.pid)]:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def test_a_killed_rank_goes_and_the_others_stay(ranks):
    group = f"killed-{os.getpid()}"
    leader = start_rank(ranks, group, BUSYBOX, "sh", "-c",
                        "echo ready; while [ ! -e /tmp/go ]; do sleep 0.05; done; ps -o args")
    try:
        assert leader.stdout.readline() == "ready\n"
        victim = start_rank(ranks, group, BUSYBOX, "sh", "-c", "echo started; exec sleep 1000")
        assert victim.stdout.readline() == "started\n"
        victim.kill()
        victim.wait(timeout=10)
        time.sleep(0.3)
        go = start_rank(ranks, group, BUSYBOX, "touch", "/tmp/go")
        assert go.wait(timeout=30) == 0
        out, err = leader.communicate(timeout=30)
        assert leader.returncode == 0, err
        assert "sleep 1000" not in out, out
    finally:
        for p in (leader,):
            if p.poll() is None:
                p.kill()
                p.wait()


STALLER = """
import socket, struct, sys, time
client = socket.socket(socket.AF_UNIX)
client.connect(sys.argv[1])
if sys.argv[2] == "header":
    client.send(struct.pack("=I", 0x53524132)[:3])
else:  # a whole header (one argument, 100 bytes of strings, stdio), then 5 of those bytes
    header = struct.pack("=IIIIIiI", 0x53524132, 1, 0, 100, 0, -1, 0)
    socket.send_fds(client, [header], [0, 1, 2])
    client.send(b"/\\0tru")
print("stalled", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("part", ["header", "body"])
def test_a_client_that_stalls_holds_up_no_other_rank(ranks, part):
    """Any process of the user's may connect to the agent; one that sends
    part of a start message and stops (or a rank's sarus stopped there)
    froze the agent for every rank: no start, no exit code, no signal."""
    group = f"stalled-{part}-{os.getpid()}"
    leader = start_rank(ranks, group, BUSYBOX, "sh", "-c",
                        "echo ready; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo done")
    staller = None
    try:
        assert leader.stdout.readline() == "ready\n"
        [socket_path] = glob.glob(os.path.join(groups_directory(ranks), "*", "gen-*", "agent.sock"))
        staller = popen_as(ranks.user, ["/usr/bin/python3", "-c", STALLER, socket_path, part])
        assert staller.stdout.readline() == "stalled\n"
        env = {"SARUS_CONFIG_FILE": ranks.config_file, "SARUS_RANK_GROUP": group}
        r = run_as(ranks.user, [ranks.binary, "run", BUSYBOX, "sh", "-c", "touch /tmp/go; exit 3"],
                   env=env, timeout=30)
        assert r.returncode == 3, r.stderr
        out, err = leader.communicate(timeout=30)
        assert (leader.returncode, out) == (0, "done\n"), err
    finally:
        for p in (staller, leader):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


IMPOSTOR = """
import os, socket, sys
server = socket.socket(socket.AF_UNIX)
server.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
server.listen()
print("listening", flush=True)
server.settimeout(30)
try:
    connection, _ = server.accept()
    connection.settimeout(5)
    print("received", len(connection.recv(65536)), flush=True)
except OSError as e:
    print("received nothing:", e, flush=True)
"""


def test_a_rank_hands_itself_to_no_agent_of_another_user(ranks):
    """Attack: another user who won a race on the rank directory (its agent
    socket swapped for one of theirs) would get the rank's stdio, command and
    environment. Simulated by swapping the socket of a running group."""
    other = "sarusnosub" if ranks.user == "sarustest" else "sarustest"
    group = f"impostor-{os.getpid()}"
    leader = start_rank(ranks, group, BUSYBOX, "sh", "-c", "echo ready; sleep 5")
    impostor = None
    impostor_dir = tempfile.mkdtemp(prefix="sarus-impostor-", dir="/var/tmp")
    os.chmod(impostor_dir, 0o777)
    try:
        assert leader.stdout.readline() == "ready\n"
        [socket_path] = glob.glob(os.path.join(groups_directory(ranks), "*", "gen-*", "agent.sock"))
        fake = os.path.join(impostor_dir, "agent.sock")
        impostor = popen_as(other, ["/usr/bin/python3", "-c", IMPOSTOR, fake])
        assert impostor.stdout.readline() == "listening\n"
        moved = socket_path + ".real"
        os.rename(socket_path, moved)
        os.symlink(fake, socket_path)
        env = {"SARUS_CONFIG_FILE": ranks.config_file, "SARUS_RANK_GROUP": group, "SECRET_OF_RANK": "s3cr3t"}
        r = run_as(ranks.user, [ranks.binary, "run", BUSYBOX, "true"], env=env)
        os.remove(socket_path)
        os.rename(moved, socket_path)
        out, _ = impostor.communicate(timeout=40)
        assert "received 0" in out or "received nothing" in out, f"the impostor got the rank: {out}"
        assert r.returncode != 0
        assert "refusing to hand it this rank" in r.stderr, r.stderr
    finally:
        if impostor is not None and impostor.poll() is None:
            impostor.kill()
            impostor.wait()
        shutil.rmtree(impostor_dir)
        leader.communicate(timeout=30)


def test_a_rank_whose_command_is_missing_fails_as_in_a_container_of_its_own(ranks):
    group = f"missing-{os.getpid()}"
    leader = start_rank(ranks, group, BUSYBOX, "sh", "-c", "echo ready; sleep 2")
    try:
        assert leader.stdout.readline() == "ready\n"
        env = {"SARUS_CONFIG_FILE": ranks.config_file, "SARUS_RANK_GROUP": group}
        r = run_as(ranks.user, [ranks.binary, "run", BUSYBOX, "no-such-command"], env=env)
        assert r.returncode == 127, r.stderr
        assert 'level=error msg="exec: \\"no-such-command\\": executable file not found in $PATH"' in r.stderr
    finally:
        leader.communicate(timeout=30)
    assert leader.returncode == 0


def test_a_rank_with_another_container_is_refused_clearly(ranks, tmp_path):
    group = f"differs-{os.getpid()}"
    leader = start_rank(ranks, group, BUSYBOX, "sh", "-c", "echo ready; sleep 3")
    try:
        assert leader.stdout.readline() == "ready\n"
        os.chmod(tmp_path, 0o755)
        env = {"SARUS_CONFIG_FILE": ranks.config_file, "SARUS_RANK_GROUP": group}
        r = run_as(ranks.user, [ranks.binary, "run", "--mount", f"type=bind,src={tmp_path},dst=/data", BUSYBOX,
                                "true"], env=env)
        assert r.returncode == 1
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "differs from the one its job step shares" in lines[0], r.stderr
        assert "SARUS_SHARED_CONTAINER=0" in lines[0]
    finally:
        leader.communicate(timeout=30)
    assert leader.returncode == 0


def test_a_rank_at_another_verbosity_joins_the_shared_container(ranks):
    # --verbose and --debug also set the hooks' log level: the hooks ran once, for the
    # leader, so a rank's verbosity is no reason to refuse it
    group = f"verbosity-{os.getpid()}"
    leader = start_rank(ranks, group, BUSYBOX, "sh", "-c", "echo ready; readlink /proc/self/ns/pid; sleep 3")
    try:
        assert leader.stdout.readline() == "ready\n"
        leader_namespace = leader.stdout.readline().strip()
        env = {"SARUS_CONFIG_FILE": ranks.config_file, "SARUS_RANK_GROUP": group}
        for verbosity in ["--verbose", "--debug"]:
            r = run_as(ranks.user, [ranks.binary, verbosity, "run", BUSYBOX, "readlink", "/proc/self/ns/pid"],
                       env=env)
            assert r.returncode == 0, r.stderr
            assert r.stdout.strip() == leader_namespace, r.stderr
    finally:
        leader.communicate(timeout=30)
    assert leader.returncode == 0


def test_a_killed_leader_takes_the_container_and_its_ranks(ranks):
    group = f"leader-{os.getpid()}"
    leader = start_rank(ranks, group, BUSYBOX, "sh", "-c", "echo ready; exec sleep 1000")
    assert leader.stdout.readline() == "ready\n"
    member = start_rank(ranks, group, BUSYBOX, "sh", "-c", "echo started; exec sleep 1000")
    assert member.stdout.readline() == "started\n"
    leader.kill()
    leader.wait(timeout=10)
    out, err = member.communicate(timeout=30)
    assert member.returncode != 0
    assert "ended before this rank did" in err, err


def signal_the_whole_step(ranks, label, script, signum):
    """A leader and a member of one group run script; every process of the
    step gets signum, as from Slurm. Returns each rank's (exit code, stdout,
    stderr)."""
    with leader_and_member(ranks, f"{label}-{os.getpid()}", script) as step:
        signal_every_process_of(step, signum)
        ended = []
        for rank in step:
            out, err = rank.communicate(timeout=30)
            ended.append((rank.returncode, out, err))
        return ended


def test_a_checkpoint_signal_to_every_process_of_the_step_reaches_the_ranks_and_ends_nothing(ranks):
    """`scancel -s USR1` (or --signal=USR1@T) signals every process of the
    step: the sandbox relays it to the shared container's first process,
    the rank agent, which leaves it to the ranks instead of being ended in
    place of a PID 1 without a handler."""
    script = ("trap 'echo usr1' USR1; echo ready; i=0; "
              "while [ $i -lt 40 ]; do sleep 0.1; i=$((i+1)); done; echo done")
    for returncode, out, err in signal_the_whole_step(ranks, "usr1", script, signal.SIGUSR1):
        assert returncode == 0, err
        # once from the test, once more relayed by its sarus, as Slurm's signal would reach it
        assert "usr1" in out.split() and out.split()[-1] == "done", out


def test_scancel_gives_every_rank_its_sigterm_and_its_own_exit(ranks):
    """scancel signals every process of the step with SIGTERM, the shared
    container's first process (the rank agent) too: it passes the signal on
    and waits for the ranks, which save their work and exit with their own
    code, instead of ending and having the kernel SIGKILL them."""
    script = ("trap 'sleep 0.5; echo saved; exit 7' TERM; echo ready; i=0; "
              "while [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; echo done")
    for returncode, out, err in signal_the_whole_step(ranks, "term", script, signal.SIGTERM):
        assert "saved" in out.split() and "done" not in out.split(), (out, err)
        assert returncode == 7, (out, err)


def test_the_group_of_a_step_killed_whole_goes_with_the_next_leader(ranks):
    """Slurm SIGKILLs every process of a step at once: nobody is left to
    retire its group. The next group's leader removes it."""
    group = f"killed-{os.getpid()}"
    with leader_and_member(ranks, group, "echo ready; sleep 60") as step:
        before = set(os.listdir(groups_directory(ranks)))
        assert len(before) == 1, before
        signal_every_process_of(step, signal.SIGKILL)
        for p in step:
            p.wait(timeout=30)
        assert wait_for_no_leftovers(ranks.user, timeout=15) == []
        assert set(os.listdir(groups_directory(ranks))) == before, "a group killed whole stays"
        # as a leader killed while it rewrote leader.json leaves it
        (killed,) = before
        planted = os.path.join(groups_directory(ranks), killed, f"leader.json.tmp-{step[0].pid}")
        with open(planted, "w") as f:
            f.write("{")
        pw = pwd.getpwnam(ranks.user)
        os.chown(planted, pw.pw_uid, pw.pw_gid)
        r = run_as(ranks.user, [ranks.binary, "run", BUSYBOX, "true"],
                   env={"SARUS_CONFIG_FILE": ranks.config_file, "SARUS_RANK_GROUP": group + "-next"})
        assert r.returncode == 0, r.stderr
        assert not os.path.exists(os.path.join(groups_directory(ranks), killed)), "the killed group is still there"


def test_a_generation_left_in_a_group_goes_with_the_groups_next_leader(ranks):
    """A generation no one retired (a step killed whole while its leader
    ended it, a leader killed before it named its generation) kept its
    group's directory for good: each later leader of the group removed
    only the lock, and then nobody could lock the group to clean it."""
    group = f"left-{os.getpid()}"
    pw = pwd.getpwnam(ranks.user)
    with leader_and_member(ranks, group, "echo ready; sleep 1") as step:
        [group_dir] = glob.glob(os.path.join(groups_directory(ranks), "*"))
        left = os.path.join(group_dir, "gen-1")
        os.mkdir(left, 0o700)
        os.chown(left, pw.pw_uid, pw.pw_gid)
        for p in step:
            assert p.wait(timeout=30) == 0
    r = run_as(ranks.user, [ranks.binary, "run", BUSYBOX, "true"],
               env={"SARUS_CONFIG_FILE": ranks.config_file, "SARUS_RANK_GROUP": group})
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(group_dir), os.listdir(group_dir)


def in_cgroup(path):
    def move():
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    return move


def test_ranks_of_another_job_never_join_this_jobs_container(ranks):
    """A rank that joins runs in the leader's container, and so in its
    cgroups. A SARUS_RANK_GROUP (or PMIx namespace) used again by another
    job of the same user on the node ran that job's rank under this job's
    limits, devices and accounting."""
    group = f"jobs-{os.getpid()}"
    jobs = [f"/sys/fs/cgroup/unified/sarus-test-job-{os.getpid()}-{n}" for n in (1, 2)]
    started, namespaces = [], []
    try:
        for job in jobs:
            os.mkdir(job)
        for job in (jobs[0], jobs[1], jobs[0]):
            started.append(start_rank(ranks, group, BUSYBOX, "sh", "-c", "readlink /proc/self/ns/pid; sleep 4",
                                      preexec_fn=in_cgroup(job)))
            namespaces.append(started[-1].stdout.readline())
        for p in started:
            _, err = p.communicate(timeout=30)
            assert p.returncode == 0, err
        assert all(n.startswith("pid:[") for n in namespaces), namespaces
        assert namespaces[0] == namespaces[2] != namespaces[1], namespaces
    finally:
        for p in started:
            if p.poll() is None:
                p.kill()
                p.wait()
        wait_for_no_leftovers(ranks.user, timeout=15)
        for job in jobs:
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(job)


def test_the_ranks_sarus_keeps_no_root_while_its_rank_runs(ranks):
    """In suid mode every sarus starts with root as its saved uid. A rank
    that joins, and the leader's own rank once its container is started,
    need no root: they keep none while they talk to the agent (a process
    of the caller's) for as long as the rank runs."""
    uid = pwd.getpwnam(ranks.user).pw_uid
    env = {"SARUS_CONFIG_FILE": ranks.config_file}
    launcher = popen_as(ranks.user, ["mpiexec.mpich", "-n", "3", ranks.binary, "run", BUSYBOX, "sleep", "3"],
                        env=env)
    try:
        time.sleep(2)
        found = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/status") as f:
                    status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
                with open(f"/proc/{status['PPid']}/comm") as f:
                    parent = f.read().strip()
            except (OSError, KeyError):
                continue
            ids = status["Uid"].split()
            if status["Name"] == "sarus" and parent != "sarus" and ids[0] == str(uid):
                found[pid] = ids  # a rank's own sarus (its parent is the launcher's proxy)
        launcher.wait(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert len(found) == 3, found
    assert all(ids == [str(uid)] * 4 for ids in found.values()), found


def test_a_joining_rank_gets_no_privilege(ranks):
    """In suid mode too: a rank that joins runs as the caller, without
    capabilities and with no_new_privs, like the container's own process."""
    pw = pwd.getpwnam(ranks.user)
    r = mpiexec(ranks, 3, ranks.binary, "run", BUSYBOX, "sh", "-c",
                'echo "$(id -u) $(grep -E "^(CapEff|CapPrm|NoNewPrivs)" /proc/self/status | tr -d "\\t\\n ")"')
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split("\n"))[1:] == \
        [f"{pw.pw_uid} CapPrm:0000000000000000CapEff:0000000000000000NoNewPrivs:1"] * 3, r.stdout
