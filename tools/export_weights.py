#!/usr/bin/env python3
"""Strip a training checkpoint down to what inference needs (model, config, class names).

    python tools/export_weights.py runs/synthetic/weights/best.pt weights/spyv4_synthetic.pt --half

Drops the optimiser, scheduler, FPTT traces and RNG states (about 4/5 of a training
checkpoint); ``--half`` stores floating-point tensors as float16 (loading casts them back to
float32), halving the file again. The result loads with ``Detector.from_checkpoint`` and
``tools/eval.py`` / ``tools/demo.py``, but cannot be resumed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _bootstrap  # noqa: F401

from spyolo.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

KEEP = ("model", "config", "class_names", "epoch", "best", "history", "spyolo_version")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    p.add_argument("--half", action="store_true", help="store floating-point tensors as float16")
    args = p.parse_args()
    try:
        ckpt = load_checkpoint(args.src)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = {k: ckpt[k] for k in KEEP if k in ckpt}
    if args.half:
        out["model"] = {k: (v.half() if v.is_floating_point() else v) for k, v in out["model"].items()}
    out["exported_from"] = str(args.src)
    save_checkpoint(out, args.dst)
    print(f"wrote {args.dst} ({args.dst.stat().st_size / 2**20:.1f} MiB, from {args.src.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
