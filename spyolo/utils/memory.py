"""Memory readings: the current and peak resident set size (RSS) of this process, and the
peak memory of a training device (CUDA: allocated bytes; CPU: peak RSS)."""

from __future__ import annotations

import os
import sys

import torch

__all__ = ["current_rss_bytes", "lifetime_peak_rss_bytes", "peak_memory_bytes"]


def current_rss_bytes() -> int | None:
    """The current RSS from ``/proc/self/statm`` (``None`` where there is no ``/proc``)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def lifetime_peak_rss_bytes() -> int:
    """``ru_maxrss``: the peak RSS over the whole life of this process, in bytes."""
    import resource

    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KiB


def peak_memory_bytes(device: torch.device) -> int:
    """CUDA: ``torch.cuda.max_memory_allocated`` of ``device``; elsewhere this process's peak RSS."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return lifetime_peak_rss_bytes()
