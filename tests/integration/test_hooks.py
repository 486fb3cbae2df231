"""OCI hooks of sarus: hook files of hooksDir selected by their `when`
conditions into the container's config.json, and the mount and timestamp
hooks built with sarus, in both modes and as both test users."""

import json
import os
import pwd
import select
import shutil
import subprocess
import tempfile

import pytest

from conftest import popen_as, private_hooks_dir

BUSYBOX = "load/library/busybox"
# mount_hook works at both stages, except at createContainer in userns mode
# without subordinate ids: crun then runs it as the container's user.
MOUNT_STAGE = "createRuntime"
BOTH_STAGES = pytest.mark.parametrize("stage", ["createRuntime", "createContainer"])


@pytest.fixture
def hooks(sarus, test_images):
    """sarus with busybox loaded and an empty, root-owned hooksDir under the
    prefix (the suid security checks want it and its ancestors root-owned)."""
    sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    yield from private_hooks_dir(sarus, "test")


@pytest.fixture
def logdir(sarus):
    """A directory the timestamp hook can write to: host root's in suid mode
    (the security checks want the log's directories root's), the user's in
    userns mode (the hook runs as the user there)."""
    directory = tempfile.mkdtemp(prefix="sarus-hooks-log-", dir="/var/tmp")
    os.chmod(directory, 0o755)
    if sarus.mode == "userns":
        pw = pwd.getpwnam(sarus.user)
        os.chown(directory, pw.pw_uid, pw.pw_gid)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def run_mount_test(hooks, stage, *args, verbose=False):
    """Runs the container; None when the mount hook is expected to refuse
    (and did, with a clear message), else the successful result. The hooks'
    INFO lines show only with verbose."""
    r = hooks(*(["--verbose"] if verbose else []), "run", *args)
    if stage == "createContainer" and hooks.mode == "userns" and hooks.user == "sarusnosub":
        assert r.returncode != 0
        assert "configure mount_hook for the createRuntime stage" in r.stderr, r.stderr
        return None
    assert r.returncode == 0, r.stderr
    return r


def add_hook(sarus, name, binary, args=(), env=(), when=None, stages=None):
    stages = stages or ((MOUNT_STAGE,) if binary == "mount_hook" else ("createContainer",))
    document = {
        "version": "1.0.0",
        "hook": {"path": os.path.join(sarus.prefix, "bin", binary), "args": [binary, *args],
                 "env": list(env)},
        "when": when or {"always": True},
        "stages": list(stages),
    }
    path = os.path.join(sarus.hooks_dir, name)
    with open(path, "w") as f:
        json.dump(document, f)
    os.chmod(path, 0o644)


def timestamp(sarus, name, logfile, message, when=None, stages=("createContainer",)):
    add_hook(sarus, name, "timestamp_hook",
             env=[f"TIMESTAMP_HOOK_LOGFILE={logfile}", f"TIMESTAMP_HOOK_MESSAGE={message}"],
             when=when, stages=stages)


def logged(logfile):
    if not os.path.exists(logfile):
        return []
    with open(logfile) as f:
        return [line.rsplit("Timestamp hook: ", 1)[1].rstrip("\n") for line in f]


@pytest.fixture
def host_files():
    """Host files to bind: readable by everyone."""
    directory = tempfile.mkdtemp(prefix="sarus-hooks-src-", dir="/var/tmp")
    os.chmod(directory, 0o755)
    with open(os.path.join(directory, "file.txt"), "w") as f:
        f.write("from the host\n")
    os.chmod(os.path.join(directory, "file.txt"), 0o644)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@BOTH_STAGES
def test_mount_hook_bind_mounts(hooks, host_files, stage):
    add_hook(hooks, "mount.json", "mount_hook",
             [f"--mount=type=bind,src={host_files},dst=/opt/rw",
              f"--mount=type=bind,source={host_files}/file.txt,destination=/etc/ro.txt,readonly"],
             stages=[stage])
    r = run_mount_test(hooks, stage, BUSYBOX, "sh", "-c",
                       "cat /opt/rw/file.txt /etc/ro.txt; echo x > /etc/ro.txt && echo WRITABLE; "
                       "grep -E ' /(opt/rw|etc/ro.txt) ' /proc/mounts")
    if r is None:
        return
    assert r.stdout.count("from the host\n") == 2
    assert "WRITABLE" not in r.stdout
    mounts = {line.split()[1]: line.split()[3].split(",") for line in r.stdout.splitlines()
              if len(line.split()) > 3 and line.split()[1] in ("/opt/rw", "/etc/ro.txt")}
    assert "ro" in mounts["/etc/ro.txt"] and "nosuid" in mounts["/etc/ro.txt"]
    assert "rw" in mounts["/opt/rw"]


@BOTH_STAGES
def test_mount_hook_device(hooks, stage):
    """/dev/fuse is not among the devices the runtime allows: opening it
    needs the whitelisting of the hook (suid mode; userns containers have
    no devices cgroup of their own)."""
    add_hook(hooks, "device.json", "mount_hook", ["--device=/dev/fuse:/dev/hooked-fuse"], stages=[stage])
    r = run_mount_test(hooks, stage, BUSYBOX, "sh", "-c",
                       "test -c /dev/hooked-fuse && exec 3<>/dev/hooked-fuse && echo OPENED", verbose=True)
    if r is None:
        return
    assert "OPENED" in r.stdout, r.stderr
    if hooks.mode == "suid":
        assert "whitelisted 'c 10:229 rwm'" in r.stderr
    else:
        assert "not whitelisted" in r.stderr


def test_mount_hook_ldconfig(hooks, host_files):
    """LDCONFIG_PATH: the mounted library (libz, SONAME libz.so.1) enters the
    container's ld cache, which busybox does not have at all."""
    shutil.copy("/lib/x86_64-linux-gnu/libz.so.1", os.path.join(host_files, "libz.so.1"))
    os.chmod(os.path.join(host_files, "libz.so.1"), 0o644)
    add_hook(hooks, "mount.json", "mount_hook",
             [f"--mount=type=bind,src={host_files}/libz.so.1,dst=/usr/lib/libz.so.1"],
             env=["LDCONFIG_PATH=/sbin/ldconfig"])
    r = hooks.ok("run", BUSYBOX, "sh", "-c", "grep -c /usr/lib/libz.so.1 /etc/ld.so.cache")
    assert r.stdout.strip() != "0"
    add_hook(hooks, "mount.json", "mount_hook",
             [f"--mount=type=bind,src={host_files}/libz.so.1,dst=/usr/lib/libz.so.1"])
    r = hooks.ok("run", BUSYBOX, "sh", "-c", "if test -e /etc/ld.so.cache; then echo present; else echo absent; fi")
    assert r.stdout == "absent\n"


@pytest.mark.parametrize("when, options, runs", [
    ({"always": True}, [], True),
    ({"annotations": {"^com.test.hook$": "^on$"}}, ["--annotation", "com.test.hook=on"], True),
    ({"annotations": {"^com.test.hook$": "^on$"}}, ["--annotation", "com.test.hook=off"], False),
    ({"annotations": {"^com.hooks.mpi.enabled$": "^true$"}}, ["--mpi"], True),
    ({"commands": [".*/true"]}, [], True),
    ({"commands": ["/bin/false"]}, [], False),
    ({"hasBindMounts": True}, [], False),
    ({"hasBindMounts": True}, ["--mount", "type=bind,src=/etc,dst=/host-etc"], True),
    ({"always": True, "commands": ["/bin/false"]}, [], False),
])
def test_when_conditions(hooks, logdir, when, options, runs):
    logfile = os.path.join(logdir, "log")
    timestamp(hooks, "ts.json", logfile, "ran", when=when)
    r = hooks("run", *options, BUSYBOX, "/bin/true")
    assert r.returncode == 0, r.stderr
    assert logged(logfile) == (["ran"] if runs else [])


def test_image_labels_choose_no_hook(hooks, logdir, test_images):
    """Attack by an image's author: a label the filter of hook switches lets
    through ("com.hooks.mpi-enabled") still matches a hook file's pattern
    with an unescaped dot (^com.hooks.mpi.enabled$, as Sarus writes them):
    labels take no part in choosing hooks."""
    from conftest import busybox_with_layer
    import uuid
    logfile = os.path.join(logdir, "log")
    timestamp(hooks, "ts.json", logfile, "ran", when={"annotations": {"^com.hooks.mpi.enabled$": "^true$"}})
    archive = f"/var/tmp/sarus-labels-{uuid.uuid4().hex[:8]}.tar"
    try:
        busybox_with_layer(test_images, archive, [], labels={"com.hooks.mpi-enabled": "true"})
        hooks.ok("load", archive, "labelled")
        r = hooks("run", "load/library/labelled", "/bin/true")
        assert r.returncode == 0, r.stderr
        assert logged(logfile) == [], "an image label chose a hook"
        hooks.ok("run", "--mpi", "load/library/labelled", "/bin/true")
        assert logged(logfile) == ["ran"]
    finally:
        os.remove(archive)


def test_hook_order_and_stages(hooks, logdir, host_files):
    logfile = os.path.join(logdir, "log")
    timestamp(hooks, "10-ts.json", logfile, "first", stages=("createRuntime", "createContainer", "poststop"))
    add_hook(hooks, "20-mount.json", "mount_hook", [f"--mount=type=bind,src={host_files},dst=/opt/x"])
    timestamp(hooks, "30-ts.json", logfile, "second", stages=("createContainer",))
    hooks.ok("run", BUSYBOX, "cat", "/opt/x/file.txt")
    assert logged(logfile) == ["first", "first", "second", "first"]
    with open(logfile) as f:
        line = f.readline()
    assert line.startswith("[") and "] [hook] [INFO] Timestamp hook: first" in line


def test_a_flag_or_annotation_no_hook_acts_on_is_a_warning(hooks, logdir):
    hooks.ok("ssh-keygen")  # --ssh needs the keys before anything else
    r = hooks.ok("run", "--ssh", "--annotation", "com.hooks.example.enabled=true", BUSYBOX, "true")
    assert f"no hook in {hooks.hooks_dir} acts on com.hooks.ssh.enabled" in r.stderr
    assert f"no hook in {hooks.hooks_dir} acts on com.hooks.example.enabled" in r.stderr
    timestamp(hooks, "ts.json", os.path.join(logdir, "log"), "m",
              when={"annotations": {"^com.hooks.example.enabled$": "^true$"}})
    r = hooks.ok("run", "--annotation", "com.hooks.example.enabled=true", BUSYBOX, "true")
    assert "acts on" not in r.stderr
    assert logged(os.path.join(logdir, "log")) == ["m"]
    # A hook reads the settings of its family (com.hooks.ssh.port and the
    # like) itself: they count while the hook that reads them runs.
    r = hooks.ok("run", "--annotation", "com.hooks.example.enabled=true", "--annotation",
                 "com.hooks.example.port=1", BUSYBOX, "true")
    assert "acts on" not in r.stderr
    r = hooks.ok("run", "--annotation", "com.hooks.example.port=1", BUSYBOX, "true")
    assert f"no hook in {hooks.hooks_dir} acts on com.hooks.example.port" in r.stderr


def test_a_hook_whose_program_is_missing_is_one_clear_error(hooks):
    document = {"version": "1.0.0", "hook": {"path": "/nonexistent/hook-program"},
                "when": {"always": True}, "stages": ["createRuntime"]}
    path = os.path.join(hooks.hooks_dir, "missing.json")
    with open(path, "w") as f:
        json.dump(document, f)
    os.chmod(path, 0o644)
    r = hooks("run", BUSYBOX, "true")
    assert r.returncode == 1
    assert r.stderr == (f"hook configuration file {path}: cannot run its program /nonexistent/hook-program: "
                        "No such file or directory\n")


def test_the_last_of_duplicate_hook_variables_wins(hooks, logdir):
    # As Sarus runs hooks (and as a shell reads NAME=1 NAME=2), the last value counts.
    logfile = os.path.join(logdir, "log")
    add_hook(hooks, "ts.json", "timestamp_hook",
             env=[f"TIMESTAMP_HOOK_LOGFILE={logfile}", "TIMESTAMP_HOOK_MESSAGE=first",
                  "TIMESTAMP_HOOK_MESSAGE=last"])
    hooks.ok("run", BUSYBOX, "true")
    assert logged(logfile) == ["last"]


def test_timestamp_log_file_only_from_the_hook_environment(hooks, logdir, capfd):
    userfile = os.path.join(logdir, "user-chosen")
    timestamp(hooks, "ts.json", "", "to stderr")
    r = hooks.ok("run", "-e", f"TIMESTAMP_HOOK_LOGFILE={userfile}",
                 "--annotation", f"com.hooks.timestamp.logfile={userfile}", BUSYBOX, "/bin/true")
    assert not os.path.exists(userfile)
    assert "Timestamp hook: to stderr" in r.stderr


def test_a_timestamp_log_file_the_hook_cannot_open_costs_only_a_warning(hooks):
    """As in a rootless engine, whose hook cannot write the template's
    /var/log: the container runs, the line goes to stderr with the reason."""
    timestamp(hooks, "ts.json", "/proc/no-such-directory/hook.log", "kept")
    r = hooks.ok("run", BUSYBOX, "/bin/true")
    assert "[WARN] cannot open /proc/no-such-directory/hook.log: No such file or directory: " \
           "the timestamp goes to stderr" in r.stderr, r.stderr
    assert "Timestamp hook: kept" in r.stderr, r.stderr


def test_a_relative_timestamp_log_file_is_refused(hooks):
    """Relative to whatever directory the runtime starts hooks in (runc: the
    bundle), as root in suid mode."""
    timestamp(hooks, "ts.json", "relative/hook.log", "m")
    r = hooks("run", BUSYBOX, "/bin/true")
    assert r.returncode != 0
    assert "TIMESTAMP_HOOK_LOGFILE 'relative/hook.log' is not an absolute path" in r.stderr, r.stderr


def add_shell_hook(sarus, name, script, stage="createContainer"):
    document = {"version": "1.0.0", "hook": {"path": "/bin/sh", "args": ["sh", "-c", script]},
                "when": {"always": True}, "stages": [stage]}
    path = os.path.join(sarus.hooks_dir, name)
    with open(path, "w") as f:
        json.dump(document, f)
    os.chmod(path, 0o644)


@pytest.mark.parametrize("stage", ["createRuntime", "createContainer", "poststop"])
def test_a_hooks_stdout_and_stderr_reach_sarus_stdout_and_stderr(hooks, stage):
    # Sarus's test_hook_stdout_stderr.py: what a hook prints shows on sarus's stream of the same name.
    add_shell_hook(hooks, "print.json", "echo \"hook's stdout\"; echo \"hook's stderr\" >&2", stage)
    r = hooks("run", BUSYBOX, "echo", "container's stdout")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == ["container's stdout", "hook's stdout"], r.stdout
    assert r.stderr.splitlines() == ["hook's stderr"], r.stderr


def test_a_hooks_output_shows_while_the_container_runs(hooks):
    add_shell_hook(hooks, "print.json", "echo 'hook says hello'")
    p = popen_as(hooks.user, [hooks.binary, "run", BUSYBOX, "sleep", "60"],
                 env={"SARUS_CONFIG_FILE": hooks.config_file})
    try:
        ready, _, _ = select.select([p.stdout], [], [], 30)
        assert ready, "the hook's output did not show while the container ran"
        assert p.stdout.readline() == "hook says hello\n"
        assert p.poll() is None
    finally:
        p.terminate()
        p.wait(timeout=20)


def test_failing_hook_fails_the_run(hooks):
    add_hook(hooks, "mount.json", "mount_hook", ["--mount=type=bind,src=/etc"])
    r = hooks("run", BUSYBOX, "/bin/true")
    assert r.returncode != 0
    assert "[Mount hook] [ERROR] " in r.stderr and "Invalid mount request" in r.stderr, r.stderr


def test_bad_hook_file_is_named(hooks):
    path = os.path.join(hooks.hooks_dir, "broken.json")
    with open(path, "w") as f:
        json.dump({"version": "1.0.0", "hook": {"path": "relative"}, "when": {"always": True},
                   "stages": ["createContainer"]}, f)
    os.chmod(path, 0o644)
    for args in (["run", BUSYBOX, "/bin/true"], ["hooks"]):
        r = hooks(*args)
        assert r.returncode != 0
        assert "broken.json" in r.stderr and "hook.path" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_sarus_hooks_lists_them(hooks, logdir):
    add_hook(hooks, "10-mount.json", "mount_hook", ["--mount=type=bind,src=/etc,dst=/x"],
             when={"annotations": {"^com.hooks.mpi.enabled$": "^true$"}})
    timestamp(hooks, "20-ts.json", os.path.join(logdir, "log"), "m", stages=("prestart", "poststop"))
    listing = hooks.ok("hooks").stdout.splitlines()
    assert listing[0].split() == ["NAME", "PATH", "STAGES"]
    assert listing[1].split() == ["10-mount", os.path.join(hooks.prefix, "bin", "mount_hook"), MOUNT_STAGE]
    assert listing[2].split() == ["20-ts", os.path.join(hooks.prefix, "bin", "timestamp_hook"),
                                  "prestart,poststop"]
    mpi = hooks.ok("hooks", "--mpi").stdout.splitlines()
    assert mpi[0].split() == ["NAME", "MPI", "TYPE"]
    assert [line.split() for line in mpi[1:]] == [["10-mount"]]   # an MPI hook without a type


def test_sarus_hooks_mpi_lists_mpi_types_and_the_default(hooks):
    for name, mpi_type in (("050-mpich.json", "^mpich$"), ("051-openmpi.json", "^openmpi$")):
        add_hook(hooks, name, "mount_hook", ["--mount=type=bind,src=/etc,dst=/x"],
                 when={"annotations": {"^com.hooks.mpi.enabled$": "^true$", "^com.hooks.mpi.type$": mpi_type}})
    add_hook(hooks, "060-other-with-a-long-name.json", "mount_hook", ["--mount=type=bind,src=/etc,dst=/x"],
             when={"annotations": {"^com.hooks.glibc.enabled$": "^true$"}})
    hooks.config["defaultMPIType"] = "mpich"
    hooks.write_config()
    for option in ("--mpi", "-m"):
        lines = hooks.ok("hooks", option).stdout.splitlines()
        assert [line.split() for line in lines] == [["NAME", "MPI", "TYPE"], ["050-mpich", "^mpich$", "(default)"],
                                                    ["051-openmpi", "^openmpi$"]]
        # as Sarus, NAME is as wide as the longest name of all hooks, listed or not
        width = len("060-other-with-a-long-name") + 3
        assert lines[0] == "NAME".ljust(width) + "MPI TYPE", lines[0]
        assert lines[1] == "050-mpich".ljust(width) + "^mpich$ (default)", lines[1]


@pytest.mark.parametrize("env, expected", [([], "/usr/lib/prov.so"),
                                           (["-e", "FI_PROVIDER_PATH=/opt/fi"], "/opt/fi/prov.so")])
def test_mount_hook_fi_provider_path_wildcard(hooks, host_files, env, expected):
    add_hook(hooks, "mount.json", "mount_hook",
             [f"--mount=type=bind,src={host_files}/file.txt,dst=<FI_PROVIDER_PATH>/prov.so"])
    r = hooks.ok("run", *env, BUSYBOX, "cat", expected)
    assert r.stdout == "from the host\n"


def test_a_hook_rootless_value_it_does_not_know_is_said(hooks):
    add_hook(hooks, "device.json", "mount_hook", ["--device=/dev/fuse"], env=["HOOK_ROOTLESS=1"])
    r = hooks.ok("run", BUSYBOX, "test", "-c", "/dev/fuse")
    assert "[Mount hook] [WARN] HOOK_ROOTLESS='1' is neither true nor false: taken as false" in r.stderr, r.stderr


def test_a_device_left_out_of_the_cgroup_is_said_without_verbose(hooks):
    """A hook that degrades says so at sarus's default level (WARN), never
    silently: the device is there, but opening it may fail."""
    add_hook(hooks, "device.json", "mount_hook", ["--device=/dev/fuse"], env=["HOOK_ROOTLESS=TRUE"])
    r = hooks.ok("run", BUSYBOX, "test", "-c", "/dev/fuse")
    assert "[Mount hook] [WARN] rootless: device /dev/fuse not whitelisted in the devices cgroup" in r.stderr, \
        r.stderr


def test_hook_rootless_switches_off_cgroup_writes(hooks):
    add_hook(hooks, "device.json", "mount_hook", ["--device=/dev/fuse"],
             env=["HOOK_ROOTLESS=TRUE", "HOOK_LOG_LEVEL=debug"])
    r = hooks.ok("run", BUSYBOX, "test", "-c", "/dev/fuse")
    assert "[Mount hook] [DEBUG] HOOK_ROOTLESS=true: no identity switches, no cgroup writes" in r.stderr
    assert "rootless: device /dev/fuse not whitelisted in the devices cgroup" in r.stderr
    assert "whitelisted 'c" not in r.stderr


def test_standalone_in_rootless_crun():
    """The hooks need no sarus: a hand-made bundle for rootless crun, with
    mount_hook (HOOK_ROOTLESS=true) at createContainer and timestamp_hook at
    poststop, run by an unprivileged user."""
    from conftest import run_rootless_crun_bundle, sarus_prefix
    bundle = tempfile.mkdtemp(prefix="sarus-crun-hooks-", dir="/var/tmp")
    try:
        os.makedirs(os.path.join(bundle, "rootfs", "bin"))
        shutil.copy("/usr/bin/busybox", os.path.join(bundle, "rootfs", "bin", "busybox"))
        os.symlink("busybox", os.path.join(bundle, "rootfs", "bin", "cat"))
        os.makedirs(os.path.join(bundle, "src"))
        with open(os.path.join(bundle, "src", "f.txt"), "w") as f:
            f.write("standalone\n")
        bin_dir = os.path.join(sarus_prefix("userns"), "bin")
        r, hooks_log = run_rootless_crun_bundle(bundle, "sarustest", ["cat", "/opt/standalone/f.txt"], {
            "createContainer": [{"path": os.path.join(bin_dir, "mount_hook"),
                                 "args": ["mount_hook", f"--mount=type=bind,src={bundle}/src,dst=/opt/standalone"],
                                 "env": ["HOOK_ROOTLESS=true"]}],
            "poststop": [{"path": os.path.join(bin_dir, "timestamp_hook"), "args": ["timestamp_hook"],
                          "env": ["TIMESTAMP_HOOK_MESSAGE=stopped",
                                  f"TIMESTAMP_HOOK_LOGFILE={bundle}/timestamps.log"]}],
        })
        assert r.returncode == 0, r.stderr + hooks_log
        assert r.stdout == "standalone\n"
        assert logged(os.path.join(bundle, "timestamps.log")) == ["stopped"]
    finally:
        shutil.rmtree(bundle, ignore_errors=True)


def test_the_shipped_crun_lets_a_hook_end_without_reading_the_state():
    """A hook need not read the container state the runtime writes to its
    stdin. crun 1.8 failed the container ("writing to pipe: Broken pipe")
    whenever such a hook ended before crun's write, which happened once in a
    .ci/run; tools/build_crun.sh patches the crun sarus ships. strace delays
    crun's writes so that the hooks (createRuntime and poststop, which crun
    itself runs) always end first."""
    from conftest import sarus_prefix
    crun = os.path.join(sarus_prefix("suid"), "libexec", "sarus", "crun")
    bundle = tempfile.mkdtemp(prefix="sarus-crun-epipe-", dir="/var/tmp")
    try:
        os.makedirs(os.path.join(bundle, "rootfs", "bin"))
        shutil.copy("/usr/bin/busybox", os.path.join(bundle, "rootfs", "bin", "busybox"))
        subprocess.run([crun, "spec"], cwd=bundle, check=True)
        with open(os.path.join(bundle, "config.json")) as f:
            config = json.load(f)
        config["process"].update(terminal=False, args=["/bin/busybox", "echo", "container's stdout"])
        not_reading = [{"path": "/bin/true", "args": ["true"]}]
        config["hooks"] = {"createRuntime": not_reading, "poststop": not_reading}
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(config, f)
        r = subprocess.run(["strace", "-o", "/dev/null", "-e", "trace=write", "-e", "inject=write:delay_enter=100000",
                            crun, "--root", os.path.join(bundle, "state"), "run", "--bundle", bundle, "epipe"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "container's stdout\n", r.stderr
    finally:
        shutil.rmtree(bundle, ignore_errors=True)


def test_the_timestamp_hook_survives_debians_crun():
    """Debian's crun 1.8 (Podman's, or crun used by hand) still fails a
    container whose hook ends before crun wrote it the state: the timestamp
    hook, which needs no state, reads it all the same. strace delays crun's
    writes as above."""
    from conftest import sarus_prefix
    bundle = tempfile.mkdtemp(prefix="sarus-crun-timestamp-", dir="/var/tmp")
    try:
        os.makedirs(os.path.join(bundle, "rootfs", "bin"))
        shutil.copy("/usr/bin/busybox", os.path.join(bundle, "rootfs", "bin", "busybox"))
        subprocess.run(["/usr/bin/crun", "spec"], cwd=bundle, check=True)
        with open(os.path.join(bundle, "config.json")) as f:
            config = json.load(f)
        config["process"].update(terminal=False, args=["/bin/busybox", "true"])
        log = os.path.join(bundle, "timestamps.log")
        hook = [{"path": os.path.join(sarus_prefix("userns"), "bin", "timestamp_hook"), "args": ["timestamp_hook"],
                 "env": [f"TIMESTAMP_HOOK_LOGFILE={log}", "TIMESTAMP_HOOK_MESSAGE=stamp"]}]
        config["hooks"] = {"createRuntime": hook, "poststop": hook}
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(config, f)
        r = subprocess.run(["strace", "-o", "/dev/null", "-e", "trace=write", "-e", "inject=write:delay_enter=100000",
                            "/usr/bin/crun", "--root", os.path.join(bundle, "state"), "run", "--bundle", bundle,
                            "timestamp"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        with open(log) as f:
            assert [line.endswith("Timestamp hook: stamp\n") for line in f] == [True, True]
    finally:
        shutil.rmtree(bundle, ignore_errors=True)


@pytest.mark.parametrize("provider_env", [["LDCONFIG_PATH=/sbin/ldconfig"], []],
                         ids=["ldconfig-p", "cache-file"])
def test_mount_hook_fi_provider_path_from_the_ld_cache(hooks, host_files, provider_env):
    """Without FI_PROVIDER_PATH in the container, <FI_PROVIDER_PATH> is the
    directory of libfabric in the container's ld cache + /libfabric: a first
    hook puts a libfabric (SONAME libfabric.so.1) in /usr/lib and updates
    the cache, the second one places the provider (found by `ldconfig -p`
    with LDCONFIG_PATH, else in the cache file itself)."""
    source = os.path.join(host_files, "fabric.c")
    with open(source, "w") as f:
        f.write("int fi_version(void) { return 1; }\n")
    library = os.path.join(host_files, "libfabric.so.1")
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libfabric.so.1", "-o", library, source], check=True)
    os.chmod(library, 0o755)
    ldconfig = ["LDCONFIG_PATH=/sbin/ldconfig"]
    add_hook(hooks, "10-libfabric.json", "mount_hook",
             [f"--mount=type=bind,src={library},dst=/usr/lib/libfabric.so.1"], env=ldconfig)
    add_hook(hooks, "20-provider.json", "mount_hook",
             [f"--mount=type=bind,src={host_files}/file.txt,dst=<FI_PROVIDER_PATH>/libprov-fi.so"], env=provider_env)
    r = hooks.ok("run", BUSYBOX, "cat", "/usr/lib/libfabric/libprov-fi.so")
    assert r.stdout == "from the host\n"


def test_enroot_adapter_in_a_simulated_enroot_hook():
    """tools/enroot_mount_hook.sh as enroot runs its hooks: inside the
    container's user and mount namespaces (unshare -Urm here), with
    ENROOT_ROOTFS and ENROOT_ENVIRON."""
    from conftest import REPO, run_as, sarus_prefix
    work = tempfile.mkdtemp(prefix="sarus-enroot-hooks-", dir="/var/tmp")
    try:
        os.chmod(work, 0o755)
        os.makedirs(os.path.join(work, "rootfs", "usr", "lib"))
        os.makedirs(os.path.join(work, "src"))
        with open(os.path.join(work, "src", "f.txt"), "w") as f:
            f.write("from the host\n")
        with open(os.path.join(work, "environ"), "w") as f:
            f.write('PATH=/bin\nFI_PROVIDER_PATH=/opt/fi\nQUOTED="a\\b"\n')
        with open(os.path.join(REPO, "tools", "enroot_mount_hook.sh")) as f:
            script = f.read().replace("@PREFIX@", sarus_prefix("userns"))
        adapter = os.path.join(work, "adapter.sh")
        with open(adapter, "w") as f:
            f.write(script)
        os.chmod(adapter, 0o755)
        uid = __import__("pwd").getpwnam("sarustest").pw_uid
        for root, dirs, files in os.walk(work):
            for name in [root] + [os.path.join(root, n) for n in files]:
                os.lchown(name, uid, -1)
        rootfs = os.path.join(work, "rootfs")
        args = (f"--mount=type=bind,src={work}/src,dst=/opt/x,readonly "
                f"--mount=type=bind,src={work}/src/f.txt,dst=<FI_PROVIDER_PATH>/p.so")
        r = run_as("sarustest", ["unshare", "-Urm", "sh", "-c",
                                 f"{adapter} && cat {rootfs}/opt/x/f.txt {rootfs}/opt/fi/p.so && "
                                 f"touch {rootfs}/opt/x/new"],
                   env={"ENROOT_ROOTFS": rootfs, "ENROOT_ENVIRON": os.path.join(work, "environ"),
                        "MOUNT_HOOK_ARGS": args})
        assert r.stdout == "from the host\nfrom the host\n", r.stderr
        assert "Read-only file system" in r.stderr
        assert "bind mounted" in r.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_standalone_in_rootless_podman(test_images):
    """The same mount_hook, unchanged, from rootless Podman's --hooks-dir."""
    from conftest import busybox_in_podman, podman_hooks_dir, run_as, sarus_prefix
    work = tempfile.mkdtemp(prefix="sarus-podman-", dir="/var/tmp")
    try:
        source = os.path.join(work, "data")
        os.makedirs(source)
        with open(os.path.join(source, "file"), "w") as f:
            f.write("from-host-via-hook\n")
        for path in (work, source):
            os.chmod(path, 0o755)
        os.chmod(os.path.join(source, "file"), 0o644)
        hooks_dir = podman_hooks_dir(work, "mount.json", {
            "version": "1.0.0",
            "hook": {"path": os.path.join(sarus_prefix("userns"), "bin", "mount_hook"),
                     "args": ["mount_hook", f"--mount=type=bind,src={source},dst=/hooked,readonly"],
                     "env": ["HOOK_ROOTLESS=true"]},
            "when": {"always": True}, "stages": ["createRuntime"]})
        with busybox_in_podman("sarustest", test_images) as image:
            r = run_as("sarustest", ["podman", "--hooks-dir", hooks_dir, "run", "--rm", "--network=none",
                                     image, "sh", "-c", "cat /hooked/file; touch /hooked/x"])
        assert "from-host-via-hook" in r.stdout, r.stderr
        assert "Read-only file system" in r.stderr
        assert not os.path.exists(os.path.join(source, "x"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_debug_level_of_sarus_reaches_the_hooks(hooks, host_files):
    # The hook's debug lines appear with `sarus --debug`, not without it; a
    # user's own --annotation still decides when given.
    add_hook(hooks, "mount.json", "mount_hook", [f"--mount=type=bind,src={host_files},dst=/opt/data"])
    quiet = hooks("run", BUSYBOX, "true")
    verbose = hooks("--verbose", "run", BUSYBOX, "true")
    debug = hooks("--debug", "run", BUSYBOX, "true")
    overridden = hooks("--debug", "run", "--annotation", "com.hooks.logging.level=error", BUSYBOX, "true")
    # as Sarus's documentation shows: debug-level hooks while sarus keeps its normal verbosity
    sarus_number = hooks("run", "--annotation", "com.hooks.logging.level=0", BUSYBOX, "true")
    assert quiet.returncode == debug.returncode == overridden.returncode == sarus_number.returncode == 0, debug.stderr
    assert "[Mount hook] [DEBUG]" not in quiet.stderr and "[Mount hook] [INFO]" not in quiet.stderr
    assert "[Mount hook] [INFO] bind mounted" in verbose.stderr and "[Mount hook] [DEBUG]" not in verbose.stderr
    assert "[Mount hook] [DEBUG]" in debug.stderr
    assert "[Mount hook] [DEBUG]" not in overridden.stderr
    assert "[Mount hook] [DEBUG]" in sarus_number.stderr


# --- amdgpu_hook, on fake AMD GPUs (tests/integration/fake_amd_gpus.sh) -------

FAKE_AMD_GPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_amd_gpus.sh")
# Device numbers in hex (stat %t:%T), as fake_amd_gpus.sh makes them.
KFD = "/dev/kfd ee:0"
CARDS = ["/dev/dri/card0 e2:0", "/dev/dri/card1 e2:1"]
RENDER_NODES = ["/dev/dri/renderD128 e2:80", "/dev/dri/renderD129 e2:81"]
# The nodes have no driver: an open that the devices cgroup allows fails with ENXIO.
ALLOWED = "No such device or address"
DENIED = "Operation not permitted"
LIST_DEVICES = "for d in /dev/kfd /dev/dri/*; do [ -c $d ] && echo $d $(stat -c %t:%T $d); done"


def run_with_fake_amd_gpus(sarus, gpus, *args):
    """`sarus ARGS` as the test user in a private mount namespace whose /dev
    has `gpus` fake AMD GPUs."""
    from conftest import _as_user
    prefix, env, pw = _as_user(sarus.user, {"SARUS_CONFIG_FILE": sarus.config_file})
    return subprocess.run(["unshare", "-m", "--propagation", "private", FAKE_AMD_GPUS, str(gpus),
                           *prefix, sarus.binary, *args],
                          env=env, cwd=pw.pw_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=120)


@pytest.fixture
def amd_hooks(hooks):
    """amdgpu_hook as its template configures it (always, createRuntime), and
    with annotation test.bound=yes mount_hook binding GPU 0's render node as
    a plain file at /dev/not-whitelisted: the devices cgroup (suid mode)
    allows it only if amdgpu_hook whitelisted it."""
    add_hook(hooks, "amdgpu.json", "amdgpu_hook", stages=["createRuntime"])
    add_hook(hooks, "bound.json", "mount_hook",
             ["--mount=type=bind,src=/dev/dri/renderD128,dst=/dev/not-whitelisted"],
             when={"annotations": {"^test.bound$": "^yes$"}})
    return hooks


def test_amdgpu_hook_without_kfd_does_nothing(amd_hooks):
    r = amd_hooks.ok("--verbose", "run", BUSYBOX, "ls", "/dev")
    assert "[AMD GPU hook] [INFO] no /dev/kfd on this host: no AMD GPU to give the container" in r.stderr
    assert "kfd" not in r.stdout and "dri" not in r.stdout


def test_amdgpu_hook_gives_kfd_and_every_gpu(amd_hooks):
    r = run_with_fake_amd_gpus(amd_hooks, 2, "--verbose", "run", BUSYBOX, "sh", "-c",
                               LIST_DEVICES + "; cat /dev/kfd /dev/dri/card1")
    assert r.stdout.splitlines() == [KFD] + CARDS + RENDER_NODES, r.stderr
    assert f"cat: can't open '/dev/kfd': {ALLOWED}" in r.stderr
    assert f"cat: can't open '/dev/dri/card1': {ALLOWED}" in r.stderr
    assert "[AMD GPU hook] [INFO] 2 AMD GPU(s) given to the container" in r.stderr
    if amd_hooks.mode == "suid":
        assert "whitelisted 'c 238:0 rw'" in r.stderr and "whitelisted 'c 226:129 rw'" in r.stderr
    else:
        assert "rootless: device /dev/kfd not whitelisted in the devices cgroup" in r.stderr


def test_amdgpu_hook_honours_rocr_visible_devices(amd_hooks):
    r = run_with_fake_amd_gpus(amd_hooks, 2, "run", "-e", "ROCR_VISIBLE_DEVICES=1",
                               "--annotation", "test.bound=yes", BUSYBOX, "sh", "-c",
                               "ls /dev/dri; echo $ROCR_VISIBLE_DEVICES; cat /dev/dri/renderD129 /dev/not-whitelisted")
    assert r.stdout.split() == ["card1", "renderD129", "1"], r.stderr
    assert f"cat: can't open '/dev/dri/renderD129': {ALLOWED}" in r.stderr
    # GPU 0 was not selected: its node is not whitelisted (suid mode)
    expected = DENIED if amd_hooks.mode == "suid" else ALLOWED
    assert f"cat: can't open '/dev/not-whitelisted': {expected}" in r.stderr


def test_amdgpu_hook_refuses_a_gpu_that_is_not_there(amd_hooks):
    r = run_with_fake_amd_gpus(amd_hooks, 2, "run", "-e", "ROCR_VISIBLE_DEVICES=0,4", BUSYBOX, "true")
    assert r.returncode != 0
    assert "[AMD GPU hook] [ERROR] ROCR_VISIBLE_DEVICES='0,4': there is no GPU 4 (2 AMD GPUs under /dev/dri)" in r.stderr


def test_amdgpu_hook_rootless_mounts_without_whitelisting(amd_hooks):
    add_hook(amd_hooks, "amdgpu.json", "amdgpu_hook", env=["HOOK_ROOTLESS=true"], stages=["createRuntime"])
    r = run_with_fake_amd_gpus(amd_hooks, 1, "--verbose", "run", BUSYBOX, "sh", "-c",
                               "ls /dev/dri; cat /dev/kfd")
    assert r.stdout.split() == ["card0", "renderD128"], r.stderr
    assert "rootless: device /dev/kfd not whitelisted in the devices cgroup" in r.stderr
    assert "whitelisted 'c" not in r.stderr
    expected = DENIED if amd_hooks.mode == "suid" else ALLOWED
    assert f"cat: can't open '/dev/kfd': {expected}" in r.stderr
