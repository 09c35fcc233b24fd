"""Checkpoints: written atomically, read with ``weights_only=True``.

A checkpoint is a dict of tensors and plain Python containers. RNG states are stored as
tensors/lists so that ``torch.load(..., weights_only=True)`` can read them back.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointError", "pack_rng", "unpack_rng"]


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or not a spyolo checkpoint."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` through a temp file in the same folder (fsync, rename).

    The file gets the permissions a plain ``open(path, "wb")`` would give (``0o666`` less the
    umask), not the private ``0o600`` of the temp file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(ckpt: dict, path: str | Path) -> None:
    """Write ``ckpt`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    atomic_torch_save(ckpt, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{path}: not a spyolo checkpoint (expected keys 'model' and 'config')")
    return ckpt


def pack_rng(state: dict) -> dict:
    """RNG states in a weights_only-loadable form."""
    py_version, py_state, py_gauss = state["python"]
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    out = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_name, torch.from_numpy(np.asarray(np_keys, dtype=np.int64)), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": state["torch"],
    }
    if "cuda" in state:
        out["cuda"] = list(state["cuda"])
    return out


def unpack_rng(packed: dict) -> dict:
    py_version, py_state, py_gauss = packed["python"]
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = packed["numpy"]
    out = {
        "python": (py_version, tuple(py_state), py_gauss),
        "numpy": (np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss),
        "torch": packed["torch"],
    }
    if "cuda" in packed:
        out["cuda"] = packed["cuda"]
    return out
