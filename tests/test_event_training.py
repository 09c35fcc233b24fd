"""The event pipeline end to end on tiny simulated recordings: generator (Gen1 layout, determinism,
provenance), dataset samples, the model's event inputs, FPTT/BPTT feeding bin t at timestep t,
weight transfer from the stacked-bin ANN twin, the Gen1 evaluation, and the commands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from spyolo.config import Config, apply_overrides
from spyolo.errors import ConfigError, DatasetError
from spyolo.events.synthetic import EventSpec, generate_synthetic_events, simulate_recording

CLASSES = ["circle", "square", "triangle", "cross"]
TINY = EventSpec(width=64, height=48, duration_us=700_000, frame_us=2000, label_every_us=100_000, size=(14.0, 26.0))
SPEC_OVERRIDE = ("{width: 64, height: 48, duration_us: 700000, frame_us: 2000, label_every_us: 100000, "
                 "size: [14, 26]}")


@pytest.fixture(scope="module")
def event_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ev")
    generate_synthetic_events(root / "SYNTH_EVENTS", 3, 2, seed=5, classes=CLASSES, spec=TINY, progress=False)
    return root


def event_config(root: Path, over: dict | None = None) -> Config:
    items = {
        "data.root": str(root), "data.train_sets": "[gen1:SYNTH_EVENTS/train]",
        "data.test_sets": "[gen1:SYNTH_EVENTS/test]", "data.img_size": 64, "data.workers": 0,
        "data.event_window_ms": 40, "model.input": "events", "model.width": 0.25, "model.timesteps": 2,
        "train.name": "ev", "train.epochs": 1, "train.batch_size": 4, "train.max_iters_per_epoch": 2,
        "train.device": "cpu", "train.warmup_epochs": 0.5, "eval.batch_size": 8,
    }
    items.update(over or {})
    return apply_overrides(Config(), [f"{k}={v}" for k, v in items.items()])


def test_generator_is_deterministic_and_writes_the_gen1_layout(event_root, tmp_path):
    a = simulate_recording(5, 0, CLASSES, TINY)
    b = simulate_recording(5, 0, CLASSES, TINY)
    assert np.array_equal(a.events, b.events) and np.array_equal(a.boxes, b.boxes) and len(a.events) > 1000
    assert not np.array_equal(simulate_recording(6, 0, CLASSES, TINY).events[:100], a.events[:100])
    assert np.all(np.diff(a.events["t"]) >= 0) and set(np.unique(a.events["p"])) == {0, 1}
    assert a.label_t.min() == 100_000 and set(a.labels) <= set(range(4))
    out = event_root / "SYNTH_EVENTS"
    names = sorted(p.name for p in (out / "train").iterdir())
    assert names == ["rec000001_bbox.npy", "rec000001_td.dat", "rec000002_bbox.npy", "rec000002_td.dat",
                     "rec000003_bbox.npy", "rec000003_td.dat"]
    assert (out / "classes.txt").read_text().split() == CLASSES
    from spyolo.events.dat import read_dat

    assert np.array_equal(read_dat(out / "train" / "rec000001_td.dat"), a.events)
    with pytest.raises(FileExistsError, match="holds a synthetic dataset"):
        generate_synthetic_events(out, 1, 1, seed=5, classes=CLASSES, spec=TINY, progress=False)
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="did not generate"):
        generate_synthetic_events(user, 1, 1, overwrite=True, progress=False)
    assert (user / "notes.txt").read_text() == "keep"


def test_config_generates_and_regenerates_only_its_own(tmp_path):
    from spyolo.datasets import build_dataset, ensure_synthetic

    cfg = event_config(tmp_path, {"data.synthetic_train": 1, "data.synthetic_test": 1, "data.synthetic_seed": 2,
                                  "data.synthetic_classes": "[circle, square]", "data.synthetic_spec": SPEC_OVERRIDE})
    with pytest.raises(DatasetError, match="event dataset folder not found"):
        build_dataset(cfg, train=True)  # building a dataset generates nothing ...
    ensure_synthetic(cfg.data)  # ... the explicit step does
    ds = build_dataset(cfg, train=True)
    assert len(ds) == 7 and ds.class_names == ["circle", "square"]
    before = (tmp_path / "SYNTH_EVENTS" / "train" / "rec000001_td.dat").read_bytes()
    cfg.data.synthetic_seed = 3  # other settings: regenerated in place
    ensure_synthetic(cfg.data)
    assert (tmp_path / "SYNTH_EVENTS" / "train" / "rec000001_td.dat").read_bytes() != before
    other = tmp_path / "other"
    (other / "SYNTH_EVENTS").mkdir(parents=True)
    (other / "SYNTH_EVENTS" / "x.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="holds other data"):
        ensure_synthetic(event_config(other, {"data.synthetic_train": 1, "data.synthetic_test": 1}).data)


def test_dataset_samples_targets_and_protocol(event_root):
    from spyolo.datasets import build_dataset

    cfg = event_config(event_root)
    train, test = build_dataset(cfg, train=True), build_dataset(cfg, train=False)
    assert len(train) == 3 * 7 and len(test) == 2 * 2  # test: time stamps after 0.5 s (600, 700 ms)
    frames, target, meta = train[0]
    assert frames.shape == (2, 2, 64, 64) and frames.dtype == torch.float32
    assert meta["orig_size"] == (48, 64) and meta["letterbox"] == (1.0, 0, 0) and meta["t_us"] == 100_000
    ev = train.events(0)
    assert frames.sum() == len(ev) and np.all((ev["t"] >= 60_000) & (ev["t"] < 100_000))
    ann = train.get_annotation(0)
    kept = ~ann.difficult()
    boxes = ann.boxes()[kept]
    assert target.shape == (int(kept.sum()), 5)
    assert np.allclose(target[:, 3].numpy() * 64, boxes[:, 2] - boxes[:, 0] + 1, atol=1e-4)
    cont = ann.boxes().copy()
    cont[:, :2] -= 1
    from spyolo.events.protocol import Gen1Protocol

    assert np.array_equal(~ann.difficult(), Gen1Protocol().keeps(cont))
    assert all(t > 500_000 for _, t in test.samples)
    picture = train.load_image(0)
    assert picture.shape == (48, 64, 3) and picture.dtype == np.uint8


def test_bad_event_folders_are_named(event_root, tmp_path):
    from spyolo.datasets import build_dataset

    with pytest.raises(DatasetError, match="event dataset folder not found"):
        build_dataset(event_config(tmp_path), train=True)
    bad = tmp_path / "SYNTH_EVENTS" / "train"
    bad.mkdir(parents=True)
    src = event_root / "SYNTH_EVENTS" / "train"
    (bad / "rec000001_td.dat").write_bytes((src / "rec000001_td.dat").read_bytes()[:-5])
    (bad / "rec000001_bbox.npy").write_bytes((src / "rec000001_bbox.npy").read_bytes())
    with pytest.raises(DatasetError, match="rec000001_td.dat: truncated"):
        build_dataset(event_config(tmp_path), train=True)
    (bad / "rec000002_td.dat").write_bytes((src / "rec000002_td.dat").read_bytes())
    with pytest.raises(DatasetError, match="rec000002_bbox.npy: box label file not found"):
        build_dataset(event_config(tmp_path, {"data.skip_bad": "true"}), train=True)


def test_config_checks_event_settings():
    with pytest.raises(ConfigError, match="set model.input=events"):
        apply_overrides(Config(), ["data.train_sets=[gen1:a/train]", "data.test_sets=[gen1:a/test]"])
    with pytest.raises(ConfigError, match=r"mix sets of model.input=events \(gen1:a/train\) with sets of model.inp"):
        apply_overrides(Config(), ["data.train_sets=[gen1:a/train]", "model.input=events"])
    with pytest.raises(ConfigError, match="set model.input=image"):
        apply_overrides(Config(), ["model.input=events"])
    with pytest.raises(ConfigError, match="event_representation must be one of"):
        apply_overrides(Config(), ["data.event_representation=voxel"])


def test_models_read_event_inputs():
    from spyolo.models import SPYv4, YOLOv4Tiny, build_model, timestep_input

    cfg = Config().model
    default = build_model(cfg, 4)
    assert default.conv1.conv.weight.shape[1] == 3 and default.in_channels == 3  # images: unchanged
    torch.manual_seed(0)
    a = SPYv4(num_classes=4, width=0.25)
    torch.manual_seed(0)
    b = SPYv4(num_classes=4, width=0.25, in_channels=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    cfg.input, cfg.timesteps, cfg.width = "events", 3, 0.25
    snn = build_model(cfg, 4)
    cfg.kind = "ann"
    ann = build_model(cfg, 4)
    assert snn.conv1.conv.weight.shape[1] == 2 and ann.conv1.conv.weight.shape[1] == 6
    seq = torch.rand(2, 3, 2, 64, 64)
    assert ann(seq)[0].shape == (2, 27, 2, 2)
    assert torch.equal(timestep_input(seq, 1), seq[:, 1])
    with pytest.raises(ValueError, match="timestep_input"):
        snn(seq)
    assert isinstance(ann, YOLOv4Tiny)


@pytest.mark.parametrize("method", ["fptt", "bptt"])
def test_training_step_feeds_bin_t_at_timestep_t(method):
    from spyolo.loss import YOLOLoss
    from spyolo.models import SPYv4
    from spyolo.models.heads import scale_anchors
    from spyolo.train.fptt import FPTT
    from spyolo.train.optim import build_optimizer
    from spyolo.train.steps import StepSettings, TrainStep
    from spyolo.utils.runtime import resolve_runtime

    torch.manual_seed(0)
    model = SPYv4(num_classes=4, width=0.25, in_channels=2)
    seen: list[torch.Tensor] = []
    model.conv1.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    loss = YOLOLoss(scale_anchors(model.anchors, 64, 416), model.masks, 4, strides=model.strides)
    opt = build_optimizer(model, "adam", 1e-3, 0.9, 0.0)
    step = TrainStep(model, loss, opt, StepSettings(method, 3), resolve_runtime("cpu", "off", "off"),
                     fptt=FPTT(model.parameters()) if method == "fptt" else None)
    seq = torch.rand(2, 3, 2, 64, 64)
    out = step(seq, torch.tensor([[0, 1, 0.5, 0.5, 0.3, 0.3], [1, 2, 0.4, 0.4, 0.5, 0.5]]))
    assert torch.isfinite(out.loss)
    assert len(seen) == 3 and all(torch.equal(seen[t], seq[:, t]) for t in range(3))


def test_transfer_from_the_stacked_twin_sums_the_first_kernels():
    from spyolo.models import SPYv4, YOLOv4Tiny, transfer_weights

    twin = YOLOv4Tiny(num_classes=4, width=0.25, in_channels=2, input_frames=3)
    snn = SPYv4(num_classes=4, width=0.25, in_channels=2)
    report = transfer_weights(snn, {"model": twin.state_dict()})
    w = twin.conv1.conv.weight
    assert torch.allclose(snn.conv1.conv.weight, w.reshape(w.shape[0], 3, 2, 3, 3).sum(1))
    assert "conv1.conv.weight" in report.loaded and any("sum of the 3" in n for n in report.notes)


def test_train_and_evaluate_with_the_gen1_protocol(event_root, tmp_path):
    from spyolo.eval.evaluate import evaluate_checkpoint
    from spyolo.train.trainer import Trainer

    cfg = event_config(event_root)
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    try:
        trainer.fit()
    finally:
        trainer.close()
    ev = evaluate_checkpoint(tmp_path / "run" / "weights" / "last.pt", coco=True, progress=False)
    res = ev.result
    assert res["num_images"] == 4 and res["gen1"]["protocol"] == "gen1" and res["coco"] is res["gen1"]
    assert res["gen1"]["time_stamps"] == 4 and 0.0 <= res["gen1"]["map_coco"] <= 1.0
    assert (tmp_path / "run" / "val_batch_pred.jpg").is_file()
    from benchmarks.event_figure import main as figure

    assert figure(["--weights", str(tmp_path / "run" / "weights" / "last.pt"), "--out", str(tmp_path / "f.png"),
                   "--every", "2", "--count", "2"]) == 0
    import cv2

    assert cv2.imread(str(tmp_path / "f.png")).shape == (256, 512, 3)

    # streaming: the recording online, state kept, one bin (40 ms / T=2) per timestep
    import json

    from spyolo.cli import main

    rec = event_root / "SYNTH_EVENTS" / "test" / "rec000004_td.dat"
    out = tmp_path / "demo"
    assert main(["demo", "--weights", str(tmp_path / "run" / "weights" / "last.pt"), "--source", str(rec), "--out",
                 str(out), "--no-progress", "--every-ms", "100"]) == 0
    lines = [json.loads(x) for x in (out / "rec000004_td.jsonl").read_text().splitlines()]
    assert [r["t_us"] for r in lines] == [100_000 * k for k in range(1, 8)]  # regular = labelled, and the end
    assert [r["labelled"] for r in lines] == [True] * 7 and lines[-1]["timesteps"] == 35
    assert any((out / f"rec000004_td{suffix}").is_file() for suffix in (".mp4", ".avi"))
    assert main(["demo", "--weights", str(tmp_path / "run" / "weights" / "last.pt"), "--source", str(rec), "--out",
                 str(out), "--no-progress", "--bins-per-step", "2", "--exist-ok"]) == 0
    assert json.loads((out / "rec000004_td.jsonl").read_text().splitlines()[-1])["step"] == 18
    bad = tmp_path / "bad.raw"
    bad.write_bytes(b"% evt 3.0\n" + bytes(3))
    assert main(["demo", "--weights", str(tmp_path / "run" / "weights" / "last.pt"), "--source", str(bad), "--out",
                 str(out), "--no-progress"]) == 2


def test_gen1_evaluator_removes_small_boxes_on_both_sides():
    from spyolo.eval.gen1 import Gen1Evaluator
    from spyolo.events.protocol import Gen1Protocol

    ev = Gen1Evaluator(["a", "b"], Gen1Protocol())
    big, small = [11, 11, 50, 50], [1, 1, 8, 8]  # VOC pixels: 40x40 and 8x8
    ev.add("t1", np.array([big, small]), np.array([0, 1]), np.array([big, small]), np.array([0.9, 0.8]),
           np.array([0, 0]))
    res = ev.compute()
    assert res["map_coco"] == pytest.approx(1.0) and res["removed_gt"] == 1 and res["removed_detections"] == 1
    assert set(res["ap_coco"]) == {"a"}


def test_synth_events_command_and_bad_file_exit_2(tmp_path, capsys):
    from spyolo.cli import main

    out = tmp_path / "S"
    assert main(["synth", "--events", "--out", str(out), "--train", "1", "--test", "1", "--no-progress",
                 "--classes", "circle", "square"]) == 0
    assert "recordings" in capsys.readouterr().out
    assert (out / "train" / "rec000001_td.dat").is_file() and (out / "test" / "rec000002_bbox.npy").is_file()
    (out / "train" / "rec000001_td.dat").write_bytes(b"garbage")
    config = Path(__file__).resolve().parents[1] / "configs" / "events_synthetic.yaml"
    code = main(["train", "--config", str(config), "--run-dir", str(tmp_path / "r"), f"data.root={tmp_path}",
                 "data.train_sets=[gen1:S/train]", "data.test_sets=[gen1:S/test]", "data.synthetic_train=0",
                 "train.device=cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "rec000001_td.dat: no '%' header" in err[0]


def test_gen1_config_on_files_in_the_gen1_layout(tmp_path):
    """configs/gen1.yaml on a folder laid out as Gen1 is: headers without a size (the config gives
    304x240), labels with Gen1's dtype, train/ and test/ folders; one training command, then the
    Gen1 protocol's numbers."""
    from spyolo.config import load_config
    from spyolo.eval.evaluate import evaluate_checkpoint
    from spyolo.events.boxes import write_boxes
    from spyolo.train.trainer import Trainer

    spec = EventSpec(width=304, height=240, duration_us=800_000, frame_us=4000, label_every_us=200_000,
                     size=(40.0, 80.0))
    for split, index in (("train", 0), ("train", 1), ("test", 2)):
        rec = simulate_recording(9, index, ["square", "triangle"], spec)  # two classes: Gen1's car, pedestrian
        words = np.empty(len(rec.events), dtype=[("t", "<u4"), ("a", "<u4")])
        ev = rec.events
        words["t"] = ev["t"]
        words["a"] = (ev["x"].astype(np.uint32) | (ev["y"].astype(np.uint32) << 14)
                      | (ev["p"].astype(np.uint32) << 28))
        folder = tmp_path / split
        folder.mkdir(exist_ok=True)
        name = f"17-04-1{index}_10-00-00_0_60000000"
        (folder / f"{name}_td.dat").write_bytes(b"% Data file containing Event2D events.\n% Version 2\n"
                                                b"% Date 2017-04-1 10:00:00\n" + bytes([0, 8]) + words.tobytes())
        write_boxes(folder / f"{name}_bbox.npy", rec.label_t, rec.boxes, rec.labels)
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "gen1.yaml", [
        f"data.root={tmp_path}", "data.workers=0", "model.width=0.25", "model.timesteps=2", "train.epochs=1",
        "train.batch_size=2", "train.max_iters_per_epoch=2", "train.device=cpu", "train.eval_every=1"])
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    try:
        assert trainer.train_set.class_names == ["car", "pedestrian"] and len(trainer.train_set) == 8
        trainer.fit()
    finally:
        trainer.close()
    res = evaluate_checkpoint(tmp_path / "run" / "weights" / "last.pt", progress=False).result
    assert res["num_images"] == 2 and res["gen1"]["time_stamps"] == 2  # 600 and 800 ms: after the first 0.5 s


def test_benchmark_event_samples_and_export_refusal(event_root, tmp_path):
    from benchmarks.probe import ProbeConfig, event_batch

    frames, targets = event_batch(ProbeConfig(input="events", timesteps=3, batch=2, img_size=64, event_bin_us=4000),
                                  torch.device("cpu"))
    assert frames.shape == (2, 3, 2, 64, 64) and frames.sum() > 0
    assert targets.shape[1] == 6 and set(targets[:, 0].tolist()) <= {0.0, 1.0}
    assert bool(((targets[:, 2:4] > 0) & (targets[:, 2:4] < 1)).all())

    from spyolo.checkpoint import save_checkpoint
    from spyolo.config import config_to_dict
    from spyolo.export import ExportError
    from spyolo.export.onnx import export_onnx
    from spyolo.models import build_model

    cfg = event_config(event_root)
    model = build_model(cfg.model, 4)
    path = save_checkpoint({"model": model.state_dict(), "config": config_to_dict(cfg), "class_names": CLASSES,
                            "epoch": 0}, tmp_path / "m.pt")
    pytest.importorskip("onnx")
    with pytest.raises(ExportError, match="event frames"):
        export_onnx(path, tmp_path / "m.onnx")
