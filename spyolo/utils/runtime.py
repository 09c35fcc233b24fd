"""Device, precision, memory layout and seeding decisions, made once from the config.

:func:`resolve_device` is the one place that turns a device string (``auto``, ``cpu``,
``cuda``, ``cuda:N``) into a :class:`torch.device`; :class:`Runtime` adds the autocast
dtype and the memory layout, and :meth:`Runtime.autocast` is the one autocast context.
"""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from spyolo.errors import ConfigError
from spyolo.utils.choices import AMP_MODES, CHANNELS_LAST_MODES

__all__ = [
    "Runtime", "is_channels_last", "resolve_device", "resolve_runtime", "seed_everything", "rng_state", "set_rng_state"
]


def is_channels_last(t: torch.Tensor) -> bool:
    """Whether the 4-d tensor ``t`` is stored channels-last (and not also plain contiguous).

    A tensor that is dense in both layouts (e.g. one with a single channel or 1x1 spatial
    size) counts as contiguous, the default layout.
    """
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


@dataclass(frozen=True)
class Runtime:
    """Where and how the model runs.

    Attributes:
        device: the torch device.
        amp_dtype: autocast dtype (``torch.bfloat16``), or ``None`` for full float32.
        channels_last: whether images and weights use the channels-last memory layout.
    """

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context for this runtime (autocast switched off when ``amp_dtype`` is ``None``)."""
        if self.amp_dtype is None:
            return torch.autocast(device_type=self.device.type, enabled=False)
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def to_input(self, images: torch.Tensor) -> torch.Tensor:
        """Move a batch of images to the device, in this runtime's memory layout."""
        images = images.to(self.device, non_blocking=True)
        if self.channels_last and images.dim() == 5:
            # a sequence (B, T, C, H, W): channels last within each frame, so that frame t is a
            # channels-last (B, C, H, W) view
            return images.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or ``None``): CUDA when present (the rank's GPU under torchrun), else the CPU.

    Raises:
        ConfigError: for an unknown device name, or a CUDA device on a machine without CUDA
            (the message says what this machine has).
    """
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(
            f"unknown device {str(device)!r}; use auto, cpu, cuda or cuda:N"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {str(device)!r} was asked for, but CUDA is not available on this machine "
                f"(torch {torch.__version__}); use device=cpu or auto"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type != "cpu":
        raise ConfigError(f"device {str(device)!r} is not supported; use auto, cpu, cuda or cuda:N")
    return dev


def resolve_runtime(device: str = "auto", amp: str = "auto", channels_last: str = "auto") -> Runtime:
    """The runtime for config values ``train.device``, ``train.amp``, ``train.channels_last``.

    ``amp`` auto -> bf16 autocast on CUDA, float32 on CPU. ``channels_last`` auto -> on CUDA.
    """
    if amp not in AMP_MODES or channels_last not in CHANNELS_LAST_MODES:
        raise ValueError(f"amp must be one of {', '.join(AMP_MODES)} and channels_last one of "
                         f"{', '.join(CHANNELS_LAST_MODES)}; got {amp!r}, {channels_last!r}")
    dev = resolve_device(device)
    if amp == "auto":
        amp_dtype = torch.bfloat16 if dev.type == "cuda" else None
    elif amp == "bf16":
        amp_dtype = torch.bfloat16
    else:
        amp_dtype = None
    cl = (dev.type == "cuda") if channels_last == "auto" else channels_last == "on"
    return Runtime(dev, amp_dtype, cl)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python's ``random``, numpy's global generator and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def rng_state() -> dict:
    """The global RNG states (Python, numpy, torch, and CUDA when present)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore states from :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
