#!/usr/bin/python3
"""A real multi-node Slurm cluster on one host, for sarus' integration tests.

Debian 12's Slurm 22.05 (slurmctld, slurmd, client tools) and munge. One
slurmctld runs on the host (in its own UTS namespace only, named
`slurmctl`, so that it matches SlurmctldHost whatever the host is called);
each of the N nodes (node1..nodeN, 3 by default) is a slurmd in its own
network, UTS and mount namespace:

* network: a veth pair, whose inside end (eth0, 10.77.0.1N/24) and loopback
  are the node's only interfaces, and whose outside end is enslaved to a
  private bridge (sarus-slurm0, 10.77.0.1/24 on the host). No route leaves
  10.77.0.0/24 and nothing is forwarded: only the bridge and loopback carry
  the cluster's traffic. srun and sbatch run on the host, which reaches the
  nodes (and which the nodes reach back, for srun's I/O) through the bridge.
* UTS: the node's name, so `hostname` in a task (and in a container that
  keeps the host's UTS namespace, as sarus does) says node1..nodeN.
* mount: a private /tmp and /dev/shm (tmpfs; with a shared /dev/shm, PMIx
  fails with "File exists" when two nodes create the same segment), a
  private /etc/hosts (bind mount) that resolves node1..nodeN and slurmctl,
  and a sysfs of the node's network namespace on /sys (the host's cgroup
  hierarchies moved onto it).
  Everything else (/home, /var/tmp, /opt, the cluster's state) is the
  host's, as a shared file system would be.

The processes stay in the host's PID namespace and cgroups: the host sees
every task, and proctrack/linuxproc + task/none (no cgroup plugin) track the
tasks without touching this hybrid cgroup v1/v2 host's hierarchies.

State (slurm.conf, the munge key and socket when a private munged is needed,
spool directories, logs, pids) lives in STATE_DIR, /var/lib/sarus-test-slurm,
readable by every user; nothing shared lives in /tmp, and /etc/slurm is not
touched: clients find the cluster through SLURM_CONF. If the system's munged
answers on /run/munge/munge.socket.2 it is used; otherwise a private munged
(user munge, its own key) serves the host and all nodes through its socket.

Command line (as root):
    tests/integration/slurm_cluster.py start [--nodes N]   # stops leftovers first
    tests/integration/slurm_cluster.py stop
    (start and stop refuse while a test session holds the cluster, see
    exclusive(); --force goes on anyway)
    tests/integration/slurm_cluster.py status
    eval "$(tests/integration/slurm_cluster.py env)"     # SLURM_CONF for srun, sbatch...

Python: SlurmCluster(nodes=3).start() / .stop(); the tests use the
session fixture `slurm_cluster` of conftest.py (see SlurmCluster's methods).
"""

import argparse
import contextlib
import fcntl
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time

STATE_DIR = os.environ.get("SARUS_TEST_SLURM_DIR", "/var/lib/sarus-test-slurm")
BRIDGE = "sarus-slurm0"
SUBNET = "10.77.0"
VETH_PREFIX = "sarus-"       # host ends: sarus-node1...
CONTROLLER = "slurmctl"
CONTROLLER_ADDR = f"{SUBNET}.1"
CTLD_PORT = 16817           # not the default 6817: no clash with a real slurmctld on the host
NODE_CPUS = 8               # declared (SlurmdParameters=config_overrides): room for concurrent jobs
SYSTEM_MUNGE_SOCKET = "/run/munge/munge.socket.2"
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Runs as the node's first process, inside its new namespaces: waits for the
# host to move the veth in (a line on stdin), then becomes slurmd.
NODE_SCRIPT = r"""
set -eu
node=$1 addr=$2 hosts=$3 conf=$4
read -r go
[ "$go" = go ]
hostname "$node"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount --bind "$hosts" /etc/hosts
# a sysfs of the node's network namespace (/sys/class/net: lo and eth0), with
# what was mounted on the host's /sys (the cgroup hierarchies...) moved onto it
sys_id=$(awk '$5 == "/sys" {id = $1} END {print id}' /proc/self/mountinfo)
subs=$(awk -v p="$sys_id" '$2 == p {print $5}' /proc/self/mountinfo)
aside=$(mktemp -d /tmp/sys.XXXXXX)
i=0
for m in $subs; do i=$((i + 1)); mkdir "$aside/$i"; mount --rbind "$m" "$aside/$i"; done
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
i=0
for m in $subs; do
    i=$((i + 1))
    if [ -d "$m" ]; then mount --move "$aside/$i" "$m"; else umount -R "$aside/$i"; fi
    rmdir "$aside/$i"
done
rmdir "$aside"
# IPv4 only: one address per node (Open MPI's TCP BTL with a second, IPv6
# link-local address per node crashes now and then in MPI_Init)
for link in all default eth0; do echo 1 > "/proc/sys/net/ipv6/conf/$link/disable_ipv6"; done
ip link set lo up
ip addr add "$addr/24" dev eth0
ip link set eth0 up
exec slurmd -D -N "$node" -f "$conf" </dev/null
"""

SLURM_CONF = """\
# Written by tests/integration/slurm_cluster.py: sarus' test cluster.
ClusterName=sarustest
SlurmctldHost={controller}({controller_addr})
SlurmctldPort={ctld_port}
SlurmdPort=6818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={state}/ctld
SlurmctldPidFile={state}/ctld/slurmctld.pid
SlurmctldLogFile={state}/log/slurmctld.log
SlurmdSpoolDir={state}/nodes/%n
SlurmdPidFile={state}/nodes/%n/slurmd.pid
SlurmdLogFile={state}/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroup plugin: this host has a hybrid v1/v2 hierarchy with every
# controller on the v1 side; linuxproc follows the tasks' process tree.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=300
SlurmdTimeout=60
SlurmctldTimeout=60
{nodes}
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _run(argv, check=True, **kw):
    return subprocess.run(argv, check=check, stdout=kw.pop("stdout", subprocess.PIPE),
                          stderr=kw.pop("stderr", subprocess.PIPE), text=True, **kw)


def _disable_ipv6(link):
    try:
        with open(f"/proc/sys/net/ipv6/conf/{link}/disable_ipv6", "w") as f:
            f.write("1")
    except OSError:
        pass        # no IPv6 in this kernel


def cmdline(pid):
    """The command line of pid, "" when it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _ns(pid, kind):
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def _netns(pid):
    return _ns(pid, "net")


def _parents():
    parents = {}
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/stat") as f:
                parents[pid] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return parents


def _descendants(roots):
    children = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            found.append(child)
            todo.append(child)
    return found


def _mount_keys(lines):
    """(mount point, file system type, source) of mountinfo lines."""
    keys = []
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) > 4 and len(rest) > 1:
            keys.append(f"{fields[4]} {rest[0]} {rest[1]}")
    return keys


def _pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours is dead for our purpose
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


_CHILDREN = []      # Popen objects of the daemons this process started


def _reap():
    """Collects the daemons this process started that have exited (only
    those: a pytest session has other children, whose exit status is theirs
    to collect)."""
    for proc in list(_CHILDREN):
        if proc.poll() is not None:
            _CHILDREN.remove(proc)


def _kill_and_wait(pids, timeout=5.0):
    """SIGTERM, then SIGKILL after timeout s, every pid of `pids` (by id)."""
    pids = [p for p in pids if _alive(p)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + (timeout if sig == signal.SIGTERM else 5.0)
        while time.time() < deadline:
            _reap()
            pids = [p for p in pids if _alive(p)]
            if not pids:
                return []
            time.sleep(0.05)
    return pids


class SlurmCluster:
    """The cluster: start(), stop(), and helpers that run Slurm commands
    as a test user. Node i (1-based) is node{i} at 10.77.0.{10+i}."""

    def __init__(self, nodes=3, state_dir=STATE_DIR):
        self.state = state_dir
        self.conf = os.path.join(state_dir, "slurm.conf")
        self.node_names = [f"node{i}" for i in range(1, nodes + 1)]
        self.addresses = {n: f"{SUBNET}.{10 + i}" for i, n in enumerate(self.node_names, 1)}
        self.munge_socket = SYSTEM_MUNGE_SOCKET
        self.startup_seconds = None

    # --- state file ---------------------------------------------------------

    @property
    def _state_file(self):
        return os.path.join(self.state, "cluster.json")

    def _load(self):
        try:
            with open(self._state_file) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def _save(self, info):
        with open(self._state_file + ".new", "w") as f:
            json.dump(info, f, indent=1)
        os.chmod(self._state_file + ".new", 0o644)
        os.replace(self._state_file + ".new", self._state_file)

    # --- start ----------------------------------------------------------------

    def start(self, timeout=60):
        """Stops what an earlier run left, then sets everything up and waits
        until every node is idle. Returns self."""
        if os.geteuid() != 0:
            raise RuntimeError("the Slurm test cluster needs root (namespaces, bridge, daemons)")
        for tool in ("slurmctld", "slurmd", "srun", "munged", "ip", "unshare"):
            if not shutil.which(tool, path=CLEAN_PATH):
                raise RuntimeError(f"{tool} is missing: run tools/install_dependencies.sh --tests")
        begin = time.time()
        self.stop()
        self._layout()
        info = {"nodes": {}, "munged": None}
        try:
            info["munged"] = self._munge()
            self._write_config()
            self._bridge()
            info["slurmctld"] = self._spawn(
                ["unshare", "--uts", "--", "/bin/sh", "-c",
                 f'hostname {CONTROLLER} && exec slurmctld -D -f "$0" </dev/null', self.conf],
                "slurmctld").pid
            self._save(info)
            for name in self.node_names:
                info["nodes"][name] = self._start_node(name)
                self._save(info)
            self._wait_idle(begin + timeout)
            # what a node's mount table holds before any job: leftovers() reports the rest
            info["mounts"] = {n: sorted(_mount_keys(self.node_mounts(n))) for n in self.node_names}
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.time() - begin
        info["startup_seconds"] = round(self.startup_seconds, 2)
        self._save(info)
        return self

    def _layout(self):
        os.makedirs(self.state, exist_ok=True)
        os.chmod(self.state, 0o755)
        for sub, mode in (("ctld", 0o700), ("log", 0o755), ("nodes", 0o755)):
            os.makedirs(os.path.join(self.state, sub), exist_ok=True)
            os.chmod(os.path.join(self.state, sub), mode)
        for name in self.node_names:
            spool = os.path.join(self.state, "nodes", name)
            shutil.rmtree(spool, ignore_errors=True)   # no job state of an earlier run
            os.makedirs(spool, mode=0o755)
        for log in os.listdir(os.path.join(self.state, "log")):
            os.unlink(os.path.join(self.state, "log", log))
        # a fresh controller: no job ids or node states of an earlier run
        for entry in os.listdir(os.path.join(self.state, "ctld")):
            path = os.path.join(self.state, "ctld", entry)
            shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
        hosts = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
                 f"{CONTROLLER_ADDR}\t{CONTROLLER}"]
        hosts += [f"{self.addresses[n]}\t{n}" for n in self.node_names]
        with open(os.path.join(self.state, "hosts"), "w") as f:
            f.write("\n".join(hosts) + "\n")
        os.chmod(os.path.join(self.state, "hosts"), 0o644)

    def _munge_works(self, socket):
        if not os.path.exists(socket):
            return False
        cred = _run(["munge", "-n", "-S", socket], check=False)
        return cred.returncode == 0 and _run(["unmunge", "-S", socket], input=cred.stdout,
                                             check=False).returncode == 0

    def _munge(self):
        """The socket of a working munged: the system's, or a private one
        started here (its pid is returned, None for the system's)."""
        if self._munge_works(SYSTEM_MUNGE_SOCKET):
            self.munge_socket = SYSTEM_MUNGE_SOCKET
            return None
        directory = os.path.join(self.state, "munge")
        os.makedirs(directory, exist_ok=True)
        munge = pwd.getpwnam("munge")
        key = os.path.join(directory, "munge.key")
        if not os.path.exists(key):
            with open(key, "wb") as f:
                f.write(os.urandom(1024))
        for path, mode in ((directory, 0o755), (key, 0o400)):
            os.chown(path, munge.pw_uid, munge.pw_gid)
            os.chmod(path, mode)
        self.munge_socket = os.path.join(directory, "munge.socket")
        proc = self._spawn(["setpriv", f"--reuid={munge.pw_uid}", f"--regid={munge.pw_gid}", "--clear-groups",
                            "--", "munged", "--foreground", f"--socket={self.munge_socket}",
                            f"--key-file={key}", f"--pid-file={directory}/munged.pid",
                            f"--seed-file={directory}/munged.seed", f"--log-file={directory}/munged.log",
                            "--num-threads=4"], "munged")
        deadline = time.time() + 10
        while not self._munge_works(self.munge_socket):
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"private munged did not start: see {self.state}/log/munged.out")
            time.sleep(0.05)
        return proc.pid

    def _write_config(self):
        nodes = "\n".join(f"NodeName={n} NodeAddr={self.addresses[n]} CPUs={NODE_CPUS} State=UNKNOWN"
                          for n in self.node_names)
        with open(self.conf, "w") as f:
            f.write(SLURM_CONF.format(controller=CONTROLLER, controller_addr=CONTROLLER_ADDR,
                                      ctld_port=CTLD_PORT, munge_socket=self.munge_socket,
                                      state=self.state, nodes=nodes))
        os.chmod(self.conf, 0o644)

    def _bridge(self):
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        # bridged frames between nodes skip iptables (br_netfilter may be
        # loaded, and a FORWARD policy of DROP would cut the nodes apart)
        _run(["ip", "link", "set", BRIDGE, "type", "bridge", "nf_call_iptables", "0"], check=False)
        _disable_ipv6(BRIDGE)
        _run(["ip", "addr", "add", f"{CONTROLLER_ADDR}/24", "dev", BRIDGE])
        _run(["ip", "link", "set", BRIDGE, "up"])

    def _spawn(self, argv, label, **kw):
        """A daemon in its own session, its output in log/LABEL.out."""
        out = open(os.path.join(self.state, "log", f"{label}.out"), "ab")
        env = {"PATH": CLEAN_PATH, "LANG": "C.UTF-8", "SLURM_CONF": self.conf, "HOME": "/root"}
        try:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd="/",
                                    start_new_session=True, stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)
        finally:
            out.close()
        _CHILDREN.append(proc)
        return proc

    def _start_node(self, name):
        proc = self._spawn(["unshare", "--net", "--uts", "--mount", "--propagation", "private", "--",
                            "/bin/sh", "-c", NODE_SCRIPT, "node", name, self.addresses[name],
                            os.path.join(self.state, "hosts"), self.conf], name, stdin=subprocess.PIPE)
        host_ns = _netns(os.getpid())
        deadline = time.time() + 10
        while _netns(proc.pid) == host_ns:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{name}: unshare failed, see {self.state}/log/{name}.out")
            time.sleep(0.005)
        veth = f"{VETH_PREFIX}{name}"[:15]
        _run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", str(proc.pid)])
        _disable_ipv6(veth)
        _run(["ip", "link", "set", veth, "master", BRIDGE])
        _run(["ip", "link", "set", veth, "up"])
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        return {"pid": proc.pid, "netns": _ns(proc.pid, "net"), "utsns": _ns(proc.pid, "uts"), "veth": veth,
                "addr": self.addresses[name]}

    def _wait_idle(self, deadline):
        while True:
            r = _run(["sinfo", "--noheader", "--Node", "--format=%N %T"], check=False, env=self.env())
            states = dict(line.split() for line in r.stdout.splitlines() if len(line.split()) == 2)
            if r.returncode == 0 and all(states.get(n) == "idle" for n in self.node_names):
                return
            info = self._load()
            for label, pid in [("slurmctld", info.get("slurmctld"))] + \
                    [(n, v["pid"]) for n, v in info.get("nodes", {}).items()]:
                if pid and not _alive(pid):
                    raise RuntimeError(f"{label} exited: see {self.state}/log/")
            if time.time() > deadline:
                raise RuntimeError(f"nodes not idle in time: {states or r.stderr.strip()}; see {self.state}/log/")
            time.sleep(0.1)

    # --- stop -----------------------------------------------------------------

    def _ours(self):
        """Pids of this cluster's daemons (and of the shells and unshare
        that become them) found by their command line, which names the
        state directory, whatever the state file says."""
        found = []
        for pid in _pids():
            cmd = cmdline(pid)
            try:
                owner = os.stat(f"/proc/{pid}").st_uid
            except OSError:
                continue
            if self.state in cmd and owner in (0, _munge_uid()) and \
                    os.path.basename(cmd.split(" ", 1)[0]) in DAEMON_COMMANDS:
                found.append(pid)
        return found

    def stop(self):
        """Kills every process of the cluster (the daemons, and whatever
        still runs in a node's namespaces or below a slurmd: slurmstepd,
        tasks, containers), removes the bridge and the veths. The nodes'
        mounts go with their mount namespaces, when their last process is
        gone. Idempotent; works from another process than start()'s."""
        info = self._load()
        own = {"net": _ns(os.getpid(), "net"), "uts": _ns(os.getpid(), "uts")}
        daemons = [v.get("pid") for v in info.get("nodes", {}).values()] + [info.get("slurmctld")]
        daemons = [p for p in daemons if p and self._is_ours(p)]
        daemons += [p for p in self._ours() if p not in daemons]
        node_ns = {v.get(k) for v in info.get("nodes", {}).values() for k in ("netns", "utsns")} - {None}
        node_ns |= {_ns(p, kind) for p in daemons for kind in ("net", "uts")} - set(own.values()) - {None}
        slurmds = [p for p in daemons if cmdline(p).startswith("slurmd ")]
        munged = info.get("munged")
        # slurmd and slurmctld first (a clean shutdown), then what is left in the nodes
        below = _descendants(slurmds)
        _kill_and_wait([p for p in daemons if p != munged])
        in_nodes = {p for p in _pids() if _ns(p, "net") in node_ns or _ns(p, "uts") in node_ns}
        _kill_and_wait(sorted((in_nodes | set(below)) - {os.getpid()}), timeout=2.0)
        if munged and self._is_ours(munged):
            _kill_and_wait([munged])
        _kill_and_wait(self._ours())
        for link in os.listdir("/sys/class/net"):
            if link == BRIDGE or link.startswith(VETH_PREFIX):
                _run(["ip", "link", "del", link], check=False)
        if os.path.exists(self._state_file):
            os.unlink(self._state_file)

    def _is_ours(self, pid):
        return self.state in cmdline(pid)

    # --- running things -------------------------------------------------------

    def env(self, prefix=None, extra=None):
        """The environment of a Slurm client: SLURM_CONF, and PATH with
        PREFIX/bin first when a sarus prefix is given."""
        path = CLEAN_PATH if prefix is None else f"{os.path.join(prefix, 'bin')}:{CLEAN_PATH}"
        env = {"SLURM_CONF": self.conf, "PATH": path}
        if extra:
            env.update({k: str(v) for k, v in extra.items()})
        return env

    def _user_env(self, sarus, env):
        extra = {}
        if sarus is not None:
            extra["SARUS_CONFIG_FILE"] = sarus.config_file
        extra.update(env or {})
        return self.env(prefix=sarus.prefix if sarus is not None else None, extra=extra)

    def run(self, user, argv, sarus=None, env=None, timeout=120, **kw):
        """argv as `user` on the host (conftest.run_as) with the client
        environment; with sarus= (a conftest.Sarus), its prefix's bin first
        in PATH and its SARUS_CONFIG_FILE, so `sarus` in a task is that one."""
        from conftest import run_as
        return run_as(user, argv, env=self._user_env(sarus, env), timeout=timeout, **kw)

    def popen(self, user, argv, sarus=None, env=None, **kw):
        from conftest import popen_as
        return popen_as(user, argv, env=self._user_env(sarus, env), **kw)

    def srun(self, user, *args, sarus=None, env=None, timeout=120, **kw):
        return self.run(user, ["srun", *args], sarus=sarus, env=env, timeout=timeout, **kw)

    def sbatch(self, user, *args, sarus=None, env=None):
        """Submits; returns the job id (int). Raises if sbatch fails."""
        r = self.run(user, ["sbatch", "--parsable", *args], sarus=sarus, env=env, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"sbatch {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return int(r.stdout.strip().split(";")[0])

    def scancel(self, user, *args, env=None):
        return self.run(user, ["scancel", *args], env=env, timeout=60)

    def job(self, job_id):
        """scontrol show job as a dict (None once the job is forgotten)."""
        r = _run(["scontrol", "--oneliner", "show", "job", str(job_id)], check=False, env=self.env())
        if r.returncode != 0 or not r.stdout.strip():
            return None
        fields = {}
        for token in r.stdout.split():
            key, _, value = token.partition("=")
            fields.setdefault(key, value)
        return fields

    def wait_job(self, job_id, timeout=120):
        """Waits until the job has ended (not PENDING, RUNNING, COMPLETING...);
        returns its final JobState."""
        deadline = time.time() + timeout
        while True:
            job = self.job(job_id)
            state = job.get("JobState") if job else None
            if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                         "PREEMPTED", "BOOT_FAIL", "DEADLINE") and "COMPLETING" not in job.get("Reason", ""):
                return state
            if time.time() > deadline:
                raise TimeoutError(f"job {job_id} still {state} after {timeout} s")
            time.sleep(0.2)

    def steps(self, job_id):
        """Ids (JOB.STEP) of the job's running steps."""
        r = _run(["squeue", "--noheader", "--steps", f"--jobs={job_id}", "--format=%i"], check=False,
                 env=self.env())
        return r.stdout.split() if r.returncode == 0 else []

    def node_pid(self, node):
        return self._load()["nodes"][node]["pid"]

    def in_node(self, node, argv, **kw):
        """argv as root in the node's namespaces (nsenter)."""
        return _run(["nsenter", f"--target={self.node_pid(node)}", "--net", "--uts", "--mount", "--",
                     *argv], check=kw.pop("check", False), **kw)

    def node_mounts(self, node):
        """The node's mount table (its /proc/PID/mountinfo lines)."""
        with open(f"/proc/{self.node_pid(node)}/mountinfo") as f:
            return f.read().splitlines()

    def node_processes(self):
        """{node: [pids]} of the processes in each node's network or UTS
        namespace (a container may have its own of one of them)."""
        nodes = self._load().get("nodes", {})
        by_ns = {v[kind]: n for n, v in nodes.items() for kind in ("netns", "utsns") if v.get(kind)}
        found = {n: [] for n in nodes}
        for pid in _pids():
            node = by_ns.get(_ns(pid, "net")) or by_ns.get(_ns(pid, "uts"))
            if node:
                found[node].append(pid)
        return found

    def node_leftovers(self):
        """What no node may hold once every job has ended: processes in a
        node's namespaces other than its slurmd (tasks, slurmstepd, sarus,
        runtimes, FUSE servers...), and mounts in a node's mount namespace
        that were not there when the cluster had started."""
        info = self._load()
        slurmds = {v["pid"] for v in info.get("nodes", {}).values()}
        found = []
        for node, pids in self.node_processes().items():
            for pid in pids:
                if pid not in slurmds and _alive(pid):
                    found.append(f"process {pid} on {node} (uid {_owner(pid)}): {cmdline(pid)}")
        for node in self.node_names:
            baseline = list(info.get("mounts", {}).get(node, []))
            for key, line in zip(_mount_keys(self.node_mounts(node)), self.node_mounts(node)):
                if key in baseline:
                    baseline.remove(key)
                else:
                    found.append(f"mount on {node}: {line}")
        return found

    def leftovers(self, user):
        """node_leftovers(); processes of `user` (its uid or one of its
        subordinate ids) anywhere on the host that come from a Slurm job
        (SLURM_JOB_ID in their environment: a task, or a container of one,
        that left the node's namespaces); and conftest.leftovers(user):
        sarus helper processes, mounts, loop devices and cgroups of the host
        (the nodes share its cgroup hierarchies and loop devices)."""
        from conftest import leftovers as host_leftovers
        uids = {pwd.getpwnam(user).pw_uid} | _subordinate_uids(user)
        found = self.node_leftovers()
        for pid in _pids():
            if _owner(pid) in uids and _alive(pid) and _from_slurm_job(pid) \
                    and not any(f"process {pid} " in f for f in found):
                found.append(f"process {pid} of {user} (uid {_owner(pid)}), from a job: {cmdline(pid)}")
        return found + host_leftovers(user)

    def wait_for_no_leftovers(self, user, timeout=15, ignore=None):
        """leftovers(user) once they are gone, or as they are after timeout s
        (slurmstepd takes a moment to finish after its tasks); without the
        entries for which ignore(entry) is true."""
        deadline = time.time() + timeout
        while True:
            found = [f for f in self.leftovers(user) if not (ignore and ignore(f))]
            if not found or time.time() > deadline:
                return found
            time.sleep(0.2)

    # --- Slurm's native containers (test_oci_runtime.py) ---------------------

    @contextlib.contextmanager
    def oci_conf(self, text):
        """STATE_DIR/oci.conf, next to slurm.conf, while the body runs:
        slurmstepd reads it at every step with --container (no restart);
        without it Slurm ignores --container."""
        path = os.path.join(self.state, "oci.conf")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        try:
            yield path
        finally:
            os.unlink(path)

    def status(self):
        info = self._load()
        lines = [f"state directory: {self.state}"]
        if not info:
            return "\n".join(lines + ["not running"])
        lines.append(f"slurmctld pid {info.get('slurmctld')} alive={_alive(info.get('slurmctld') or 0)}")
        lines.append(f"munged: {'system' if not info.get('munged') else 'private, pid %d' % info['munged']}")
        for name, node in info.get("nodes", {}).items():
            lines.append(f"{name} {node['addr']} slurmd pid {node['pid']} alive={_alive(node['pid'])}")
        r = _run(["sinfo", "--Node"], check=False, env=self.env())
        lines.append(r.stdout.rstrip() or r.stderr.rstrip())
        return "\n".join(lines)


DAEMON_COMMANDS = ("slurmctld", "slurmd", "munged", "unshare", "setpriv", "sh")


def _munge_uid():
    try:
        return pwd.getpwnam("munge").pw_uid
    except KeyError:
        return -1


def _from_slurm_job(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return any(v.startswith(b"SLURM_JOB_ID=") for v in f.read().split(b"\0"))
    except OSError:
        return False


def _owner(pid):
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


@contextlib.contextmanager
def exclusive(state_dir=STATE_DIR, timeout=1800):
    """Holds STATE_DIR.lock (flock) while the body runs: one test session at
    a time has the cluster (a second one would stop the first's when it
    starts its own). Waits up to timeout s for it."""
    with open(state_dir.rstrip("/") + ".lock", "a") as lock:
        deadline = time.time() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.time() > deadline:
                    raise RuntimeError(f"{lock.name} held by another session"
                                       + (f" for {timeout} s" if timeout else ""))
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _subordinate_uids(user):
    uids = set()
    try:
        with open("/etc/subuid") as f:
            for line in f:
                name, _, rest = line.strip().partition(":")
                if name == user and rest:
                    start, count = (int(x) for x in rest.split(":"))
                    uids |= set(range(start, start + count))
    except OSError:
        pass
    return uids


def main():
    parser = argparse.ArgumentParser(description="sarus' Slurm test cluster (run as root)")
    parser.add_argument("command", choices=("start", "stop", "status", "env"))
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--force", action="store_true",
                        help="start or stop even while a test session holds the cluster")
    args = parser.parse_args()
    cluster = SlurmCluster(nodes=args.nodes)
    if args.command in ("start", "stop"):
        lock = contextlib.nullcontext() if args.force else exclusive(timeout=0)
        try:
            with lock:
                if args.command == "start":
                    cluster.start()
                else:
                    cluster.stop()
        except RuntimeError as e:
            sys.exit(f"slurm_cluster.py: {e}" + ("" if args.force or "held by" not in str(e) else
                                                 " (a test session is using the cluster; --force to go on)"))
        if args.command == "start":
            print(f"started in {cluster.startup_seconds:.1f} s: slurmctld ({CONTROLLER}, {CONTROLLER_ADDR}), "
                  f"{', '.join(f'{n} ({a})' for n, a in cluster.addresses.items())}")
            print(f"export SLURM_CONF={cluster.conf}")
        else:
            print("stopped")
    elif args.command == "status":
        print(cluster.status())
    else:
        print(f"export SLURM_CONF={cluster.conf}")


if __name__ == "__main__":
    main()
