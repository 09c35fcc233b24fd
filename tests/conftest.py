"""Shared fixtures: a tiny synthetic VOC-format dataset and a matching tiny config."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # as the spyolo commands do: no network

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


@pytest.fixture(autouse=True, scope="session")
def _own_cache(tmp_path_factory):
    """spyolo's cache (the start-up image checks) in a folder of the session, not the user's ~/.cache;
    the commands the tests start inherit it."""
    before = os.environ.get("SPYOLO_CACHE_DIR")
    os.environ["SPYOLO_CACHE_DIR"] = str(tmp_path_factory.mktemp("spyolo-cache"))
    yield
    if before is None:
        os.environ.pop("SPYOLO_CACHE_DIR", None)
    else:
        os.environ["SPYOLO_CACHE_DIR"] = before


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


def calibrate_bn(model: torch.nn.Module, timesteps: int = 2, size: int = 64, batches: int = 2) -> torch.nn.Module:
    """Set BatchNorm running statistics from train-mode passes on random images (cumulative
    average), so that an untrained network fires in eval mode as a trained one does."""
    from spyolo.snn import reset_states

    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in bns:
        bn.momentum = None
        bn.reset_running_stats()
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            reset_states(model)
            for _ in range(timesteps if getattr(model, "is_spiking", False) else 1):
                model(torch.rand(4, 3, size, size))
    for bn in bns:
        bn.momentum = 0.1
    return model


def save_tiny_checkpoint(path: Path, cfg: Config, class_names: list[str], seed: int = 0) -> Path:
    """An untrained checkpoint of ``cfg``'s model in the format the trainer writes: heads' biases
    zeroed (scores near 0.25, so boxes come out) and BN statistics from random images."""
    from spyolo.checkpoint import save_checkpoint
    from spyolo.config import config_to_dict
    from spyolo.models import build_model

    torch.manual_seed(seed)
    model = build_model(cfg.model, num_classes=len(class_names))
    model.head1.bias.data.zero_()
    model.head2.bias.data.zero_()
    calibrate_bn(model, cfg.model.timesteps, cfg.data.img_size)
    save_checkpoint({"model": model.state_dict(), "config": config_to_dict(cfg), "class_names": list(class_names),
                     "epoch": 0}, path)
    return path
