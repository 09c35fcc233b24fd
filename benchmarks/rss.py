"""Peak resident memory (RSS) of this process over a window of work, on the CPU.

``getrusage``'s ``ru_maxrss`` is the peak over the whole life of the process, so a transient
peak while importing libraries or building the model hides the peak of the work one wants to
measure. :class:`RSSWindow` measures the peak between :meth:`RSSWindow.start` and
:meth:`RSSWindow.stop` instead:

* ``"vmhwm_reset"`` (Linux >= 4.0): writing ``5`` to ``/proc/self/clear_refs`` resets the
  kernel's high-water mark ``VmHWM`` to the current RSS; ``VmHWM`` read at the end is the exact
  peak over the window.
* ``"sampled"``: where that reset is refused but ``/proc/self/statm`` is readable, a
  background thread samples the current RSS every ``interval_s`` seconds (a peak shorter
  than the interval can be missed; the measurement says so in its ``method``).
* ``"process_lifetime"``: elsewhere (macOS, Windows), ``ru_maxrss`` as before: the peak over
  the process's life, comparable only between fresh processes.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from spyolo.utils.memory import current_rss_bytes, lifetime_peak_rss_bytes

_HWM = re.compile(r"^VmHWM:\s+(\d+)\s+kB", re.MULTILINE)
_RSS = re.compile(r"^VmRSS:\s+(\d+)\s+kB", re.MULTILINE)


@dataclass(frozen=True)
class RSSPeak:
    """``peak_bytes``: peak RSS over the window; ``base_bytes``: RSS when it started."""

    peak_bytes: int
    base_bytes: int
    method: str

    @property
    def growth_bytes(self) -> int:
        return max(0, self.peak_bytes - self.base_bytes)


def _status_kib(pattern: re.Pattern) -> int | None:
    try:
        with open("/proc/self/status") as f:
            m = pattern.search(f.read())
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _reset_hwm() -> bool:
    """Reset ``VmHWM`` to the current RSS; ``False`` where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    hwm, rss = _status_kib(_HWM), _status_kib(_RSS)
    # The reset takes effect only on kernels that know value 5: check that it did.
    return hwm is not None and rss is not None and hwm <= rss + 4096


class RSSWindow:
    """Measure the peak RSS over a window: ``w = RSSWindow(); w.start(); ...; peak = w.stop()``."""

    def __init__(self, interval_s: float = 0.001) -> None:
        self.interval_s = interval_s
        self._method = ""
        self._base = 0
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RSSWindow:
        if self._method:
            raise RuntimeError("RSSWindow.start() called twice; use a new window")
        base = current_rss_bytes()
        if base is not None and _reset_hwm():
            self._method, self._base = "vmhwm_reset", base
        elif base is not None:
            self._method, self._base, self._peak = "sampled", base, base
            self._thread = threading.Thread(target=self._sample, name="rss-window", daemon=True)
            self._thread.start()
        else:
            self._method, self._base = "process_lifetime", lifetime_peak_rss_bytes()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            rss = current_rss_bytes()
            if rss is not None and rss > self._peak:
                self._peak = rss

    def stop(self) -> RSSPeak:
        if not self._method:
            raise RuntimeError("RSSWindow.stop() before start()")
        if self._method == "vmhwm_reset":
            hwm = _status_kib(_HWM)
            peak = self._base if hwm is None else max(self._base, hwm * 1024)
        elif self._method == "sampled":
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
            rss = current_rss_bytes()
            peak = max(self._peak, rss or 0)
        else:
            peak = lifetime_peak_rss_bytes()
        return RSSPeak(peak_bytes=int(peak), base_bytes=int(self._base), method=self._method)
