"""Command-line behaviour shared by every command (Sarus 1.7 compatible)."""

import pytest

COMMANDS = ["help", "version", "images", "load", "pull", "rmi", "run", "hooks", "ps", "kill", "ssh-keygen"]


def test_version(sarus):
    for args in (["--version"], ["version"]):
        r = sarus.ok(*args)
        assert r.stdout.startswith("sarus version ")


def test_global_help_lists_every_command(sarus):
    out = sarus.ok("--help").stdout
    for command in COMMANDS:
        assert command in out


@pytest.mark.parametrize("command", ["images", "load", "pull", "rmi", "run"])
def test_help_for_a_command_two_ways(sarus, command):
    a = sarus.ok("help", command).stdout
    b = sarus.ok(command, "--help").stdout
    assert a == b
    assert command in a and "Options" in a or "OPTIONS" in a


def test_run_help_shows_sarus_options(sarus):
    out = sarus.ok("help", "run").stdout
    for option in ["--mount", "--entrypoint", "--workdir", "--init", "--mpi", "--tty", "--env", "--device"]:
        assert option in out


def test_unknown_command_is_one_line_error(sarus):
    r = sarus("frobnicate")
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1


def test_unknown_option_is_one_line_error(sarus):
    r = sarus("images", "--no-such-option")
    assert r.returncode == 1
    assert "--no-such-option" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_missing_argument(sarus):
    r = sarus("load")
    assert r.returncode == 1
    assert "FILE" in r.stderr


def test_help_for_unknown_command(sarus):
    r = sarus("help", "nonsense")
    assert r.returncode == 1
    assert "unknown command 'nonsense'" in r.stderr


def test_verbose_adds_context(sarus):
    quiet = sarus("load", "/nonexistent.tar", "x")
    verbose = sarus("--verbose", "load", "/nonexistent.tar", "x")
    assert quiet.returncode == verbose.returncode == 1
    assert len(quiet.stderr.strip().splitlines()) == 1
