"""The one way the benchmarks start a command: :func:`start` (in the background) and :func:`run`.

The learning-quality benchmark starts its ``tools/train.py`` and ``tools/eval.py`` runs with
them, the speed grid its per-configuration ``python -m benchmarks.probe`` processes, and the GPU
check each of its parts. A command's output goes to a log file (appended to when it is an open
file, written when it is a path) or is captured; with ``threads`` it runs with that
``OMP_NUM_THREADS``. A command with a time limit runs in a process group of its own, and the
whole group (data-loader workers, compiler workers) is killed when the limit passes; an interrupt
of the waiting process (Ctrl-C) kills the group as well before it is passed on.

This module imports neither torch nor spyolo (the GPU check's orchestrator relies on that).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["Finished", "Job", "ROOT", "run", "start"]

ROOT = Path(__file__).resolve().parents[1]
"""The repository root: the default working folder of every command."""


@dataclass(frozen=True)
class Finished:
    """How a command ended."""

    returncode: int | None
    """The exit status; ``None`` when the time limit passed and the command was killed."""
    seconds: float
    """Wall time from the start to the end (or to the kill)."""
    stdout: str = ""
    """Captured standard output (``capture=True`` only)."""
    stderr: str = ""
    """Captured standard error (``capture=True`` only)."""

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Job:
    """A started command (:func:`start`)."""

    def __init__(self, cmd: list[str], proc: subprocess.Popen, own_group: bool) -> None:
        self.cmd = cmd
        self.proc = proc
        self.own_group = own_group
        self.t0 = time.perf_counter()

    def poll(self) -> int | None:
        """The exit status, or ``None`` while the command runs."""
        return self.proc.poll()

    def kill(self) -> None:
        """Kill the command (and its process group, when it has its own) and reap it."""
        if self.proc.poll() is None:
            try:
                if self.own_group:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                else:
                    self.proc.kill()
            except ProcessLookupError:
                pass
        self.proc.wait()

    def wait(self, timeout: float | None = None) -> Finished:
        """Wait for the end; past ``timeout`` seconds (from now) kill the command."""
        try:
            if self.proc.stdout is not None or self.proc.stderr is not None:
                out, err = self.proc.communicate(timeout=timeout)
            else:
                self.proc.wait(timeout=timeout)
                out, err = "", ""
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.proc.communicate() if self.proc.stdout is not None else ("", "")
            return Finished(None, time.perf_counter() - self.t0, out or "", err or "")
        except BaseException:  # an interrupt while waiting: the command must not outlive it
            self.kill()
            raise
        return Finished(self.proc.returncode, time.perf_counter() - self.t0, out or "", err or "")


def start(cmd: list[str], *, log: str | Path | IO | None = None, capture: bool = False,
          threads: int | None = None, env: dict[str, str] | None = None, cwd: str | Path = ROOT,
          own_group: bool = False) -> Job:
    """Start ``cmd`` in the background.

    Args:
        cmd: The command and its arguments.
        log: Where standard output and standard error go together: a path (written anew) or an
            open file (appended to). ``None``: inherited from this process, unless ``capture``.
        capture: Collect standard output and standard error apart (``Finished.stdout`` / ``stderr``).
        threads: ``OMP_NUM_THREADS`` for the command (``None``: inherited).
        env: The command's environment (default: this process's).
        cwd: Working folder (default: the repository root).
        own_group: Run in a new process group, killed as a whole by :meth:`Job.kill`.
    """
    environment = dict(os.environ if env is None else env)
    if threads:
        environment["OMP_NUM_THREADS"] = str(threads)
    kwargs: dict = {"env": environment, "cwd": cwd, "start_new_session": own_group}
    if capture:
        kwargs.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    elif isinstance(log, (str, Path)):
        with Path(log).open("w") as f:  # the child holds its own descriptor
            return Job(cmd, subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, **kwargs), own_group)
    elif log is not None:
        log.flush()
        kwargs.update(stdout=log, stderr=subprocess.STDOUT)
    return Job(cmd, subprocess.Popen(cmd, **kwargs), own_group)


def run(cmd: list[str], *, timeout: float | None = None, **options) -> Finished:
    """Run ``cmd`` to its end (:func:`start`'s options); past ``timeout`` seconds kill its process group."""
    return start(cmd, own_group=timeout is not None, **options).wait(timeout)
