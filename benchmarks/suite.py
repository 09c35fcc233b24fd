"""Run a list of probe configurations: a fresh process each on CPU, one process on CUDA.

On CPU every configuration runs in its own subprocess (``python -m benchmarks.probe``), so
that the reported peak RSS belongs to that configuration alone. On CUDA they run in this
process, where ``torch.cuda.max_memory_allocated`` is reset per measurement; consecutive
configurations that differ only in ``T`` (or warm-up and repeat counts) share one
:class:`~benchmarks.probe.ProbeSession`, so a compiled model is compiled once per input
shape, not once per ``T``.

A failing configuration (an out-of-memory error, a compiler error, a timeout) becomes a row
with an ``"error"`` field; the others still run.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, fields, replace

import torch

from benchmarks.probe import ProbeConfig, ProbeSession
from benchmarks.runner import run

__all__ = ["expand_grid", "run_configs", "session_key"]

_PER_MEASUREMENT = ("timesteps", "warmup", "iters")


def expand_grid(
    base: ProbeConfig,
    methods: Iterable[str],
    timesteps: Iterable[int],
    batches: Iterable[int],
    img_sizes: Iterable[int],
) -> list[ProbeConfig]:
    """All combinations, ordered method > batch > size > T (the ANN twin once, with T = 1)."""
    configs = []
    steps = list(timesteps)
    for method in methods:
        for batch in batches:
            for size in img_sizes:
                for t in [1] if method == "ann" else steps:
                    cfg = replace(base, method=method, timesteps=t, batch=batch, img_size=size)
                    cfg.validate()
                    configs.append(cfg)
    return configs


def session_key(cfg: ProbeConfig) -> tuple:
    """Configurations with equal keys can share one :class:`ProbeSession` (an event batch is made for one T)."""
    per = _PER_MEASUREMENT if cfg.input == "image" else tuple(n for n in _PER_MEASUREMENT if n != "timesteps")
    return tuple(getattr(cfg, f.name) for f in fields(cfg) if f.name not in per)


def _error_row(cfg: ProbeConfig, message: str) -> dict:
    return {**asdict(cfg), "error": message}


def _run_subprocess(cfg: ProbeConfig, timeout_s: float | None) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.probe", "--config-json", json.dumps(asdict(cfg))]
    proc = run(cmd, timeout=timeout_s, capture=True)
    if proc.timed_out:
        return _error_row(cfg, f"timed out after {timeout_s:.0f} s")
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        return _error_row(cfg, tail[0][:300])
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return _error_row(cfg, f"no JSON result in the probe's output: {proc.stdout[-300:]!r}")


def release_session(session: ProbeSession | None) -> None:
    """Free a session's memory (and compiled code) before building the next one."""
    del session
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    torch._dynamo.reset()


def run_configs(
    configs: list[ProbeConfig],
    fresh_process: bool,
    on_row: Callable[[dict], None] | None = None,
    timeout_s: float | None = None,
    deadline: float | None = None,
) -> list[dict]:
    """Measure every configuration; return the result rows in order.

    Args:
        configs: What to measure.
        fresh_process: One subprocess per configuration (CPU peak RSS) instead of this process.
        on_row: Called with each row as soon as it exists (e.g. to write partial reports).
        timeout_s: Per-configuration limit (subprocess mode only).
        deadline: ``time.monotonic()`` after which the remaining configurations are skipped.
    """
    return run_sessions(
        configs,
        lambda session, cfg: session.measure(cfg.timesteps, cfg.warmup, cfg.iters),
        _error_row,
        on_row=on_row,
        deadline=deadline,
        outside=(lambda cfg: _run_subprocess(cfg, timeout_s)) if fresh_process else None,
    )


def run_sessions(
    configs: Sequence[ProbeConfig],
    measure: Callable[[ProbeSession, ProbeConfig], dict],
    error_row: Callable[[ProbeConfig, str], dict],
    on_row: Callable[[dict], None] | None = None,
    deadline: float | None = None,
    outside: Callable[[ProbeConfig], dict] | None = None,
) -> list[dict]:
    """Run ``measure`` on every configuration, reusing one :class:`ProbeSession` while
    consecutive configurations share a :func:`session_key`; return the rows in order.

    A failure becomes ``error_row(cfg, message)`` (and a fresh session for the next one);
    configurations after ``deadline`` (``time.monotonic()``) become "skipped" rows; with
    ``outside`` every configuration is handed to it instead (e.g. a subprocess).
    """
    rows: list[dict] = []
    session: ProbeSession | None = None
    key = None
    for cfg in configs:
        if deadline is not None and time.monotonic() > deadline:
            row = error_row(cfg, "skipped: time budget spent")
        elif outside is not None:
            row = outside(cfg)
        else:
            try:
                if session is None or session_key(cfg) != key:
                    release_session(session)
                    session = None
                    key = session_key(cfg)
                    session = ProbeSession(cfg)
                row = measure(session, cfg)
            except Exception as e:  # noqa: BLE001 - any failure becomes a row, the rest still run
                message = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
                row = error_row(cfg, f"{type(e).__name__}: {message}")
                release_session(session)
                session, key = None, None
        rows.append(row)
        if on_row is not None:
            on_row(row)
    release_session(session)
    return rows
