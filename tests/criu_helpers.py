"""Helpers for the tests that move real processes with real CRIU on the testbed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from omview.core import criu as criu_mod
from omview.core.cluster import Cluster
from omview.core.config import load_cluster
from omview.core.testbed import Testbed


def criu_or_skip() -> str:
    """The criu to use, or a skip saying why none works here."""
    path = criu_mod.find_criu()
    st = criu_mod.probe(path, features=False)
    if not st.ready:
        pytest.skip(f"no working criu here: {st.reason}")
    assert path is not None
    return path


def open_criu_cluster(testbed: Testbed, criu_path: str, **per_node: str) -> Cluster:
    """A Cluster on the testbed whose nodes use `criu_path` (or `n<ID>=path` for one node), once every
    node is up and has reported its CRIU."""
    config = load_cluster(str(testbed.cluster_file))
    for n in config.nodes:
        n.criu = per_node.get(f"n{n.id}", criu_path)
    c = Cluster(config).start()
    ok = c.wait_until(lambda: all(n.up and n.sample is not None and n.sample.criu for n in c.nodes()), 60)
    assert ok, [(n.id, n.reason) for n in c.nodes()]
    return c


def host_copies(marker: str) -> list[tuple[int, str]]:
    """(host PID, state) of every live process on the machine whose command line holds the marker
    (the `unshare` parents and zombies left out): the copies of a job across all nodes."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        if marker.encode() not in b" ".join(argv) or argv[0].endswith(b"unshare"):
            continue
        state = stat.rsplit(")", 1)[1].split()[0]
        if state not in ("Z", "X"):
            out.append((int(name), state))
    return out
