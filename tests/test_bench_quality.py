"""benchmarks/bench_quality.py end to end on a tiny synthetic set: two runs side by side, one table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.runner import run

pytestmark = pytest.mark.slow  # subprocesses; `pytest -m "not slow"` skips them

ROOT = Path(__file__).resolve().parents[1]

TINY_CONFIG = """
data:
  root: {root}
  train_sets: [SYNTH:trainval]
  test_sets: [SYNTH:test]
  img_size: 64
  synthetic_train: 6
  synthetic_test: 3
  synthetic_seed: 2
  synthetic_min_side: 64
  synthetic_max_side: 80
  synthetic_spec:
    objects_per_image: [1, 2]
    min_object_size: 16
    distractors: [0, 1]
  workers: 0
model:
  width: 0.125
  timesteps: 2
  threshold: 0.5
  surrogate_sigma: 1.2
  surrogate_height: 0.0
  surrogate_gamma: 1.0
train:
  name: tiny
  epochs: 1
  batch_size: 3
  max_iters_per_epoch: 1
  device: cpu
eval:
  batch_size: 3
"""


def test_bench_quality_two_runs_side_by_side(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG.format(root=tmp_path / "data"))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "benchmarks.bench_quality", "--config", str(config), "--out", str(out),
           "--runs", "spyv4_fptt,spyv4_fptt_transfer_distill_mean,ann_twin", "--jobs", "2"]
    r = run(cmd, timeout=600, capture=True, env={**os.environ, "OMP_NUM_THREADS": "1"})  # no run outlives a timeout
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    # the data was generated once, by bench_quality itself, before the runs started
    assert (r.stdout + r.stderr).count("generated a synthetic VOC-style dataset") == 1
    table = json.loads((out / "table.json").read_text())
    assert [row["run"] for row in table["rows"]] == ["spyv4_fptt", "spyv4_fptt_transfer_distill_mean", "ann_twin"]
    fptt, recipe, ann = table["rows"]
    for row in (ann, fptt):
        assert 0.0 <= row["map_voc07"] <= 1.0 and 0.0 <= row["map_area"] <= 1.0
        assert row["epochs"] == 1 and row["train_wall_s"] > 0 and row["peak_mem_mib"] > 0
    assert 0.0 <= fptt["firing_rate"] <= 1.0 and fptt["energy_uj"] > 0 and "firing_rate" not in ann
    assert table["jobs"] == 2 and table["seeds"] == {"data": 2, "train": 0}
    assert table["targets"]["fptt_over_bptt"] is None  # no BPTT run asked for
    # the recipe run started from, and distilled from, the twin trained first in the same invocation
    teacher = str(out / "ann_twin" / "weights" / "last.pt")
    assert any(f"model.init_from={teacher}" in c and f"train.distill_from={teacher}" in c for c in table["commands"])
    assert "tensors loaded" in (out / "spyv4_fptt_transfer_distill_mean" / "transfer.txt").read_text()
    assert recipe["final_distill"] > 0
    assert table["targets"]["best_fptt_run"] in ("spyv4_fptt", "spyv4_fptt_transfer_distill_mean")
    assert isinstance(table["targets"]["ann_in_band"], bool)
    md = (out / "table.md").read_text()
    assert "| ann_twin |" in md and "| spyv4_fptt |" in md and "2 at a time" in md
    assert any("train.py" in c and "model.kind=ann" in c for c in table["commands"])
    assert any("eval.py" in c and "--spikes" in c for c in table["commands"])

    bad = subprocess.run(cmd[:-4] + ["--runs", "spyv4_nonsense"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert bad.returncode == 2 and "unknown run 'spyv4_nonsense'" in bad.stderr


def test_bench_quality_real_photo_rows_from_pretrained_weights(tmp_path: Path) -> None:
    """The real-photo rows: the twin starts from --pretrained, the SPYv4 rows from that run's last.pt."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import save_tiny_checkpoint
    from spyolo.config import load_config

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG.format(root=tmp_path / "data"))
    pretrained = save_tiny_checkpoint(tmp_path / "pretrained.pt", load_config(config, ["model.kind=ann"]),
                                      ["other"] * 1)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "benchmarks.bench_quality", "--config", str(config), "--out", str(out),
           "--runs", "real_ann_pretrained,real_spyv4_fptt_recipe", "--teacher-run", "real_ann_pretrained"]
    missing = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert missing.returncode != 0 and "need --pretrained" in missing.stderr
    r = run([*cmd, "--pretrained", str(pretrained)], timeout=600, capture=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    table = json.loads((out / "table.json").read_text())
    ann, snn = table["rows"]
    assert "firing_rate" not in ann and 0.0 <= snn["firing_rate"] <= 1.0
    assert any(f"model.init_from={pretrained}" in c for c in table["commands"])
    teacher = str(out / "real_ann_pretrained" / "weights" / "last.pt")
    assert any(f"model.init_from={teacher}" in c and f"train.distill_from={teacher}" in c for c in table["commands"])
    assert table["targets"]["reference_run"] == "real_ann_pretrained"
    assert table["targets"]["best_fptt_run"] == "real_spyv4_fptt_recipe"
    # the pretrained source names another class: its heads gave their box and objectness channels
    transfer = (out / "real_ann_pretrained" / "transfer.txt").read_text()
    assert "0 skipped" in transfer and "box and objectness channels of each anchor slot were copied" in transfer


def test_bench_quality_seeds_give_means_intervals_and_paired_differences(tmp_path: Path) -> None:
    """--seeds: every run once per seed (seed k's student learns from seed k's twin), means and intervals."""
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG.format(root=tmp_path / "data"))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "benchmarks.bench_quality", "--config", str(config), "--out", str(out),
           "--runs", "ann_twin,spyv4_fptt_transfer_distill_mean,spyv4_fptt_transfer_distill", "--seeds", "0,1",
           "--compare", "spyv4_fptt_transfer_distill_mean", "--jobs", "2", "eval.train_images=3"]
    r = run(cmd, timeout=900, capture=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    table = json.loads((out / "table.json").read_text())
    assert table["seeds"]["train"] == [0, 1]
    for seed in (0, 1):
        teacher = str(out / "ann_twin" / f"seed{seed}" / "weights" / "last.pt")
        assert any(f"train.distill_from={teacher}" in c and f"train.seed={seed}" in c for c in table["commands"])
        assert (out / "spyv4_fptt_transfer_distill" / f"seed{seed}" / "eval" / "records.npz").is_file()
    stats = {row["run"]: row for row in table["stats"]["rows"]}
    recipe = stats["spyv4_fptt_transfer_distill_mean"]
    assert len(recipe["map_voc07"]) == 2 and len(recipe["train_map_voc07"]) == 2
    lo, hi = recipe["map_voc07_interval"]
    assert 0.0 <= lo <= hi <= 1.0
    assert recipe["difference_to_compare"] == 0.0 and recipe["difference_interval"] == [0.0, 0.0]
    twin = stats["ann_twin"]
    assert twin["ratio_to_reference"] == (1.0 if twin["map_voc07_mean"] > 0 else None)  # 1-iteration runs may score 0
    other = stats["spyv4_fptt_transfer_distill"]
    assert other["difference_to_compare"] == pytest.approx(
        sum(other["map_voc07"]) / 2 - sum(recipe["map_voc07"]) / 2)
    assert (out / "stats.png").is_file() and "95% interval" in (out / "stats.md").read_text()
    assert "Means over the seeds 0, 1" in (out / "table.md").read_text()
    # a later invocation's students learn from that twin of their own seed ('{seed}' in --teacher)
    later = tmp_path / "later"
    r3 = run([sys.executable, "-m", "benchmarks.bench_quality", "--config", str(config), "--out", str(later),
              "--runs", "spyv4_fptt_transfer_distill", "--seeds", "0,1",
              "--teacher", str(out / "ann_twin" / "seed{seed}" / "weights" / "last.pt")],
             timeout=900, capture=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r3.returncode == 0, r3.stdout[-2000:] + r3.stderr[-2000:]
    later_cmds = json.loads((later / "table.json").read_text())["commands"]
    for seed in (0, 1):
        teacher = str(out / "ann_twin" / f"seed{seed}" / "weights" / "last.pt")
        assert any(f"train.distill_from={teacher}" in c and f"train.seed={seed}" in c for c in later_cmds)
    # the same table from the run folders alone, as for rows trained in separate invocations
    again = tmp_path / "again"
    r2 = run([sys.executable, "-m", "benchmarks.quality_stats", str(out / "ann_twin"),
              f"{out / 'spyv4_fptt_transfer_distill_mean'}:recipe", "--reference", "ann_twin", "--compare", "recipe",
              "--out", str(again)], timeout=300, capture=True)
    assert r2.returncode == 0, r2.stderr
    rows = {row["run"]: row for row in json.loads((again / "stats.json").read_text())["rows"]}
    assert rows["recipe"]["map_voc07"] == recipe["map_voc07"]
    assert rows["recipe"].get("ratio_interval") == recipe.get("ratio_interval")
    assert rows["recipe"]["difference_interval"] == [0.0, 0.0]
    # an earlier table is never replaced without --force
    before = (again / "stats.json").read_bytes()
    r4 = run([sys.executable, "-m", "benchmarks.quality_stats", str(out / "ann_twin"), "--out", str(again)],
             timeout=300, capture=True)
    assert r4.returncode == 2 and "already holds stats.json" in r4.stderr and "--force" in r4.stderr, r4.stderr
    assert (again / "stats.json").read_bytes() == before


# The run definitions as benchmarks/bench_quality.py held them (Python lists of overrides) before
# they became configs/quality_runs/*.yaml: the expected values of that migration.
_PAPER = [
    "model.threshold=1.0", "model.surrogate_sigma=0.3", "model.surrogate_height=0.15", "model.surrogate_gamma=0.5"
]
_FPTT = ["model.kind=spyv4", "train.method=fptt"]
_TRANSFER = ["model.init_from={teacher}", "train.lr=2e-3"]
_DISTILL = ["train.distill_from={teacher}"]
_MEAN = ["model.readout=mean"]
_PRESETS_BEFORE = {
    "baseline": {
        "spyv4_fptt": _FPTT,
        "spyv4_bptt": ["model.kind=spyv4", "train.method=bptt"],
        "ann_twin": ["model.kind=ann"],
    },
    "ablations": {
        "spyv4_fptt_noavg": [*_FPTT, "train.reset_to_average=never"],
        "spyv4_fptt_linear": [*_FPTT, "train.step_weighting=linear"],
        "spyv4_fptt_release_alpha": [*_FPTT, "train.fptt_alpha_reg=0.1"],
        "spyv4_fptt_alpha01": [*_FPTT, "train.fptt_alpha=0.1"],
        "spyv4_fptt_alpha05": [*_FPTT, "train.fptt_alpha=0.5"],
        "spyv4_fptt_update2": [*_FPTT, "train.update_every=2"],
        "spyv4_fptt_paper_neuron": [*_FPTT, *_PAPER],
    },
    "recipe": {
        "spyv4_fptt_mean": [*_FPTT, *_MEAN],
        "spyv4_fptt_transfer": [*_FPTT, *_TRANSFER],
        "spyv4_fptt_distill": [*_FPTT, *_DISTILL],
        "spyv4_fptt_transfer_distill": [*_FPTT, *_TRANSFER, *_DISTILL],
        "spyv4_fptt_transfer_distill_mean": [*_FPTT, *_TRANSFER, *_DISTILL, *_MEAN],
        "spyv4_fptt_equal_time": [*_FPTT, *_TRANSFER, *_DISTILL, *_MEAN, "train.epochs=17"],
        "spyv4_fptt_paper_transfer": [*_FPTT, *_PAPER, *_TRANSFER],
        "spyv4_fptt_paper_distill": [*_FPTT, *_PAPER, *_DISTILL],
        "spyv4_fptt_paper_transfer_distill": [*_FPTT, *_PAPER, *_TRANSFER, *_DISTILL],
        "spyv4_fptt_paper_transfer_distill_mean": [*_FPTT, *_PAPER, *_TRANSFER, *_DISTILL, *_MEAN],
    },
    "real": {
        "real_ann_scratch": ["model.kind=ann", "train.lr=1e-3"],
        "real_ann_pretrained": ["model.kind=ann", "train.lr=1e-3", "model.init_from={pretrained}"],
        "real_spyv4_fptt_scratch": [*_FPTT, "model.readout=last"],
        "real_spyv4_fptt_paper_recipe": [*_FPTT, *_PAPER, "train.fptt_alpha=0.5", "train.fptt_alpha_reg=0.1",
                                         "model.input_dropout=0.1", "model.readout=last", "model.init_from={teacher}"],
        "real_spyv4_fptt_recipe": [*_FPTT, "model.init_from={teacher}", *_DISTILL, *_MEAN],
        "real_spyv4_fptt_recipe_heads": [*_FPTT, "model.init_from={teacher}", *_DISTILL, *_MEAN,
                                         "train.distill_feature_weight=0.0"],
        "real_spyv4_bptt_recipe": ["model.kind=spyv4", "train.method=bptt", "model.init_from={teacher}", *_DISTILL,
                                   *_MEAN],
        "real_spyv4_fptt_recipe_lowpower": [*_FPTT, "model.init_from={teacher}", *_DISTILL, *_MEAN,
                                            "model.tau_mode=depthwise", "model.tau_mode_layers={conv1: spike}"],
        "real_spyv4_fptt_recipe_lowpower_energy": [*_FPTT, "model.init_from={teacher}", *_DISTILL, *_MEAN,
                                                   "model.tau_mode=depthwise", "model.tau_mode_layers={conv1: spike}",
                                                   "train.energy_weight=10.0"],
    },
}


def _parsed(overrides: list[str]) -> dict:
    from spyolo.config import parse_yaml

    return {item.split("=", 1)[0]: parse_yaml(item.split("=", 1)[1]) for item in overrides}


@pytest.mark.parametrize("config", ["configs/bench_synthetic_cpu.yaml", "configs/real_raccoon.yaml"])
def test_run_files_give_the_configs_the_python_definitions_gave(config: str) -> None:
    from benchmarks.bench_quality import load_runs, overlay_overrides
    from spyolo.config import config_to_dict, load_config

    presets = load_runs()
    assert {p: list(runs) for p, runs in presets.items()} == {p: list(r) for p, r in _PRESETS_BEFORE.items()}
    teacher, pretrained = "/runs/q/ann twin/weights/last.pt", "/w/yolov4-tiny.weights"
    for preset, runs in _PRESETS_BEFORE.items():
        for name, before in runs.items():
            before = [o.replace("{teacher}", teacher).replace("{pretrained}", pretrained) for o in before]
            now = overlay_overrides(presets[preset][name], teacher, pretrained)
            # the same keys set, to values equal once the config has typed them (YAML reads 2e-3 as a string)
            assert set(_parsed(now)) == set(_parsed(before)), name
            resolved = config_to_dict(load_config(ROOT / config, now))
            assert resolved == config_to_dict(load_config(ROOT / config, before)), name


def test_runs_selection_presets_and_file_errors(tmp_path: Path) -> None:
    from benchmarks.bench_quality import PRESETS, RunsError, load_runs, select_runs

    presets = load_runs()
    assert select_runs("real", presets) == list(_PRESETS_BEFORE["real"])
    assert select_runs("ann_twin,recipe,ann_twin", presets) == ["ann_twin", *_PRESETS_BEFORE["recipe"]]
    with pytest.raises(RunsError, match="unknown run 'spyv4_nonsense'"):
        select_runs("spyv4_fptt,spyv4_nonsense", presets)
    for preset in PRESETS:
        (tmp_path / f"{preset}.yaml").write_text((ROOT / "configs" / "quality_runs" / f"{preset}.yaml").read_text())
    (tmp_path / "ablations.yaml").write_text("spyv4_fptt_x:\n  train: {metod: fptt}\n")
    with pytest.raises(RunsError, match=r"ablations\.yaml: run 'spyv4_fptt_x': .*unknown key 'train\.metod'"):
        load_runs(tmp_path)
    (tmp_path / "ablations.yaml").write_text("spyv4_fptt:\n  train: {method: bptt}\n")
    with pytest.raises(RunsError, match=r"ablations\.yaml: run 'spyv4_fptt' is also defined in .*baseline\.yaml"):
        load_runs(tmp_path)
    (tmp_path / "ablations.yaml").write_text("- a\n- b\n")
    with pytest.raises(RunsError, match="expected a mapping of run name"):
        load_runs(tmp_path)


def test_the_low_power_row_is_the_low_power_recipe() -> None:
    """The benchmark's low-power row sets the model values configs/real_recipe_lowpower.yaml sets."""
    from benchmarks.bench_quality import load_runs
    from spyolo.config import load_config

    preset = load_config(ROOT / "configs" / "real_recipe_lowpower.yaml")
    row = load_runs()["real"]["real_spyv4_fptt_recipe_lowpower"]["model"]
    assert (row["tau_mode"], row["tau_mode_layers"]) == (preset.model.tau_mode, preset.model.tau_mode_layers)
    assert load_config(ROOT / "configs" / "real_recipe.yaml").train == preset.train.__class__(
        **{**vars(preset.train), "name": "real"})


def test_quality_stats_names_a_corrupt_run_file_in_one_line(tmp_path: Path) -> None:
    """A cut records file, then an unreadable metrics file: one error line naming the file, exit 2, nothing written."""
    from spyolo.eval.report import read_records, write_records

    seed = tmp_path / "row" / "seed0"
    (seed / "eval").mkdir(parents=True)
    (seed / "eval" / "metrics.json").write_text(json.dumps({"map_voc07": 0.5, "map_area": 0.5}))
    records = seed / "eval" / "records.npz"
    write_records({"class_names": ["a"], "image_ids": ["x"], "iou_threshold": 0.5,
                   "gt_image": np.zeros(1, np.int64), "gt_boxes": np.zeros((1, 4), np.float32)}, records)
    assert read_records(records)["image_ids"] == ["x"]
    records.write_bytes(records.read_bytes()[:60])
    out = tmp_path / "stats"
    cmd = [sys.executable, "-m", "benchmarks.quality_stats", str(tmp_path / "row"), "--out", str(out)]
    for broken, fix in ((records, None), (seed / "eval" / "metrics.json", '{"map_voc07": ')):
        if fix is not None:
            records.unlink()
            broken.write_text(fix)
        r = run(cmd, timeout=120, capture=True)
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip().splitlines() == [r.stderr.strip()] and str(broken) in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and not out.exists()
