"""Training engine: FPTT/BPTT/ANN runs, exact resume, non-finite stop, run folder contents."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch

from spyolo.checkpoint import load_checkpoint
from spyolo.errors import TrainingDiverged
from spyolo.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def _rows(run_dir: Path) -> list[dict]:
    with (run_dir / "results.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("over", [{"train.method": "fptt"}, {"train.method": "bptt"}, {"model.kind": "ann"}])
def test_methods_train_and_write_a_run_folder(make_tiny_config, tmp_path, over):
    cfg = make_tiny_config({**over, "train.epochs": 1})
    tr = Trainer(cfg, tmp_path / "run", progress=False)
    try:
        before = [p.detach().clone() for p in tr.core.parameters()]
        row = tr.fit()
    finally:
        tr.close()
    assert tr.method == ("ann" if over.get("model.kind") == "ann" else over["train.method"])
    run = tmp_path / "run"
    for f in ("args.yaml", "run.yaml", "results.csv", "results.png", "val_batch_pred.jpg", "weights/last.pt",
              "weights/best.pt"):
        assert (run / f).is_file(), f
    assert cv2.imread(str(run / "val_batch_pred.jpg")).shape[2] == 3
    assert cv2.imread(str(run / "results.png")) is not None
    events = list(run.glob("events.out.tfevents.*"))
    assert events, "no TensorBoard events"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run))
    acc.Reload()
    tags = acc.Tags()
    assert "train/loss" in tags["scalars"] and "val/map_voc07" in tags["scalars"]
    if tr.spiking:
        assert {"map_voc07_at_timestep/t1", "map_voc07_at_timestep/t2", "firing_rate/conv1"} <= set(tags["scalars"])
        assert "map_per_timestep" in tags["images"]
    rows = _rows(run)
    assert len(rows) == 1 and float(rows[0]["loss"]) > 0
    assert 0.0 <= row["map_voc07"] <= 1.0 and 0.0 <= row["map_area"] <= 1.0
    changed = sum(not torch.equal(a, b) for a, b in zip(before, tr.core.parameters()))
    assert changed > 0.9 * len(before), "training did not update the parameters"
    if tr.spiking:
        assert 0.0 < row["firing_rate"] < 1.0
    ckpt = load_checkpoint(run / "weights" / "last.pt")
    assert ckpt["epoch"] == 0 and ckpt["class_names"] == tr.class_names
    assert (ckpt["fptt"] is not None) == (tr.method == "fptt")


def test_resume_continues_exactly(make_tiny_config, tmp_path):
    cfg = make_tiny_config({"train.epochs": 3, "data.mosaic": 0.5})
    straight = Trainer(cfg, tmp_path / "a", progress=False)
    straight.fit()
    straight.close()

    first = Trainer(cfg, tmp_path / "b", progress=False)
    first.fit(stop_after=1)  # "interrupted" after epoch 1
    first.close()
    resumed = Trainer(cfg, tmp_path / "b", resume=True, progress=False)
    assert resumed.start_epoch == 1
    resumed.fit()
    resumed.close()

    a, b = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert [r["epoch"] for r in b] == ["1", "2", "3"]
    for ra, rb in zip(a, b):
        for k in ("loss", "box", "obj", "cls", "firing_rate", "map_voc07", "map_area", "lr"):
            assert float(ra[k]) == pytest.approx(float(rb[k]), rel=1e-5, abs=1e-7), (ra["epoch"], k)
    for (name, pa), pb in zip(straight.core.state_dict().items(), resumed.core.state_dict().values()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6, msg=name)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(make_tiny_config, tmp_path):
    cfg = make_tiny_config({"train.epochs": 3})
    tr = Trainer(cfg, tmp_path / "run", progress=False)
    tr.fit(stop_after=1)
    good = load_checkpoint(tmp_path / "run" / "weights" / "last.pt")
    with torch.no_grad():
        tr.core.conv1.bn.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"non-finite loss .* at epoch 2, iteration 1"):
        tr.fit()
    tr.close()
    after = load_checkpoint(tmp_path / "run" / "weights" / "last.pt")
    assert after["epoch"] == good["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in after["model"].values() if v.is_floating_point())


@pytest.mark.slow  # a training run as a subprocess
def test_train_cli_and_config_errors(tiny_voc_root, tmp_path):
    cmd = [
        sys.executable, str(ROOT / "tools" / "train.py"), "--config", str(ROOT / "configs" / "spyv4_synthetic.yaml"),
        "--run-dir", str(tmp_path / "cli"), "--no-progress",
        f"data.root={tiny_voc_root}", "data.img_size=64", "data.workers=0", "data.synthetic_train=0",
        "model.width=0.25", "model.timesteps=2", "train.epochs=1", "train.batch_size=4",
        "train.max_iters_per_epoch=2", "eval.max_images=4", "train.device=cpu",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "mAP VOC2007 11-point" in r.stderr + r.stdout
    assert (tmp_path / "cli" / "weights" / "best.pt").is_file()
    bad = subprocess.run(cmd + ["train.epoch=2"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "unknown key 'train.epoch'" in bad.stderr and "Did you mean 'epochs'" in bad.stderr


def test_atomic_save_permissions_and_no_leftovers(tmp_path):
    import os
    import stat

    from spyolo.checkpoint import load_checkpoint, save_checkpoint

    old = os.umask(0o022)
    try:
        save_checkpoint({"model": {"w": torch.ones(2)}, "config": {}}, tmp_path / "a" / "ck.pt")
    finally:
        os.umask(old)
    path = tmp_path / "a" / "ck.pt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # as a plain open() would give, not mkstemp's 0o600
    assert [p.name for p in path.parent.iterdir()] == ["ck.pt"]
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(2))


def test_overrides_anywhere_on_the_command_line():
    """`--config C a=1 --run-dir D b=2`: overrides after an option join the others in order; an
    unknown option is still a usage error (exit 2), and so is an override for a command without."""
    from spyolo.cli import build_parser as spyolo_parser
    from spyolo.cli.common import parse_command_line
    from spyolo.cli.train import build_parser

    args = parse_command_line(build_parser(), ["--config", "c.yaml", "train.lr=1", "--run-dir", "D",
                                               "train.epochs=2", "model.width=0.5"])
    assert args.overrides == ["train.lr=1", "train.epochs=2", "model.width=0.5"] and args.run_dir == "D"
    args = parse_command_line(spyolo_parser(), ["eval", "--weights", "w.pt", "--split", "test", "data.root=R"])
    assert args.overrides == ["data.root=R"]
    for argv in (["train", "--run-dir", "D", "train.lr=1", "--bogus"], ["synth", "--out", "X", "--train", "1",
                                                                          "--test", "1", "a.b=1"]):
        with pytest.raises(SystemExit) as e:
            parse_command_line(spyolo_parser(), argv)
        assert e.value.code == 2


def test_loss_parts_are_named_and_read_back_in_one_copy():
    import torch

    from spyolo.train.steps import LossParts

    a = LossParts.from_stacked(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.5]))
    b = LossParts(*[torch.tensor(float(v)) for v in (3, 2, 1, 0, 1, 2, 1.5)])
    mean = ((a + b) / 2).to_host()
    assert mean == LossParts(loss=2.0, box=2.0, obj=2.0, cls=2.0, num_pos=3.0, distill=4.0, energy=1.0)
    assert all(isinstance(v, float) for v in (mean.loss, mean.box, mean.obj, mean.cls, mean.num_pos, mean.distill,
                                              mean.energy))


def test_iterations_set_the_epochs_by_the_number_of_batches(make_tiny_config, tmp_path) -> None:
    """train.iterations: a run of N batches, whatever the dataset's size (3 batches per epoch here)."""
    from spyolo.config import load_config
    from spyolo.train.trainer import Trainer

    cfg = make_tiny_config({"model.kind": "ann", "train.iterations": 7, "train.epochs": 1,
                            "train.max_iters_per_epoch": 3, "eval.train_images": 2})
    tr = Trainer(cfg, tmp_path / "run", progress=False)
    try:
        assert tr.cfg.train.epochs == 3  # ceil(7 / 3)
        assert tr.parts.schedule.total_iters == 9
        row = tr.fit()
    finally:
        tr.close()
    assert row["epoch"] == 3 and 0.0 <= row["train_map_voc07"] <= 1.0
    # the run folder's config holds the epochs it ran, so --resume continues the same schedule
    assert load_config(tmp_path / "run" / "args.yaml").train.epochs == 3


def test_tau_lr_scale_gives_the_time_constants_path_its_own_step_size() -> None:
    from spyolo.models import SPYv4
    from spyolo.train.optim import build_optimizer

    model = SPYv4(num_classes=3, width=0.25)
    plain = build_optimizer(model, "adam", 1e-3, 0.9, 0.0)
    assert len(plain.param_groups) == 2  # unchanged layout (checkpoints' optimiser states load as before)
    opt = build_optimizer(model, "adam", 1e-3, 0.9, 0.0, tau_lr_scale=5.0)
    tau_ids = {id(p) for n, p in model.named_parameters() if ".tau_" in n}
    for group in opt.param_groups:
        ids = {id(p) for p in group["params"]}
        assert ids <= tau_ids or not ids & tau_ids
        assert group["lr"] == pytest.approx(5e-3 if ids and ids <= tau_ids else 1e-3)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
