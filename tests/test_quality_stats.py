"""benchmarks/quality_stats.py on rows of different seeds: each row's mean and interval cover its own
seeds, its ratio and difference (value and interval) the seeds it shares with the other row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.quality_stats import bootstrap, load_row, markdown, statistics


def _seed(folder: Path, quality: float, rng: np.random.Generator) -> float:
    from spyolo.eval.report import write_records
    from spyolo.eval.voc import VOCEvaluator

    ev = VOCEvaluator(["a", "b"])
    for i in range(10):
        gt = np.array([[10.0, 10.0, 40.0, 40.0], [50.0, 50.0, 90.0, 80.0]])
        ev.add_ground_truth(f"im{i}", gt, np.array([0, 1]))
        found = gt[rng.random(2) < quality]
        det = np.concatenate([found, [[0.0, 0.0, 20.0, 20.0]]])
        ev.add_detections(f"im{i}", det, rng.random(len(det)), np.array([0] * len(found) + [1]))
    res = ev.compute()
    (folder / "eval").mkdir(parents=True)
    write_records(ev.records(), folder / "eval" / "records.npz")
    (folder / "eval" / "metrics.json").write_text(json.dumps({"map_voc07": res["map_voc07"],
                                                              "map_area": res["map_area"]}))
    return res["map_voc07"]


def test_rows_of_other_seeds(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    maps = {"twin": [_seed(tmp_path / "twin" / f"seed{k}", 0.9, rng) for k in (0, 1, 2)],
            "snn": [_seed(tmp_path / "snn" / f"seed{k}", 0.6, rng) for k in (0, 1)]}
    twin, snn = load_row(str(tmp_path / "twin")), load_row(str(tmp_path / "snn"))
    stats = statistics([twin, snn], reference="twin", compare="twin", replicates=200)
    rows = {r["run"]: r for r in stats["rows"]}
    assert not stats["same_seeds"]
    assert rows["twin"]["map_voc07_mean"] == pytest.approx(np.mean(maps["twin"]))
    own = bootstrap([twin], 200)[0][0]
    assert rows["twin"]["map_voc07_interval"] == pytest.approx(list(np.percentile(own, [2.5, 97.5])))
    s = rows["snn"]
    assert s["ratio_seeds"] == [0, 1] and s["difference_seeds"] == [0, 1]
    assert s["ratio_to_reference"] == pytest.approx(np.mean(maps["snn"]) / np.mean(maps["twin"][:2]))
    assert s["difference_to_compare"] == pytest.approx(np.mean(maps["snn"]) - np.mean(maps["twin"][:2]))
    pair = bootstrap([snn, twin], 200)[0]
    assert s["ratio_interval"] == pytest.approx(list(np.percentile(pair[0] / pair[1], [2.5, 97.5])))
    assert s["difference_interval"] == pytest.approx(list(np.percentile(pair[0] - pair[1], [2.5, 97.5])))
    text = markdown(stats)
    assert "different seeds" in text and "- snn / twin: seeds 0, 1" in text
    # rows of the same seeds keep one paired bootstrap for all
    same = statistics([load_row(str(tmp_path / "twin")), load_row(str(tmp_path / "twin") + ":again")],
                      reference="twin", replicates=200)
    assert same["same_seeds"] and "ratio_seeds" not in same["rows"][1]
    assert same["rows"][1]["ratio_interval"] == [1.0, 1.0]
