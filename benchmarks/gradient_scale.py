#!/usr/bin/env python3
"""How much gradient reaches SPYv4's synaptic weights at initialisation, per neuron recipe.

    python -m benchmarks.gradient_scale --width 0.25 --img-size 160 --batch 16 \\
        --json docs/results/gradient_scale_w025_160.json
    python -m benchmarks.gradient_scale --width 1.0 --img-size 416 --batch 4 \\
        --json docs/results/gradient_scale_w1_416.json

(the two measurements of docs/learning_quality.md, "What they show", item 2; T = 2 by default.)

For each neuron recipe (the paper's: threshold 1, multi-Gaussian surrogate s 0.3, h 0.15,
gamma 0.5; the synthetic configs': threshold 0.5, Gaussian s 1.2) and for the ANN twin, one
freshly initialised model (seed --seed) runs one random batch (random images, a few random
boxes per image, :func:`benchmarks.probe.random_batch`) through T timesteps in training mode;
the YOLO loss summed over the timesteps is backpropagated through time, and the relative
gradient ``|dL/dW| / |W|`` (Frobenius norms) of every synaptic convolution weight (``conv``,
not the tau convolutions) is printed, with its median, minimum and maximum over the layers, and
the mean firing rate. One JSON line per recipe; ``--json PATH`` also writes them to a file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch

from benchmarks.probe import ProbeConfig, random_batch
from spyolo.config import ModelConfig
from spyolo.loss import YOLOLoss
from spyolo.models import build_model
from spyolo.models.heads import head_spec_for
from spyolo.snn import reset_states
from spyolo.utils.io import atomic_write_text

RECIPES: dict[str, dict] = {
    "paper_neuron": {"kind": "spyv4", "threshold": 1.0, "surrogate_sigma": 0.3, "surrogate_height": 0.15,
                     "surrogate_gamma": 0.5},
    "synthetic_recipe": {"kind": "spyv4", "threshold": 0.5, "surrogate_sigma": 1.2, "surrogate_height": 0.0,
                         "surrogate_gamma": 1.0},
    "ann_twin": {"kind": "ann"},
}


def measure(recipe: str, width: float, img_size: int, timesteps: int, batch: int, num_classes: int, seed: int) -> dict:
    torch.manual_seed(seed)
    mcfg = ModelConfig(width=width, timesteps=timesteps, **RECIPES[recipe])
    model = build_model(mcfg, num_classes).train()
    spiking = mcfg.kind == "spyv4"
    loss_fn = YOLOLoss.from_spec(head_spec_for(model, (img_size, img_size)))
    images, targets = random_batch(ProbeConfig(batch=batch, img_size=img_size, num_classes=num_classes),
                                   torch.device("cpu"), torch.Generator().manual_seed(seed))
    built = loss_fn.build_targets(targets, batch, loss_fn.grid_sizes((img_size, img_size)), (img_size, img_size))
    spikes: list[float] = []
    hooks = []
    if spiking:
        from spyolo.snn.ltc import LTCConv2d

        for m in model.modules():
            if isinstance(m, LTCConv2d):
                hooks.append(m.register_forward_hook(
                    lambda _m, _i, out: spikes.append(
                        float((out[0] if isinstance(out, tuple) else out).detach().mean())
                    )))
        reset_states(model)
    total = images.new_zeros(())
    for _ in range(timesteps if spiking else 1):
        loss, _ = loss_fn(model(images), built)
        total = total + loss
    total.backward()
    for h in hooks:
        h.remove()
    ratios = {}
    for name, p in model.named_parameters():
        if name.endswith("conv.weight") and "tau_conv" not in name and p.grad is not None:
            ratios[name] = float(p.grad.norm() / p.detach().norm())
    values = list(ratios.values())
    return {
        "recipe": recipe, "width": width, "img_size": img_size, "timesteps": timesteps if spiking else 1,
        "batch": batch, "seed": seed, "loss": float(total.detach()),
        "rel_grad_median": statistics.median(values), "rel_grad_min": min(values), "rel_grad_max": max(values),
        "firing_rate": statistics.fmean(spikes) if spikes else None, "per_layer": ratios,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--img-size", type=int, default=416)
    p.add_argument("--timesteps", type=int, default=2)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--num-classes", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recipes", default=",".join(RECIPES), help=f"comma list from {','.join(RECIPES)}")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    rows = []
    for recipe in args.recipes.split(","):
        if recipe not in RECIPES:
            p.error(f"unknown recipe {recipe!r}; valid: {', '.join(RECIPES)}")
        row = measure(recipe, args.width, args.img_size, args.timesteps, args.batch, args.num_classes, args.seed)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "per_layer"}), flush=True)
    if args.json:
        atomic_write_text(args.json, json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
