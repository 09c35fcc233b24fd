#!/usr/bin/env python3
"""Train SPYv4 (FPTT or BPTT) or its ANN twin on a VOC-format dataset.

    python tools/train.py --config configs/spyv4_synthetic.yaml [section.key=value ...]
    python tools/train.py --config configs/spyv4_voc.yaml data.root=/data/VOCdevkit
    python tools/train.py --resume runs/spyv4            # continue an interrupted run
    torchrun --nproc_per_node 2 tools/train.py --config ...   # DistributedDataParallel
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _bootstrap  # noqa: F401  (repo root on sys.path)

from spyolo.config import ConfigError, load_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML config (configs/*.yaml)")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. train.epochs=5 model.kind=ann")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from weights/last.pt")
    p.add_argument("--run-dir", help="run folder (default: <train.out_dir>/<train.name>, made unique)")
    p.add_argument("--exist-ok", action="store_true", help="reuse --run-dir / runs/<name> even if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (log lines only)")
    return p


def unique_dir(path: Path) -> Path:
    if not path.exists():
        return path
    i = 2
    while Path(f"{path}{i}").exists():
        i += 1
    return Path(f"{path}{i}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from spyolo.data.voc import DatasetError
    from spyolo.train.checkpoint import CheckpointError
    from spyolo.train.engine import Trainer, TrainingDiverged

    try:
        if args.resume:
            run_dir = Path(args.resume)
            if not (run_dir / "args.yaml").is_file():
                raise ConfigError(f"{run_dir}: not a run folder (no args.yaml)")
            cfg = load_config(run_dir / "args.yaml", args.overrides)
        else:
            if not args.config:
                raise ConfigError("--config is required (or --resume RUN_DIR)")
            cfg = load_config(args.config, args.overrides)
            run_dir = Path(args.run_dir) if args.run_dir else Path(cfg.train.out_dir) / cfg.train.name
            if not args.exist_ok:
                run_dir = unique_dir(run_dir)
        trainer = Trainer(cfg, run_dir, resume=bool(args.resume), progress=not args.no_progress)
        try:
            print(
                f"run folder: {run_dir}  model: {cfg.model.kind} width {cfg.model.width}  "
                f"method: {trainer.method}  T={cfg.model.timesteps}  device: {trainer.runtime.device}  "
                f"amp: {trainer.runtime.amp_dtype}  train images: {len(trainer.train_set)}"
            )
            row = trainer.fit()
        finally:
            trainer.close()
    except (ConfigError, DatasetError, CheckpointError, TrainingDiverged, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if row:
        print(
            f"done: {run_dir}  best mAP ({cfg.eval.metric}) {100 * trainer.best:.2f}%  "
            f"weights: {run_dir / 'weights' / 'best.pt'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
