"""A self-contained training/inference probe on random tensors, for speed and memory.

``python -m spyolo.bench.probe --method fptt --timesteps 8 --batch 4 --img-size 160 --width 0.5``
prints one JSON line: seconds per iteration (median of the timed iterations), images/s, ms per
image-timestep, and peak memory (CUDA: ``torch.cuda.max_memory_allocated``; CPU: the process's
peak RSS, so run one configuration per fresh process to compare peaks).

It runs the real :class:`~spyolo.train.steps.TrainStep` (real YOLO loss, real FPTT update) on
random images with a few random boxes each, so it needs no dataset.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass

import torch

from spyolo.loss import YOLOLoss
from spyolo.models import SPYv4, YOLOv4Tiny
from spyolo.models.decode import scale_anchors
from spyolo.snn import reset_states
from spyolo.train.fptt import FPTT
from spyolo.train.optim import build_optimizer
from spyolo.train.steps import StepSettings, TrainStep
from spyolo.utils.runtime import resolve_runtime

__all__ = ["ProbeConfig", "run_probe", "random_batch", "peak_rss_bytes"]


@dataclass
class ProbeConfig:
    method: str = "fptt"  # fptt | bptt | ann | infer
    timesteps: int = 8
    batch: int = 4
    img_size: int = 160
    width: float = 0.5
    num_classes: int = 20
    boxes_per_image: int = 3
    warmup: int = 1
    iters: int = 2
    device: str = "auto"
    amp: str = "auto"
    channels_last: str = "auto"
    compile: bool = False
    seed: int = 0
    threads: int = 0  # CPU threads (0: torch default)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def random_batch(cfg: ProbeConfig, device: torch.device, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.rand(cfg.batch, 3, cfg.img_size, cfg.img_size, generator=generator).to(device)
    n = cfg.batch * cfg.boxes_per_image
    wh = 0.05 + 0.4 * torch.rand(n, 2, generator=generator)
    cxy = wh / 2 + (1 - wh) * torch.rand(n, 2, generator=generator)
    rows = torch.cat(
        [
            torch.arange(cfg.batch).repeat_interleave(cfg.boxes_per_image).unsqueeze(1).float(),
            torch.randint(0, cfg.num_classes, (n, 1), generator=generator).float(),
            cxy,
            wh,
        ],
        dim=1,
    )
    return images, rows.to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_probe(cfg: ProbeConfig) -> dict:
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rt = resolve_runtime(cfg.device, cfg.amp, cfg.channels_last)
    dev = rt.device
    spiking = cfg.method != "ann"
    model_cls = SPYv4 if spiking else YOLOv4Tiny
    model = model_cls(num_classes=cfg.num_classes, width=cfg.width).to(dev)
    if rt.channels_last:
        model = model.to(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(cfg.seed)
    images, targets = random_batch(cfg, dev, gen)
    if rt.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    run_model = torch.compile(model) if cfg.compile else model
    steps = cfg.timesteps if spiking else 1

    if cfg.method == "infer":
        model.eval()

        def one_iter():
            with torch.no_grad():
                reset_states(model)
                for _ in range(steps):
                    with rt.autocast():
                        run_model(images)
    else:
        anchors = scale_anchors(model.anchors, cfg.img_size, 416)
        loss_fn = YOLOLoss(anchors, model.masks, cfg.num_classes, strides=model.strides).to(dev)
        opt = build_optimizer(model, "adam", 1e-4, 0.9, 0.0)
        fptt = FPTT(model.parameters()) if cfg.method == "fptt" else None
        step = TrainStep(
            run_model, loss_fn, opt, StepSettings(cfg.method, cfg.timesteps), rt, fptt=fptt
        )

        def one_iter():
            step(images, targets)

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    for _ in range(cfg.warmup):
        one_iter()
    _sync(dev)
    times = []
    for _ in range(cfg.iters):
        t0 = time.perf_counter()
        one_iter()
        _sync(dev)
        times.append(time.perf_counter() - t0)
    sec = statistics.median(times)
    out = {
        **asdict(cfg),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "sec_per_iter": sec,
        "images_per_s": cfg.batch / sec,
        "ms_per_image_timestep": 1000 * sec / (cfg.batch * steps),
        "peak_bytes": (torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else peak_rss_bytes()),
        "peak_kind": "cuda_max_allocated" if dev.type == "cuda" else "cpu_peak_rss",
    }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in ProbeConfig.__dataclass_fields__.values():
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, action="store_true")
        else:
            typ = {"int": int, "float": float, "str": str}.get(str(f.type), str)
            p.add_argument(flag, type=typ, default=f.default)
    args = p.parse_args(argv)
    cfg = ProbeConfig(**vars(args))
    print(json.dumps(run_probe(cfg)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
