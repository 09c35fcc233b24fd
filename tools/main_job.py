#!/usr/bin/env python3
"""The main job on the embedded default (what `make demo` runs), end to end:

1. generate the synthetic VOC-format dataset (first use only) and train SPYv4 with FPTT
   (tools/train.py, config configs/spyv4_synthetic.yaml);
2. evaluate the best checkpoint on the test split: per-class VOC2007 11-point and area AP,
   COCO mAP, spike statistics (firing rates, synaptic operations, energy) and mAP per
   timestep (tools/eval.py);
3. run the demo on test images (tools/demo.py): annotated images + JSON.

Every step is a plain command, printed before it runs, so each can be re-run by hand.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

import _bootstrap  # noqa: F401

from spyolo.cli.train import unique_dir
from spyolo.config import load_config
from spyolo.utils.io import atomic_write_bytes

TOOLS = Path(__file__).resolve().parent


def run(cmd: list[str]) -> None:
    print("\n$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    t0 = time.perf_counter()
    r = subprocess.run(cmd)
    if r.returncode != 0:
        sys.exit(f"main job: step failed with exit code {r.returncode}: {' '.join(cmd)}")
    print(f"[{time.perf_counter() - t0:.0f} s]", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/spyv4_synthetic.yaml")
    p.add_argument("--run-dir", default="runs/synthetic",
                   help="run folder; made unique (runs/synthetic2, ...) so no earlier run is touched")
    p.add_argument("--demo-images", type=int, default=8, help="test images annotated by the demo")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides for training")
    args = p.parse_args()
    py = sys.executable
    cfg = load_config(args.config, args.overrides)
    run_dir = unique_dir(Path(args.run_dir))

    run([py, str(TOOLS / "train.py"), "--config", args.config, "--run-dir", str(run_dir), *args.overrides])
    weights = run_dir / "weights" / "best.pt"
    eval_dir = run_dir / "eval"
    run([py, str(TOOLS / "eval.py"), "--weights", str(weights), "--split", "test", "--coco", "--spikes",
         "--per-timestep", "--json", str(eval_dir / "metrics.json"), "--plots", str(eval_dir / "pr"),
         "--out", str(eval_dir)])

    # The demo's input: the first test images of the dataset, copied into one folder.
    year, split = cfg.data.test_sets[0].split(":", 1)
    year_dir = Path(cfg.data.root) / year
    ids = [i.strip() for i in (year_dir / "ImageSets" / "Main" / f"{split}.txt").read_text().split() if i.strip()]
    src = run_dir / "demo_inputs"
    for image_id in ids[: args.demo_images]:
        atomic_write_bytes(src / f"{image_id}.jpg", (year_dir / "JPEGImages" / f"{image_id}.jpg").read_bytes())
    run([py, str(TOOLS / "demo.py"), "--weights", str(weights), "--source", str(src), "--out", str(run_dir / "demo")])
    print(f"\nmain job done: weights {weights}, metrics {eval_dir}, annotated images {run_dir / 'demo'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
