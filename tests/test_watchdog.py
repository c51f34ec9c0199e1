"""A job started by Snakemake stops when that Snakemake process is killed hard (``ig.utils.watchdog``)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ig.utils.watchdog import is_snakemake, snakemake_ancestor
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["snakemake", "-n"], True),
        (["/venv/bin/python3.11", "/venv/bin/snakemake", "--profile", "p"], True),
        (["python", "-m", "snakemake", "-c1"], True),
        (["/bin/bash", "-c", "ig train --out results/snakemake/x.pt"], False),
        (["python", "/work/ig/cli.py", "snakemake"], False),
    ],
)
def test_snakemake_is_recognised_by_its_program_not_by_a_mention(argv, expected):
    assert is_snakemake(argv) is expected


def test_a_process_without_a_snakemake_ancestor_is_not_watched():
    assert snakemake_ancestor() is None  # pytest's own ancestors do not run Snakemake


IGNORE_SIGINT = {"default": None, "ignored": lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)}


def _find(marker: str) -> int | None:
    """The pid of the ``ig`` process whose command line contains ``marker``."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if proc.name.isdigit() and marker in argv and any(Path(a).name == "ig" for a in argv[:2]):
            return int(proc.name)
    return None


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_a_job_stops_when_the_snakemake_that_started_it_is_killed(tmp_path, sigint):
    """A real Snakemake runs a real ``ig`` command (the 2D toy, minutes long) through its shell;
    SIGKILL of Snakemake leaves the job orphaned, and its watchdog must stop it within seconds. Also
    when Snakemake was started as a background job of a shell (`nohup snakemake … &`), which
    starts it, and so every job, with SIGINT ignored."""
    out = tmp_path / "toy"
    (tmp_path / "Snakefile").write_text(
        textwrap.dedent(f"""
            rule long:
                output: "done"
                log: "long.log"
                shell: "ig toy2d --out-dir {out} --seeds 2 --workers 1 > {{log}} 2>&1 && touch {{output}}"
        """)
    )
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # the venv's ig
    main = subprocess.Popen(["snakemake", "-c1", "--directory", str(tmp_path), "-s", str(tmp_path / "Snakefile")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=IGNORE_SIGINT[sigint])  # fmt: skip
    log = tmp_path / "long.log"
    try:
        job = _wait(lambda: _find(str(out)), 120, "the ig job to start")
        _wait(lambda: log.exists() and "watching Snakemake" in log.read_text(), 120, "the job's watchdog")
        os.kill(main.pid, signal.SIGKILL)
        main.wait()
        _wait(lambda: not _alive(job), 30, "the orphaned ig job to stop")
    finally:
        if main.poll() is None:
            main.kill()
    assert "is gone: stopping" in log.read_text() and "ig toy2d: interrupted" in log.read_text()
    assert not (tmp_path / "done").exists()


def test_a_job_that_does_not_honour_the_interrupt_is_ended_after_the_grace_period(tmp_path):
    """The main thread never takes SIGINT (blocked, as if stuck in native code): the watchdog ends the
    process itself once its grace period is over."""
    job = textwrap.dedent("""
        import logging, signal, time
        logging.basicConfig(level=logging.INFO)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        from ig.utils.watchdog import watch_parent
        watch_parent(poll=0.1, grace=1.0)
        time.sleep(60)
    """)
    parent = tmp_path / "snakemake"  # the watchdog recognises its ancestor by this name
    parent.write_text(
        f"#!{sys.executable}\nimport subprocess, sys, time\n"
        f"job = subprocess.Popen([sys.executable, '-c', {job!r}], stderr=open({str(tmp_path / 'job.log')!r}, 'w'))\n"
        f"open({str(tmp_path / 'job.pid')!r}, 'w').write(str(job.pid))\ntime.sleep(60)\n"
    )
    parent.chmod(0o755)
    main = subprocess.Popen([str(parent)], cwd=REPO_ROOT)
    try:
        log = tmp_path / "job.log"
        _wait(lambda: log.exists() and "watching Snakemake" in log.read_text(), 60, "the job's watchdog")
        pid = int((tmp_path / "job.pid").read_text())
        main.kill()
        main.wait()
        _wait(lambda: not _alive(pid), 30, "the job to be ended")
    finally:
        if main.poll() is None:
            main.kill()
    assert "is gone: stopping" in log.read_text() and "still running 1 s later: exiting" in log.read_text()
