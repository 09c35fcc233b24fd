"""Shared fixtures: a tiny synthetic VOC-format dataset and a matching tiny config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spyolo.config import Config, apply_overrides

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The tests run many tiny ops: one thread avoids OpenMP oversubscription on the shared
    2-core machines (two threads made tiny models up to 100x slower there); results do not
    depend on it."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_voc_root(tmp_path_factory) -> Path:
    """A 24 trainval / 8 test synthetic VOC year folder at <root>/SYNTH (generated once)."""
    from spyolo.data.synthetic import generate_synthetic_voc

    root = tmp_path_factory.mktemp("voc")
    generate_synthetic_voc(root / "SYNTH", n_train=24, n_test=8, seed=3, min_side=96, max_side=160, progress=False)
    return root


def tiny_config(root: Path, over: dict | None = None) -> Config:
    """A config that trains in seconds on CPU: 64 px, width 0.25, T=2, batch 4."""
    items = {
        "data.root": str(root), "data.img_size": 64, "data.workers": 0,
        "model.width": 0.25, "model.timesteps": 2,
        "train.name": "t", "train.epochs": 2, "train.batch_size": 4, "train.max_iters_per_epoch": 3,
        "train.lr": 1e-3, "train.warmup_epochs": 0.5, "train.device": "cpu",
        "eval.batch_size": 8, "eval.max_images": 4,
    }
    items.update(over or {})
    return apply_overrides(Config(), [f"{k}={v}" for k, v in items.items()])


@pytest.fixture
def make_tiny_config(tiny_voc_root):
    def make(over: dict | None = None) -> Config:
        return tiny_config(tiny_voc_root, over)

    return make
