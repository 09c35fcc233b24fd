"""Train SPYv4 (FPTT or BPTT) or its ANN twin on a VOC-format dataset.

    spyolo train --config configs/spyv4_synthetic.yaml [section.key=value ...]
    spyolo train --config configs/spyv4_voc.yaml data.root=/data/VOCdevkit
    spyolo train --resume runs/spyv4            # continue an interrupted run exactly
    torchrun --nproc_per_node 2 tools/train.py --config ...   # DistributedDataParallel

(``python tools/train.py ...`` is the same program.)

A new run gets a new folder: ``<train.out_dir>/<train.name>``, or ``--run-dir``, made unique
(``runs/spyv4``, ``runs/spyv42``, ...) so that no earlier run is touched. ``--exist-ok`` uses the
folder as given if it exists but holds no run. ``--resume RUN`` continues the run in RUN with its
own ``args.yaml``; only overrides that leave the computation unchanged are accepted there
(``data.root``, ``train.device``, ``train.log_every``, ``eval.batch_size``): to train on with other
settings, start a new run from its weights with ``model.init_from=RUN/weights/last.pt``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from spyolo.cli.common import command_parser, parse_command_line, run_command
from spyolo.config import Config, config_to_dict, load_config
from spyolo.errors import ConfigError, RunFolderError

__all__ = ["RESUME_OVERRIDABLE", "add_arguments", "build_parser", "main", "run", "run_files", "unique_dir"]

log = logging.getLogger("spyolo.cli.train")

RESUME_OVERRIDABLE = ("data.root", "train.device", "train.log_every", "eval.batch_size")
"""Config keys ``--resume`` accepts as overrides: they change where or how visibly the run
computes, not what it computes."""

RUN_FILES = ("args.yaml", "run.yaml", "results.csv", "weights/last.pt", "weights/best.pt")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config (configs/*.yaml)")
    p.add_argument("overrides", nargs="*", metavar="section.key=value",
                   help="config overrides, e.g. train.epochs=5 model.kind=ann")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from weights/last.pt")
    p.add_argument("--run-dir", help="run folder (default: <train.out_dir>/<train.name>), made unique")
    p.add_argument("--exist-ok", action="store_true",
                   help="use --run-dir (or runs/<name>) as given even if it exists; it must not hold a run")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (log lines only)")


def build_parser() -> argparse.ArgumentParser:
    return command_parser("train", __doc__, add_arguments)


def unique_dir(path: Path) -> Path:
    """``path`` if it does not exist, else the first of ``path2``, ``path3``, ... that does not."""
    if not path.exists():
        return path
    i = 2
    while Path(f"{path}{i}").exists():
        i += 1
    return Path(f"{path}{i}")


def run_files(run_dir: Path) -> list[str]:
    """The files of a training run found in ``run_dir``."""
    return [name for name in RUN_FILES if (run_dir / name).exists()]


def _changed_keys(a: Config, b: Config) -> list[str]:
    da, db = config_to_dict(a), config_to_dict(b)
    return sorted(f"{s}.{k}" for s in da for k in da[s] if da[s][k] != db[s][k])


def _resume_config(run_dir: Path, overrides: list[str]) -> Config:
    args_file = run_dir / "args.yaml"
    if not args_file.is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no args.yaml)")
    if not (run_dir / "weights" / "last.pt").is_file():
        raise ConfigError(f"{run_dir}: no weights/last.pt to resume from (the run saved no epoch)")
    saved = load_config(args_file)
    cfg = load_config(args_file, overrides)
    refused = [k for k in _changed_keys(saved, cfg) if k not in RESUME_OVERRIDABLE]
    if refused:
        raise ConfigError(
            f"--resume {run_dir}: {', '.join(refused)} cannot change on resume (a resumed run continues exactly as "
            f"configured; accepted: {', '.join(RESUME_OVERRIDABLE)}). To train on with other settings, start a new "
            f"run from its weights: model.init_from={run_dir / 'weights' / 'last.pt'}"
        )
    return cfg


def run(args: argparse.Namespace) -> int:
    from spyolo.datasets.synthetic import ensure_synthetic
    from spyolo.train.trainer import Trainer

    if args.resume:
        if args.config or args.run_dir or args.exist_ok:
            raise ConfigError("--resume RUN_DIR takes no --config, --run-dir or --exist-ok "
                              "(the run folder has its config)")
        run_dir = Path(args.resume)
        cfg = _resume_config(run_dir, args.overrides)
    else:
        if not args.config:
            raise ConfigError("--config is required (or --resume RUN_DIR)")
        cfg = load_config(args.config, args.overrides)
        run_dir = Path(args.run_dir) if args.run_dir else Path(cfg.train.out_dir) / cfg.train.name
        if not args.exist_ok:
            run_dir = unique_dir(run_dir)
        elif run_dir.is_dir() and run_files(run_dir):
            raise RunFolderError(
                f"{run_dir}: holds an earlier run ({', '.join(run_files(run_dir))}); continue it with "
                f"--resume {run_dir}, or choose another --run-dir (nothing was changed)"
            )
    ensure_synthetic(cfg.data)  # a synthetic set the config describes is generated first (once)
    trainer = Trainer(cfg, run_dir, resume=bool(args.resume), progress=not args.no_progress)
    try:
        print(
            f"run folder: {run_dir}  model: {cfg.model.kind} width {cfg.model.width:g}  method: {trainer.method}  "
            f"T={cfg.model.timesteps}  device: {trainer.runtime.device}  amp: {trainer.runtime.amp_dtype}  "
            f"train images: {len(trainer.train_set)}",
            flush=True,
        )
        row = trainer.fit()
    finally:
        trainer.close()
    if row:
        print(
            f"done: {run_dir}  best mAP ({cfg.eval.metric}) {100 * trainer.best:.2f}%  "
            f"weights: {run_dir / 'weights' / 'best.pt'}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(run, parse_command_line(build_parser(), argv))


if __name__ == "__main__":
    sys.exit(main())
