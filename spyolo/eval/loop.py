"""The evaluation loop: run a detector over a dataset split and score it with the VOC evaluator.

Runs T timesteps per batch (one for the ANN twin), reads the last step's heads (and, with
``per_timestep=True``, every step's, in the same pass: anytime accuracy), maps boxes back to
original-image VOC pixels and scores them against the split's ground truth (difficult flags
kept). Returns the evaluator's result dict. COCO mAP (``coco=True``) uses the dataset's own COCO
file, image and category ids when the split is one COCO set, else the VOC data converted. An
event dataset (bin t at timestep t) always gets ``gen1``, the COCO mAP under the Gen1 protocol
(:mod:`spyolo.eval.gen1`), which is also its ``coco``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from spyolo.data.voc import voc_to_continuous
from spyolo.eval.gen1 import Gen1Evaluator
from spyolo.eval.voc import VOCEvaluator
from spyolo.inference.postprocess import postprocess, to_original_voc
from spyolo.models import timestep_input
from spyolo.models.heads import HeadSpec
from spyolo.snn import reset_states
from spyolo.utils.runtime import Runtime

__all__ = ["EvalSettings", "evaluate_model"]


@dataclass
class EvalSettings:
    """How a split is evaluated: input size, timesteps, post-processing, matching, state init."""

    img_size: int
    timesteps: int
    conf_thresh: float = 0.001
    nms_iou: float = 0.5
    max_det: int = 300
    iou_threshold: float = 0.5
    state_init: str = "zero"
    state_seed: int = 0
    max_images: int = 0

    @classmethod
    def from_config(cls, cfg: Any) -> EvalSettings:
        """The settings a :class:`spyolo.config.Config` describes."""
        return cls(
            img_size=cfg.data.img_size, timesteps=cfg.model.timesteps, conf_thresh=cfg.eval.conf_thresh,
            nms_iou=cfg.eval.nms_iou, max_det=cfg.eval.max_det, iou_threshold=cfg.eval.iou_threshold,
            state_init=cfg.model.state_init, state_seed=cfg.model.state_seed, max_images=cfg.eval.max_images,
        )


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    loader,
    dataset,
    spec: HeadSpec,
    settings: EvalSettings,
    runtime: Runtime,
    *,
    per_timestep: bool = False,
    coco: bool = False,
    preview: int = 0,
    progress: bool = True,
    desc: str = "eval",
    records: bool = False,
    label_map: Sequence[int] | None = None,
) -> dict:
    """mAP of ``model`` on ``dataset`` (through ``loader``, which must not shuffle).

    Returns :meth:`VOCEvaluator.compute`'s dict for the last timestep, plus ``num_images``,
    ``coco`` (with ``coco=True``), ``per_timestep`` (a list of ``{"t", "map_voc07",
    "map_area"}``, with ``per_timestep=True``) and ``preview`` (with ``preview=N``: the last
    step's detections of the first N images, ``(dataset index, boxes, scores, labels)`` with
    boxes in continuous pixels of the original image, for pictures of the predictions) and
    ``records`` (with ``records=True``: the last step's ground truth and detections per image,
    :meth:`VOCEvaluator.records`, for resampling the images: :func:`spyolo.eval.voc.map_of_images`).
    ``label_map`` scores a model of other classes than the dataset's: model class ``c``'s detections
    count as dataset class ``label_map[c]``; where it is negative the class is left out (each box
    takes the best of the other classes, so no detection of it is made; :mod:`spyolo.eval.classes`).
    """
    to_dataset = np.asarray(label_map, dtype=np.int64) if label_map is not None else None
    scored = None if to_dataset is None else np.flatnonzero(to_dataset >= 0).tolist()
    was_training = model.training
    model.eval()
    device = runtime.device
    spiking = bool(getattr(model, "is_spiking", False))
    steps = settings.timesteps if spiking else 1
    read_steps = list(range(steps)) if per_timestep else [steps - 1]
    evaluators = {t: VOCEvaluator(dataset.class_names, iou_threshold=settings.iou_threshold) for t in read_steps}
    gen = None
    if settings.state_init == "uniform":
        gen = torch.Generator(device=device)
        gen.manual_seed(settings.state_seed)
    coco_file = getattr(dataset, "coco", None) if coco else None
    protocol = getattr(dataset, "protocol", None)  # event sets: the Gen1 protocol
    gen1 = Gen1Evaluator(dataset.class_names, protocol) if protocol is not None else None
    coco_results: list[dict] = []
    coco_images: list[int] = []
    previews: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    seen = 0
    total = len(dataset) if settings.max_images <= 0 else min(settings.max_images, len(dataset))
    bar = tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False, dynamic_ncols=True)
    try:
        for images, _targets, metas in loader:
            if settings.max_images > 0:
                if seen >= settings.max_images:
                    break
                keep = settings.max_images - seen  # exactly max_images, whatever the batch size
                images, metas = images[:keep], metas[:keep]
            images = runtime.to_input(images)
            if spiking:
                reset_states(model, init=settings.state_init, generator=gen)
            per_step_dets = {}
            for t in range(steps):
                with runtime.autocast():
                    outs = model(timestep_input(images, t) if spiking else images)
                if t in evaluators:
                    per_step_dets[t] = postprocess(
                        outs, spec, settings.conf_thresh, settings.nms_iou, settings.max_det, classes=scored
                    )
            for i, meta in enumerate(metas):
                ann = dataset.get_annotation(meta["index"])
                image_id = f"{meta['index']}:{ann.image_id}"
                for t, ev in evaluators.items():
                    ev.add_ground_truth(image_id, ann.boxes(), ann.labels(), ann.difficult())
                    det = per_step_dets[t][i]
                    boxes = to_original_voc(det.boxes, meta["orig_size"], settings.img_size, meta.get("letterbox"))
                    scores, labels = det.scores.float().cpu().numpy(), det.labels.cpu().numpy()
                    if to_dataset is not None:
                        keep = to_dataset[labels] >= 0
                        boxes, scores, labels = boxes[keep], scores[keep], to_dataset[labels[keep]]
                    ev.add_detections(image_id, boxes, scores, labels)
                    if gen1 is not None and t == steps - 1:
                        gen1.add(image_id, ann.boxes(), ann.labels(), boxes, scores, labels, ann.difficult())
                    if t == steps - 1 and len(previews) < preview:
                        previews.append((meta["index"], voc_to_continuous(boxes), scores, labels))
                    if coco_file is not None and t == steps - 1:
                        coco_id = dataset.coco_ids[meta["index"]]
                        coco_images.append(coco_id)
                        coco_results += [
                            {"image_id": coco_id, "category_id": dataset.category_ids[int(lab)], "score": float(sc),
                             "bbox": [float(b[0]) - 1.0, float(b[1]) - 1.0, float(b[2] - b[0]) + 1.0,
                                      float(b[3] - b[1]) + 1.0]}  # VOC pixels -> COCO [x, y, w, h]
                            for b, sc, lab in zip(boxes, scores, labels)
                        ]
            seen += len(metas)
            bar.update(len(metas))
    finally:
        bar.close()
        if was_training:
            model.train()
    last = evaluators[steps - 1].compute()
    if gen1 is not None:
        try:
            last["gen1"] = gen1.compute()
        except ValueError as exc:  # no box left under the protocol
            last["gen1"] = {"error": str(exc)}
        if coco:
            last["coco"] = last["gen1"]
    elif coco_file is not None:
        from spyolo.eval.coco import coco_map_with_file

        last["coco"] = coco_map_with_file(coco_file.coco, coco_results, coco_images)
        last["coco"]["annotations"] = str(coco_file.path)
    elif coco:
        last["coco"] = evaluators[steps - 1].compute_coco()
    last["num_images"] = seen
    if records:
        last["records"] = evaluators[steps - 1].records()
    if preview:
        last["preview"] = previews
    if per_timestep:
        last["per_timestep"] = [
            {"t": t + 1, **{k: v for k, v in evaluators[t].compute().items() if k.startswith("map")}}
            for t in read_steps
        ]
    return last
