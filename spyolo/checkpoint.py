"""Checkpoints: written atomically, read with ``weights_only=True``.

A checkpoint is a dict of tensors and plain Python containers:

* ``model``: the model's ``state_dict``; ``config``: the full config as a dict;
  ``class_names``; ``spyolo_version``; ``run``: the run record (git commit, versions,
  device, command line; see :mod:`spyolo.train.run_log`);
* training checkpoints add ``optimizer``, ``scheduler``, ``fptt`` (the traces), ``epoch``,
  ``best``, ``history`` and ``rng`` (RNG states as tensors and lists, so that
  ``torch.load(..., weights_only=True)`` can read them back).

Training (:mod:`spyolo.train`), inference (:mod:`spyolo.inference`) and evaluation
(:mod:`spyolo.eval`) all read checkpoints through this module, which depends only on the
config, the models and the file helpers below them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spyolo.config import Config, config_from_dict
from spyolo.errors import CheckpointError, ConfigError
from spyolo.models import build_model
from spyolo.models.sfptt import is_sfptt_state
from spyolo.utils.io import atomic_torch_save
from spyolo.utils.torchfile import read_torch_file

__all__ = [
    "CheckpointError",
    "LoadedModel",
    "load_checkpoint",
    "load_model",
    "pack_rng",
    "save_checkpoint",
    "unpack_rng",
]


def save_checkpoint(ckpt: dict, path: str | Path) -> Path:
    """Write ``ckpt`` to ``path`` atomically (see :mod:`spyolo.utils.io`)."""
    return atomic_torch_save(ckpt, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a spyolo checkpoint with ``torch.load(..., weights_only=True)``.

    Raises:
        CheckpointError: the file is missing, unreadable, truncated, not a PyTorch file, holds
            more than tensors and plain containers (:func:`spyolo.utils.torchfile.read_torch_file`),
            or lacks ``model`` and ``config``.
    """
    path = Path(path)
    if path.suffix.lower() == ".weights" and path.is_file():
        raise CheckpointError(f"{path}: a Darknet weights file, not a spyolo checkpoint; convert it first "
                              f"(spyolo convert {path} --out {path.with_suffix('.pt').name}), or use --weights "
                              f"yolov4-tiny-coco for the original COCO model")
    ckpt = read_torch_file(path, CheckpointError, "checkpoint", map_location=map_location)
    if isinstance(ckpt, dict) and is_sfptt_state(ckpt.get("state_dict", ckpt)):
        raise CheckpointError(f"{path}: the sFPTT release's SPYv4 state dict, not a spyolo checkpoint; convert it "
                              f"first (spyolo convert {path} --out sfptt_voc.pt), or use --weights sfptt-voc")
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{path}: not a spyolo checkpoint (expected keys 'model' and 'config')")
    return ckpt


class LoadedModel:
    """A model rebuilt from a checkpoint, with the config and class names it was saved with."""

    def __init__(self, model: nn.Module, config: Config, class_names: list[str], checkpoint: dict) -> None:
        self.model = model
        self.config = config
        self.class_names = class_names
        self.checkpoint = checkpoint


def load_model(path: str | Path, overrides: list[str] | None = None) -> LoadedModel:
    """Rebuild the model a checkpoint describes and load its weights (on the CPU).

    ``overrides`` (``section.key=value``) change the stored config before the model is
    built (e.g. ``data.root=...``; a change of the model's shape fails to load, with a
    clear message).

    Raises:
        CheckpointError: unreadable file, no class names, or weights that do not fit.
        ConfigError: the stored config or an override is invalid.
    """
    from spyolo.config import apply_overrides

    ckpt = load_checkpoint(path, map_location="cpu")
    try:
        cfg = config_from_dict(ckpt["config"], str(path))
    except ConfigError as e:
        raise CheckpointError(f"{path}: the stored config is invalid ({e})") from None
    apply_overrides(cfg, overrides)
    names = [str(n) for n in (ckpt.get("class_names") or [])]
    if not names:
        raise CheckpointError(f"{path}: the checkpoint has no 'class_names'")
    model = build_model(cfg.model, num_classes=len(names))
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in ckpt["model"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(
            f"{path}: the weights do not fit the model its config describes ({' '.join(first[:3])})"
        ) from None
    return LoadedModel(model, cfg, names, ckpt)


def pack_rng(state: dict) -> dict:
    """RNG states (:func:`spyolo.utils.runtime.rng_state`) in a weights_only-loadable form."""
    py_version, py_state, py_gauss = state["python"]
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    out: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [
            np_name, torch.from_numpy(np.asarray(np_keys, dtype=np.int64)), int(np_pos), int(np_has_gauss),
            float(np_gauss),
        ],
        "torch": state["torch"],
    }
    if "cuda" in state:
        out["cuda"] = list(state["cuda"])
    return out


def unpack_rng(packed: dict) -> dict:
    """Inverse of :func:`pack_rng`."""
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
