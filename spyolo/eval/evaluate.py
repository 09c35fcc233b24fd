"""Evaluate a trained checkpoint on a dataset split: the library function behind ``spyolo eval``.

    from spyolo import evaluate_checkpoint

    ev = evaluate_checkpoint("runs/synthetic/weights/best.pt", ["data.root=/data/VOCdevkit"],
                             split="test", coco=True, spikes=True, per_timestep=True)
    ev.result["map_voc07"], ev.result["per_timestep"], ev.spikes.format_table()

The model is rebuilt from the checkpoint's config (changed by ``overrides``, ``section.key=value``),
run on the config's test split with T timesteps, and scored with the exact VOC evaluator
(:func:`spyolo.eval.loop.evaluate_model`). Options add COCO mAP, mAP at every timestep, the
per-layer spike statistics (:mod:`spyolo.stats`) and a BatchNorm re-estimation diagnostic.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from spyolo.checkpoint import load_model
from spyolo.config import Config, apply_overrides
from spyolo.data import build_dataloader
from spyolo.datasets.build import build_dataset
from spyolo.datasets.kinds import reads_events, with_split
from spyolo.datasets.synthetic import ensure_synthetic
from spyolo.errors import ConfigError
from spyolo.eval.classes import class_matching, describe_matching
from spyolo.eval.loop import EvalSettings, evaluate_model
from spyolo.hub import resolve_weights
from spyolo.models import head_spec_for
from spyolo.utils.classnames import ClassMatching
from spyolo.utils.runtime import resolve_runtime

__all__ = ["CheckpointEvaluation", "evaluate_checkpoint"]

log = logging.getLogger(__name__)


@dataclass
class CheckpointEvaluation:
    """What :func:`evaluate_checkpoint` measured.

    Attributes:
        result: :meth:`~spyolo.eval.voc.VOCEvaluator.compute`'s dict for the last timestep, with
            ``num_images`` and, when asked, ``coco`` and ``per_timestep``.
        spikes: the per-layer spike report (:class:`spyolo.stats.SpikeReport`), when asked.
        config: the config the evaluation ran with (the checkpoint's, with the overrides).
        weights: the checkpoint file.
        timesteps: timesteps run per image (1 for the ANN twin).
        device: the device it ran on.
        classes: which model class was scored as which dataset class (identical when the lists are
            the same; :mod:`spyolo.eval.classes`).
    """

    result: dict[str, Any]
    spikes: Any
    config: Config
    weights: Path
    timesteps: int
    device: str = "cpu"
    classes: ClassMatching | None = None

    def describe(self) -> str:
        """One line: the model, timesteps, input, split, thresholds and device of the evaluation."""
        cfg = self.config
        fit = (f"events: {cfg.data.event_window_ms:g} ms in {cfg.model.timesteps} bins, {cfg.data.event_resize}"
               if reads_events(cfg) else cfg.data.eval_resize)
        return (
            f"model: {cfg.model.kind} width {cfg.model.width:g}, T={self.timesteps}, input {cfg.data.img_size}px "
            f"({fit}); split {', '.join(cfg.data.test_sets)} under {cfg.data.root}; "
            f"conf {cfg.eval.conf_thresh:g}, NMS {cfg.eval.nms_iou:g}; device {self.device}"
        )


def _recalibrated(model, cfg: Config, n_batches: int, per_timestep: bool, device):
    """``model`` wrapped to run with BN statistics re-estimated over ``n_batches`` training batches."""
    from spyolo.eval.bn_recalibration import TimestepBNStats, estimate_bn_stats

    train_set = build_dataset(cfg, train=True)
    loader = build_dataloader(train_set, cfg.train.batch_size, shuffle=True, workers=cfg.data.workers,
                              seed=cfg.train.seed)
    images = (batch[0] for batch in islice(loader, n_batches))
    sets = estimate_bn_stats(model, images, cfg.model.timesteps, per_timestep, device)
    kind = f"{len(sets)} set(s), one per timestep" if per_timestep else "one set shared by all timesteps"
    log.info("BN statistics re-estimated over %d training batches of %d: %s",
             min(n_batches, len(loader)), cfg.train.batch_size, kind)
    return TimestepBNStats(model, sets)


def evaluate_checkpoint(
    weights: str | Path,
    overrides: Sequence[str] = (),
    *,
    split: str | None = None,
    device: str = "auto",
    amp: str = "off",
    coco: bool = False,
    per_timestep: bool = False,
    spikes: bool = False,
    recalibrate_bn: int = 0,
    bn_per_timestep: bool = False,
    progress: bool = True,
    records: bool = False,
) -> CheckpointEvaluation:
    """Evaluate ``weights`` on its config's test split (or ``split`` of the same year folders).

    Args:
        weights: a checkpoint written by training (or exported, or converted), or the name of
            pretrained weights (:mod:`spyolo.hub`: fetched on first use).
        overrides: ``section.key=value`` changes of the stored config, e.g. ``data.root=...``,
            ``model.timesteps=4``, ``eval.conf_thresh=0.01``, ``eval.max_images=100``.
        split: replaces the split of every ``data.test_sets`` entry
            (:func:`spyolo.datasets.kinds.with_split`).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        amp: ``off`` (float32) or ``bf16`` autocast.
        coco: add COCO-style mAP@[.5:.95] (pycocotools).
        per_timestep: add the mAP read at every timestep t = 1..T, in the same pass.
        spikes: count firing rates, synaptic operations and energy (spiking models).
        recalibrate_bn: re-estimate the BatchNorm statistics over this many training batches
            first (a diagnostic; 0: off); ``bn_per_timestep`` keeps one set per timestep.
        progress: show a progress bar.
        records: keep the ground truth and detections per image in ``result["records"]``
            (:meth:`spyolo.eval.voc.VOCEvaluator.records`).

    Raises:
        CheckpointError, ConfigError, DatasetError: naming the file or key at fault.
    """
    if amp not in ("off", "bf16"):
        raise ConfigError(f"amp must be 'off' or 'bf16', got {amp!r}")
    if recalibrate_bn < 0:
        raise ConfigError(f"recalibrate_bn must be >= 0, got {recalibrate_bn}")
    if bn_per_timestep and not recalibrate_bn:
        raise ConfigError("--bn-per-timestep needs --recalibrate-bn N")
    weights = resolve_weights(weights, progress=progress)
    loaded = load_model(weights, list(overrides))
    cfg = loaded.config
    if split:
        cfg.data.test_sets = with_split(cfg.data.test_sets, split)
    apply_overrides(cfg, [])  # re-validate with the split (the config's validation checks every eval.* key)

    ensure_synthetic(cfg.data)  # a synthetic set the config describes is generated first (once)
    dataset = build_dataset(cfg, train=False)
    matching = class_matching(loaded.class_names, list(dataset.class_names), cfg.eval.class_map)
    label_map = None if matching.identical else matching.target_of_source()
    if label_map is not None:
        for line in describe_matching(matching):
            log.debug("%s", line)
    runtime = resolve_runtime(device, amp, "off")
    model = loaded.model.to(runtime.device).eval()
    spiking = bool(getattr(model, "is_spiking", False))
    if spikes and not spiking:
        raise ConfigError(f"--spikes needs a spiking model; {weights} holds model.kind={cfg.model.kind}")
    steps = cfg.model.timesteps if spiking else 1
    run_model = _recalibrated(model, cfg, recalibrate_bn, bn_per_timestep, runtime.device) if recalibrate_bn else model
    loader = build_dataloader(dataset, cfg.eval.batch_size, shuffle=False, workers=cfg.data.workers)
    monitor = counter = None
    if spikes:
        from spyolo.stats import FiringRateMonitor, SynOpCounter

        monitor, counter = FiringRateMonitor(model), SynOpCounter(model)
    try:
        res = evaluate_model(
            run_model, loader, dataset, head_spec_for(model, cfg.data.img_size), EvalSettings.from_config(cfg),
            runtime, per_timestep=per_timestep, coco=coco, progress=progress, records=records, label_map=label_map,
        )
        report = None
        if spikes:
            from spyolo.stats import ann_twin, build_spike_report, count_dense_ops

            ann = count_dense_ops(ann_twin(model), cfg.data.img_size)
            report = build_spike_report(monitor, counter, steps, cfg.data.img_size, ann.macs,
                                        ann_adds=ann.adds, ann_muls=ann.muls)
    finally:
        for hooks in (monitor, counter):
            if hooks is not None:
                hooks.close()
    return CheckpointEvaluation(res, report, cfg, Path(weights), steps, str(runtime.device), matching)
