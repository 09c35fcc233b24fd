"""SPYv4's mAP beside its ANN twin's: which twin, and its evaluation on the same split.

``spyolo eval --weights W --spikes`` ends its energy report with one line,
``SPYv4 X% of the twin's mAP at Y x its energy`` (:class:`~spyolo.stats.report.TwinComparison`): ``Y``
is the energy per image of SPYv4 over that of its ANN twin (YOLOv4-tiny of the same width, counted
the same way; :mod:`spyolo.stats`), ``X`` SPYv4's VOC2007 mAP as a percentage of the twin's, both
evaluated on the same split with the same settings: the twin runs under the ``data`` and ``eval``
sections of SPYv4's evaluation (images, split, input size and resizing, thresholds, number of
images), with its own ``model`` section, on the same device and precision.

The twin (:func:`find_twin`) is the checkpoint given with ``--twin``, else the checkpoint's own
``train.distill_from`` (the teacher it was distilled from) when that file exists and is an ANN twin of
the same classes, width and input. A ``--twin`` that is not one (a SPYv4 checkpoint, other classes,
another width or input) is an error; a ``train.distill_from`` that is not one is only not used, and
the line says why. Without a twin the line gives the energy ratio and how to get the mAP ratio.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from spyolo.checkpoint import load_checkpoint
from spyolo.config import Config, config_from_dict, config_to_dict
from spyolo.errors import CheckpointError, ConfigError
from spyolo.eval.evaluate import CheckpointEvaluation, evaluate_checkpoint
from spyolo.models.darknet import is_darknet_weights
from spyolo.stats.report import TwinComparison

__all__ = ["DISTILL_KEY", "TWIN_OPTION", "TwinChoice", "compare_with_twin", "find_twin", "same_split_overrides"]

log = logging.getLogger(__name__)

TWIN_OPTION = "--twin"
"""The option of ``spyolo eval`` that names the twin's checkpoint."""
DISTILL_KEY = "train.distill_from"
"""The config key whose checkpoint is the twin when ``--twin`` is not given."""


@dataclass(frozen=True)
class TwinChoice:
    """The twin :func:`find_twin` found.

    Attributes:
        path: its checkpoint, ``None`` if there is none.
        source: :data:`TWIN_OPTION` or :data:`DISTILL_KEY` (``None`` without a twin).
        note: without a twin, why ``train.distill_from`` is not one (empty if it is not set).
    """

    path: Path | None
    source: str | None = None
    note: str = ""


def _stored(path: str | Path) -> tuple[Config, list[str]]:
    """The config and class names a checkpoint was saved with."""
    ckpt = load_checkpoint(path)
    try:
        cfg = config_from_dict(ckpt["config"], str(path))
    except ConfigError as exc:
        raise CheckpointError(f"{path}: the stored config is invalid ({exc})") from None
    return cfg, [str(n) for n in ckpt.get("class_names") or []]


def _short(names: list[str]) -> str:
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def _why_not_a_twin(path: str | Path, cfg: Config, class_names: list[str]) -> str | None:
    """Why the checkpoint at ``path`` is not an ANN twin of the model of ``cfg`` and ``class_names``, or ``None``.

    Raises:
        CheckpointError: the file cannot be read as a spyolo checkpoint.
    """
    twin_cfg, twin_names = _stored(path)
    if twin_cfg.model.kind != "ann":
        return (f"a {twin_cfg.model.kind} checkpoint (model.kind={twin_cfg.model.kind}); the twin is a trained ANN "
                f"twin (model.kind=ann)")
    if twin_names != class_names:
        order = "the same classes in another order" if sorted(twin_names) == sorted(class_names) else "other classes"
        return (f"the twin was trained on {order} ({_short(twin_names)}) than the model's ({_short(class_names)}); "
                f"its mAP is comparable only on the same class list")
    if twin_cfg.model.width != cfg.model.width:
        return (f"the twin has model.width={twin_cfg.model.width:g}, the model {cfg.model.width:g}; the energy is "
                f"counted for a twin of the model's width")
    if twin_cfg.model.input != cfg.model.input:
        return f"the twin reads model.input={twin_cfg.model.input}, the model {cfg.model.input}"
    return None


def find_twin(weights: str | Path, twin: str | Path | None = None) -> TwinChoice:
    """The ANN twin to compare the SPYv4 checkpoint ``weights`` with (see the module docstring).

    Args:
        weights: the SPYv4 checkpoint.
        twin: the twin's checkpoint given by the user (``--twin``), or ``None``: the checkpoint's
            ``train.distill_from`` when that is an ANN twin of the same classes, width and input.

    Raises:
        CheckpointError: ``weights`` or ``twin`` cannot be read (the message starts with ``--twin`` for the twin).
        ConfigError: ``twin`` is not an ANN twin of the model (a SPYv4 checkpoint, other classes, width or input).
    """
    cfg, class_names = _stored(weights)
    if twin is not None:
        try:
            problem = _why_not_a_twin(twin, cfg, class_names)
        except CheckpointError as exc:
            raise CheckpointError(f"{TWIN_OPTION} {exc}") from None
        if problem is not None:
            raise ConfigError(f"{TWIN_OPTION} {twin}: {problem}")
        return TwinChoice(Path(twin), TWIN_OPTION)
    source = cfg.train.distill_from
    if not source:
        return TwinChoice(None)
    where = f"{DISTILL_KEY} {source}"
    if not Path(source).is_file():
        return TwinChoice(None, note=f"{where}: not found")
    if is_darknet_weights(source):
        return TwinChoice(None, note=f"{where}: a Darknet weights file, not an ANN twin checkpoint of the classes")
    try:
        problem = _why_not_a_twin(source, cfg, class_names)
    except CheckpointError as exc:
        return TwinChoice(None, note=f"{DISTILL_KEY} {exc}")
    if problem is not None:
        return TwinChoice(None, note=f"{where}: {problem}")
    return TwinChoice(Path(source), DISTILL_KEY)


def _yaml_value(value: object) -> str:
    """``value`` as the YAML text an override reads back to the same value."""
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip().removesuffix("\n...")


def same_split_overrides(cfg: Config) -> list[str]:
    """``section.key=value`` overrides that give another checkpoint's config every ``data`` and ``eval`` key of
    ``cfg``: the same images, split, input size and resizing, thresholds and number of images."""
    values = config_to_dict(cfg)
    return [f"{section}.{key}={_yaml_value(value)}" for section in ("data", "eval")
            for key, value in values[section].items()]


def compare_with_twin(
    evaluation: CheckpointEvaluation,
    twin: TwinChoice,
    *,
    device: str = "auto",
    amp: str = "off",
    progress: bool = True,
) -> TwinComparison:
    """SPYv4's mAP and energy (``evaluation``, run with ``spikes=True``) against the twin's.

    The twin, if there is one, is evaluated on the split of ``evaluation`` with its settings
    (:func:`same_split_overrides`), on ``device`` with ``amp``.

    Raises:
        ValueError: ``evaluation`` has no spike report.
        CheckpointError, ConfigError, DatasetError: from the twin's evaluation.
    """
    if evaluation.spikes is None:
        raise ValueError("compare_with_twin needs an evaluation with the spike report (spikes=True)")
    map_voc07 = float(evaluation.result["map_voc07"])
    energy_ratio = float(evaluation.spikes.energy_ratio)
    if twin.path is None:
        return TwinComparison(map_voc07, energy_ratio, note=twin.note)
    log.info("evaluating the ANN twin %s (%s) on the same split", twin.path, twin.source)
    twin_eval = evaluate_checkpoint(twin.path, same_split_overrides(evaluation.config), device=device, amp=amp,
                                    progress=progress)
    if twin_eval.result["num_images"] != evaluation.result["num_images"]:
        raise CheckpointError(f"{twin.path}: the twin was evaluated on {twin_eval.result['num_images']} images, the "
                              f"model on {evaluation.result['num_images']}")
    return TwinComparison(map_voc07, energy_ratio, float(twin_eval.result["map_voc07"]), str(twin.path), twin.source)
