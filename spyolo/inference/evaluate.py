"""Evaluate a detector on a dataset split with the exact VOC evaluator.

Runs T timesteps per batch (one for the ANN twin), reads the last step's heads (and, with
``per_timestep=True``, every step's, in the same pass: anytime accuracy), maps boxes back to
original-image VOC pixels and scores them against the split's ground truth (difficult flags
kept). Returns the evaluator's result dict(s).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from spyolo.eval.voc import VOCEvaluator
from spyolo.inference.postprocess import HeadSpec, postprocess, to_original_voc
from spyolo.snn import reset_states

__all__ = ["EvalSettings", "evaluate_model"]


@dataclass
class EvalSettings:
    img_size: int
    timesteps: int
    conf_thresh: float = 0.001
    nms_iou: float = 0.5
    max_det: int = 300
    iou_threshold: float = 0.5
    state_init: str = "zero"
    state_seed: int = 0
    max_images: int = 0


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    loader,
    dataset,
    spec: HeadSpec,
    settings: EvalSettings,
    device: torch.device,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    per_timestep: bool = False,
    coco: bool = False,
    progress: bool = True,
    desc: str = "eval",
) -> dict:
    """mAP of ``model`` on ``dataset`` (through ``loader``, which must not shuffle)."""
    was_training = model.training
    model.eval()
    spiking = bool(getattr(model, "is_spiking", False))
    steps = settings.timesteps if spiking else 1
    read_steps = list(range(steps)) if per_timestep else [steps - 1]
    evaluators = {t: VOCEvaluator(dataset.class_names, iou_threshold=settings.iou_threshold) for t in read_steps}
    gen = None
    if settings.state_init == "uniform":
        gen = torch.Generator(device=device)
        gen.manual_seed(settings.state_seed)
    autocast = (
        torch.autocast(device_type=device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    )
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
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            if spiking:
                reset_states(model, init=settings.state_init, generator=gen)
            per_step_dets = {}
            for t in range(steps):
                with autocast:
                    outs = model(images)
                if t in evaluators:
                    per_step_dets[t] = postprocess(
                        outs, spec, settings.conf_thresh, settings.nms_iou, settings.max_det
                    )
            for i, meta in enumerate(metas):
                ann = dataset.get_annotation(meta["index"])
                image_id = f"{meta['index']}:{ann.image_id}"
                for t, ev in evaluators.items():
                    ev.add_ground_truth(image_id, ann.boxes(), ann.labels(), ann.difficult())
                    det = per_step_dets[t][i]
                    boxes = to_original_voc(det.boxes, meta["orig_size"], settings.img_size, meta.get("letterbox"))
                    ev.add_detections(image_id, boxes, det.scores.float().cpu().numpy(), det.labels.cpu().numpy())
            seen += len(metas)
            bar.update(len(metas))
    finally:
        bar.close()
        if was_training:
            model.train()
    last = evaluators[steps - 1].compute()
    if coco:
        last["coco"] = evaluators[steps - 1].compute_coco()
    last["num_images"] = seen
    if per_timestep:
        last["per_timestep"] = [
            {"t": t + 1, **{k: v for k, v in evaluators[t].compute().items() if k.startswith("map")}} for t in read_steps
        ]
    return last
