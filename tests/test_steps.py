"""The training step (spyolo/train/steps.py): prepared states and the split loop train as the
one-call step does, states appear once their layouts are known, and a compiled model compiles
once per kind of state."""

from __future__ import annotations

import copy

import pytest
import torch

from spyolo.loss import YOLOLoss
from spyolo.models import SPYv4
from spyolo.models.heads import scale_anchors
from spyolo.snn.ltc import ltc_layers
from spyolo.train.fptt import FPTT
from spyolo.train.optim import build_optimizer
from spyolo.train.steps import StepSettings, TrainStep
from spyolo.utils.runtime import resolve_runtime


def _batch(
    seed: int, batch: int = 2, size: int = 64, classes: int = 4, boxes: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images ``(B, 3, S, S)`` and ``boxes`` random target rows ``(b, class, cx, cy, w, h)`` per image."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, size, size, generator=gen)
    wh = 0.05 + 0.4 * torch.rand(batch * boxes, 2, generator=gen)
    cxy = wh / 2 + (1 - wh) * torch.rand(batch * boxes, 2, generator=gen)
    index = torch.arange(batch).repeat_interleave(boxes).unsqueeze(1).float()
    cls = torch.randint(0, classes, (batch * boxes, 1), generator=gen).float()
    return images, torch.cat([index, cls, cxy, wh], dim=1)


def _make_step(model, method, timesteps, state_init="zero", eager_states=True, generator=None):
    loss_fn = YOLOLoss(scale_anchors(model.anchors, 64, 416), model.masks, 4, strides=model.strides)
    opt = build_optimizer(model, "sgd", 1e-2, 0.9, 0.0)
    fptt = FPTT(model.parameters()) if method == "fptt" else None
    settings = StepSettings(method, timesteps, state_init=state_init, eager_states=eager_states)
    return TrainStep(model, loss_fn, opt, settings, resolve_runtime("cpu", "off", "off"), fptt=fptt,
                     state_generator=generator)


@pytest.mark.parametrize("method", ["fptt", "bptt"])
def test_prepared_states_and_split_loop_give_the_same_training(method):
    torch.manual_seed(0)
    base = SPYv4(num_classes=4, width=0.25).double()
    batches = [_batch(s) for s in (1, 2)]
    results = []
    for eager_states, split in ((False, False), (True, False), (True, True)):
        model = copy.deepcopy(base)
        step = _make_step(model, method, 3, state_init="uniform", eager_states=eager_states,
                          generator=torch.Generator().manual_seed(5))
        losses = []
        for images, targets in batches:  # the second batch reuses the layouts recorded at the first
            images, targets = images.double(), targets.double()
            if split:
                built = step.prepare(images, targets)
                losses.append(step.time_loop(images, built).loss)
            else:
                losses.append(step(images, targets).loss)
        results.append((torch.stack(losses), [p.detach().clone() for p in model.parameters()]))
    for losses, params in results[1:]:
        torch.testing.assert_close(losses, results[0][0], rtol=0, atol=0)
        for a, b in zip(params, results[0][1]):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_prepare_creates_states_once_their_layouts_are_known():
    torch.manual_seed(0)
    model = SPYv4(num_classes=4, width=0.25)
    step = _make_step(model, "fptt", 2)
    images, targets = _batch(3)
    step.prepare(images, targets)
    assert all(layer.v is None for _, layer in ltc_layers(model))  # first batch: lazy
    step.time_loop(images, step.prepare(images, targets))
    step.prepare(images, targets)
    states = [layer.v for _, layer in ltc_layers(model)]
    assert all(v is not None and not v.requires_grad and float(v.abs().max()) == 0.0 for v in states)
    step.prepare(images[:1], targets[targets[:, 0] == 0])  # a new batch size: lazy again
    assert all(layer.v is None for _, layer in ltc_layers(model))


@pytest.mark.parametrize("method", ["fptt", "bptt"])
def test_compiled_train_step_compiles_once_per_state_kind(method):
    graphs, calls = [], []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)

        def run(*args):
            calls.append(len(graphs))
            return gm.forward(*args)

        return run

    torch.manual_seed(0)
    model = SPYv4(num_classes=4, width=0.25)
    step = _make_step(torch.compile(model, backend=counting_backend), method, 3)
    assert step.eager_model is model
    calls_per_batch = []
    for seed in (1, 2, 3):
        images, targets = _batch(seed)
        before = len(calls)
        out = step(images, targets)
        calls_per_batch.append(len(calls) - before)
        assert torch.isfinite(out.loss)
    if method == "fptt":
        # batch 1: step 0 uncompiled (lazy states), steps 1-2 compiled; then every step, one graph
        assert calls_per_batch == [2, 3, 3] and len(graphs) == 1
    else:
        # BPTT: batch 1 wholly uncompiled (one backward must not mix uncompiled and compiled
        # BatchNorm steps); then one graph for step 0 (state without gradient), one for steps 1-2
        assert calls_per_batch == [0, 3, 3] and len(graphs) == 2
    assert all(layer.v is not None for _, layer in ltc_layers(model))
