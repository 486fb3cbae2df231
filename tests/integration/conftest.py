"""Shared fixtures and helpers of sarus' integration tests.

* test_images (session fixture): directory holding the archives written by
  tests/images/make_images.py (see MANIFEST.txt there). Default location
  /var/tmp/sarus-test-images, readable by every user; override with
  SARUS_TEST_IMAGES=DIR.
* run_as(user, argv, ...): runs a command as one of the test users
  (sarustest / sarusnosub, made by setup_host.sh) when the tests run as
  root, or directly when they do not.
"""

import os
import pwd
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MAKE_IMAGES = os.path.join(REPO, "tests", "images", "make_images.py")
DEFAULT_IMAGES_DIR = "/var/tmp/sarus-test-images"
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

if HERE not in sys.path:        # make reference_flatten importable everywhere
    sys.path.insert(0, HERE)


def _make_images(outdir):
    r = subprocess.run(["/usr/bin/python3", MAKE_IMAGES, outdir],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return r.returncode == 0, r.stdout


@pytest.fixture(scope="session")
def test_images():
    """Path of the directory with the test archives; (re)generates them when
    missing or older than make_images.py (cheap when up to date)."""
    outdir = os.environ.get("SARUS_TEST_IMAGES", DEFAULT_IMAGES_DIR)
    ok, log = _make_images(outdir)
    if not ok and "SARUS_TEST_IMAGES" not in os.environ and os.geteuid() != 0:
        # e.g. a stale root-owned default directory: use a per-user one
        outdir = f"{DEFAULT_IMAGES_DIR}-{os.geteuid()}"
        ok, log = _make_images(outdir)
    if not ok:
        pytest.fail(f"make_images.py {outdir} failed:\n{log}")
    if os.geteuid() == 0:
        # the unprivileged test users must be able to read them
        for dirpath, dirnames, filenames in os.walk(outdir):
            os.chmod(dirpath, 0o755)
            for f in filenames:
                os.chmod(os.path.join(dirpath, f), 0o644)
    return outdir


def run_as(user, argv, env=None, cwd=None, input=None, timeout=600, check=False, **kw):
    """Runs argv as `user` with a clean environment: HOME (the user's home),
    USER, LOGNAME, PATH, LANG=C.UTF-8, plus `env` (dict) on top.

    As root the command runs through `setpriv` with the user's uid, primary
    gid and supplementary groups; otherwise it runs as the current user
    (`user` is then only informative) with the current user's HOME. The
    default cwd is that home directory. Returns a CompletedProcess with text
    stdout and stderr. Extra keyword arguments go to subprocess.run."""
    if os.geteuid() == 0:
        pw = pwd.getpwnam(user)
        prefix = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                  "--init-groups", "--"]
    else:
        pw = pwd.getpwuid(os.geteuid())
        prefix = []
    full_env = {"HOME": pw.pw_dir, "USER": pw.pw_name, "LOGNAME": pw.pw_name,
                "PATH": CLEAN_PATH, "LANG": "C.UTF-8"}
    if env:
        full_env.update({k: str(v) for k, v in env.items()})
    return subprocess.run(prefix + [str(a) for a in argv], env=full_env,
                          cwd=cwd or pw.pw_dir, input=input, timeout=timeout,
                          check=check, stdout=kw.pop("stdout", subprocess.PIPE),
                          stderr=kw.pop("stderr", subprocess.PIPE), text=True, **kw)
