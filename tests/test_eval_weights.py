"""Tests of tools/eval.py in checkpoint mode: mAP table, --per-timestep, --spikes, --split."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from conftest import save_tiny_checkpoint
from spyolo.config import Config
from spyolo.data import build_dataloader
from spyolo.datasets import build_dataset
from spyolo.eval.loop import EvalSettings, evaluate_model
from spyolo.models import build_model
from spyolo.models.heads import head_spec_for
from spyolo.stats import FiringRateMonitor, SynOpCounter, ann_twin, count_macs
from spyolo.utils.runtime import resolve_runtime

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "eval.py"
SYNTH_CLASSES = ["circle", "square", "triangle", "star", "hexagon", "cross", "ring", "arrow"]



def tiny_cfg(root: Path, kind: str = "spyv4") -> Config:
    cfg = Config()
    cfg.data.root = str(root)
    cfg.data.img_size = 64
    cfg.data.workers = 0
    cfg.model.kind = kind
    cfg.model.width = 0.25
    cfg.model.timesteps = 2
    cfg.eval.batch_size = 4
    return cfg


def make_checkpoint(path: Path, root: Path, kind: str = "spyv4", classes: list[str] | None = None) -> Path:
    """A tiny untrained checkpoint (64 px, width 0.25, T=2) with BN statistics from random images."""
    return save_tiny_checkpoint(path, tiny_cfg(root, kind), classes or SYNTH_CLASSES)


@pytest.fixture(scope="module")
def ckpt(tiny_voc_root: Path, tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("run") / "weights" / "best.pt", tiny_voc_root)


def _load_tool() -> ModuleType:
    from spyolo.cli import eval as tool

    return tool


def test_cli_spikes_and_per_timestep(ckpt: Path, tiny_voc_root: Path, tmp_path: Path) -> None:
    out, js = tmp_path / "out", tmp_path / "res.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, str(TOOL), "--weights", str(ckpt), "--spikes", "--per-timestep", "--out", str(out),
         "--json", str(js), "--no-progress", "--device", "cpu"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for name in SYNTH_CLASSES:
        assert re.search(rf"^{name}\s+\d+\s+\d+", text, re.M), name
    assert "images evaluated: 8" in text
    assert re.search(r"^mAP VOC2007 11-point\s*: \d+\.\d\d%", text, re.M)
    assert re.search(r"^\s+1\s+\d+\.\d\d\s+\d+\.\d\d$", text, re.M) and re.search(r"^\s+2\s+\d+", text, re.M)
    assert re.search(r"^conv1\s+8192\s+\d+\.\d\d", text, re.M) and re.search(r"^head2\s+-\s+-\s+-", text, re.M)
    assert "energy SNN / ANN" in text

    res = json.loads(js.read_text())
    steps = json.loads((out / "map_per_timestep.json").read_text())
    assert [r["t"] for r in steps["per_timestep"]] == [1, 2] and steps["num_images"] == 8
    assert res["per_timestep"] == steps["per_timestep"]
    assert steps["per_timestep"][-1]["map_voc07"] == pytest.approx(res["map_voc07"])  # last step = the plain mAP
    assert steps["per_timestep"][-1]["map_area"] == pytest.approx(res["map_area"])
    assert (out / "map_per_timestep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    stats = json.loads((out / "spike_stats.json").read_text())
    assert (stats["num_images"], stats["timesteps"], stats["img_size"], len(stats["layers"])) == (8, 2, 64, 21)
    layers = {r["name"]: r for r in stats["layers"]}
    assert layers["conv1"]["neurons"] == 32 * 32 * 8
    # synaptic on pixels once (the still image's held current) + the tau path at each of the T = 2 steps
    assert layers["conv1"]["macs"] == 32 * 32 * 8 * (27 + 2 * 72)
    assert stats["totals"]["acs"] == pytest.approx(sum(r["acs"] for r in stats["layers"]))
    totals = stats["totals"]
    assert totals["synaptic_energy_j"] == pytest.approx(totals["acs"] * 0.9e-12 + totals["macs"] * 4.6e-12)
    assert totals["energy_j"] == pytest.approx(  # plus the elementwise work of the neurons and biases
        totals["synaptic_energy_j"] + totals["ew_adds"] * 0.9e-12 + totals["ew_muls"] * 3.7e-12)
    assert totals["ew_adds"] > 0 and totals["ew_muls"] > 0
    with open(out / "spike_stats.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["layer"] for r in rows] == [r["name"] for r in stats["layers"]] + ["total"]
    assert float(rows[-1]["acs_per_image"]) == pytest.approx(stats["totals"]["acs"])
    model = build_model(tiny_cfg(tiny_voc_root).model, num_classes=8)
    assert stats["ann_twin"]["macs"] == sum(count_macs(ann_twin(model), 64).values())


def test_tool_matches_a_direct_evaluation(ckpt: Path, tiny_voc_root: Path, tmp_path: Path, capsys) -> None:
    # In this process, so that the tool and the direct run do identical arithmetic.
    tool = _load_tool()
    js, out = tmp_path / "res.json", tmp_path / "out"
    assert tool.main(["--weights", str(ckpt), "--spikes", "--out", str(out), "--json", str(js), "--no-progress",
                      "--device", "cpu"]) == 0
    capsys.readouterr()
    res, stats = json.loads(js.read_text()), json.loads((out / "spike_stats.json").read_text())
    layers = {r["name"]: r for r in stats["layers"]}

    cfg = tiny_cfg(tiny_voc_root)
    dataset = build_dataset(cfg, train=False)
    model = build_model(cfg.model, num_classes=8)
    model.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    with FiringRateMonitor(model) as monitor, SynOpCounter(model) as counter:
        ref = evaluate_model(
            model, build_dataloader(dataset, 4, shuffle=False, workers=0), dataset, head_spec_for(model, 64),
            EvalSettings(img_size=64, timesteps=2), resolve_runtime("cpu", "off", "off"), progress=False,
        )
        ops, firing = counter.totals(), monitor.totals()
    assert res["map_voc07"] == pytest.approx(ref["map_voc07"]) and res["map_area"] == pytest.approx(ref["map_area"])
    assert res["ap_area"] == pytest.approx(ref["ap_area"])
    for name in ("conv2", "block2.c1", "neck2"):
        assert layers[name]["acs"] == pytest.approx(ops[f"{name}.conv"].acs / 8)
        assert layers[name]["spikes"] == pytest.approx(firing[name][0] / 8)
        assert layers[name]["firing_rate"] == pytest.approx(firing[name][0] / firing[name][1])
    assert layers["head1"]["acs"] == pytest.approx(ops["head1"].acs / 8)
    assert stats["totals"]["acs"] == pytest.approx(sum(t.acs for t in ops.values()) / 8)


def test_plain_mode_split_and_default_out(ckpt: Path, tiny_voc_root: Path, monkeypatch, capsys) -> None:
    tool = _load_tool()
    val_ids = (tiny_voc_root / "SYNTH" / "ImageSets" / "Main" / "val.txt").read_text().split()
    assert tool.main(["--weights", str(ckpt), "--split", "val", "--no-progress", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert f"images evaluated: {len(val_ids)}" in captured.out and "split SYNTH:val" in captured.out
    assert "Spike statistics" not in captured.out and "Anytime" not in captured.out

    assert tool.main(["--weights", str(ckpt), "--max-images", "3", "--per-timestep", "--no-progress",
                      "--timesteps", "3", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "images evaluated: 3" in text and "T=3" in text
    default_out = ckpt.parent.parent / "eval"  # <run>/eval next to <run>/weights
    data = json.loads((default_out / "map_per_timestep.json").read_text())
    assert [r["t"] for r in data["per_timestep"]] == [1, 2, 3] and data["num_images"] == 3


def test_checkpoint_mode_errors(ckpt: Path, tiny_voc_root: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    tool = _load_tool()
    ann = make_checkpoint(tmp_path / "ann.pt", tiny_voc_root, kind="ann")
    assert tool.main(["--weights", str(ann), "--spikes", "--no-progress"]) == 2
    assert "--spikes needs a spiking model" in capsys.readouterr().err
    other = make_checkpoint(tmp_path / "other.pt", tiny_voc_root, classes=["a", "b"])
    assert tool.main(["--weights", str(other), "--no-progress"]) == 2
    assert "share no class by name" in capsys.readouterr().err
    assert tool.main(["--weights", str(ckpt), "eval.conf_treshold=0.1"]) == 2
    assert "Did you mean 'conf_thresh'" in capsys.readouterr().err
    assert tool.main(["--weights", str(tmp_path / "none.pt")]) == 2
    assert "none.pt: checkpoint not found" in capsys.readouterr().err
    assert tool.main(["--weights", str(ckpt), "--gt-dir", str(tmp_path), "--det-dir", str(tmp_path)]) == 2
    assert "use either --weights" in capsys.readouterr().err
    assert tool.main(["data.root=/x", "--gt-dir", str(tmp_path), "--det-dir", str(tmp_path)]) == 2
    assert "need --weights" in capsys.readouterr().err
