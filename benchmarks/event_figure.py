#!/usr/bin/env python3
"""A picture of a trained event model's detections on event frames of its test split.

    python -m benchmarks.event_figure --weights runs/ev/spyv4_recipe/weights/last.pt \\
        --out docs/events_detections.png --every 10 --count 8

Takes every ``--every``-th test sample (with the synthetic event set's 10 evaluated time stamps
per recording: one per recording), runs the model for its T timesteps as the evaluation does,
and tiles the window's events (ON white, OFF blue) with the detections above ``eval.demo_conf``
(only the model's boxes are drawn).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from spyolo.checkpoint import load_model
from spyolo.data.transforms import unmap_boxes
from spyolo.datasets.build import build_dataset
from spyolo.inference.draw import tile_images
from spyolo.inference.postprocess import postprocess
from spyolo.inference.prediction import Prediction
from spyolo.models import head_spec_for, run_timesteps
from spyolo.utils.io import atomic_write_image


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--columns", type=int, default=4)
    args = p.parse_args(argv)
    loaded = load_model(args.weights)
    cfg, model = loaded.config, loaded.model.eval()
    dataset = build_dataset(cfg, train=False)
    spec = head_spec_for(model, cfg.data.img_size)
    pictures = []
    for index in range(0, len(dataset), args.every)[: args.count]:
        frames, _target, meta = dataset[index]
        with torch.no_grad():
            outs = run_timesteps(model, frames.unsqueeze(0), cfg.model.timesteps)
        det = postprocess(outs, spec, cfg.eval.demo_conf, cfg.eval.demo_nms, cfg.eval.max_det)[0]
        boxes = unmap_boxes(det.boxes.numpy(), meta["orig_size"], cfg.data.img_size, meta["letterbox"])
        image = dataset.load_image(index)
        pred = Prediction(boxes.astype(np.float32), det.scores.numpy().astype(np.float32), det.labels.numpy(),
                          tuple(dataset.class_names), image.shape[:2], image=image)
        pictures.append(pred.plot())
    atomic_write_image(args.out, tile_images(pictures, columns=args.columns))
    print(f"wrote {args.out} ({len(pictures)} test samples of {args.weights})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
