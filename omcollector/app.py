"""omcollector: records the load, memory and processes of every node (HOWTO 10.6), as a real service.

The original's flags are kept (-d start as a daemon, -k stop it, -n write a checkpoint, -r save the
history as a backup and start a new one, no argument: short help); --foreground is for systemd.
Exit status: 0 done, 1 failed (the message says why), 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import logging.handlers
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from omcollector import control, service
from omcollector.collector import Collector, Options
from omcollector.metrics import parse_address
from omview.core.config import ClusterConfig, ConfigError, load_cluster
from omview.core.history import HistoryError, HistoryWriter, default_history_dir, ensure_history_dir

log = logging.getLogger("omcollector")

SHORT_HELP = """\
usage: omcollector -d | -k | -n [LABEL] | -r | --foreground   [options]
  -d              start the collector as a daemon
  -k              stop the running collector
  -n [LABEL]      write a checkpoint (a blue line in the analyzer) to the history
  -r              save the current history as a backup and start a new one
  --foreground    run in the foreground (for systemd; logs to stderr)
  --status        say whether a collector runs, and what it writes
options: --history DIR  --interval S  --cluster FILE  --metrics ADDR:PORT  --rotate-every HOURS
         --balance  --install-service  --uninstall-service  (omcollector --help for all)
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="omcollector", add_help=False,
                                description="Record the cluster's history for omanalyzer and omhistory.")
    what = p.add_mutually_exclusive_group()
    what.add_argument("-d", dest="daemon", action="store_true", help="start as a daemon")
    what.add_argument("-k", dest="kill", action="store_true", help="stop the running collector")
    what.add_argument("-n", dest="checkpoint", nargs="?", const="", metavar="LABEL", help="write a checkpoint")
    what.add_argument("-r", dest="rotate", action="store_true", help="back up the history and start a new one")
    what.add_argument("--foreground", action="store_true", help="run in the foreground (systemd)")
    what.add_argument("--status", action="store_true", help="show the running collector's state")
    what.add_argument("--install-service", action="store_true", help="write the systemd unit")
    what.add_argument("--uninstall-service", action="store_true", help="stop and remove the systemd unit")
    p.add_argument("-h", action="store_true", dest="short_help", help="short help")
    p.add_argument("--help", action="help", help="this help")
    p.add_argument("--history", metavar="DIR", help=f"history directory (default {default_history_dir()})")
    p.add_argument("--interval", type=float, metavar="S", help="seconds between samples (default: the cluster's)")
    p.add_argument("--cluster", metavar="FILE", help="cluster settings or openMosix map (default: omview's lookup)")
    p.add_argument("--metrics", metavar="ADDR:PORT", help="serve Prometheus metrics, e.g. 127.0.0.1:9477")
    p.add_argument("--rotate-every", type=float, default=12.0, metavar="HOURS", help="rotation period (12)")
    p.add_argument("--snapshot-every", type=float, default=10.0, metavar="S",
                   help="seconds between process cpu/rss points (10)")
    p.add_argument("--log", metavar="FILE", help="log file for -d (default: omcollector.log in the history dir)")
    p.add_argument("--pidfile", metavar="FILE", help="PID file and lock (default: /run or $XDG_RUNTIME_DIR)")
    p.add_argument("--balance", action="store_true",
                   help="run the automatic load balancer in the service and record its moves")
    p.add_argument("--balance-interval", type=float, default=5.0, metavar="S", help="seconds between rounds (5)")
    p.add_argument("--unit-dir", metavar="DIR", help=argparse.SUPPRESS)  # tests: install the unit elsewhere
    return p


def _say(text: str) -> None:
    print(f"omcollector: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    if args.short_help or not argv:
        print(SHORT_HELP, end="")
        return 0 if args.short_help else 2
    actions = (args.daemon, args.kill, args.checkpoint is not None, args.rotate, args.foreground, args.status,
               args.install_service, args.uninstall_service)
    if not any(actions):
        _say("nothing to do: give -d, -k, -n, -r or --foreground (-h for help)")
        return 2
    if args.interval is not None and not 0.2 <= args.interval <= 60:
        _say(f"--interval: expected 0.2 to 60 seconds, found {args.interval:g}")
        return 2
    if args.rotate_every <= 0:
        _say("--rotate-every: expected a positive number of hours")
        return 2
    metrics = None
    if args.metrics:
        try:
            metrics = parse_address(args.metrics)
        except ValueError as exc:
            _say(str(exc))
            return 2

    if args.install_service:
        return _install(args)
    if args.uninstall_service:
        removed = service.uninstall(Path(args.unit_dir) if args.unit_dir else None)
        print(f"removed {removed}" if removed else "no omcollector unit was installed")
        return 0

    try:
        history = ensure_history_dir(Path(args.history) if args.history else default_history_dir())
    except (HistoryError, OSError) as exc:
        _say(str(exc))
        return 1
    pidfile = Path(args.pidfile) if args.pidfile else control.pidfile_for(history)

    if args.kill:
        return _kill(history, pidfile)
    if args.status:
        return _status(history, pidfile)
    if args.checkpoint is not None or args.rotate:
        return _act(history, pidfile, args.checkpoint, args.rotate)

    opts = Options(history=history, interval=args.interval, rotate_every=args.rotate_every * 3600.0,
                   snapshot_every=args.snapshot_every, metrics=metrics, balance=args.balance,
                   balance_interval=args.balance_interval)
    return _start(opts, args, pidfile, daemon=args.daemon)


# --------------------------------------------------------------------------- actions


def _install(args: argparse.Namespace) -> int:
    passed: list[str] = []
    for flag, value in (("--history", args.history), ("--cluster", args.cluster), ("--metrics", args.metrics)):
        if value:
            passed += [flag, str(Path(value).absolute()) if flag != "--metrics" else value]
    if args.interval is not None:
        passed += ["--interval", f"{args.interval:g}"]
    if args.rotate_every != 12.0:
        passed += ["--rotate-every", f"{args.rotate_every:g}"]
    if args.balance:
        passed += ["--balance", "--balance-interval", f"{args.balance_interval:g}"]
    try:
        path, hint = service.install(passed, Path(args.unit_dir) if args.unit_dir else None)
    except OSError as exc:
        _say(f"cannot write the unit: {exc}")
        return 1
    print(f"wrote {path}\nstart it with: {hint}")
    return 0


def _kill(history: Path, pidfile: Path) -> int:
    pid = control.running_pid(pidfile)
    if pid is None:
        _say(f"no collector runs for {history}")
        return 1
    try:
        control.request(history, "stop", timeout=10)
    except control.ControlError as exc:
        if pid <= 0:
            _say(str(exc))
            return 1
        log.debug("control socket failed (%s); sending SIGTERM to %d", exc, pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while control.running_pid(pidfile) is not None:
        if time.monotonic() > deadline:
            _say(f"collector PID {pid} did not stop within 60 s")
            return 1
        time.sleep(0.1)
    print(f"stopped the collector (PID {pid})")
    return 0


def _status(history: Path, pidfile: Path) -> int:
    pid = control.running_pid(pidfile)
    if pid is None:
        print(f"no collector runs for {history}")
        return 3  # like systemctl status / LSB: not running
    try:
        st = control.request(history, "status", timeout=10)
    except control.ControlError as exc:
        _say(f"PID {pid} holds {pidfile} but does not answer: {exc}")
        return 1
    state = f"FAILING: {st['failing']} ({st['backlog']} ticks buffered)" if st["failing"] else "writing"
    print(f"collector PID {st['pid']}: {st['nodes_up']}/{st['nodes']} nodes up, {state}, "
          f"{st['samples_written']} samples written to {st['database']}")
    bal = st.get("balancer") or {}
    if bal.get("running"):
        print(f"load balancer: a round every {bal['interval']:g} s, {bal['rounds']} rounds, {bal['moves']} moves, "
              f"{bal['failed']} failed")
    return 0


def _act(history: Path, pidfile: Path, label: str | None, rotate: bool) -> int:
    """-n / -r: through the running collector, else directly on the database (holding the lock meanwhile)."""
    if control.running_pid(pidfile) is not None:
        try:
            if rotate:
                print(f"history saved to {control.request(history, 'rotate')['backup']}")
            else:
                reply = control.request(history, "checkpoint", label=label or "")
                if not reply.get("written", True):
                    _say(f"checkpoint kept in memory, not yet written: {reply.get('failing')}")
                    return 1
                print(f"checkpoint written{f': {label}' if label else ''}")
        except control.ControlError as exc:
            _say(str(exc))
            return 1
        return 0
    lock = control.PidLock(pidfile)
    try:
        lock.acquire()
    except control.AlreadyRunning as exc:  # a collector started in between
        _say(str(exc))
        return 1
    try:
        writer = HistoryWriter(history)
        try:
            if rotate:
                print(f"history saved to {writer.rotate()}")
            else:
                writer.checkpoint(label or "")
                if not writer.commit():
                    _say(f"checkpoint not written: {writer.failing}")
                    return 1
                print(f"checkpoint written{f': {label}' if label else ''} (no collector runs)")
        finally:
            writer.close()
    except HistoryError as exc:
        _say(str(exc))
        return 1
    finally:
        lock.release()
    return 0


# --------------------------------------------------------------------------- running


def _setup_logging(stream: bool, log_file: Path | None) -> None:
    root = logging.getLogger()
    root.handlers.clear()
    if stream:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("omcollector[%(process)d] %(levelname)s %(name)s: %(message)s"))
    else:
        assert log_file is not None
        handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=1 << 20, backupCount=3)
        handler.setFormatter(logging.Formatter("%(asctime)s omcollector[%(process)d] %(levelname)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("paramiko").setLevel(logging.WARNING)


def _start(opts: Options, args: argparse.Namespace, pidfile: Path, daemon: bool) -> int:
    try:
        config = load_cluster(args.cluster)
    except ConfigError as exc:
        _say(str(exc))
        return 1
    lock = control.PidLock(pidfile)
    try:
        lock.acquire()
    except control.AlreadyRunning as exc:
        _say(str(exc))
        return 1
    except OSError as exc:
        _say(f"cannot lock {pidfile}: {exc}")
        return 1
    stale = lock.stale_pid
    if not daemon:
        _setup_logging(True, None)
        lock.write_pid()
        if stale:
            log.warning("stale PID file %s (PID %d no longer runs) replaced", pidfile, stale)
        return _serve(opts, config, lock, lambda err: None)

    # -d: double fork; the parent waits until the daemon has opened everything and reports its fate
    read_fd, write_fd = os.pipe()
    first = os.fork()
    if first:
        os.close(write_fd)
        lock.close_fd()  # the daemon keeps the lock
        os.waitpid(first, 0)
        with os.fdopen(read_fd, "rb") as r:
            message = r.read().decode(errors="replace").strip()
        if message.startswith("ok "):
            print(f"omcollector started (PID {message.split()[1]}), history in {opts.history}")
            return 0
        _say(message or "the daemon died while starting (see its log)")
        return 1
    os.close(read_fd)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.chdir("/")
    os.umask(0o077)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    code = 1
    try:
        log_file = Path(args.log) if args.log else opts.history / "omcollector.log"
        _setup_logging(False, log_file)
        lock.write_pid()
        if stale:
            log.warning("stale PID file %s (PID %d no longer runs) replaced", pidfile, stale)

        def ready(err: str | None) -> None:
            with contextlib.suppress(OSError):
                os.write(write_fd, (f"error: {err}" if err else f"ok {os.getpid()}").encode())
                os.close(write_fd)

        code = _serve(opts, config, lock, ready)
    except BaseException as exc:  # the parent must hear about it
        with contextlib.suppress(OSError):
            os.write(write_fd, f"error: {exc}".encode())
    finally:
        logging.shutdown()
        os._exit(code)


def _serve(opts: Options, config: ClusterConfig, lock: control.PidLock, ready: Callable[[str | None], None]) -> int:
    collector = Collector(opts, config)
    collector.install_signals()
    try:
        try:
            collector.open()
        except (HistoryError, control.ControlError, OSError) as exc:
            log.error("cannot start: %s", exc)
            ready(str(exc))
            return 1
        ready(None)
        collector.run()
        return 0
    finally:
        collector.close()
        lock.release()
        log.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
