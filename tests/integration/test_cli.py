"""Command-line behaviour shared by every command, as Sarus 1.7 shows it: the
texts below are the ones of Sarus's own integration tests
(CI/src/integration_tests/test_error_messages.py, test_command_help.py,
test_command_version.py), which site scripts grep for."""

import os
import re
import subprocess

import pytest

COMMANDS = ["bundle", "help", "hooks", "images", "kill", "load", "ps", "pull", "rmi", "run", "ssh-keygen", "version"]
DIGEST = "sha256:778fdd9f62a6d7c0e53a97489ab3db17738bc5c1acf09a18738a2a674025eae6"


def error_of(sarus, *args, **kw):
    r = sarus(*args, **kw)
    assert r.returncode == 1, f"{args}: {r.stdout}{r.stderr}"
    return r.stderr.rstrip()


def test_version_is_the_bare_version_number(sarus):
    """The Sarus release whose command line sarus implements: site scripts
    turn features on by it (ps, kill and --name need 1.7)."""
    for args in (["--version"], ["version"]):
        r = sarus.ok(*args)
        assert re.fullmatch(r"\d+\.\d+\.\d+(-.+)*\n", r.stdout), r.stdout
        assert tuple(int(n) for n in r.stdout.split("-")[0].split(".")) >= (1, 7, 0), r.stdout
    r = sarus.ok("--verbose", "version")
    assert r.stdout == "1.7.0\n" and "the sarus engine " in r.stderr, r.stderr


@pytest.mark.parametrize("args", [["--help"], ["help"], []], ids=["--help", "help", "nothing"])
def test_general_help(sarus, args):
    out = sarus.ok(*args).stdout
    lines = out.splitlines()
    assert lines[0] == "Usage: sarus COMMAND"
    commands = [line.split()[0] for line in lines[lines.index("Commands:") + 1:] if line.startswith("   ")]
    assert commands == COMMANDS
    assert lines[-1] == "Run 'sarus help COMMAND' for more information about a command"
    for option in ("--help", "--version", "--debug", "--verbose"):
        assert f"  {option} " in out


@pytest.mark.parametrize("command", ["images", "load", "pull", "rmi", "run", "hooks", "kill", "ssh-keygen"])
def test_help_of_a_command(sarus, command):
    a = sarus.ok("help", command).stdout
    assert a.startswith(f"Usage: sarus {command}")
    # `sarus COMMAND --help` is an error in Sarus; here it shows the same help.
    assert sarus.ok(command, "--help").stdout == a


@pytest.mark.parametrize("command, usage, description", [
    ("rmi", "sarus rmi REPOSITORY[:TAG]", "Remove an image"),
    ("run", "sarus run [OPTIONS] REPOSITORY[:TAG] [COMMAND] [ARG...]", "Run a command in a new container"),
])
def test_help_has_sarus_layout_with_the_note_in_the_usage(sarus, command, usage, description):
    # Sarus's HelpMessage: "Usage: " USAGE (whose note follows a blank line), blank, description, blank, options
    note = 'Note: REPOSITORY[:TAG] has to be specified as\n      displayed by the "sarus images" command.'
    out = sarus.ok("help", command).stdout
    assert out.startswith(f"Usage: {usage}\n\n{note}\n\n{description}\n\nOptions:\n"), out


def test_run_help_shows_sarus_options(sarus):
    out = sarus.ok("help", "run").stdout
    assert out.startswith("Usage: sarus run [OPTIONS] REPOSITORY[:TAG] [COMMAND] [ARG...]\n")
    for option in ["--annotation", "--mount", "--entrypoint", "-w [ --workdir ] arg", "--init", "-m [ --mpi ]",
                   "-t [ --tty ]", "-e [ --env ] arg", "--device", "--pid", "--ssh", "-n [ --name ] arg"]:
        assert option in out


@pytest.mark.parametrize("args, message", [
    (["--invalid-option"], "unrecognised option '--invalid-option'\nSee 'sarus help'"),
    (["invalid-command"], "'invalid-command' is not a Sarus command\nSee 'sarus help'"),
    (["--verbose", "---run"], "'---run' is not a Sarus command\nSee 'sarus help'"),
    (["help", "--invalid-option"], "Command 'help' doesn't support options"),
    (["help", "--invalid-option", "run"], "Command 'help' doesn't support options"),
    (["help", "invalid-command"], "'invalid-command' is not a Sarus command\nSee 'sarus help'"),
    (["help", "run", "extra-argument"], "Too many arguments for command 'help'\nSee 'sarus help help'"),
    (["images", "--invalid-option"], "unrecognised option '--invalid-option'\nSee 'sarus help images'"),
    (["images", "extra-argument"], "Too many arguments for command 'images'\nSee 'sarus help images'"),
    (["load", "--invalid-option", "archive.tar", "imageRef"],
     "unrecognised option '--invalid-option'\nSee 'sarus help load'"),
    (["load"], "Too few arguments for command 'load'\nSee 'sarus help load'"),
    (["load", "archive.tar"], "Too few arguments for command 'load'\nSee 'sarus help load'"),
    (["load", "archive.tar", "imageRef", "extra-argument"], "Too many arguments for command 'load'\nSee 'sarus help load'"),
    (["load", "archive.tar", "alpine", "--invalid-option"], "Too many arguments for command 'load'\nSee 'sarus help load'"),
    (["load", "archive.tar", "///"], "Invalid image reference '///'\nSee 'sarus help load'"),
    (["load", "archive.tar", f"target-image@{DIGEST}"],
     "Destination image reference must not contain a digest when loading the image from a file\nSee 'sarus help load'"),
    (["load", "--temp-dir=/invalid-dir", "archive.tar", "alpine"], 'Invalid temporary directory "/invalid-dir"'),
    (["pull", "--invalid-option", "alpine"], "unrecognised option '--invalid-option'\nSee 'sarus help pull'"),
    (["pull"], "Too few arguments for command 'pull'\nSee 'sarus help pull'"),
    (["pull", "alpine", "extra-argument"], "Too many arguments for command 'pull'\nSee 'sarus help pull'"),
    (["pull", "alpine", "--invalid-option"], "Too many arguments for command 'pull'\nSee 'sarus help pull'"),
    (["pull", "--temp-dir=/invalid-dir", "alpine"], 'Invalid temporary directory "/invalid-dir"'),
    (["pull", "///"], "Invalid image reference '///'\nSee 'sarus help pull'"),
    (["pull", "--username", "", "quay.io/ethcscs/private-example"], "Invalid username: empty value provided"),
    (["pull", "--password-stdin", "--login", "quay.io/ethcscs/private-example"],
     "The options '--password-stdin' and '--login' cannot be used together"),
    (["rmi", "--invalid-option", "alpine"], "unrecognised option '--invalid-option'\nSee 'sarus help rmi'"),
    (["rmi"], "Too few arguments for command 'rmi'\nSee 'sarus help rmi'"),
    (["rmi", "alpine", "extra-argument"], "Too many arguments for command 'rmi'\nSee 'sarus help rmi'"),
    (["rmi", "alpine", "--invalid-option"], "Too many arguments for command 'rmi'\nSee 'sarus help rmi'"),
    (["rmi", "///"], "Invalid image reference '///'\nSee 'sarus help rmi'"),
    (["rmi", "invalid-image-9as7302j"], "Cannot find image 'docker.io/library/invalid-image-9as7302j:latest'"),
    (["run"], "Too few arguments for command 'run'\nSee 'sarus help run'"),
    (["run", "///", "true"], "Invalid image reference '///'\nSee 'sarus help run'"),
    (["run", "--invalid-option", "alpine", "true"], "unrecognised option '--invalid-option'\nSee 'sarus help run'"),
    (["run", "--workdir=/usr", "--workdir", "/tmp", "alpine", "true"],
     "option '--workdir' cannot be specified more than once\nSee 'sarus help run'"),
    (["run", "--workdir=invalid", "alpine", "true"],
     "The working directory 'invalid' is invalid, it needs to be an absolute path.\nSee 'sarus help run'"),
    (["run", "--mount=xyz", "alpine", "true"], "Invalid mount request 'xyz': 'type' must be specified"),
    (["run", "--ssh", "--pid=host", "alpine", "true"],
     "The use of '--ssh' is incompatible with '--pid=host'. The SSH hook requires the use of a private PID namespace"
     "\nSee 'sarus help run'"),
    (["run", "--pid=private", "--pid", "host", "alpine", "true"],
     "option '--pid' cannot be specified more than once\nSee 'sarus help run'"),
    (["run", "--pid", "alpine", "true"],
     "Incorrect value provided for --pid option: 'alpine'. Supported values: 'host', 'private'.\nSee 'sarus help run'"),
    (["run", "--env==value", "alpine", "true"],
     "Error parsing environment variable requested from CLI '=value': Failed to parse key-value pair '=value': key is empty"),
    (["run", "--env", "", "alpine", "true"], "Invalid environment variable requested from CLI: empty option value"),
    (["run", "--annotation", "=value", "alpine", "true"],
     "Error parsing annotation from CLI '=value': Failed to parse key-value pair '=value': key is empty"),
    (["run", "--annotation", "", "alpine", "true"], "Invalid annotation requested from CLI: empty option value"),
    # `--option=` is an empty value, not a missing one that takes the image's place
    (["run", "--annotation=", "alpine", "true"], "Invalid annotation requested from CLI: empty option value"),
    (["run", "--env=", "alpine", "true"], "Invalid environment variable requested from CLI: empty option value"),
    (["run", "--mpi-type=", "alpine", "true"], "Empty value provided for --mpi-type option\nSee 'sarus help run'"),
    (["run", "--workdir=", "alpine", "true"],
     "The working directory '' is invalid, it needs to be an absolute path.\nSee 'sarus help run'"),
    (["run", "--device=", "alpine", "true"], "Invalid device request: no values provided"),
    (["pull", "--username=", "alpine"], "Invalid username: empty value provided"),
    (["run", "--device", "", "alpine", "true"], "Invalid device request: no values provided"),
    (["run", "--device=:rw", "alpine", "true"], "Invalid device request ':rw': detected empty host device path"),
    (["run", "--device=/dev/fuse::rw", "alpine", "true"],
     "Invalid device request '/dev/fuse::rw': detected empty container device path"),
    (["run", "--device=dev/fuse", "alpine", "true"],
     "Invalid device request 'dev/fuse': host device path 'dev/fuse' must be absolute"),
    (["run", "--device=/dev/fuse:dev/cont_fuse:rw", "alpine", "true"],
     "Invalid device request '/dev/fuse:dev/cont_fuse:rw': container device path 'dev/cont_fuse' must be absolute"),
    (["run", "--device=/dev/fuse:/dev/kvm:/dev/nvme0:rw", "alpine", "true"],
     "Invalid device request '/dev/fuse:/dev/kvm:/dev/nvme0:rw': too many tokens provided. "
     "The format of the option value must be at most '<host device>:<container device>:<access>'"),
    (["run", "--device=/dev/fuse:", "alpine", "true"],
     "Invalid device request '/dev/fuse:': Input string for device access is empty. "
     "Device access must be entered as a combination of 'rwm' characters, with no repetitions"),
    (["run", "--device=/dev/fuse:rwmm", "alpine", "true"],
     "Invalid device request '/dev/fuse:rwmm': Input string for device access 'rwmm' is longer than 3 characters. "
     "Device access must be entered as a combination of 'rwm' characters, with no repetitions"),
    (["run", "--device=/dev/fuse:rrw", "alpine", "true"],
     "Invalid device request '/dev/fuse:rrw': Input string for device access 'rrw' has repeated characters. "
     "Device access must be entered as a combination of 'rwm' characters, with no repetitions"),
    (["run", "--device=/dev/fuse:ra", "alpine", "true"],
     "Invalid device request '/dev/fuse:ra': Input string for device access 'ra' contains an invalid character. "
     "Device access must be entered as a combination of 'rwm' characters, with no repetitions"),
    # checked before the image is looked up, as in Sarus
    (["run", "--device=/dev/non-existing-device", "alpine", "true"],
     "Invalid device request '/dev/non-existing-device': Failed to check if file \"/dev/non-existing-device\" "
     "is a device file. Stat failed: No such file or directory"),
    (["run", "--device=/home", "alpine", "true"],
     "Invalid device request '/home': Source path \"/home\" is not a device file"),
    # stricter than Sarus 1.7, which ignores these (docs/parity.md)
    (["ps", "a"], "Too many arguments for command 'ps'\nSee 'sarus help ps'"),
    (["ps", "--x"], "Command 'ps' doesn't support options\nSee 'sarus help ps'"),
    (["kill", "--x", "name"], "unrecognised option '--x'\nSee 'sarus help kill'"),
    (["ssh-keygen", "--invalid-option"], "unrecognised option '--invalid-option'\nSee 'sarus help ssh-keygen'"),
    (["ssh-keygen", "extra-argument"], "Too many arguments for command 'ssh-keygen'\nSee 'sarus help ssh-keygen'"),
    (["version", "--invalid-option"], "Command 'version' doesn't support options\nSee 'sarus help version'"),
    (["version", "extra-argument"], "Too many arguments for command 'version'\nSee 'sarus help version'"),
])
def test_sarus_error_messages(sarus, args, message):
    assert error_of(sarus, *args) == message


def test_image_not_available(sarus):
    assert error_of(sarus, "run", "not-available-image", "true") == (
        "Image docker.io/library/not-available-image:latest is not available. "
        "Attempting to look for equivalent image in index.docker.io server repositories\n"
        "Image index.docker.io/library/not-available-image:latest is not available")
    assert error_of(sarus, "run", f"quay.io/ethcscs/alpine:3.14@{DIGEST}", "true") == (
        f"Image quay.io/ethcscs/alpine@{DIGEST} is not available")


@pytest.mark.parametrize("args, message", [
    (["run", "--mount=src=/invalid-s87dfs9,dst=/dst,type=bind", "load/library/busybox", "true"],
     "Failed to bind mount /invalid-s87dfs9 on container's /dst: "
     "Failed to find real path for mount source: No such file or directory"),
])
def test_errors_about_the_host(sarus, test_images, args, message):
    import os
    sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    assert error_of(sarus, *args) == message


def test_unambiguous_prefixes_of_long_options_are_the_options(sarus, test_images):
    """Sarus's parser (boost's unix_style) guesses long options from an
    unambiguous prefix; job scripts written for it use them."""
    r = sarus.ok("--verb", "version")
    assert r.stdout == "1.7.0\n" and "the sarus engine" in r.stderr, r.stderr
    assert error_of(sarus, "--ver", "version") == (
        "option '--ver' is ambiguous and matches '--verbose', and '--version'\nSee 'sarus help'")
    assert error_of(sarus, "run", "--work=rel", "alpine", "true") == (
        "The working directory 'rel' is invalid, it needs to be an absolute path.\nSee 'sarus help run'")
    assert error_of(sarus, "run", "--m", "alpine", "true") == (
        "option '--m' is ambiguous and matches '--mount', '--mpi', and '--mpi-type'\nSee 'sarus help run'")
    sarus.ok("load", os.path.join(test_images, "busybox.oci.tar"), "busybox")
    r = sarus.ok("run", "--ent", "", "--work", "/tmp", "load/library/busybox", "sh", "-c", 'echo "$(pwd) $1"', "sh",
                 "--work")
    assert r.stdout == "/tmp --work\n", "the container's own arguments stay as they are"
    r = sarus.ok("run", "--entrypoint", "--work", "/tmp", "load/library/busybox", "pwd")  # no entrypoint value
    assert r.stdout == "/tmp\n"


def test_verbose_adds_context(sarus):
    quiet = sarus("load", "/nonexistent.tar", "x")
    verbose = sarus("--verbose", "load", "/nonexistent.tar", "x")
    assert quiet.returncode == verbose.returncode == 1
    assert len(quiet.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("mode", ["userns", "suid"])
def test_sarus_itself_links_none_of_the_import_libraries(mode):
    """`sarus` hands load and pull to libexec/sarus/sarus-import: loading
    libarchive (with libxml2 and ICU), libsquashfs, libcurl and OpenSSL cost
    about 11 ms of CPU at every start, every rank of a job included."""
    from conftest import sarus_prefix
    binary = os.path.join(sarus_prefix(mode), "bin", "sarus")
    libraries = subprocess.run(["ldd", binary], stdout=subprocess.PIPE, text=True, check=True).stdout
    for name in ("libarchive", "libsquashfs", "libcurl", "libcrypto", "libicu", "libstdc++"):
        assert name not in libraries, f"{binary} links {name}:\n{libraries}"
