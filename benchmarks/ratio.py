"""CPU cost of one FPTT timestep relative to one ANN-twin training step, measured side by side.

Both run in one process on the same machine state, interleaved round by round (the order
alternates), so that load from other processes affects both alike; the reported ratio is the
median of the per-round ratios ``(FPTT iteration / T) / ANN iteration``. An FPTT timestep is a
full training step of SPYv4 (forward, YOLO loss, backward, FPTT regulariser, clipping, Adam,
trace update); the ANN step is the same for the ANN twin without the FPTT terms. The LTC layers
do about 2.5x the ANN's convolution FLOPs (each adds a 3x3 C->C time-constant convolution).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

from benchmarks.probe import ProbeConfig, ProbeSession

__all__ = ["RatioConfig", "measure_cpu_ratio"]


@dataclass
class RatioConfig:
    """Size of the side-by-side CPU measurement (defaults: quick yet meaningful on 2 cores)."""

    batch: int = 8
    img_size: int = 160
    width: float = 0.5
    timesteps: int = 4
    rounds: int = 5
    warmup: int = 1
    threads: int = 0
    ltc_backend: str = "reference"
    target: float = 3.0
    seed: int = 0


def measure_cpu_ratio(cfg: RatioConfig) -> dict:
    """Measure the ratio on CPU; return medians, per-round values and the FLOP ratio."""
    if cfg.rounds < 1 or cfg.timesteps < 1:
        raise ValueError(f"RatioConfig: need rounds >= 1 and timesteps >= 1, got {cfg.rounds}, {cfg.timesteps}")
    common = dict(
        batch=cfg.batch, img_size=cfg.img_size, width=cfg.width, device="cpu", amp="off", channels_last="off",
        flops=True, threads=cfg.threads, seed=cfg.seed, ltc_backend=cfg.ltc_backend,
    )
    fptt = ProbeSession(ProbeConfig(method="fptt", timesteps=cfg.timesteps, **common))
    ann = ProbeSession(ProbeConfig(method="ann", timesteps=1, **common))
    fptt_iter, _ = fptt.iteration_fns(cfg.timesteps)
    ann_iter, _ = ann.iteration_fns(1)
    for _ in range(cfg.warmup):
        fptt_iter()
        ann_iter()

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    fptt_steps, ann_steps, ratios = [], [], []
    for r in range(cfg.rounds):
        if r % 2 == 0:
            f = timed(fptt_iter) / cfg.timesteps
            a = timed(ann_iter)
        else:
            a = timed(ann_iter)
            f = timed(fptt_iter) / cfg.timesteps
        fptt_steps.append(f)
        ann_steps.append(a)
        ratios.append(f / a)
    flops_fptt, flops_ann = fptt.flops_per_image_step, ann.flops_per_image_step
    return {
        **asdict(cfg),
        "fptt_step_s": statistics.median(fptt_steps),
        "ann_step_s": statistics.median(ann_steps),
        "ratio": statistics.median(ratios),
        "ratio_of_medians": statistics.median(fptt_steps) / statistics.median(ann_steps),
        "fptt_step_s_all": fptt_steps,
        "ann_step_s_all": ann_steps,
        "ratios_all": ratios,
        "flops_ratio": (flops_fptt / flops_ann) if flops_fptt and flops_ann else None,
        "gflops_per_image_step_spyv4": None if flops_fptt is None else flops_fptt / 1e9,
        "gflops_per_image_step_ann": None if flops_ann is None else flops_ann / 1e9,
    }
