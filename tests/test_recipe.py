"""The training recipe's parts: weight transfer, model.init_from, input dropout, the mean
read-out, and distillation from the ANN twin."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spyolo.checkpoint import save_checkpoint
from spyolo.config import Config, apply_overrides, config_to_dict
from spyolo.errors import ConfigError, TransferError
from spyolo.models import SPYv4, YOLOv4Tiny, build_model, restart_readout, transfer_weights
from spyolo.models.transfer import yolov4_tiny_key
from spyolo.snn import reset_states


def _ann(num_classes: int = 8, seed: int = 1) -> YOLOv4Tiny:
    torch.manual_seed(seed)
    model = YOLOv4Tiny(num_classes=num_classes, width=0.25)
    with torch.no_grad():  # non-default BN statistics, so that copying them is visible
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_()
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    return model


def _public_naming(state: dict) -> dict:
    """The ANN twin's state dict under the YOLOv4-tiny names of the public weights."""
    inverse = {}
    names = {"conv1": "backbone.conv1", "conv2": "backbone.conv2", "conv3": "backbone.conv3", "conv_p5": "conv_for_P5",
             "neck1": "yolo_headP5.0", "conv_up": "upsample.upsample.0", "neck2": "yolo_headP4.0",
             "head1": "yolo_headP5.1", "head2": "yolo_headP4.1"}
    for key, value in state.items():
        first, rest = key.split(".", 1)
        if first.startswith("block"):
            layer, rest2 = rest.split(".", 1)
            public = f"backbone.resblock_body{first[-1]}.conv{layer[1:]}.{rest2}"
        else:
            public = f"{names[first]}.{rest}"
        assert yolov4_tiny_key(public) == key, (public, key)
        inverse[public] = value
    return inverse


# ------------------------------------------------------------------------------ transfer


@pytest.mark.parametrize("kind", ["public", "checkpoint", "state_dict"])
def test_transfer_from_the_ann_twin_in_every_source_form(kind: str, tmp_path: Path) -> None:
    ann = _ann()
    state = ann.state_dict()
    source = {"public": _public_naming(state), "checkpoint": {"model": state, "config": {}}, "state_dict": state}[kind]
    path = tmp_path / "source.pt"
    torch.save(source, path)
    torch.manual_seed(7)
    snn = SPYv4(num_classes=8, width=0.25)
    tau_before = {k: v.clone() for k, v in snn.state_dict().items() if ".tau_" in k}
    report = transfer_weights(snn, path)
    after = snn.state_dict()
    for key, value in state.items():
        assert torch.equal(after[key], value), key  # convs, BN affine and running statistics, heads
    assert all(torch.equal(after[k], v) for k, v in tau_before.items())  # the tau path keeps its values
    assert set(report.loaded) == set(state) and not report.skipped
    assert all(".tau_" in k or k.endswith(".conv.bias") for k in report.left_at_init)
    assert report.source_kind == {"public": "YOLOv4-tiny state dict", "checkpoint": "spyolo checkpoint",
                                  "state_dict": "spyolo state dict"}[kind]
    assert f"{len(state)} tensors loaded, 0 skipped" in report.summary()


def test_transfer_skips_heads_of_another_class_count_and_names_bad_shapes() -> None:
    coco = _ann(num_classes=80).state_dict()
    snn = SPYv4(num_classes=8, width=0.25)
    head_before = snn.head1.weight.clone()
    report = transfer_weights(snn, coco, heads="matching")  # an in-memory dict
    assert sorted(k for k, _ in report.skipped) == ["head1.bias", "head1.weight", "head2.bias", "head2.weight"]
    assert "another number of classes" in report.skipped[0][1] and "skipped head1" in report.summary()
    assert torch.equal(snn.head1.weight, head_before)
    assert torch.equal(snn.conv1.conv.weight, coco["conv1.conv.weight"])

    wide = YOLOv4Tiny(num_classes=8, width=0.5).state_dict()
    with pytest.raises(TransferError, match=r"conv1.conv.weight has shape \(16, 3, 3, 3\) in the source but "
                                            r"\(8, 3, 3, 3\) in the model"):
        transfer_weights(snn, wide)
    with pytest.raises(TransferError, match="none of its keys is a weight of this model"):
        transfer_weights(snn, {"fc.weight": torch.zeros(2, 2)})


def test_init_heads_boxes_copies_each_slots_box_and_objectness_channels_only() -> None:
    coco = _ann(num_classes=80).state_dict()
    torch.manual_seed(5)
    snn = SPYv4(num_classes=2, width=0.25)
    before = {k: v.clone() for k, v in snn.state_dict().items() if k.startswith(("head1.", "head2."))}
    report = transfer_weights(snn, coco)  # heads="boxes", the default
    assert not report.skipped
    assert sorted(report.partial) == ["head1.bias", "head1.weight", "head2.bias", "head2.weight"]
    assert "box and objectness channels of each anchor slot were copied" in report.summary()
    after = snn.state_dict()
    for key, old in before.items():
        new = after[key]
        for slot in range(3):  # 3 anchor slots per head: 85 channels each in the source, 7 in the model
            src_slot, dst_slot = coco[key][slot * 85: slot * 85 + 85], new[slot * 7: slot * 7 + 7]
            assert torch.equal(dst_slot[:5], src_slot[:5]), (key, slot)  # tx, ty, tw, th, tobj
            assert torch.equal(dst_slot[5:], old[slot * 7 + 5: slot * 7 + 7]), (key, slot)  # classes: at init
    # the same classes copy the whole head whatever init_heads says; a head of another slot count is skipped
    same = SPYv4(num_classes=80, width=0.25)
    assert not transfer_weights(same, coco, heads="boxes").partial
    assert torch.equal(same.head2.weight, coco["head2.weight"])
    odd = SPYv4(num_classes=2, width=0.25, masks=[[3, 4], [1, 2]])
    report = transfer_weights(odd, coco, heads="boxes")
    assert not report.partial and {k for k, _ in report.skipped} == set(before)
    # named classes that differ (a spyolo checkpoint of other classes, the same size): boxes only too
    named = {"model": _ann(num_classes=2).state_dict(), "class_names": ["cat", "dog"], "config": {}}
    snn = SPYv4(num_classes=2, width=0.25)
    report = transfer_weights(snn, named, class_names=["cat", "bird"], heads="boxes")
    assert sorted(report.partial) == sorted(before) and not report.skipped
    assert torch.equal(snn.head1.bias[7:12], named["model"]["head1.bias"][7:12])
    with pytest.raises(ValueError, match="heads must be one of auto, names, boxes, matching"):
        transfer_weights(snn, coco, heads="all")
    with pytest.raises(ConfigError, match="model.init_heads"):
        apply_overrides(Config(), ["model.init_heads=all"])


def test_init_heads_names_copies_the_class_channels_of_the_classes_both_name() -> None:
    """COCO spellings meet VOC's: the class channels of the shared classes carry over (the default when
    the source names its classes and shares one); the others keep their init; boxes copies none."""
    source_names = ["person", "Dining Table", "airplane", "truck", "tv", "dog"]
    ann = _ann(num_classes=6)
    source = {"model": ann.state_dict(), "class_names": source_names, "config": {}}
    target_names = ["aeroplane", "diningtable", "tvmonitor", "cat", "person"]
    expected = {0: 2, 1: 1, 2: 4, 4: 0}  # target class -> source class; "cat" has none
    torch.manual_seed(11)
    snn = SPYv4(num_classes=5, width=0.25)
    before = {k: v.clone() for k, v in snn.state_dict().items() if k.startswith(("head1.", "head2."))}
    report = transfer_weights(snn, source, class_names=target_names)  # heads="auto" -> names
    assert sorted(report.partial) == sorted(before) and not report.skipped
    text = report.summary()
    assert "matched by name (model.init_heads=names)" in text and "aeroplane <- airplane" in text
    assert "the class channels of 1 class keep their init (cat)" in text
    after = snn.state_dict()
    for key, old in before.items():
        src = ann.state_dict()[key]
        for slot in range(3):  # 11 channels per slot in the source, 10 in the model
            s0, d0 = slot * 11, slot * 10
            assert torch.equal(after[key][d0: d0 + 5], src[s0: s0 + 5])
            for t in range(5):
                want = src[s0 + 5 + expected[t]] if t in expected else old[d0 + 5 + t]
                assert torch.equal(after[key][d0 + 5 + t], want), (key, slot, t)
    # boxes: the class channels all keep their init
    torch.manual_seed(11)
    boxed = SPYv4(num_classes=5, width=0.25)
    transfer_weights(boxed, source, class_names=target_names, heads="boxes")
    assert torch.equal(boxed.head1.weight[5:10], before["head1.weight"][5:10])
    # no shared name: auto is boxes; a source without names: auto is boxes, names says so
    report = transfer_weights(SPYv4(num_classes=2, width=0.25), source, class_names=["cell", "nucleus"])
    assert "model.init_heads=boxes" in report.summary()
    report = transfer_weights(SPYv4(num_classes=2, width=0.25), ann.state_dict(), heads="names")
    assert "the source names no classes" in report.summary() and len(report.partial) == 4
    # every class matched under another spelling: the whole heads, nothing left at init
    spelled = SPYv4(num_classes=6, width=0.25)
    report = transfer_weights(spelled, source, class_names=["Person", "diningtable", "aeroplane", "truck",
                                                            "tvmonitor", "dog"])
    assert not report.partial and torch.equal(spelled.head2.weight, ann.head2.weight)


def test_transfer_from_spyv4_brings_the_tau_path(tmp_path: Path) -> None:
    torch.manual_seed(3)
    src = SPYv4(num_classes=8, width=0.25)
    dst = SPYv4(num_classes=8, width=0.25)
    report = transfer_weights(dst, src.state_dict())
    assert not report.left_at_init and not report.skipped
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))


def test_init_from_starts_the_run_and_the_fptt_traces_at_the_transferred_weights(make_tiny_config, tmp_path):
    from spyolo.train.trainer import Trainer

    ann = _ann()
    source = tmp_path / "ann.pt"
    save_checkpoint({"model": ann.state_dict(), "config": config_to_dict(Config())}, source)
    cfg = make_tiny_config({"model.init_from": str(source), "train.epochs": 1})
    tr = Trainer(cfg, tmp_path / "run", progress=False)
    try:
        for key, value in ann.state_dict().items():
            assert torch.equal(tr.core.state_dict()[key], value), key
        fptt = tr.parts.fptt
        assert all(torch.equal(w, p) for w, p in zip(fptt.w_bar, fptt.params))  # W_bar = W
        assert all(not lam.any() for lam in fptt.lam)  # lambda = 0
        assert "tensors loaded" in (tmp_path / "run" / "transfer.txt").read_text()
        tr.fit()
    finally:
        tr.close()
    # resume: no transfer, the checkpoint's weights
    resumed = Trainer(cfg, tmp_path / "run", resume=True, progress=False)
    try:
        assert resumed.parts.transfer is None
        assert not torch.equal(resumed.core.conv1.conv.weight, ann.conv1.conv.weight)
    finally:
        resumed.close()


# ------------------------------------------------------------------------ input dropout, read-out


def test_input_dropout_drops_image_channels_in_training_only() -> None:
    model = SPYv4(num_classes=3, width=0.25, input_dropout=0.5)
    assert set(model.state_dict()) == set(SPYv4(num_classes=3, width=0.25).state_dict())  # no new weights
    x = torch.ones(64, 3, 32, 32)
    model.train()
    dropped = model.input_dropout(x)
    kept = dropped.flatten(2).amax(dim=2)  # per image and channel: 0 (dropped) or 2 (kept, scaled by 1/(1-p))
    assert set(kept.unique().tolist()) == {0.0, 2.0} and 0.3 < (kept == 0).float().mean() < 0.7
    model.eval()
    assert torch.equal(model.input_dropout(x), x)
    with pytest.raises(ConfigError, match=r"model.input_dropout must be in \[0, 1\), got 1.0"):
        apply_overrides(Config(), ["model.input_dropout=1.0"])


def test_mean_readout_is_the_running_mean_of_the_heads() -> None:
    torch.manual_seed(0)
    last = SPYv4(num_classes=3, width=0.25).eval()
    mean = SPYv4(num_classes=3, width=0.25, readout="mean").eval()
    mean.load_state_dict(last.state_dict())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        reset_states(last)
        reset_states(mean)
        steps = [last(x) for _ in range(3)]
        means = [mean(x) for _ in range(3)]
        for t in range(3):
            for head in range(2):
                expected = torch.stack([s[head] for s in steps[: t + 1]]).mean(dim=0)
                torch.testing.assert_close(means[t][head], expected)
        restart_readout(mean)  # membranes kept, read-out restarted: the next output is that step's heads alone
        reset_free = last(x)
        torch.testing.assert_close(mean(x)[0], reset_free[0])


# ------------------------------------------------------------------------------ distillation


def test_distillation_loss_is_zero_at_the_teacher_and_pulls_towards_it() -> None:
    from spyolo.train.distill import distillation_loss

    torch.manual_seed(0)
    teacher = (torch.randn(2, 3 * 8, 4, 4), torch.randn(2, 3 * 8, 8, 8))
    n = torch.tensor(5)
    assert distillation_loss(teacher, teacher, 3, n).abs() < 1e-6
    student = tuple(t.clone().requires_grad_() for t in teacher)
    perturbed = tuple((s + 0.5).detach().requires_grad_() for s in student)
    value = distillation_loss(perturbed, teacher, 3, n)
    assert value > 0
    value.backward()
    # the gradient points back towards the teacher
    assert all((p.grad * 0.5).sum() > 0 for p in perturbed)


def test_distillation_teacher_is_frozen_and_runs_once_per_batch(make_tiny_config, tmp_path) -> None:
    from spyolo.train.trainer import Trainer

    ann_cfg = make_tiny_config({"model.kind": "ann"})
    torch.manual_seed(5)
    teacher_model = build_model(ann_cfg.model, num_classes=8)
    source = tmp_path / "teacher.pt"
    save_checkpoint({"model": teacher_model.state_dict(), "config": config_to_dict(ann_cfg),
                     "class_names": ["circle", "square", "triangle", "star", "hexagon", "cross", "ring", "arrow"]},
                    source)
    cfg = make_tiny_config({"train.distill_from": str(source), "train.distill_weight": 2.0, "train.epochs": 1,
                            "model.timesteps": 3})
    tr = Trainer(cfg, tmp_path / "run", progress=False)
    try:
        teacher = tr.parts.distill.teacher
        calls = []
        teacher.register_forward_hook(lambda *_: calls.append(1))
        before = {k: v.clone() for k, v in teacher.state_dict().items()}
        row = tr.fit()
        assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
        assert all(p.grad is None for p in teacher.parameters())
        assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())  # running stats too
        assert len(calls) == row["iterations"]  # once per batch, not once per timestep (T = 3)
        assert row["distill"] > 0
    finally:
        tr.close()
    other = tmp_path / "other.pt"
    save_checkpoint({"model": build_model(ann_cfg.model, num_classes=3).state_dict(), "config": config_to_dict(ann_cfg),
                     "class_names": ["a", "b", "c"]}, other)
    with pytest.raises(ConfigError, match="the teacher's num_classes"):
        Trainer(make_tiny_config({"train.distill_from": str(other)}), tmp_path / "run2", progress=False)


def test_feature_distillation_is_zero_at_the_teacher_and_relative_per_layer() -> None:
    from spyolo.train.distill import feature_distillation_loss

    torch.manual_seed(0)
    teacher = {"conv1": torch.randn(2, 8, 4, 4), "conv2": 100.0 * torch.randn(2, 16, 2, 2)}
    assert feature_distillation_loss(teacher, teacher) == 0
    # each layer's error is relative to the teacher's own size: a layer of zeros costs 1, whatever its scale
    zeros = {k: torch.zeros_like(v) for k, v in teacher.items()}
    assert feature_distillation_loss(zeros, teacher).item() == pytest.approx(1.0, rel=1e-5)
    half = {k: 0.5 * v for k, v in teacher.items()}
    assert feature_distillation_loss(half, teacher).item() == pytest.approx(0.25, rel=1e-5)


def test_feature_distillation_taps_every_ltc_layer_and_pulls_its_current_to_the_teachers() -> None:
    from spyolo.models.spyv4 import run_timesteps
    from spyolo.train.distill import HeadDistillation, feature_layers

    teacher = _ann().eval()
    student = SPYv4(num_classes=8, width=0.25, threshold=0.5)
    transfer_weights(student, teacher.state_dict())
    student.train()
    distill = HeadDistillation(teacher, 1.0, 1.0, 8, student=student, feature_weight=3.0)
    assert set(feature_layers(student)) == set(feature_layers(teacher)) and len(feature_layers(student)) == 19
    images = torch.rand(2, 3, 64, 64)
    distill.prepare(images, torch.autocast("cpu", enabled=False))
    n = torch.tensor(4)
    reset_states(student)
    outs = student(images)
    with_features = distill(outs, n)
    recorded = distill.student_taps.outputs
    assert recorded == {}  # handed over to the term and forgotten
    head_only = HeadDistillation(teacher, 1.0, 1.0, 8)
    head_only.prepare(images, torch.autocast("cpu", enabled=False))
    head_term = head_only(outs, n)
    assert with_features > head_term
    with_features.backward()
    # the term reaches the first layer's weights directly (its own current), not only through the heads
    assert student.conv1.conv.weight.grad is not None and student.conv1.conv.weight.grad.abs().sum() > 0
    # nothing is recorded without gradients (evaluation)
    with torch.no_grad():
        run_timesteps(student, images, 2)
    assert distill.student_taps.outputs == {}


def test_feature_distillation_refuses_another_width(make_tiny_config, tmp_path) -> None:
    from spyolo.train.distill import HeadDistillation

    with pytest.raises(ConfigError, match="another model.width"):
        HeadDistillation(YOLOv4Tiny(num_classes=8, width=0.5), 1.0, 1.0, 8,
                         student=SPYv4(num_classes=8, width=0.25), feature_weight=1.0)


def test_init_tau_neutral_gives_tau_one_half_from_an_ann_source_and_keeps_it_learnable(make_tiny_config,
                                                                                       tmp_path) -> None:
    from spyolo.snn.ltc import ltc_layers
    from spyolo.train.trainer import Trainer

    ann_cfg = make_tiny_config({"model.kind": "ann"})
    source = tmp_path / "twin.pt"
    save_checkpoint({"model": build_model(ann_cfg.model, num_classes=8).state_dict(), "config": config_to_dict(ann_cfg),
                     "class_names": ["circle", "square", "triangle", "star", "hexagon", "cross", "ring", "arrow"]},
                    source)
    cfg = make_tiny_config({"model.init_from": str(source), "model.init_tau": "neutral", "train.epochs": 1})
    tr = Trainer(cfg, tmp_path / "run", progress=False)
    try:
        model = tr.core
        assert "model.init_tau=neutral" in " ".join(tr.parts.transfer.notes)
        model.train()
        reset_states(model)
        seen = []
        hooks = [layer.tau_bn.register_forward_hook(lambda _m, _i, out: seen.append(out)) for _n, layer in
                 ltc_layers(model)]
        model(torch.rand(2, 3, 64, 64))
        for h in hooks:
            h.remove()
        assert len(seen) == 19 and all(torch.count_nonzero(z) == 0 for z in seen)  # tau = sigmoid(0) everywhere
        tr.fit()
        assert any(layer.tau_bn.weight.abs().sum() > 0 for _n, layer in ltc_layers(model))  # it learns
    finally:
        tr.close()
