"""Other projects' weight files as spyolo checkpoints: what ``spyolo convert`` writes.

:func:`convert_weights` looks at a file and converts what it recognises:

* a Darknet YOLOv4-tiny ``.weights`` (with its ``.cfg`` and ``.names``): the ANN twin
  (:func:`convert_darknet`; :mod:`spyolo.models.darknet` reads and checks it);
* the authors' released SPYv4 (byin-cwi/sFPTT), a ``torch.save``'d state dict in the release's
  naming, also with DataParallel's ``module.`` prefix: SPYv4 with the release's settings
  (:func:`convert_sfptt`; :mod:`spyolo.models.sfptt` maps its names).

Anything else is a :class:`~spyolo.errors.TransferError` that says what the file is
(:func:`describe_torch_file`). The checkpoint holds the model's state dict, the config that rebuilds
it, the class names and a record of the conversion, and is written atomically.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from spyolo.checkpoint import save_checkpoint
from spyolo.config import Config, config_from_dict, config_to_dict, validate
from spyolo.errors import ConfigError, TransferError
from spyolo.models import build_model
from spyolo.models.darknet import companion_names, darknet_model, read_darknet_names
from spyolo.models.sfptt import is_sfptt_state, read_sfptt_state
from spyolo.utils.torchfile import read_torch_file

__all__ = ["RELEASE_SETTINGS", "convert_darknet", "convert_sfptt", "convert_weights", "describe_torch_file",
           "is_sfptt_file", "is_torch_file", "release_config"]

log = logging.getLogger(__name__)

RELEASE_SETTINGS: Mapping[str, Mapping[str, Any]] = {
    "data": {"root": "data/voc/VOCdevkit", "train_sets": ["VOC2007:trainval", "VOC2012:trainval"],
             "test_sets": ["VOC2007:test"], "classes": None, "img_size": 416, "keep_difficult": False,
             "eval_resize": "stretch", "mosaic": 0.0, "scale_min": 0.25, "scale_max": 2.0, "aspect_jitter": 0.3,
             "hflip": 0.5, "workers": 8},
    "model": {"kind": "spyv4", "width": 1.0, "timesteps": 8, "threshold": 1.0, "surrogate_sigma": 0.3,
              "surrogate_height": 0.15, "surrogate_gamma": 0.5, "input_dropout": 0.1, "state_init": "zero",
              "init_from": None},
    "train": {"name": "spyv4_voc", "method": "fptt", "epochs": 100, "batch_size": 16, "optimizer": "adam",
              "lr": 1.0e-3, "weight_decay": 0.0, "scheduler": "cosine", "warmup_epochs": 1.0, "fptt_alpha": 0.5,
              "fptt_alpha_reg": 0.1, "fptt_beta": 0.5, "step_weighting": "uniform", "reset_to_average": "epoch",
              "clip_norm": 1.0, "eval_every": 5},
    "eval": {"conf_thresh": 0.001, "nms_iou": 0.5, "batch_size": 32},
}
"""The paper's setup as the release runs it: ``configs/spyv4_voc.yaml`` (a test keeps the two equal).
The release's network, 416 px stretched input (bicubic), T = 8, its neuron constants, anchors,
masks and last-step read-out (spyolo's defaults); a zero initial membrane
(``model.state_init=uniform`` is the release's draw)."""

_ZIP_MAGIC = b"PK\x03\x04"


def release_config() -> Config:
    """The config of a converted sFPTT release (:data:`RELEASE_SETTINGS`)."""
    return config_from_dict({k: dict(v) for k, v in RELEASE_SETTINGS.items()}, "the release's settings")


def is_torch_file(path: str | Path) -> bool:
    """Whether ``path`` starts as a PyTorch file does (a zip archive, or a pickle of the legacy format)."""
    with Path(path).open("rb") as f:
        head = f.read(4)
    return head == _ZIP_MAGIC or head[:1] == b"\x80"


def _state_of(raw: Any) -> Any:
    """The state dict inside a loaded file: ``raw`` itself, or its ``state_dict`` entry."""
    if isinstance(raw, Mapping) and isinstance(raw.get("state_dict"), Mapping):
        return raw["state_dict"]
    return raw


def is_sfptt_file(path: str | Path) -> bool:
    """Whether ``path`` is a readable PyTorch file in the sFPTT release's layout."""
    path = Path(path)
    if not path.is_file() or not is_torch_file(path):
        return False
    try:
        state = _state_of(read_torch_file(path, TransferError, "weights file"))
    except TransferError:
        return False
    return isinstance(state, Mapping) and is_sfptt_state(state)


def describe_torch_file(raw: Any) -> str:
    """What a PyTorch file holds, in a few words: ``"a PyTorch checkpoint with 190 tensors, first keys ..."``."""
    if not isinstance(raw, Mapping):
        return f"a PyTorch file holding a {type(raw).__name__}"
    if "model" in raw and "config" in raw and isinstance(raw["model"], Mapping):
        config, names = raw.get("config"), raw.get("class_names") or []
        model = config.get("model") if isinstance(config, Mapping) else None
        kind = model.get("kind", "?") if isinstance(model, Mapping) else "?"
        return f"already a spyolo checkpoint (model.kind={kind}, {len(names)} classes)"
    tensors = [str(k) for k, v in raw.items() if isinstance(v, torch.Tensor)]
    if tensors:
        shared = any(k.removeprefix("module.").startswith("backbone.") for k in tensors)
        return (f"a PyTorch checkpoint with {len(tensors)} tensors, first keys {', '.join(tensors[:3])}"
                + (" (a YOLOv4-tiny state dict in the widely shared naming: use it as model.init_from)"
                   if shared else ""))
    keys = ", ".join(str(k) for k in list(raw)[:3])
    return f"a PyTorch file holding a dict of {len(raw)} entries and no tensors (first keys {keys})"


def _save(model: torch.nn.Module, config: Config, class_names: list[str], out: str | Path,
          record: Mapping[str, Any] | None, run: dict[str, Any]) -> dict:
    """Write the checkpoint of a converted ``model`` to ``out`` (atomically) and return it."""
    import spyolo

    ckpt = {
        "model": model.state_dict(),
        "config": config_to_dict(config),
        "class_names": list(class_names),
        "spyolo_version": spyolo.__version__,
        "run": {**run, "command": " ".join(sys.argv), **(record or {})},
    }
    save_checkpoint(ckpt, out)
    return ckpt


def _class_names(names: str | Path | None, count: int, default: Sequence[str] | None, what: str) -> list[str]:
    if names is not None:
        return read_darknet_names(names, count)
    if default is not None and len(default) == count:
        return list(default)
    log.warning("%s: no class names given (--names): the classes are called class0..class%d", what, count - 1)
    return [f"class{i}" for i in range(count)]


def convert_sfptt(state: Mapping[str, Any], where: str, out: str | Path,
                  names: str | Path | None = None, record: Mapping[str, Any] | None = None) -> dict:
    """Write the spyolo checkpoint of the release's SPYv4 state dict ``state`` (read from ``where``).

    The model is SPYv4 at the width and class count the tensors' shapes give, with
    :func:`release_config`'s settings; the classes are ``names`` (one per line), by default the 20 VOC
    classes in the release's order. Every tensor of the model must come from the file (a strict
    load); the release's two unused scalars are recorded in ``run.unused``, and ``record`` is added to
    ``run``.

    Raises:
        TransferError: the two copies of a tensor differ, the file has keys the layout does not know,
            or its tensors do not fill the model (names the keys and shapes).
    """
    from spyolo.data.voc import VOC_CLASSES

    release = read_sfptt_state(state, where)
    if release.unknown:
        raise TransferError(f"{where}: the sFPTT release's layout, but {len(release.unknown)} keys it does not have "
                            f"({', '.join(list(release.unknown)[:3])}): another network")
    tensors = release.tensors
    try:
        conv1, head = tensors["conv1.conv.weight"], tensors["head1.bias"]
    except KeyError as exc:
        raise TransferError(f"{where}: the sFPTT release's layout without {exc.args[0]}") from None
    width = conv1.shape[0] / 32
    per_slot, rest = divmod(head.shape[0], 3)
    if rest or per_slot < 6:
        raise TransferError(f"{where}: head conv_P5_yolo_1 has {head.shape[0]} outputs, not 3 anchor slots of "
                            f"5 + classes")
    config = release_config()
    config.model.width = width
    class_names = _class_names(names, per_slot - 5, VOC_CLASSES, where)
    config.train.name = Path(out).stem
    validate(config, where)
    model = build_model(config.model, num_classes=len(class_names))
    state_dict = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).strip().splitlines()[:3])
        raise TransferError(f"{where}: its tensors do not fill SPYv4 at width {width:g} with {len(class_names)} "
                            f"classes ({first})") from None
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise TransferError(f"{where}: {bad[0]} holds NaN or infinite values")
    return _save(model, config, class_names, out, record, {
        "converted_from": where,
        "source_layout": "sFPTT release (byin-cwi/sFPTT, fptt/yolo_demo_show/nets/snn_yolo_v4_less.py)",
        "mapped": len(tensors),
        "checked_copies": release.checked_copies,
        "unused": sorted(release.unused),
    })


def convert_darknet(weights: str | Path, out: str | Path, cfg: str | Path | None = None,
                    names: str | Path | None = None, record: Mapping[str, Any] | None = None) -> dict:
    """Write the spyolo checkpoint of a Darknet YOLOv4-tiny to ``out``; return the checkpoint dict.

    ``cfg`` and ``names`` default to the files beside ``weights`` with its stem; ``record`` is added to
    the checkpoint's ``run``.
    """
    model, dark = darknet_model(weights, cfg=cfg)
    names_path = Path(names) if names is not None else companion_names(weights)
    if names_path is not None:
        class_names = read_darknet_names(names_path, dark.num_classes)
    else:
        class_names = [f"class{i}" for i in range(dark.num_classes)]
        log.warning("%s: no class names given (--names) and none beside it: the classes are called class0..class%d",
                    weights, dark.num_classes - 1)
    config = Config()
    config.model.kind = "ann"
    config.model.width = dark.width
    config.model.anchors = [list(a) for a in model.anchors.tolist()]
    config.model.masks = [list(m) for m in model.masks]
    config.model.anchor_ref_size = model.anchor_ref_size
    config.model.scale_xy = model.scale_xy
    config.model.timesteps = 1
    config.data.eval_interpolation = "linear"  # Darknet's (and OpenCV's) bilinear resize
    if dark.spec is not None:
        height, width = dark.spec.input_size
        if height != width:
            raise ConfigError(f"{dark.spec.path}: [net] is {width}x{height}; spyolo runs square inputs "
                              f"(data.img_size), convert a cfg with width = height")
        config.data.img_size = height
    config.train.name = Path(out).stem
    validate(config, str(weights))
    if dark.spec is None:
        log.warning("%s: no cfg given (--cfg) and none beside it: YOLOv4-tiny's default anchors, masks, 416 px "
                    "input and scale_x_y 1.05 are assumed", weights)
    return _save(model, config, class_names, out, record, {
        "converted_from": str(weights),
        "darknet_cfg": dark.spec.path if dark.spec else None,
        "darknet_names": str(names_path) if names_path else None,
        "darknet_version": list(dark.version),
        "darknet_seen": dark.seen,
    })


def convert_weights(path: str | Path, out: str | Path, cfg: str | Path | None = None,
                    names: str | Path | None = None, record: Mapping[str, Any] | None = None) -> dict:
    """Convert the weights file ``path`` into a spyolo checkpoint at ``out`` (see the module doc);
    ``record`` is added to the checkpoint's ``run``.

    Raises:
        TransferError: a file spyolo does not convert (the message says what it holds), or one of
            the readers' problems.
    """
    path = Path(path)
    if not path.is_file():
        raise TransferError(f"{path}: weights file not found")
    if path.suffix.lower() == ".weights" or not is_torch_file(path):
        return convert_darknet(path, out, cfg=cfg, names=names, record=record)
    raw = read_torch_file(path, TransferError, "weights file")
    state = _state_of(raw)
    if isinstance(state, Mapping) and is_sfptt_state(state):
        if cfg is not None:
            raise ConfigError(f"--cfg {cfg}: a Darknet cfg, but {path} is the sFPTT release's SPYv4 (no cfg)")
        return convert_sfptt(state, str(path), out, names=names, record=record)
    raise TransferError(f"{path}: {describe_torch_file(raw)}; spyolo converts Darknet YOLOv4-tiny .weights files "
                        f"and the sFPTT release's SPYv4 state dict")
