"""What a run writes besides its checkpoints: the config, the run record, results and plots.

A run folder ``runs/<name>/`` holds

* ``args.yaml``: the full config the run trains with;
* ``run.yaml``: the run record, one entry per start (the first and every resume):
  spyolo, torch, CUDA and Python versions, the git commit of the code (when it is a git
  checkout), the device, the host and the command line;
* ``results.csv``: one row per epoch (:data:`CSV_FIELDS`), rewritten atomically from the
  run's history after each epoch's checkpoint, so it never holds an epoch the checkpoint
  does not;
* ``results.png``: loss parts, mAP and firing rate per epoch (:func:`spyolo.eval.plots.plot_results`);
* ``transfer.txt``: what ``model.init_from`` loaded (runs started from trained weights);
* ``val_batch_pred.jpg``: the first test images with the model's detections (``eval.demo_conf``),
  redrawn at every evaluation;
* TensorBoard events (``events.out.tfevents.*``): the same scalars, and at every evaluation the
  mAP at every timestep (``map_voc07_at_timestep/t<k>`` and a ``map_per_timestep`` figure) and the
  firing rate of every LTC layer (``firing_rate/<layer>``).

Every file is written through :mod:`spyolo.utils.io` (atomically). :class:`RunFolder` creates the
folder and knows what one start of the run created in it, so that a start that fails before its
first checkpoint leaves nothing behind (and never removes anything older).
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import logging
import math
import platform
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from spyolo.config import Config, save_config
from spyolo.errors import RunFolderError
from spyolo.utils.io import atomic_write_image, atomic_write_text, remove_stale_temps, temp_prefix
from spyolo.utils.runtime import Runtime

__all__ = ["CSV_FIELDS", "RUN_FOLDER_FILES", "RunFolder", "RunLog", "WEIGHT_FILES", "git_commit", "run_record"]

log = logging.getLogger(__name__)

CSV_FIELDS = [
    "epoch", "iterations", "lr", "loss", "box", "obj", "cls", "distill", "spike_energy", "firing_rate",
    "map_voc07", "map_area", "train_map_voc07", "train_map_area", "epoch_time_s", "images_per_s", "peak_mem_mib",
]
"""Columns of ``results.csv``."""


RUN_FOLDER_FILES = ("args.yaml", "run.yaml", "results.csv", "results.png", "transfer.txt", "val_batch_pred.jpg")
"""What a run writes in its folder besides TensorBoard's ``events.out.tfevents.*`` and ``weights/``."""
WEIGHT_FILES = ("last.pt", "best.pt")
"""What a run writes in ``weights/``."""


class RunFolder:
    """A run folder (``run_dir`` and its ``weights/``) and what one start of the run created there.

    :meth:`prepare` creates both folders (and any missing parent) and checks that they are
    writable, before anything is trained; :meth:`discard` removes what this start created: the
    files of a run it wrote (new since :meth:`prepare`) and then the folders it made, if empty.
    Nothing that was there before is touched.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.weights_dir = self.run_dir / "weights"
        self._made: list[Path] = []
        self._existing: set[Path] = set()

    def prepare(self) -> None:
        """Create the folders; fail now, not after an epoch, if they cannot hold a run.

        Raises:
            RunFolderError: a file stands where a folder should be, or a folder is not writable.
        """
        for folder in (self.run_dir, self.weights_dir):
            if folder.exists() and not folder.is_dir():
                raise RunFolderError(f"{folder}: a file stands where the run folder should be; "
                                     f"choose another run folder")
        missing: list[Path] = []
        for folder in (self.weights_dir, self.run_dir, *self.run_dir.parents):
            if folder.exists():
                break
            missing.append(folder)
        self._existing = {entry for folder in (self.run_dir, self.weights_dir) if folder.is_dir()
                          for entry in folder.iterdir()}
        self._made = missing  # deepest first
        for folder in (self.run_dir, self.weights_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                probe = folder / ".spyolo_write_test"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as exc:
                self.discard()
                raise RunFolderError(f"{folder}: cannot write to the run folder ({exc.strerror or exc})") from None
        for name in WEIGHT_FILES:
            for stale in remove_stale_temps(self.weights_dir / name):
                log.info("removed %s, left by an interrupted save", stale)

    def _written_here(self, entry: Path) -> bool:
        names = WEIGHT_FILES if entry.parent == self.weights_dir else RUN_FOLDER_FILES
        name = entry.name
        if name in names or (entry.parent == self.run_dir and name.startswith("events.out.tfevents.")):
            return True
        return name.endswith(".tmp") and any(name.startswith(temp_prefix(n)) for n in names)

    def discard(self) -> None:
        """Remove what this start created (see the class docstring)."""
        for folder in (self.weights_dir, self.run_dir):
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                if (entry not in self._existing and entry.is_file() and not entry.is_symlink()
                        and self._written_here(entry)):
                    entry.unlink(missing_ok=True)
        for folder in self._made:
            if not folder.is_dir():
                continue
            try:
                folder.rmdir()
            except OSError:
                break
        self._made = []


def git_commit(path: str | Path | None = None) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the git checkout holding ``path`` (default: spyolo's code), or None."""
    where = Path(path) if path is not None else Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        status = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def run_record(runtime: Runtime, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Where, with what and how this process runs: versions, git commit, device, host, command line."""
    import spyolo

    dev = runtime.device
    return {
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "spyolo": spyolo.__version__,
        "torch": str(torch.__version__),
        "cuda": None if torch.version.cuda is None else str(torch.version.cuda),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "amp": str(runtime.amp_dtype).replace("torch.", "") if runtime.amp_dtype else "off",
        "threads": torch.get_num_threads(),
        "git": git_commit(),
        "command": [sys.executable, *(sys.argv if argv is None else argv)],
    }


def _csv_text(history: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


class RunLog:
    """Writes a run folder's config, record, results table, plot and TensorBoard events.

    Args:
        run_dir: the run folder (must exist and be writable).
        tensorboard: also write TensorBoard events.
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir))

    def write_config(self, cfg: Config) -> Path:
        """``args.yaml``: the full config."""
        return save_config(cfg, self.run_dir / "args.yaml")

    def add_start(self, record: Mapping[str, Any], resumed_at_epoch: int | None = None) -> Path:
        """Append the record of this start of the run to ``run.yaml`` (a fresh run starts a new file)."""
        path = self.run_dir / "run.yaml"
        starts: list = []
        if resumed_at_epoch is not None and path.is_file():
            try:
                starts = list((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("starts", []))
            except (OSError, yaml.YAMLError, AttributeError):
                log.warning("%s: unreadable, starting a new run record", path)
                starts = []
        entry = dict(record)
        entry["resumed_at_epoch"] = resumed_at_epoch
        starts.append(entry)
        return atomic_write_text(path, yaml.safe_dump({"starts": starts}, sort_keys=False))

    def write_text(self, name: str, text: str) -> Path:
        """A text file of the run folder (e.g. ``transfer.txt``)."""
        return atomic_write_text(self.run_dir / name, text)

    def write_results(self, history: Sequence[Mapping[str, Any]], title: str = "") -> None:
        """Rewrite ``results.csv`` and ``results.png`` from ``history``; log its last row to TensorBoard."""
        atomic_write_text(self.run_dir / "results.csv", _csv_text(history))
        if not history:
            return
        from spyolo.eval.plots import plot_results

        plot_results(history, self.run_dir / "results.png", title=title)
        row = history[-1]
        if self._tb is not None:
            for k, v in row.items():
                if k != "epoch" and isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(f"val/{k}" if k.startswith("map") else f"train/{k}", v, row["epoch"])
            self._tb.flush()

    def write_image(self, name: str, image_bgr: Any) -> Path:
        """An image of the run folder (e.g. ``val_batch_pred.jpg``), atomically."""
        return atomic_write_image(self.run_dir / name, image_bgr)

    def add_figure(self, tag: str, figure: Any, step: int) -> None:
        """A matplotlib figure as a TensorBoard image at ``step`` (nothing without TensorBoard)."""
        if self._tb is not None:
            self._tb.add_figure(tag, figure, step, close=False)
            self._tb.flush()

    def add_scalars(self, tag: str, values: Mapping[str, float], step: int) -> None:
        """TensorBoard scalars ``tag/<name>`` at ``step`` (nothing without TensorBoard)."""
        if self._tb is None:
            return
        for name, value in values.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self._tb.add_scalar(f"{tag}/{name}", value, step)
        self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
