"""omctl's entry point (omview.quickctl): which command lines it answers itself, and when it may
trust a recorded lookup. No hub here (tests/test_hub.py asks real hubs); no Qt."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest

from omview import cli, quickctl
from omview.core import config as configmod


@pytest.mark.parametrize(("argv", "want"), [
    (["status"], (None, 15.0, False)),
    (["status", "--json"], (None, 15.0, True)),
    (["--cluster", "c.toml", "status"], ("c.toml", 15.0, False)),
    (["--cluster=c.toml", "--timeout", "3", "status", "--json"], ("c.toml", 3.0, True)),
    (["--timeout=2.5", "--cluster", "a=b.map", "status"], ("a=b.map", 2.5, False)),
])
def test_the_status_command_lines_it_answers(argv: list[str], want: tuple[object, ...]) -> None:
    assert quickctl.parse_status(argv) == want


@pytest.mark.parametrize("argv", [
    [], ["ps"], ["status", "2"], ["status", "--json", "--json2"], ["--json", "status"], ["status", "--cluster", "x"],
    ["-v", "status"], ["--verbose", "status"], ["--cluster"], ["--timeout", "soon", "status"], ["status", "status"],
    ["--clus", "x", "status"], ["status", "-h"], ["--help"], ["hub"],
])
def test_everything_else_goes_the_long_way(argv: list[str]) -> None:
    """Another command, a node, verbose, help, an abbreviation or a mistake: argparse reads it."""
    assert quickctl.parse_status(argv) is None


def test_its_constants_are_the_long_ways() -> None:
    assert quickctl.ENV_CLUSTER == configmod.ENV_CLUSTER
    assert cli.build_parser("status").parse_args(["status"]).timeout == quickctl.DEFAULT_TIMEOUT


def test_print_status_prints_and_says_whether_all_nodes_are_up() -> None:
    result = {"table": "ID  NAME\n 1  a", "nodes": [{"id": 1, "up": True}, {"id": 2, "up": False}], "all_up": False}
    out = io.StringIO()
    assert quickctl.print_status(result, "cluster.toml", False, out) == quickctl.EXIT_FAIL
    assert out.getvalue() == "ID  NAME\n 1  a\n"
    out = io.StringIO()
    assert quickctl.print_status({**result, "all_up": True}, "cluster.toml", True, out) == quickctl.EXIT_OK
    assert json.loads(out.getvalue()) == {"cluster": "cluster.toml", "nodes": result["nodes"]}


# ---------------------------------------------------------------- the record


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, str], Path]:
    """A private run folder, a working folder, and a settings file older than the racy window."""
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(quickctl, "RACY_NS", 0)  # these files were all written a moment ago
    return {"XDG_RUNTIME_DIR": str(run), "HOME": str(tmp_path)}, work


def test_a_recorded_lookup_holds_while_its_files_do_not_change(place: tuple[dict[str, str], Path]) -> None:
    env, work = place
    settings = work / "c.toml"
    settings.write_text('[[node]]\nid = 1\naddress = "10.0.0.1"\n')
    absent = work / "later.map"
    assert quickctl.remember("c.toml", [str(settings), str(absent)], "abc123", "c.toml", env)
    entry = quickctl.recall("c.toml", env)
    assert entry is not None and entry["hub"] == "abc123" and entry["source"] == "c.toml"
    cache = Path(env["XDG_RUNTIME_DIR"], "omview", quickctl.CACHE_NAME)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    # the same lookup only: other arguments, environment or working folder find nothing
    assert quickctl.recall(None, env) is None
    assert quickctl.recall("c.toml", {**env, "OMVIEW_CLUSTER": "x.map"}) is None
    assert quickctl.recall("c.toml", {**env, "XDG_CONFIG_HOME": "/elsewhere"}) is None
    os.chdir(work.parent)
    assert quickctl.recall("c.toml", env) is None
    os.chdir(work)
    # a file that was absent appears: the lookup may now find something else
    absent.write_text("1 10.0.0.9 1\n")
    assert quickctl.recall("c.toml", env) is None
    absent.unlink()
    assert quickctl.recall("c.toml", env) is not None
    # the settings are edited, or replaced by another file with the same text
    with settings.open("a") as f:
        f.write("# more\n")
    assert quickctl.recall("c.toml", env) is None
    assert quickctl.remember("c.toml", [str(settings)], "abc123", "c.toml", env)
    replacement = work / "c.toml.new"
    replacement.write_text(settings.read_text())
    os.replace(replacement, settings)
    assert quickctl.recall("c.toml", env) is None


def test_a_file_changed_a_moment_ago_is_not_recorded(place: tuple[dict[str, str], Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Written again within its timestamp's tick, it would keep its signature: wait, record later."""
    env, work = place
    monkeypatch.setattr(quickctl, "RACY_NS", 2_000_000_000)
    settings = work / "c.toml"
    settings.write_text("")
    assert not quickctl.remember("c.toml", [str(settings)], "abc123", "c.toml", env)
    assert quickctl.recall("c.toml", env) is None
    old = settings.stat().st_mtime - 60
    os.utime(settings, (old, old))  # sets the mtime back, but the ctime is now: still too fresh
    assert not quickctl.remember("c.toml", [str(settings)], "abc123", "c.toml", env)


def test_a_broken_or_unwritable_record_is_no_error(place: tuple[dict[str, str], Path]) -> None:
    env, work = place
    settings = work / "c.toml"
    settings.write_text("")
    folder = Path(env["XDG_RUNTIME_DIR"], "omview")
    folder.mkdir(mode=0o700)
    cache = folder / quickctl.CACHE_NAME
    cache.write_text("{not json")
    assert quickctl.recall("c.toml", env) is None
    assert quickctl.remember("c.toml", [str(settings)], "k1", "c.toml", env)
    assert quickctl.recall("c.toml", env) is not None
    cache.write_text('{"x": [1, 2]}')  # JSON, but not ours
    assert quickctl.recall("c.toml", env) is None
    # nothing recorded, nothing lost, no traceback: the long way answered already
    assert not quickctl.remember("c.toml", [str(settings)], "k1", "c.toml",
                                 {"XDG_RUNTIME_DIR": "", "HOME": str(settings)})
    assert not quickctl.remember("c.toml", [], "k1", "c.toml", env)  # a configuration made in code


def test_the_record_keeps_the_newest_lookups(place: tuple[dict[str, str], Path]) -> None:
    env, work = place
    settings = work / "c.toml"
    settings.write_text("")
    for k in range(quickctl.MAX_ENTRIES + 5):
        assert quickctl.remember(f"c{k}.toml", [str(settings)], f"k{k}", "c.toml", env)
    cache = json.loads(Path(env["XDG_RUNTIME_DIR"], "omview", quickctl.CACHE_NAME).read_text())
    assert len(cache) == quickctl.MAX_ENTRIES
    assert quickctl.recall("c0.toml", env) is None and quickctl.recall(f"c{quickctl.MAX_ENTRIES + 4}.toml", env)


def test_without_a_record_or_with_the_hub_forbidden_it_takes_the_long_way(place: tuple[dict[str, str], Path]) -> None:
    env, work = place
    settings = work / "c.toml"
    settings.write_text("")
    assert quickctl.quick_status(["--cluster", "c.toml", "status"], env) is None  # no record
    assert quickctl.remember("c.toml", [str(settings)], "0123456789abcdef", "c.toml", env)
    assert quickctl.quick_status(["--cluster", "c.toml", "status"], env) is None  # no hub listens
    # a socket file nobody listens on (a hub killed with -9): still the long way, quietly
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(Path(env["XDG_RUNTIME_DIR"], "omview", "hub-0123456789abcdef.sock")))
    sock.close()
    assert quickctl.quick_status(["--cluster", "c.toml", "status"], env) is None
    assert quickctl.quick_status(["--cluster", "c.toml", "status"], {**env, "OMVIEW_HUB": "0"}) is None
