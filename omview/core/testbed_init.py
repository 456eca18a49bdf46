"""PID 1 of one testbed node (see omview.core.testbed).

Started by the testbed as the first process of a new PID + UTS + mount namespace
(``unshare --pid --fork --mount-proc --uts``) inside the node's network namespace.
Standard library only: it may run under any python3.

It
- sets the node's hostname (its own UTS namespace),
- waits for one line ``go`` on stdin, so the testbed can move it into the node's
  cgroups before anything else starts (every process of the node is then inside),
- starts ``sshd -D -f CONFIG`` as its child,
- reaps every zombie (orphans of the namespace reparent to it),
- starts sshd again on SIGUSR1 (when it is not running),
- never exits on its own when sshd dies: jobs on the node survive an sshd stop.
  SIGTERM/SIGINT/SIGHUP end it, and with it the whole namespace; the testbed uses SIGKILL.

Signals are blocked and taken with sigwaitinfo, so there is no race between a child
exiting and the loop going to sleep.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time

_SIGNALS = {signal.SIGCHLD, signal.SIGUSR1, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def _log(msg: str) -> None:
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} testbed-init[{os.getpid()}]: {msg}\n")
    sys.stderr.flush()


class Init:
    def __init__(self, sshd: str, config: str, sshd_log: str | None) -> None:
        self.sshd = sshd
        self.config = config
        self.sshd_log = sshd_log
        self.sshd_pid: int | None = None

    def start_sshd(self) -> None:
        self.reap()
        if self.sshd_pid is not None:
            _log(f"sshd already running as {self.sshd_pid}")
            return
        argv = [self.sshd, "-D", "-f", self.config]
        if self.sshd_log:
            argv += ["-E", self.sshd_log]
        pid = os.fork()
        if pid == 0:  # child: plain signal state, stdin from /dev/null, then exec
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, set())
                for sig in _SIGNALS:
                    signal.signal(sig, signal.SIG_DFL)
                os.setsid()
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.execv(argv[0], argv)
            except BaseException as exc:  # noqa: BLE001 - report anything, then die
                _log(f"exec {argv} failed: {exc}")
            finally:
                os._exit(127)
        self.sshd_pid = pid
        _log(f"started sshd as {pid}")

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.sshd_pid:
                _log(f"sshd {pid} ended with status {status:#x}")
                self.sshd_pid = None

    def run(self) -> int:
        self.start_sshd()
        while True:
            self.reap()
            info = signal.sigwaitinfo(_SIGNALS)
            sig = info.si_signo
            if sig == signal.SIGCHLD:
                continue
            if sig == signal.SIGUSR1:
                self.start_sshd()
                continue
            _log(f"ending on signal {sig}")
            return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="PID 1 of an omview testbed node")
    ap.add_argument("--hostname", required=True)
    ap.add_argument("--sshd", default="/usr/sbin/sshd")
    ap.add_argument("--sshd-config", required=True)
    ap.add_argument("--sshd-log", default=None)
    ap.add_argument("--no-wait", action="store_true", help="do not wait for 'go' on stdin")
    args = ap.parse_args(argv)

    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    if os.getpid() != 1:
        _log("warning: not PID 1 of a PID namespace")
    socket.sethostname(args.hostname)
    if not args.no_wait:
        line = sys.stdin.readline()
        if line.strip() != "go":
            _log(f"no 'go' on stdin (got {line!r}): ending")
            return 1
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return Init(args.sshd, args.sshd_config, args.sshd_log).run()


if __name__ == "__main__":
    sys.exit(main())
