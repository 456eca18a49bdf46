"""omctl's entry point: `omctl status` through a running session hub, answered before the rest of
omctl loads.

An administrator's scripts and shell prompts call `omctl status` again and again; through a hub
its answer is a few milliseconds, so Python's start-up and imports are most of its cost. The long
way (omview.cli) parses arguments with argparse and the cluster configuration with tomllib and
dataclasses just to learn which hub to ask. This module needs os, socket and json only.

How it finds the hub without reading the configuration: each `omctl status` that goes the long
way records, in the private run folder, the files its configuration came from with their stat
signatures (device, inode, size, mtime, ctime; a file looked for and absent is recorded absent)
and the hub key that configuration names. A later call with the same `--cluster`, working
folder, environment and host name uses that record only while every one of those files is
unchanged. Anything else (other arguments, `OMVIEW_HUB=0`, no record, no hub, a hub that fails
to answer) takes the long way, which records afresh.
"""

from __future__ import annotations

import _socket
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence

from omview.core import rundir

# _socket is the socket module's C half, all a Unix socket needs here, without socket.py's enums
# and selectors (7 ms of the 17 this module's imports took); typing only for the checker (5 ms)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

EXIT_OK, EXIT_FAIL = 0, 1
#: omctl's --timeout default (omview.cli uses this one).
DEFAULT_TIMEOUT = 15.0
#: omview.core.config.ENV_CLUSTER (a test keeps them equal; config is what this module avoids).
ENV_CLUSTER = "OMVIEW_CLUSTER"
CACHE_NAME = "omctl-lookup.json"
MAX_ENTRIES = 32
#: A file changed this recently may change again within one tick of its timestamps and keep its
#: signature: it is not recorded yet (git's "racily clean" rule).
RACY_NS = 2_000_000_000
STATUS_ID = 1

Signature = list[int] | None


def main() -> int:
    argv = sys.argv[1:]
    code = quick_status(argv)
    if code is not None:
        return code
    from omview.cli import run

    return run(argv)


# ---------------------------------------------------------------- pure parts


def parse_status(argv: Sequence[str]) -> tuple[str | None, float, bool] | None:
    """(cluster, timeout, json) for `[--cluster F] [--timeout S] status [--json]`; None for
    anything else, which argparse then reads (and explains, when it is wrong)."""
    cluster: str | None = None
    timeout = DEFAULT_TIMEOUT
    as_json = seen_status = False
    args = iter(argv)
    for arg in args:
        name, eq, value = arg.partition("=")
        if not seen_status and name in ("--cluster", "--timeout"):
            if not eq:
                given = next(args, None)
                if given is None:
                    return None
                value = given
            if name == "--cluster":
                cluster = value
            else:
                try:
                    timeout = float(value)
                except ValueError:
                    return None
        elif arg == "status" and not seen_status:
            seen_status = True
        elif arg == "--json" and seen_status:
            as_json = True
        else:
            return None
    return (cluster, timeout, as_json) if seen_status else None


def lookup_key(cluster: str | None, env: Mapping[str, str], cwd: str, host: str) -> str:
    """Everything besides file contents that decides which configuration omctl loads."""
    return json.dumps([cluster, cwd, env.get(ENV_CLUSTER, ""), env.get("XDG_CONFIG_HOME", ""), env.get("HOME", ""),
                       host])


def signature(path: str) -> Signature:
    """What changes when the file is written, replaced or removed; None when it does not exist."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def print_status(result: Mapping[str, Any], source: str, as_json: bool, out: TextIO | None = None) -> int:
    """Print `omctl status` (omview.core.report.status_result) and give its exit code."""
    if as_json:
        text = json.dumps({"cluster": source, "nodes": result["nodes"]}, indent=1)
    else:
        text = result["table"]
    print(text, file=out if out is not None else sys.stdout)
    return EXIT_OK if result["all_up"] else EXIT_FAIL


# ---------------------------------------------------------------- the record


def _cache_path(env: Mapping[str, str], run: str | None) -> str:
    """The record in `run` (the run folder, when the caller has it already) or in the user's."""
    return os.path.join(run if run is not None else rundir.runtime_dir(env), CACHE_NAME)


def _read_cache(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remember(cluster: str | None, consulted: Sequence[str], hub_key: str, source: str,
             env: Mapping[str, str] = os.environ, run: str | None = None) -> bool:
    """Record the lookup the long way just made; False when it cannot be trusted later (a file
    changed a moment ago or cannot be examined) or not written (the run folder is full or gone:
    a record is only a shortcut, so that is no error)."""
    if not consulted:
        return False  # a configuration made in code, not looked up: nothing to check later
    try:
        sigs = [signature(path) for path in consulted]
        newest = max((max(sig[3], sig[4]) for sig in sigs if sig is not None), default=0)
        if newest > time.time_ns() - RACY_NS:
            return False
        key = lookup_key(cluster, env, os.getcwd(), os.uname().nodename)
        cache_file = _cache_path(env, run)
        cache = _read_cache(cache_file)
        cache.pop(key, None)
        files = [[path, sig] for path, sig in zip(consulted, sigs, strict=True)]
        cache[key] = {"files": files, "hub": hub_key, "source": source}
        while len(cache) > MAX_ENTRIES:
            cache.pop(next(iter(cache)))
        tmp = f"{cache_file}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(cache, f)
            os.replace(tmp, cache_file)
        except BaseException:
            os.unlink(tmp)
            raise
    except (OSError, rundir.HubError):
        return False
    return True


def recall(cluster: str | None, env: Mapping[str, str] = os.environ, run: str | None = None) -> dict[str, Any] | None:
    """The record for this lookup while every file in it is unchanged, else None."""
    entry = _read_cache(_cache_path(env, run)).get(lookup_key(cluster, env, os.getcwd(), os.uname().nodename))
    if not isinstance(entry, dict):
        return None
    files = entry.get("files")
    if not isinstance(files, list) or not all(signature(path) == sig for path, sig in files):
        return None
    return entry


# ---------------------------------------------------------------- asking the hub


def ask_status(socket_path: str, timeout: float) -> dict[str, Any] | None:
    """The hub's `status` answer (omview.core.report.status_result), or None when no hub answers
    so (none listens there, another user's, an older protocol, a failed request)."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    sock.settimeout(timeout + 5)
    try:
        sock.connect(socket_path)
        request = {"id": STATUS_ID, "op": "status", "timeout": timeout}
        sock.sendall(json.dumps(request).encode() + b"\n")
        buf = b""
        while True:
            data = sock.recv(1 << 20)
            if not data:
                return None
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if not line.startswith(b'{"type":"reply"'):
                    continue  # the hub's hello
                msg = json.loads(line)
                if msg.get("id") == STATUS_ID:
                    return msg["result"] if msg.get("ok") else None
    except (OSError, ValueError, KeyError):
        return None
    finally:
        sock.close()


def quick_status(argv: Sequence[str], env: Mapping[str, str] = os.environ) -> int | None:
    """The exit code of an `omctl status` the hub answered, or None: take the long way."""
    if rundir.hub_forbidden(env):
        return None
    parsed = parse_status(argv)
    if parsed is None:
        return None
    cluster, timeout, as_json = parsed
    try:
        run = rundir.runtime_dir(env)
        entry = recall(cluster, env, run)
        if entry is None:
            return None
        socket_path = os.path.join(run, rundir.hub_file(str(entry["hub"]), ".sock"))
    except (OSError, KeyError, TypeError, ValueError, rundir.HubError):
        return None
    result = ask_status(socket_path, timeout)
    if result is None:
        return None
    return print_status(result, str(entry.get("source", "")), as_json)


if __name__ == "__main__":
    sys.exit(main())
