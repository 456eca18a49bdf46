"""Prometheus text exposition of the cluster, for people who already run Grafana.

node_exporter's metric names with a `node` label (so existing dashboards work with a label filter),
plus our own `omview_*` figures that node_exporter has no name for. Served by the standard
library's HTTP server on a thread: no extra dependency for an optional feature.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from omview.core.model import NodeState

log = logging.getLogger("omcollector.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def parse_address(text: str) -> tuple[str, int]:
    """'ADDR:PORT', '[::1]:PORT', ':PORT' or 'PORT' (loopback when no address is given)."""
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"--metrics: expected ADDR:PORT, found {text!r}") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"--metrics: port {number} out of range")
    return host, number


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(nodes: list[NodeState], migrations: dict[str, int], collector: dict[str, float]) -> str:
    """The exposition text for the current state of every node."""
    families: list[tuple[str, str, str, list[tuple[str, float]]]] = []

    def family(name: str, kind: str, help_text: str) -> list[tuple[str, float]]:
        rows: list[tuple[str, float]] = []
        families.append((name, kind, help_text, rows))
        return rows

    up = family("omview_node_up", "gauge", "1 when the node's agent answers, else 0.")
    load1 = family("node_load1", "gauge", "Runnable tasks, decayed (the agent's run queue).")
    mem_total = family("node_memory_MemTotal_bytes", "gauge", "Memory the node may use (cgroup limit respected).")
    mem_avail = family("node_memory_MemAvailable_bytes", "gauge", "Memory available for new work.")
    mem_used = family("omview_node_memory_used_bytes", "gauge", "Memory in use.")
    cpus = family("node_cpu_count", "gauge", "CPUs the node may use (affinity and cgroup quota).")
    speed = family("omview_node_speed", "gauge", "openMosix speed; 10000 is one standard CPU.")
    load = family("omview_node_load", "gauge", "openMosix load: percent of the node's capacity.")
    procs = family("omview_node_processes", "gauge", "Processes on the node.")
    for st in nodes:
        labels = f'node="{st.id}",name="{_label(st.label)}"'
        up.append((labels, 1.0 if st.up else 0.0))
        s = st.sample
        if not st.up or s is None:
            continue  # a down node has no values, never zeros
        load1.append((labels, s.runq))
        mem_total.append((labels, float(s.mem_total)))
        mem_avail.append((labels, float(s.mem_available)))
        mem_used.append((labels, float(s.mem_used)))
        cpus.append((labels, float(s.cpus)))
        speed.append((labels, float(s.speed)))
        load.append((labels, s.load))
        procs.append((labels, float(s.nprocs)))
    mig = family("omview_migrations_total", "counter", "Migrations recorded since the collector started, by result.")
    for result, count in sorted(migrations.items()):
        mig.append((f'result="{_label(result)}"', float(count)))
    written = family("omview_collector_samples_written_total", "counter", "Samples written to the history.")
    written.append(("", collector.get("samples_written", 0.0)))
    backlog = family("omview_collector_backlog", "gauge", "Ticks waiting for the disk (0 when writes succeed).")
    backlog.append(("", collector.get("backlog", 0.0)))
    failing = family("omview_collector_write_failing", "gauge", "1 while the history cannot be written.")
    failing.append(("", collector.get("failing", 0.0)))
    out = []
    for name, kind, help_text, rows in families:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in rows:
            out.append(f"{name}{{{labels}}} {value!r}" if labels else f"{name} {value!r}")
    return "\n".join(out) + "\n"


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class MetricsServer:
    """GET /metrics (and /) on a daemon thread; `text()` is called per scrape."""

    def __init__(self, address: tuple[str, int], text: Callable[[], str]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                if self.path.split("?")[0] not in ("/", "/metrics"):
                    self.send_error(404)
                    return
                try:
                    body = text().encode()
                except Exception:
                    log.exception("rendering metrics failed")
                    self.send_error(500)
                    return
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("metrics: " + format, *args)

        server_cls = _Server6 if ":" in address[0] else ThreadingHTTPServer
        self.server = server_cls(address, Handler)
        self.server.daemon_threads = True
        self.address = self.server.server_address[:2]
        self.thread = threading.Thread(target=self.server.serve_forever, name="omcollector-metrics", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
