#!/usr/bin/env python3
"""The main job on the embedded default (what `make demo` runs), end to end:

1. generate the synthetic VOC-format dataset (first use only) and train the ANN twin
   (YOLOv4-tiny, the same topology with Conv-BN-LeakyReLU) for --ann-epochs epochs, from scratch
   or from pretrained weights (--ann-init-from, e.g. the Darknet COCO yolov4-tiny.weights);
2. train SPYv4 with FPTT (config configs/spyv4_synthetic.yaml) started from the twin's weights
   (model.init_from) and pulled towards its head outputs at every timestep
   (train.distill_from); --ann-epochs 0 trains SPYv4 from scratch instead;
3. evaluate SPYv4's best checkpoint on the test split: per-class VOC2007 11-point and area AP,
   COCO mAP, spike statistics (firing rates, synaptic operations, energy) and mAP per
   timestep (tools/eval.py);
4. run the demo on test images (tools/demo.py): annotated images + JSON.

Every step is a plain command, printed before it runs, so each can be re-run by hand.

On real photographs (configs/real_raccoon.yaml; data.root: the folder holding RACCOON/):

    python tools/main_job.py --config configs/real_raccoon.yaml --run-dir runs/raccoon \
        --ann-epochs 12 --ann-lr 1e-3 --ann-init-from /path/to/yolov4-tiny.weights data.root=/path/to/realdata
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import _bootstrap  # noqa: F401

from spyolo.cli.train import unique_dir
from spyolo.config import load_config

TOOLS = Path(__file__).resolve().parent
# The ANN-twin stage: the CPU benchmark's recipe for the twin (lr 5e-3, cosine) at twice its 20 epochs;
# its last.pt seeds SPYv4 and teaches it (docs/learning_quality.md, "The two-stage recipe").
ANN_EPOCHS = 40
ANN_LR = 5e-3


def ann_threads(workers: int) -> int:
    """Compute threads of the ANN-twin stage: the cores the data-loader workers leave free.

    The twin's training steps are cheap enough that the loader sets the pace: on 2 cores with one
    worker an epoch takes about 8 s with one compute thread and 9-10 s with two, which take the
    worker's core (the spiking stage is compute-bound and keeps torch's default).
    """
    return max(1, (os.cpu_count() or 1) - max(workers, 0))


def run(cmd: list[str], threads: int | None = None) -> None:
    env = None
    if threads is not None and "OMP_NUM_THREADS" not in os.environ:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    print("\n$ " + ("" if env is None else f"OMP_NUM_THREADS={threads} ")
          + " ".join(shlex.quote(c) for c in cmd), flush=True)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env)
    if r.returncode != 0:
        sys.exit(f"main job: step failed with exit code {r.returncode}: {' '.join(cmd)}")
    print(f"[{time.perf_counter() - t0:.0f} s]", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/spyv4_synthetic.yaml")
    p.add_argument("--run-dir", default="runs/synthetic",
                   help="run folder; made unique (runs/synthetic2, ...) so no earlier run is touched")
    p.add_argument("--ann-epochs", type=int, default=ANN_EPOCHS,
                   help=f"epochs of the ANN-twin stage (default {ANN_EPOCHS}); 0: SPYv4 from scratch, one stage")
    p.add_argument("--ann-lr", type=float, default=ANN_LR, help=f"the ANN twin's learning rate (default {ANN_LR:g})")
    p.add_argument("--ann-init-from", default=None,
                   help="start the ANN twin from these weights (model.init_from: a Darknet .weights file, a "
                        "YOLOv4-tiny state dict or a spyolo checkpoint)")
    p.add_argument("--demo-images", type=int, default=8, help="test images annotated by the demo")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides for training (both stages)")
    args = p.parse_args()
    t_start = time.perf_counter()
    if args.ann_epochs < 0:
        p.error("--ann-epochs must be >= 0")
    if args.ann_init_from and not args.ann_epochs:
        p.error("--ann-init-from needs the ANN-twin stage (--ann-epochs > 0)")
    if args.ann_init_from and not Path(args.ann_init_from).is_file():
        p.error(f"--ann-init-from {args.ann_init_from}: file not found")
    py = sys.executable
    cfg = load_config(args.config, args.overrides)
    run_dir = unique_dir(Path(args.run_dir))
    train = [py, str(TOOLS / "train.py"), "--config", args.config]

    snn_dir, stage = run_dir, []
    if args.ann_epochs:
        ann_dir, snn_dir = run_dir / "ann_twin", run_dir / "spyv4"
        start = [f"model.init_from={args.ann_init_from}"] if args.ann_init_from else []
        run([*train, "--run-dir", str(ann_dir), *args.overrides, "model.kind=ann", "model.readout=last",
             f"train.epochs={args.ann_epochs}", f"train.lr={args.ann_lr:g}", "train.eval_every=0", *start],
            threads=ann_threads(cfg.data.workers))
        teacher = str(ann_dir / "weights" / "last.pt")
        stage = [f"model.init_from={teacher}", f"train.distill_from={teacher}"]
    run([*train, "--run-dir", str(snn_dir), *args.overrides, *stage])
    weights = snn_dir / "weights" / "best.pt"
    eval_dir = run_dir / "eval"
    run([py, str(TOOLS / "eval.py"), "--weights", str(weights), "--split", "test", "--coco", "--spikes",
         "--per-timestep", "--json", str(eval_dir / "metrics.json"), "--plots", str(eval_dir / "pr"),
         "--out", str(eval_dir)])

    # The demo's input: the first test images of the dataset (its first test set entry).
    run([py, str(TOOLS / "demo.py"), "--weights", str(weights), "--source", cfg.data.test_sets[0],
         "--max-images", str(args.demo_images), "--out", str(run_dir / "demo")])
    print(f"\nmain job done in {time.perf_counter() - t_start:.0f} s: weights {weights}, metrics {eval_dir}, "
          f"annotated images {run_dir / 'demo'}")
    summary = twin_summary(eval_dir / "spike_stats.json")
    if summary:
        print(summary)
    return 0


def twin_summary(spike_stats: Path) -> str | None:
    """The closing line: SPYv4's mAP and energy as ratios to the ANN twin's (from ``tools/eval.py
    --spikes``, which evaluates the twin the run distilled from on the same split)."""
    try:
        stats = json.loads(spike_stats.read_text())
    except (OSError, ValueError):
        return None
    mine, twin = stats.get("map_voc07"), stats.get("twin_map_voc07")
    ratio, energy = stats.get("map_ratio_to_twin"), stats.get("energy_ratio_to_twin")
    if None in (mine, twin, energy):
        return None
    share = f"= {ratio:.3f} x" if ratio is not None else "(no ratio: the twin scores 0) against"
    return (f"SPYv4 {100 * mine:.2f}% VOC2007 mAP {share} the ANN twin's {100 * twin:.2f}%, "
            f"at {energy:.3f} x its energy per image")


if __name__ == "__main__":
    sys.exit(main())
