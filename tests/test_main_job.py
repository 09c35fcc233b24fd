"""The main job (`make demo`, tools/main_job.py) end to end at toy size: the ANN-twin stage, SPYv4
started from it and distilled from it, the evaluation and the demo, as the subprocesses they are."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow  # subprocesses; `pytest -m "not slow"` skips them

TOY = ["data.img_size=64", "data.workers=0", "data.synthetic_train=0", "data.synthetic_test=0",
       "train.epochs=1", "train.max_iters_per_epoch=2", "train.batch_size=4", "train.device=cpu",
       "eval.batch_size=8", "eval.max_images=4"]


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _main_job(tmp_path: Path, root: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "tools" / "main_job.py"), "--run-dir", str(tmp_path / "run"),
           "--demo-images", "2", *extra, f"data.root={root}", *TOY]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_main_job_two_stages(tmp_path, tiny_voc_root):
    before = _digest(tiny_voc_root)
    r = _main_job(tmp_path, tiny_voc_root, "--ann-epochs", "1")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = tmp_path / "run"
    assert (run / "ann_twin" / "weights" / "last.pt").is_file()
    # SPYv4 starts from the twin (every synaptic convolution, BN and head loaded) and learns from it
    transfer = (run / "spyv4" / "transfer.txt").read_text()
    assert "ann_twin/weights/last.pt" in transfer and "118 tensors loaded, 0 skipped" in transfer
    with open(run / "spyv4" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and math.isfinite(float(rows[0]["distill"])) and float(rows[0]["distill"]) > 0
    args = (run / "spyv4" / "args.yaml").read_text()
    assert "distill_from:" in args and "ann_twin/weights/last.pt" in args
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert "map_voc07" in json.dumps(metrics)
    assert len(list((run / "demo").glob("*.jpg"))) == 2
    assert "main job done" in r.stdout
    # its last line: SPYv4 against the twin it learned from, in mAP and in energy
    stats = json.loads((run / "eval" / "spike_stats.json").read_text())
    assert stats["twin_weights"].endswith("ann_twin/weights/last.pt") and stats["energy_ratio_to_twin"] > 0
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("SPYv4 ") and "the ANN twin's" in last and "x its energy per image" in last
    assert _digest(tiny_voc_root) == before  # the dataset is the user's: untouched


def test_main_job_scratch(tmp_path, tiny_voc_root):
    r = _main_job(tmp_path, tiny_voc_root, "--ann-epochs", "0")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = tmp_path / "run"
    assert not (run / "ann_twin").exists() and not (run / "transfer.txt").exists()
    assert (run / "weights" / "best.pt").is_file() and (run / "eval" / "metrics.json").is_file()
