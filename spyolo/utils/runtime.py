"""Device, precision, memory layout and seeding decisions, made once from the config."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Runtime", "resolve_runtime", "seed_everything", "rng_state", "set_rng_state"]


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None  # None: full float32
    channels_last: bool

    def autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(device_type=self.device.type, enabled=False)
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)


def resolve_runtime(device: str = "auto", amp: str = "auto", channels_last: str = "auto") -> Runtime:
    """``device`` auto -> CUDA when present (the rank's GPU under torchrun), else CPU.

    ``amp`` auto -> bf16 autocast on CUDA, float32 on CPU. ``channels_last`` auto -> on CUDA.
    """
    if device == "auto":
        if torch.cuda.is_available():
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        else:
            dev = torch.device("cpu")
    else:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"train.device={device} but CUDA is not available on this machine")
    if amp == "auto":
        amp_dtype = torch.bfloat16 if dev.type == "cuda" else None
    elif amp == "bf16":
        amp_dtype = torch.bfloat16
    else:
        amp_dtype = None
    cl = (dev.type == "cuda") if channels_last == "auto" else channels_last == "on"
    return Runtime(dev, amp_dtype, cl)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
