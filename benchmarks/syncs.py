"""Detect host-device synchronisation in a region of CUDA work.

``torch.cuda.set_sync_debug_mode("error")`` makes every synchronising CUDA call (a
``.item()``, a device-to-host copy, a ``nonzero``, an explicit synchronise...) raise a
``RuntimeError`` inside the region. The training time loop must run without any.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["host_sync_error", "synchronize"]


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU. Used around timed regions only."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def host_sync_error(device: torch.device) -> Iterator[None]:
    """Within the block, a synchronising CUDA call raises ``RuntimeError`` (no-op off CUDA).

    The previous sync debug mode is restored on exit, also when the block raises.
    """
    if device.type != "cuda":
        yield
        return
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)
