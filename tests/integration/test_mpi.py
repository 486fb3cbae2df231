"""MPI and glibc hooks with real MPICH: Debian's mpich on the host, images
from tests/images/make_mpi_images.py (MPICH 3.4.1 inside, under several ABI
version names; glibc older and newer than the host's). mpiexec.mpich (not
plain mpiexec, which is Open MPI's once openmpi-bin is installed) starts one
sarus per rank; the MPI hook replaces the container's MPI by the host's,
ABI-checked under each MPI_COMPATIBILITY_TYPE; the glibc hook replaces an
older glibc and leaves a newer one alone. The hook files are the ones
<prefix>/configure_mpi_hooks.sh writes. Every test runs in both modes and as
both test users (one module-scoped sarus each, images loaded once);
mpi_hook also runs standalone in a rootless crun bundle."""

import functools
import json
import os
import pwd
import re
import shutil
import subprocess
import tarfile
import tempfile

import pytest

from conftest import (MODES, TEST_USERS, _sarus_session, private_hooks_dir, run_as, run_rootless_crun_bundle,
                      sarus_prefix)

IMAGES = ("mpich-older", "mpich-newer-minor", "mpich-major-only", "mpich-major13", "no-mpi",
          "glibc-older", "glibc-newer")
RING = "/usr/local/bin/mpi_ring"
HELLO = "/usr/local/bin/hello"
LIBDIR = "/usr/lib/x86_64-linux-gnu"
HOST_LIBMPICH = os.path.realpath(f"{LIBDIR}/libmpich.so.12")  # libmpich.so.12.2.2 on bookworm


def image(name):
    return f"load/library/{name}"


@functools.lru_cache(maxsize=None)
def host_mpich_version():
    out = subprocess.run(["mpichversion"], stdout=subprocess.PIPE, text=True, check=True).stdout
    return re.search(r"MPICH Version:\s*(\S+)", out).group(1)


@functools.lru_cache(maxsize=None)
def host_glibc_version():
    return subprocess.run(["getconf", "GNU_LIBC_VERSION"], stdout=subprocess.PIPE, text=True,
                          check=True).stdout.split()[1]


@pytest.fixture(scope="module", params=[(m, u) for m in MODES for u in TEST_USERS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def mpi(request, mpi_images, test_images):
    """A sarus with every MPI/glibc image and busybox loaded, and a
    root-owned hooksDir under the prefix (the suid checks want it so)."""
    for s in _sarus_session(*request.param):
        for name in IMAGES:
            s.ok("load", os.path.join(mpi_images, f"{name}.tar"), name)
        s.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
        yield from private_hooks_dir(s, "mpi")


def configure(sarus, *options):
    """(Re)writes the hook files with the installed configure_mpi_hooks.sh."""
    for name in os.listdir(sarus.hooks_dir):
        os.unlink(os.path.join(sarus.hooks_dir, name))
    subprocess.run([os.path.join(sarus.prefix, "configure_mpi_hooks.sh"), "--hooks-dir", sarus.hooks_dir,
                    *options, sarus.prefix], check=True, stdout=subprocess.DEVNULL)


def mpiexec(sarus, ranks, *args):
    return run_as(sarus.user, ["mpiexec.mpich", "-n", str(ranks), sarus.binary, *args],
                  env={"SARUS_CONFIG_FILE": sarus.config_file}, timeout=120)


def library_lines(stdout):
    return [line for line in stdout.splitlines() if " library: " in line]


def test_mpiexec_runs_every_rank_with_the_host_mpi(mpi):
    configure(mpi)
    r = mpiexec(mpi, 4, "run", "--mpi", image("mpich-older"), RING)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = library_lines(r.stdout)
    assert len(lines) == 4, r.stdout
    for rank in range(4):
        assert f"rank {rank} of 4 library: MPICH Version:\t{host_mpich_version()}" in lines, r.stdout
    assert "ring ok: token 4" in r.stdout
    assert "[MPI hook]" not in r.stderr  # quiet without --verbose


def test_mpiexec_without_mpi_uses_the_image_mpi(mpi):
    configure(mpi)
    r = mpiexec(mpi, 2, "run", image("mpich-older"), RING)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(library_lines(r.stdout)) == [f"rank {rank} of 2 library: MPICH Version:\t3.4.1"
                                               for rank in range(2)], r.stdout
    assert "ring ok: token 2" in r.stdout


# image -> outcome per type: "ok", "warn" (runs, with the full warning) or the error text
MATRIX = {
    "mpich-older": {"major": "ok", "full": "ok", "strict": "minor versions differ"},
    "mpich-newer-minor": {"major": "ok", "full": "warn", "strict": "minor versions differ"},
    "mpich-major-only": {"major": "ok", "full": "ok", "strict": "the container library has no minor version"},
    "mpich-major13": {t: "major versions differ" for t in ("major", "full", "strict")},
    "no-mpi": {t: "No MPI libraries found in the container" for t in ("major", "full", "strict")},
}
CONTAINER_LIBRARY = {
    "mpich-older": f"{LIBDIR}/libmpich.so.12.1.10 (ABI 12.1.10)",
    "mpich-newer-minor": f"{LIBDIR}/libmpich.so.12.9.0 (ABI 12.9.0)",
    "mpich-major-only": f"{LIBDIR}/libmpich.so.12 (ABI 12)",
    "mpich-major13": f"{LIBDIR}/libmpich.so.13.0.0 (ABI 13.0.0)",
}


def check_outcome(sarus, name, expected):
    r = sarus("run", "--mpi", image(name), RING)
    host = f"{HOST_LIBMPICH} (ABI 12.2.2)"
    if expected in ("ok", "warn"):
        assert r.returncode == 0, f"{name}: {r.stderr}"
        assert f"MPICH Version:\t{host_mpich_version()}" in r.stdout, f"{name}: {r.stdout}"
        warned = "[MPI hook] [WARN]" in r.stderr and "is older than" in r.stderr
        assert warned == (expected == "warn"), f"{name}: {r.stderr}"
        if warned:
            assert host in r.stderr and CONTAINER_LIBRARY[name] in r.stderr, r.stderr
    else:
        assert r.returncode != 0, f"{name}: expected '{expected}', it ran:\n{r.stdout}"
        assert "[MPI hook] [ERROR] " in r.stderr and expected in r.stderr, f"{name}: {r.stderr}"
        if name in CONTAINER_LIBRARY:
            # Sarus's sentence, then both libraries and both versions
            assert "Failed to activate MPI support. Host's MPI library" in r.stderr, r.stderr
            assert "ABI compatible with container's MPI library" in r.stderr, r.stderr
            assert host in r.stderr and CONTAINER_LIBRARY[name] in r.stderr, r.stderr
        assert "MPICH Version" not in r.stdout


@pytest.mark.parametrize("compatibility", ["major", "full", "strict"])
def test_compatibility_types(mpi, compatibility):
    configure(mpi, "--compatibility", compatibility)
    for name, outcomes in MATRIX.items():
        check_outcome(mpi, name, outcomes[compatibility])


@pytest.mark.parametrize("value", ["", "bogus"])
def test_unset_or_unknown_compatibility_type_is_major(mpi, value):
    configure(mpi, "--compatibility", value)
    if value == "":
        # unset, not empty: drop the variable from the hook file
        path = os.path.join(mpi.hooks_dir, "mpi_hook.json")
        with open(path) as f:
            hook = json.load(f)
        hook["hook"]["env"] = [e for e in hook["hook"]["env"] if not e.startswith("MPI_COMPATIBILITY_TYPE=")]
        with open(path, "w") as f:
            json.dump(hook, f)
    for name in ("mpich-newer-minor", "mpich-major-only", "mpich-major13"):
        check_outcome(mpi, name, MATRIX[name]["major"])


def test_verbose_says_what_was_replaced_and_the_chain_holds(mpi):
    configure(mpi)
    r = mpi("--verbose", "run", "--mpi", image("mpich-older"), "sh", "-c",
            f"grep libmpich /proc/self/mountinfo; readlink {LIBDIR}/libmpich.so.12; {RING}")
    assert r.returncode == 0, r.stderr
    assert (f"[MPI hook] [INFO] replaced {LIBDIR}/libmpich.so.12.1.10 (ABI 12.1.10) with host library "
            f"{HOST_LIBMPICH} (ABI 12.2.2)") in r.stderr
    # added: the host's C++ and Fortran bindings, which the image lacks, with soname links
    assert "added host library" in r.stderr and "libmpichfort.so.12.2.2" in r.stderr
    # the user's check (README): the host library is mounted over the container's
    assert re.search(rf" {re.escape(LIBDIR)}/libmpich\.so\.12\.1\.10 (\S+,)?ro[ ,]", r.stdout), r.stdout
    assert "libmpich.so.12.1.10\n" in r.stdout  # the soname link still leads to the replaced file
    assert f"MPICH Version:\t{host_mpich_version()}" in r.stdout
    r = mpi("run", "--mpi", image("mpich-older"), "sh", "-c", "test -e /usr/lib/libmpichfort.so.12 && echo LINKED")
    assert "LINKED" in r.stdout, r.stderr


def test_bind_mounts_and_devices(mpi):
    """BIND_MOUNTS: a directory at the same path, and a device node that the
    hook whitelists in the devices cgroup (suid mode) or says it cannot."""
    configure(mpi, "--bind-mounts", f"{LIBDIR}/gconv:/dev/fuse")
    r = mpi("--verbose", "run", "--mpi", image("mpich-older"), "sh", "-c",
            f"ls {LIBDIR}/gconv | grep -c . ; exec 3<>/dev/fuse && echo OPENED")
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[0]) == len(os.listdir(f"{LIBDIR}/gconv"))
    assert "OPENED" in r.stdout, r.stderr
    if mpi.mode == "suid":
        assert "whitelisted 'c 10:229 rw'" in r.stderr
    else:
        assert "not whitelisted" in r.stderr


def test_mpi_type_selects_among_hooks(mpi):
    """Two MPI hooks side by side: --mpi-type picks one; --mpi alone picks
    none of them unless defaultMPIType names one."""
    configure(mpi, "--type", "mpich")
    other = {"version": "1.0.0",
             "hook": {"path": os.path.join(mpi.prefix, "bin", "mpi_hook"),
                      "env": ["LDCONFIG_PATH=/sbin/ldconfig", "MPI_LIBS=/nonexistent/libmpi.so.12.0.0"]},
             "when": {"annotations": {"^com.hooks.mpi.enabled$": "^true$", "^com.hooks.mpi.type$": "^other$"}},
             "stages": ["createRuntime"]}
    with open(os.path.join(mpi.hooks_dir, "mpi_hook-other.json"), "w") as f:
        json.dump(other, f)
    os.chmod(os.path.join(mpi.hooks_dir, "mpi_hook-other.json"), 0o644)
    selected = mpi("run", "--mpi-type=mpich", image("mpich-older"), RING)
    assert f"MPICH Version:\t{host_mpich_version()}" in selected.stdout, selected.stderr
    wrong = mpi("run", "--mpi-type=other", image("mpich-older"), RING)
    assert wrong.returncode != 0 and "/nonexistent/libmpi.so.12.0.0 does not exist" in wrong.stderr, wrong.stderr
    untyped = mpi("run", "--mpi", image("mpich-older"), RING)
    assert "MPICH Version:\t3.4.1" in untyped.stdout, untyped.stderr
    listed = mpi.ok("hooks", "--mpi")
    assert [line.split() for line in listed.stdout.splitlines()[1:]] == [["mpi_hook-mpich", "^mpich$"],
                                                                       ["mpi_hook-other", "^other$"]]
    mpi.config["defaultMPIType"] = "mpich"
    mpi.write_config()
    try:
        default = mpi("run", "--mpi", image("mpich-older"), RING)
        assert f"MPICH Version:\t{host_mpich_version()}" in default.stdout, default.stderr
    finally:
        del mpi.config["defaultMPIType"]
        mpi.write_config()


def test_glibc_hook_replaces_an_older_glibc(mpi):
    configure(mpi)
    plain = mpi("run", image("glibc-older"), HELLO)
    assert plain.returncode != 0 and "GLIBC_2.34' not found" in plain.stderr, plain.stderr
    r = mpi("--verbose", "run", "--glibc", image("glibc-older"), HELLO)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"hello from glibc {host_glibc_version()}\n"
    assert f"[Glibc hook] [INFO] replaced the container's glibc 2.31 with the host's {host_glibc_version()}" in r.stderr


def test_glibc_hook_reads_the_images_libraries_as_the_user(mpi):
    """readelf (binutils, not hardened against hostile ELF files) parses the
    container's libraries with the container user's ids in suid mode."""
    configure(mpi)
    logdir = tempfile.mkdtemp(prefix="sarus-readelf-", dir="/var/tmp")
    os.chmod(logdir, 0o1777)
    with open(os.path.join(logdir, "log"), "w"):
        pass
    os.chmod(os.path.join(logdir, "log"), 0o666)  # for the user's readelf too
    wrapper = os.path.join(mpi.hooks_dir, "readelf-wrapper.sh")
    with open(wrapper, "w") as f:
        f.write(f'#!/bin/sh\necho "$(id -u) $(id -G) $2" >> {logdir}/log\nexec /usr/bin/readelf "$@"\n')
    os.chmod(wrapper, 0o755)
    [glibc_json] = [n for n in os.listdir(mpi.hooks_dir) if "glibc" in n and n.endswith(".json")]
    path = os.path.join(mpi.hooks_dir, glibc_json)
    with open(path) as f:
        document = json.load(f)
    document["hook"]["env"] = [e for e in document["hook"]["env"] if not e.startswith("READELF_PATH=")]
    document["hook"]["env"].append(f"READELF_PATH={wrapper}")
    with open(path, "w") as f:
        json.dump(document, f)
    try:
        r = mpi("run", "--glibc", image("glibc-older"), HELLO)
        assert r.returncode == 0, r.stderr
        with open(os.path.join(logdir, "log")) as f:
            calls = [line.split() for line in f]
        image_calls = [c for c in calls if not c[-1].startswith(("/lib", "/usr/lib"))]
        assert image_calls, calls
        if mpi.mode == "suid":  # in userns mode the hook has no privilege to give up
            pw = pwd.getpwnam(mpi.user)
            for call in image_calls:
                assert call[:-1] == [str(pw.pw_uid), str(pw.pw_gid)], calls  # and none of root's groups
    finally:
        shutil.rmtree(logdir)


def test_glibc_hook_leaves_a_newer_glibc_alone(mpi):
    configure(mpi)
    r = mpi("--verbose", "run", "--glibc", image("glibc-newer"), HELLO)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from glibc 2.41\n"
    assert f"the container's glibc 2.41 is not older than the host's {host_glibc_version()}" in r.stderr


def test_glibc_hook_leaves_an_image_without_glibc_alone(mpi):
    configure(mpi)
    r = mpi("--verbose", "run", "--glibc", "load/library/busybox", "echo", "static")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "static\n"
    assert "[Glibc hook] [INFO] the container has no glibc" in r.stderr


def test_mpi_implies_glibc(mpi):
    """--mpi enables the glibc hook too (Sarus documents it): the older
    glibc image gets the host's, then the MPI hook finds no MPI there."""
    configure(mpi)
    r = mpi("--verbose", "run", "--mpi", image("glibc-older"), HELLO)
    assert "replaced the container's glibc 2.31" in r.stderr, r.stderr
    assert r.returncode != 0 and "No MPI libraries found in the container" in r.stderr


def extract_rootfs(archive, rootfs):
    """The single layer of a docker archive, unpacked (symlinks kept)."""
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        layer = outer.extractfile(manifest[0]["Layers"][0])
        with tarfile.open(fileobj=layer) as inner:
            inner.extractall(rootfs)  # our own image: trusted


def test_mpi_hook_standalone_in_rootless_crun(mpi_images):
    """No sarus: a rootless crun bundle of the MPICH 3.4.1 image with
    mpi_hook (HOOK_ROOTLESS=true) at createContainer."""
    bundle = tempfile.mkdtemp(prefix="sarus-crun-mpi-", dir="/var/tmp")
    try:
        rootfs = os.path.join(bundle, "rootfs")
        extract_rootfs(os.path.join(mpi_images, "mpich-older.tar"), rootfs)
        r, hooks_log = run_rootless_crun_bundle(bundle, "sarustest", [RING], {"createContainer": [{
            "path": os.path.join(sarus_prefix("userns"), "bin", "mpi_hook"),
            "env": ["HOOK_ROOTLESS=true", "LDCONFIG_PATH=/sbin/ldconfig", f"MPI_LIBS={HOST_LIBMPICH}",
                    "HOOK_LOG_LEVEL=info"]}]})
        assert r.returncode == 0, r.stderr + hooks_log
        assert f"MPICH Version:\t{host_mpich_version()}" in r.stdout, r.stdout + hooks_log
        assert "replaced /usr/lib/x86_64-linux-gnu/libmpich.so.12.1.10" in hooks_log
    finally:
        shutil.rmtree(bundle, ignore_errors=True)


def test_pmi_fd_reaches_the_container_and_nothing_else_does(mpi):
    """PMI_FD (what Hydra and Slurm's pmi2 hand each rank) is the container's
    descriptor 3, PMI_FD rewritten; the caller's other descriptors are closed."""
    import socket
    from conftest import _as_user
    ours, theirs = socket.socketpair()
    stray = os.open("/dev/null", os.O_RDONLY)
    try:
        prefix, env, pw = _as_user(mpi.user, {"SARUS_CONFIG_FILE": mpi.config_file,
                                              "PMI_FD": str(theirs.fileno())})
        r = subprocess.run(prefix + [mpi.binary, "run", "load/library/busybox", "sh", "-c",
                                     'echo "PMI_FD=$PMI_FD"; echo through-pmi >&$PMI_FD; ls /proc/self/fd'],
                           env=env, cwd=pw.pw_dir, pass_fds=(theirs.fileno(), stray), timeout=60,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.split()
        assert lines[0] == "PMI_FD=3"
        assert sorted(int(fd) for fd in lines[1:]) in ([0, 1, 2, 3], [0, 1, 2, 3, 4]), r.stdout  # 4: ls' own dir
        ours.settimeout(5)
        assert ours.recv(100) == b"through-pmi\n"
    finally:
        ours.close()
        theirs.close()
        os.close(stray)
