"""FPTT's peak memory does not grow with T; BPTT's does (CPU, a fresh process per run).

Each configuration runs in its own subprocess and reports the peak RSS over one timed training
iteration after one warm-up iteration (real SPYv4, real YOLO loss, real FPTT update). The peak is
taken over the timed iteration alone (``RSSWindow``), not over the process's life: a peak outside
the work (1.37 GiB in CI, the same byte for byte in three processes) once hid the T = 1 peaks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # subprocesses; `pytest -m "not slow"` skips them

ROOT = Path(__file__).resolve().parents[1]


def _peak(method: str, timesteps: int) -> int:
    cmd = [
        sys.executable, "-m", "benchmarks.probe", "--method", method, "--timesteps", str(timesteps),
        "--batch", "8", "--img-size", "128", "--width", "0.5", "--warmup", "1", "--iters", "1",
        "--device", "cpu", "--threads", "2",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["peak_kind"] == "cpu_peak_rss"
    return int(out["peak_bytes"])


@pytest.fixture(scope="module")
def peaks() -> dict:
    return {(m, t): _peak(m, t) for m in ("fptt", "bptt") for t in (1, 8)}


def test_fptt_memory_flat_in_T(peaks):
    assert peaks[("fptt", 8)] <= 1.10 * peaks[("fptt", 1)], peaks


def test_bptt_memory_grows_with_T(peaks):
    # BPTT keeps all T steps' activations: at batch 8, 128 px, width 0.5 the 7 extra steps hold
    # about 650 MiB (measured on the 2-core CI kind); asserted in bytes, not as a ratio to a
    # baseline RSS that depends on the machine's libraries.
    assert peaks[("bptt", 8)] - peaks[("bptt", 1)] >= 256 * 2**20, peaks
    assert peaks[("bptt", 8)] - peaks[("bptt", 1)] > 4 * abs(peaks[("fptt", 8)] - peaks[("fptt", 1)]), peaks
