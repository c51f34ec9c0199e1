"""Jobs die with the Snakemake process that started them.

Killed hard (SIGKILL, an OOM kill, a closed terminal), Snakemake cannot stop the jobs it runs on
this machine: they go on as orphans, and the rerun starts the same jobs again beside them. Every
long ``ig`` command therefore watches the nearest Snakemake process among its ancestors and stops
itself (as Ctrl-C would: outputs are atomic, a training segment continues from its resume file)
when that process is gone. Under SLURM that process is the job's own Snakemake, which lives as long
as the job; the main process on the login node is not an ancestor there (see profiles/README.md).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)
POLL_SECONDS = 2.0
GRACE_SECONDS = 60.0  # after the interrupt, how long the job may take to stop before it is ended
_FIRED = threading.Event()  # set once the watchdog has interrupted this process


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, start time, state) of a process, from /proc (None when it is gone or unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), fields[19], fields[0]


def is_snakemake(argv: list[str]) -> bool:
    """``snakemake …``, ``python /…/bin/snakemake …`` or ``python -m snakemake …`` (not a shell whose
    command merely mentions a path with that name)."""
    names = [Path(a).name for a in argv[:2]]
    return "snakemake" in names or argv[1:3] == ["-m", "snakemake"]


def snakemake_ancestor(pid: int | None = None) -> tuple[int, str] | None:
    """(pid, start time) of the nearest ancestor that runs Snakemake."""
    pid = os.getppid() if pid is None else pid
    while pid > 1:
        stat = _stat(pid)
        if stat is None:
            return None
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            return None
        if is_snakemake(argv):
            return pid, stat[1]
        pid = stat[0]
    return None


def _interrupt_once_fired(signum: int, frame: object) -> None:
    """SIGINT handler of a job started with SIGINT ignored: still ignored, unless the watchdog sent it."""
    if _FIRED.is_set():
        raise KeyboardInterrupt


def _watch(pid: int, started: str, poll: float, grace: float) -> None:
    while True:
        time.sleep(poll)
        stat = _stat(pid)
        if stat is None or stat[1] != started or stat[2] in "ZX":  # gone, replaced or a zombie
            log.error("the Snakemake process that started this job (pid %d) is gone: stopping", pid)
            _FIRED.set()
            # a real signal to the main thread: it also breaks a blocking system call (a lock wait)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            time.sleep(grace)  # a daemon thread: it ends with the process if the main thread stops
            log.error("still running %.0f s later: exiting", grace)
            os._exit(130)


def watch_parent(poll: float = POLL_SECONDS, grace: float = GRACE_SECONDS) -> None:
    """Start watching the Snakemake ancestor, if there is one. Call it from the main thread."""
    ancestor = snakemake_ancestor()
    if ancestor is None:
        return
    if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL):
        # A shell starts a background job (`nohup snakemake … &`) with SIGINT ignored, and Python then
        # installs no KeyboardInterrupt handler: the watchdog's signal would do nothing without this.
        signal.signal(signal.SIGINT, _interrupt_once_fired)
    log.info("watching Snakemake (pid %d): this job stops if that process is killed", ancestor[0])
    threading.Thread(target=_watch, args=(*ancestor, poll, grace), daemon=True, name="ig-watchdog").start()
