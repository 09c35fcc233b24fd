"""Throughput of the training data loader (decode, augmentation, collation, pinning).

Measures what the training loop gets from :func:`spyolo.data.build_dataloader` on a
VOC-format dataset built from a config (by default the synthetic one), at a given input size
and number of worker processes: images per second over a number of batches after the workers
have started. Compare with the training images/s of the benchmark: the loader must be faster
for the GPU never to wait for data.

The data pipeline (OpenCV, albumentations) is imported only when this runs.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

__all__ = ["LoaderConfig", "measure_loader"]


@dataclass
class LoaderConfig:
    """What to measure.

    Attributes:
        config: YAML config whose ``data`` section describes the dataset.
        img_size: Training input size (``data.img_size``).
        workers: Worker-process counts to measure, one row each.
        batch: Images per batch.
        batches: Batches timed (after ``warmup_batches``).
        warmup_batches: Batches fetched before timing (worker start-up, first prefetch).
        overrides: Further ``section.key=value`` config overrides (e.g. ``data.root=...``).
    """

    config: str = "configs/spyv4_synthetic.yaml"
    img_size: int = 416
    workers: list[int] = field(default_factory=lambda: [2])
    batch: int = 64
    batches: int = 10
    warmup_batches: int = 2
    overrides: list[str] = field(default_factory=list)


def measure_loader(cfg: LoaderConfig) -> list[dict]:
    """One row per worker count: images/s of the training loader over ``cfg.batches`` batches."""
    from spyolo.config import load_config
    from spyolo.data import build_dataloader
    from spyolo.datasets import build_dataset, ensure_synthetic

    if cfg.batches < 1 or cfg.batch < 1 or cfg.warmup_batches < 0:
        raise ValueError(f"LoaderConfig: need batches >= 1, batch >= 1, warmup_batches >= 0; got {asdict(cfg)}")
    if not Path(cfg.config).is_file():
        raise FileNotFoundError(f"{cfg.config}: config file not found")
    config = load_config(cfg.config, [f"data.img_size={cfg.img_size}", *cfg.overrides])
    ensure_synthetic(config.data)
    dataset = build_dataset(config, train=True)
    if len(dataset) < cfg.batch:
        raise ValueError(f"the dataset of {cfg.config} has {len(dataset)} images, fewer than one batch of {cfg.batch}")
    rows = []
    for workers in cfg.workers:
        loader = build_dataloader(dataset, cfg.batch, shuffle=True, workers=workers, drop_last=True)
        wanted = cfg.warmup_batches + cfg.batches
        fetched = 0
        t0 = time.perf_counter()
        while fetched < wanted:  # loop over epochs if the dataset is short
            for images, _targets, _metas in loader:
                fetched += 1
                if fetched == cfg.warmup_batches:  # the clock starts after the last warm-up batch
                    t0 = time.perf_counter()
                if images.shape[0] != cfg.batch:
                    raise RuntimeError(f"loader returned a batch of {images.shape[0]} images, expected {cfg.batch}")
                if fetched >= wanted:
                    break
        elapsed = time.perf_counter() - t0
        rows.append(
            {
                "workers": workers,
                "batch": cfg.batch,
                "img_size": cfg.img_size,
                "batches": cfg.batches,
                "dataset_images": len(dataset),
                "pin_memory": torch.cuda.is_available(),
                "seconds": elapsed,
                "images_per_s": cfg.batches * cfg.batch / elapsed,
            }
        )
        del loader
    return rows
