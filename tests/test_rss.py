"""RSSWindow: the peak RSS over a window of work, not over the process's life."""

from __future__ import annotations

import time

import pytest

from benchmarks import rss
from benchmarks.rss import RSSWindow
from spyolo.utils.memory import current_rss_bytes

MiB = 2**20


def _touch(n_bytes: int) -> bytearray:
    buf = bytearray(n_bytes)
    buf[::4096] = b"\x01" * len(buf[::4096])  # make every page resident
    return buf


@pytest.mark.skipif(current_rss_bytes() is None, reason="needs /proc/self/statm (Linux)")
@pytest.mark.parametrize("force_sampling", [False, True])
def test_window_sees_peak_inside_and_not_before(monkeypatch, force_sampling):
    if force_sampling:
        monkeypatch.setattr(rss, "_reset_hwm", lambda: False)
    before = _touch(300 * MiB)  # a transient peak before the window
    del before
    w = RSSWindow(interval_s=0.0005).start()
    inside = _touch(120 * MiB)
    time.sleep(0.05)  # a sampler (where the kernel refuses the VmHWM reset) sees the allocation
    del inside
    peak = w.stop()
    # Linux >= 4.0 resets VmHWM; a kernel that refuses falls back to sampling.
    assert peak.method == "sampled" if force_sampling else peak.method in ("vmhwm_reset", "sampled")
    assert peak.growth_bytes >= 100 * MiB, peak
    # The 300 MiB transient before start() is not in the window's peak.
    assert peak.peak_bytes - peak.base_bytes < 250 * MiB, peak


def test_window_misuse_raises():
    w = RSSWindow()
    with pytest.raises(RuntimeError, match="before start"):
        w.stop()
    w.start()
    with pytest.raises(RuntimeError, match="twice"):
        w.start()
    w.stop()
