"""The SSH hook's Dropbear as tools/build_and_install.sh installs it in
<prefix>/dropbear/bin (built by tools/build_dropbear.sh from Debian
bookworm's source package): static programs that need nothing from the host
or the image, a server that runs as an unprivileged user and logs that user
in with a key, and the client and key tool behaviours the hook relies on.

Everything listens on 127.0.0.1 only, on a free high port. The server and
client tests need root (a private mount namespace, chroot) and are skipped
without it."""

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import CLEAN_PATH, MODES, chown_tree, run_as, sarus_prefix

PROGRAMS = ("dropbear", "dbclient", "dropbearkey")
VERSION = "2022.83"
USER = "sarustest"
OTHER_USER = "sarusnosub"
BUSYBOX = "/bin/busybox"        # busybox-static


@pytest.fixture(params=MODES)
def bindir(request):
    """<prefix>/dropbear/bin of the installation under test in each mode."""
    directory = os.path.join(sarus_prefix(request.param), "dropbear", "bin")
    missing = [p for p in PROGRAMS if not os.access(os.path.join(directory, p), os.X_OK)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed in {directory}: tools/build_and_install.sh "
                    "builds Dropbear with tools/build_dropbear.sh (see its output)")
    return directory


def needs_root():
    if os.geteuid() != 0:
        pytest.skip("needs root (a private mount namespace, chroot)")


@pytest.fixture
def workdir():
    """A directory the test user can use (pytest's tmp_path is private to root)."""
    directory = tempfile.mkdtemp(prefix="sarus-dropbear-", dir="/var/tmp")
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_static(path):
    headers = subprocess.run(["readelf", "-lW", path], stdout=subprocess.PIPE, text=True, check=True).stdout
    return "INTERP" not in headers and "DYNAMIC" not in headers


def public_key_output(text):
    """The key line of dropbearkey's report, checking the report's format."""
    lines = text.splitlines()
    assert len(lines) == 3, text
    assert lines[0] == "Public key portion is:", text
    assert re.fullmatch(r"ecdsa-sha2-nistp256 [A-Za-z0-9+/]+=* [^ @]*@\S+", lines[1]), text
    assert re.fullmatch(r"Fingerprint: SHA256:[A-Za-z0-9+/]+=*", lines[2]), text
    return lines[1]


def make_key(bindir, path, user=USER):
    r = run_as(user, [os.path.join(bindir, "dropbearkey"), "-t", "ecdsa", "-f", path], stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert "Generating 256 bit ecdsa key" in r.stderr
    return public_key_output(r.stdout)


class Server:
    """A dropbear -F -E started with argv; ready once it logs that it stays
    in the foreground, which it does after it bound its port."""

    def __init__(self, argv, log, env=None):
        self.log = log
        argv = [str(a) for a in argv]
        with open(log, "w") as out:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                            env=env or {"PATH": CLEAN_PATH, "LANG": "C.UTF-8"})
        deadline = time.time() + 20
        while "Not backgrounding" not in self.output():
            if self.process.poll() is not None or time.time() > deadline:
                self.stop()
                pytest.fail(f"dropbear did not start ({argv}):\n{self.output()}")
            time.sleep(0.05)

    def output(self):
        with open(self.log) as f:
            return f.read()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def test_programs_are_static_and_from_2022_83(bindir):
    for program in PROGRAMS:
        path = os.path.join(bindir, program)
        assert is_static(path), f"{path} is dynamically linked"
        ldd = subprocess.run(["ldd", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert ldd.returncode != 0 and "not a dynamic executable" in ldd.stdout, ldd.stdout
        if shutil.which("file"):
            described = subprocess.run(["file", "-b", path], stdout=subprocess.PIPE, text=True).stdout
            assert "statically linked" in described, described
    for program in ("dropbear", "dbclient"):
        r = subprocess.run([os.path.join(bindir, program), "-V"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=10)
        assert f"Dropbear v{VERSION}" in r.stdout


def test_no_password_logins_are_compiled_in(bindir):
    # public key only: -s (disable password logins) does not even exist, and
    # an unknown option stops the server before it listens
    r = subprocess.run([os.path.join(bindir, "dropbear"), "-F", "-E", "-s", "-p", f"127.0.0.1:{free_port()}"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=10)
    assert r.returncode == 1 and "Invalid option -s" in r.stdout


def test_suid_installation_dropbear_is_root_owned_and_not_writable():
    directory = os.path.join(sarus_prefix("suid"), "dropbear")
    if not os.path.isdir(directory):
        pytest.fail(f"no {directory}")
    for root, dirs, files in os.walk(directory):
        for path in [root] + [os.path.join(root, n) for n in files]:
            st = os.lstat(path)
            assert st.st_uid == 0 and not st.st_mode & 0o022, f"{path}: uid {st.st_uid} mode {oct(st.st_mode)}"


def test_dropbearkey_prints_the_public_key(bindir, workdir):
    chown_tree(workdir, USER)
    key = os.path.join(workdir, "key")
    generated = make_key(bindir, key)
    assert os.stat(key).st_mode & 0o777 == 0o600
    printed = run_as(USER, [os.path.join(bindir, "dropbearkey"), "-y", "-f", key], stdin=subprocess.DEVNULL)
    assert printed.returncode == 0 and public_key_output(printed.stdout) == generated
    # an existing key file is never overwritten
    with open(key, "rb") as f:
        before = f.read()
    again = run_as(USER, [os.path.join(bindir, "dropbearkey"), "-t", "ecdsa", "-f", key], stdin=subprocess.DEVNULL)
    assert again.returncode != 0 and "File exists" in again.stderr
    with open(key, "rb") as f:
        assert f.read() == before


def test_unprivileged_server_and_client_on_loopback(bindir, workdir):
    """dropbear as the test user (not root) logs that same user in with an
    ecdsa key and runs a command; dbclient -yy needs no ~/.ssh at all.

    Dropbear 2022.83 has no option for the directory of authorized_keys (-D
    came with 2025.87): it reads <home>/.ssh/authorized_keys, home being the
    passwd database's. So the server runs in a private mount namespace whose
    /etc/passwd gives the user a home in the test's directory, as a
    container's /etc/passwd decides it for the hook's daemon."""
    needs_root()
    pw = pwd.getpwnam(USER)
    home = os.path.join(workdir, "home")
    os.makedirs(os.path.join(home, ".ssh"))
    chown_tree(workdir, USER)
    host_key = os.path.join(workdir, "dropbear_ecdsa_host_key")
    client_key = os.path.join(workdir, "id_dropbear")
    make_key(bindir, host_key)
    with open(os.path.join(home, ".ssh", "authorized_keys"), "w") as f:
        f.write(make_key(bindir, client_key) + "\n")
    os.chown(os.path.join(home, ".ssh", "authorized_keys"), pw.pw_uid, pw.pw_gid)
    os.chmod(os.path.join(home, ".ssh"), 0o700)
    passwd = os.path.join(workdir, "passwd")
    with open("/etc/passwd") as src, open(passwd, "w") as dst:
        for line in src:
            fields = line.rstrip("\n").split(":")
            if fields[0] == USER:
                fields[5] = home
            dst.write(":".join(fields) + "\n")

    port = free_port()
    pidfile = os.path.join(workdir, "dropbear.pid")
    script = ('mount --bind "$1" /etc/passwd && exec setpriv --reuid="$2" --regid="$3" --init-groups -- '
              '"$4" -F -E -r "$5" -p "127.0.0.1:$6" -P "$7"')
    server = Server(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh",
                     passwd, pw.pw_uid, pw.pw_gid, os.path.join(bindir, "dropbear"), host_key, port, pidfile],
                    os.path.join(workdir, "dropbear.log"))
    dbclient = os.path.join(bindir, "dbclient")
    nohome = os.path.join(workdir, "nohome")

    def client(*args, program=dbclient, home=nohome):
        return run_as(USER, [program, *args], env={"HOME": home}, stdin=subprocess.DEVNULL, timeout=60)

    try:
        r = client("-yy", "-i", client_key, "-p", port, "127.0.0.1", "echo", "hello")
        assert (r.returncode, r.stdout) == (0, "hello\n"), r.stderr + server.output()
        assert "skipping hostkey check" in r.stderr
        assert not os.path.exists(nohome)          # -yy neither needs nor makes ~/.ssh
        with open(pidfile) as f:
            assert f.read() == f"{server.process.pid}\n"

        # the user's shell -c the command, in the passwd home, with a cleared environment
        r = client("-yy", "-i", client_key, "-p", port, "127.0.0.1", 'id -un; pwd; echo "$HOME:$PATH"; exit 3')
        assert r.returncode == 3, r.stderr
        assert r.stdout.splitlines() == [USER, home, f"{home}:/usr/local/bin:/usr/bin:/bin"]

        # as `ssh`, with what MPI launchers pass (Open MPI's rsh launcher and
        # Hydra add -x): unknown options are warned about and ignored
        ssh = os.path.join(workdir, "ssh")
        os.symlink(dbclient, ssh)
        r = client("-x", "-o", "StrictHostKeyChecking=no", "-yy", "-i", client_key, "-p", port,
                   "127.0.0.1", "echo", "hello", program=ssh)
        assert (r.returncode, r.stdout) == (0, "hello\n"), r.stderr
        assert "Ignoring unknown option -x" in r.stderr
        assert "Ignoring unknown configuration option 'StrictHostKeyChecking=no'" in r.stderr

        # -y (once) accepts an unknown host key but makes ~/.ssh/known_hosts
        # (empty: an accepted key is not recorded)
        userhome = os.path.join(workdir, "userhome")
        os.mkdir(userhome)
        chown_tree(userhome, USER)
        r = client("-y", "-i", client_key, "-p", port, "127.0.0.1", "echo", "hello", home=userhome)
        assert (r.returncode, r.stdout) == (0, "hello\n"), r.stderr
        assert "key accepted unconditionally" in r.stderr
        assert os.path.getsize(os.path.join(userhome, ".ssh", "known_hosts")) == 0

        # a non-root server logs in its own user only
        r = client("-yy", "-i", client_key, "-p", port, "-l", OTHER_USER, "127.0.0.1", "echo", "hello")
        assert r.returncode != 0 and r.stdout == "" and "No auth methods could be used" in r.stderr
        assert f"Login attempt with wrong user {OTHER_USER}" in server.output()
    finally:
        server.stop()


def test_server_and_client_in_a_busybox_chroot(bindir, workdir):
    """The programs need nothing from the image: a root holding only a static
    busybox, an /etc/passwd and the keys (no libc, /dev, /proc, /etc/shells)."""
    needs_root()
    assert is_static(BUSYBOX), f"{BUSYBOX} is not static (package busybox-static)"
    pw = pwd.getpwnam(USER)
    root = os.path.join(workdir, "root")
    for d in ("bin", "etc", "opt/dropbear/bin", "home/u/.ssh", "keys", "tmp"):
        os.makedirs(os.path.join(root, d))
    shutil.copy(BUSYBOX, os.path.join(root, "bin", "busybox"))
    for applet in ("sh", "echo", "id", "pwd"):
        os.symlink("busybox", os.path.join(root, "bin", applet))
    for program in ("dropbear", "dbclient"):
        shutil.copy(os.path.join(bindir, program), os.path.join(root, "opt/dropbear/bin", program))
    chown_tree(os.path.join(root, "home"), USER)
    chown_tree(os.path.join(root, "keys"), USER)
    os.chmod(os.path.join(root, "home/u/.ssh"), 0o700)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    make_key(bindir, os.path.join(root, "keys/host"))
    authorized_keys = os.path.join(root, "home/u/.ssh/authorized_keys")
    with open(authorized_keys, "w") as f:
        f.write(make_key(bindir, os.path.join(root, "keys/id")) + "\n")
    os.chown(authorized_keys, pw.pw_uid, pw.pw_gid)

    def write_passwd(shell):
        with open(os.path.join(root, "etc/passwd"), "w") as f:
            f.write(f"{USER}:x:{pw.pw_uid}:{pw.pw_gid}::/home/u:{shell}\n")
    write_passwd("/bin/sh")
    with open(os.path.join(root, "etc/group"), "w") as f:
        f.write(f"{USER}:x:{pw.pw_gid}:\n")

    chroot = [shutil.which("chroot") or "/usr/sbin/chroot", f"--userspec={pw.pw_uid}:{pw.pw_gid}", root]
    port = free_port()
    server = Server(chroot + ["/opt/dropbear/bin/dropbear", "-F", "-E", "-r", "/keys/host",
                              "-p", f"127.0.0.1:{port}", "-P", "/tmp/dropbear.pid"],
                    os.path.join(workdir, "dropbear.log"))

    def client(command):
        return subprocess.run(chroot + ["/opt/dropbear/bin/dbclient", "-yy", "-i", "/keys/id", "-p", str(port),
                                        "127.0.0.1", command],
                              env={"PATH": "/bin", "HOME": "/home/u"}, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    try:
        r = client('echo "hello from $(id -un) in $(pwd)"')
        assert (r.returncode, r.stdout) == (0, f"hello from {USER} in /home/u\n"), r.stderr + server.output()
        with open(os.path.join(root, "tmp/dropbear.pid")) as f:
            assert f.read() == f"{server.process.pid}\n"
        # the login shell must be one of /etc/shells; without that file
        # (musl) only /bin/sh and /bin/csh are
        write_passwd("/bin/bash")
        r = client("echo hello")
        assert r.returncode != 0 and "No auth methods could be used" in r.stderr
        assert f"User '{USER}' has invalid shell, rejected" in server.output()
    finally:
        server.stop()
