"""benchmarks/bench_energy.py: the table and chart from run folders (parsing, ratios, errors)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from benchmarks import bench_energy
from conftest import save_tiny_checkpoint
from spyolo.config import Config, save_config
from spyolo.models import build_model
from spyolo.stats import FiringRateMonitor, SynOpCounter, ann_twin, build_spike_report, count_dense_ops

CLASSES = ["a", "b"]


def _config(**model) -> Config:
    cfg = Config()
    cfg.data.img_size = 64
    cfg.model.width = 0.25
    cfg.model.timesteps = 2
    for key, value in model.items():
        setattr(cfg.model, key, value)
    return cfg


def _run_folder(path: Path, cfg: Config, map_voc07: float, epoch_times: list[float]) -> Path:
    """A run folder as bench_quality leaves it, with the spike statistics of a real evaluation pass."""
    (path / "eval").mkdir(parents=True)
    save_config(cfg, path / "args.yaml")
    save_tiny_checkpoint(path / "weights" / "last.pt", cfg, CLASSES)
    (path / "eval" / "metrics.json").write_text(json.dumps({"map_voc07": map_voc07, "map_area": map_voc07}))
    with (path / "results.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["epoch", "epoch_time_s"])
        writer.writeheader()
        writer.writerows({"epoch": i, "epoch_time_s": t} for i, t in enumerate(epoch_times))
    if cfg.model.kind == "spyv4":
        model = build_model(cfg.model, num_classes=len(CLASSES)).eval()
        with FiringRateMonitor(model) as monitor, SynOpCounter(model) as counter, torch.no_grad():
            model.run(torch.rand(2, 3, 64, 64), cfg.model.timesteps)
            ann = count_dense_ops(ann_twin(model), 64)
            report = build_spike_report(monitor, counter, cfg.model.timesteps, 64, ann.macs,
                                        ann_adds=ann.adds, ann_muls=ann.muls)
        report.write_json(path / "eval" / "spike_stats.json")
    return path


def test_table_and_chart(tmp_path: Path, capsys) -> None:
    ltc = _run_folder(tmp_path / "ltc", _config(tau_mode="ltc"), 0.40, [3.0, 4.0])
    channel = _run_folder(tmp_path / "channel", _config(tau_mode="channel"), 0.30, [2.0])
    ann = _run_folder(tmp_path / "ann", _config(kind="ann"), 0.50, [1.5])
    out = tmp_path / "table"
    assert bench_energy.main([str(ltc), str(channel), str(ann), "--out", str(out), "--title", "T"]) == 0
    data = json.loads((out / "energy_table.json").read_text())
    rows = {r["tau_mode"] or r["kind"]: r for r in data["rows"]}
    assert rows["ltc"]["map_over_ltc"] == 1.0 and abs(rows["channel"]["map_over_ltc"] - 0.75) < 1e-12
    assert rows["ltc"]["train_wall_s"] == 7.0 and rows["ann"]["train_wall_s"] == 1.5
    spikes = json.loads((ltc / "eval" / "spike_stats.json").read_text())
    assert rows["ltc"]["energy_j"] == spikes["totals"]["energy_j"]
    # the ANN row is counted from its config, the same way as the SNN rows' twin
    assert abs(rows["ann"]["energy_j"] - spikes["ann_twin"]["energy_j"]) <= 1e-12 * spikes["ann_twin"]["energy_j"]
    assert rows["ann"]["energy_over_ann"] == 1.0
    # no convolution on the tau path: fewer MACs than the paper's neuron
    assert rows["channel"]["macs"] < rows["ltc"]["macs"] and rows["channel"]["energy_j"] < rows["ltc"]["energy_j"]
    assert (out / "energy_vs_map.png").stat().st_size > 0
    md = (out / "energy_table.md").read_text()
    assert "SPYv4 tau_mode=channel" in md and "ANN twin" in md and md in capsys.readouterr().out


def test_missing_statistics_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    run = _run_folder(tmp_path / "ltc", _config(), 0.4, [1.0])
    (run / "eval" / "spike_stats.json").unlink()
    assert bench_energy.main([str(run), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "spike_stats.json: not found" in err and "--spikes" in err
    assert bench_energy.main([str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "no args.yaml" in capsys.readouterr().err


def _scored(run: Path, quality: float, rng) -> float:
    """Write records of 12 test images where a ``quality`` share of the objects is found; return the mAP."""
    import numpy as np

    from spyolo.eval.report import write_records
    from spyolo.eval.voc import VOCEvaluator

    ev = VOCEvaluator(CLASSES)
    for i in range(12):
        gt = np.array([[10.0, 10.0, 40.0, 40.0], [50.0, 50.0, 90.0, 80.0]])
        ev.add_ground_truth(f"im{i}", gt, np.array([0, 1]))
        found = gt[rng.random(2) < quality]
        x, y = rng.uniform(0, 50, 2)
        det = np.concatenate([found, [[x, y, x + 20, y + 20]]])
        ev.add_detections(f"im{i}", det, rng.random(len(det)), np.array([0] * len(found) + [1]))
    res = ev.compute()
    write_records(ev.records(), run / "eval" / "records.npz")
    (run / "eval" / "metrics.json").write_text(json.dumps({"map_voc07": res["map_voc07"],
                                                           "map_area": res["map_area"]}))
    return res["map_voc07"]


def test_rows_of_several_seeds_give_means_intervals_and_ratios_to_the_twin(tmp_path: Path, capsys) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    folders: dict[str, Path] = {}
    maps: dict[str, list[float]] = {}
    for name, cfg, quality in (("twin", _config(kind="ann"), 0.9), ("cheap", _config(tau_mode="channel"), 0.6)):
        folders[name] = tmp_path / name
        maps[name] = []
        for seed in (0, 1):
            run = _run_folder(folders[name] / f"seed{seed}", cfg, 0.0, [1.0 + seed])
            maps[name].append(_scored(run, quality, rng))
    (tmp_path / "cheap" / "cheap_seed0_train.log").write_text("")  # bench_quality's logs sit beside the seeds
    out = tmp_path / "table"
    assert bench_energy.main([str(folders["cheap"]), str(folders["twin"]), "--out", str(out),
                              "--replicates", "200"]) == 0
    rows = {r["kind"]: r for r in json.loads((out / "energy_table.json").read_text())["rows"]}
    cheap, twin = rows["spyv4"], rows["ann"]
    assert cheap["seeds"] == [0, 1] and cheap["map_voc07_per_seed"] == maps["cheap"]
    assert cheap["map_voc07"] == pytest.approx(np.mean(maps["cheap"]))
    assert cheap["map_voc07_std"] == pytest.approx(np.std(maps["cheap"], ddof=1))
    assert cheap["map_over_ann"] == pytest.approx(np.mean(maps["cheap"]) / np.mean(maps["twin"]))
    lo, hi = cheap["map_voc07_interval"]
    assert lo <= cheap["map_voc07"] <= hi and lo < hi
    rlo, rhi = cheap["map_over_ann_interval"]
    assert rlo <= cheap["map_over_ann"] <= rhi
    assert twin["map_over_ann"] == 1.0 and cheap["train_wall_s"] == pytest.approx(1.5)
    energies = [json.loads((folders["cheap"] / f"seed{s}" / "eval" / "spike_stats.json").read_text())
                ["totals"]["energy_j"] for s in (0, 1)]
    assert cheap["energy_j"] == pytest.approx(np.mean(energies))
    md = (out / "energy_table.md").read_text()
    assert f"[{100 * lo:.2f}, {100 * hi:.2f}]" in md and "0, 1" in md
    assert (out / "energy_vs_map.png").stat().st_size > 0
    # a seed without records: the table still comes, and says why it has no intervals
    (folders["twin"] / "seed1" / "eval" / "records.npz").unlink()
    assert bench_energy.main([str(folders["cheap"]), str(folders["twin"]), "--out", str(tmp_path / "t2"),
                              "--replicates", "200"]) == 0
    err = capsys.readouterr().err
    assert "no intervals" in err and "records.npz" in err
    assert "map_voc07_interval" not in json.loads((tmp_path / "t2" / "energy_table.json").read_text())["rows"][0]


def test_rows_of_other_seeds_are_compared_over_the_seeds_both_have(tmp_path: Path) -> None:
    """A variant of seeds 0, 1 against a twin of seeds 0, 1, 2: each row's mean and interval cover its own
    seeds, the ratio (value and interval) the seeds both have, and the table names them."""
    import numpy as np

    from benchmarks.quality_stats import bootstrap, load_row

    rng = np.random.default_rng(1)
    maps: dict[str, list[float]] = {}
    for name, cfg, quality, seeds in (("twin", _config(kind="ann"), 0.9, (0, 1, 2)),
                                      ("cheap", _config(tau_mode="channel"), 0.6, (0, 1))):
        maps[name] = [_scored(_run_folder(tmp_path / name / f"seed{k}", cfg, 0.0, [1.0]), quality, rng)
                      for k in seeds]
    out = tmp_path / "table"
    assert bench_energy.main([str(tmp_path / "cheap"), str(tmp_path / "twin"), "--out", str(out),
                              "--replicates", "200"]) == 0
    rows = {r["kind"]: r for r in json.loads((out / "energy_table.json").read_text())["rows"]}
    cheap, twin = rows["spyv4"], rows["ann"]
    assert twin["map_voc07"] == pytest.approx(np.mean(maps["twin"]))
    assert cheap["map_over_ann"] == pytest.approx(np.mean(maps["cheap"]) / np.mean(maps["twin"][:2]))
    assert cheap["map_over_ann_seeds"] == [0, 1] and "map_over_ann_seeds" not in twin
    # the twin's interval is that of its own three seeds, not of the two it shares
    own = bootstrap([load_row(str(tmp_path / "twin"))], 200)[0][0]
    assert twin["map_voc07_interval"] == pytest.approx(list(np.percentile(own, [2.5, 97.5])))
    lo, hi = cheap["map_over_ann_interval"]
    assert lo <= cheap["map_over_ann"] <= hi
    assert "(seeds 0, 1)" in (out / "energy_table.md").read_text()
