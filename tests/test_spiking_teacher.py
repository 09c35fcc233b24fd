"""Distillation from a SPYv4 teacher (e.g. the paper's LTC model teaching a cheaper tau_mode)."""

from __future__ import annotations

import copy

import pytest
import torch

from conftest import calibrate_bn, save_tiny_checkpoint
from spyolo.models import SPYv4
from spyolo.snn import reset_states
from spyolo.train.distill import HeadDistillation

SHAPES = ["circle", "square", "triangle", "star", "hexagon", "cross", "ring", "arrow"]


def _terms(distill: HeadDistillation, student: SPYv4, images: torch.Tensor, steps: int) -> list[float]:
    distill.prepare(images, torch.autocast("cpu", enabled=False))
    reset_states(student)
    n = torch.tensor(4)
    return [float(distill(student(images), n).detach()) for _ in range(steps)]


def test_a_spiking_teacher_runs_the_students_timesteps_and_is_matched_step_by_step() -> None:
    torch.manual_seed(0)
    teacher = calibrate_bn(SPYv4(num_classes=8, width=0.25, threshold=0.5), timesteps=3).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = copy.deepcopy(teacher)
    for p in student.parameters():
        p.requires_grad_(True)
    distill = HeadDistillation(teacher, 1.0, 1.0, 8, student=student, feature_weight=1.0, timesteps=3)
    images = torch.rand(2, 3, 64, 64)
    calls = []
    handle = teacher.register_forward_hook(lambda *_: calls.append(1))
    same = _terms(distill, student, images, 3)
    handle.remove()
    assert len(calls) == 3  # the student's T, once per batch
    # the teacher's steps differ (membranes build up), so matching by step matters ...
    assert not torch.equal(distill._targets[0][0], distill._targets[2][0])
    assert distill._features[0].keys() == distill._features[2].keys() and len(distill._features[2]) == 19
    # ... and a student equal to its teacher, step for step, owes nothing, heads and layers alike
    # (the teacher's first layer holds its current in evaluation: its first step's is kept)
    assert max(abs(v) for v in same) < 1e-4
    # a student one step behind its teacher is pulled (its steps compared with the teacher's next ones)
    distill.prepare(images, torch.autocast("cpu", enabled=False))
    reset_states(student)
    distill._step = 1
    n = torch.tensor(4)
    behind = [float(distill(student(images), n).detach()) for _ in range(2)]
    assert min(behind) > 1e-3


def test_a_cheaper_mode_learns_from_the_ltc_teacher_in_training(make_tiny_config, tmp_path) -> None:
    from spyolo.train.trainer import Trainer

    teacher = save_tiny_checkpoint(tmp_path / "ltc.pt", make_tiny_config(), SHAPES)
    cfg = make_tiny_config({"train.distill_from": str(teacher), "model.tau_mode": "depthwise",
                            "model.tau_mode_layers": "{conv1: spike}", "train.distill_feature_weight": 1.0,
                            "train.epochs": 1, "model.timesteps": 3, "eval.train_images": 0})
    tr = Trainer(cfg, tmp_path / "run", progress=False)
    try:
        d = tr.parts.distill
        assert d.spiking_teacher and d.timesteps == 3
        assert {layer.tau_mode for layer in d.teacher.modules() if hasattr(layer, "tau_mode")} == {"ltc"}
        calls = []
        d.teacher.register_forward_hook(lambda *_: calls.append(1))
        row = tr.fit()
        assert len(calls) == 3 * row["iterations"]
        assert row["distill"] > 0 and all(p.grad is None for p in d.teacher.parameters())
    finally:
        tr.close()


def test_a_spiking_teacher_of_another_width_is_refused_for_feature_distillation() -> None:
    from spyolo.errors import ConfigError

    with pytest.raises(ConfigError, match="another model.width"):
        HeadDistillation(SPYv4(num_classes=8, width=0.5), 1.0, 1.0, 8, student=SPYv4(num_classes=8, width=0.25),
                         feature_weight=1.0, timesteps=2)
