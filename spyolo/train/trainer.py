"""The training loop: epochs of FPTT/BPTT/ANN steps, a checkpoint, an evaluation, a results row.

A run lives in ``runs/<name>/`` (see :mod:`spyolo.train.run_log` for the files). Per epoch:

1. every random stream is re-seeded from (seed, epoch, rank) (:mod:`spyolo.train.seeding`);
2. the batches run through the training step (:class:`~spyolo.train.steps.TrainStep`); a
   non-finite loss stops the run at once, saying exactly which checkpoint holds what;
3. FPTT's running average is copied into the weights (``train.reset_to_average=epoch``);
4. the weights are checked to be finite and ``weights/last.pt`` is written (atomically);
5. on evaluation epochs the test split is scored (:func:`spyolo.eval.loop.evaluate_model`),
   ``best.pt`` is written when the headline mAP improved, and ``last.pt`` again with the mAP;
6. the history is written: ``results.csv``, ``results.png``, TensorBoard.

``resume=True`` reloads ``last.pt`` (model, optimiser, scheduler, FPTT traces, epoch, history,
RNG states) and continues so that the run is the one an uninterrupted run gives: data order
and augmentation are functions of (seed, epoch), not of how many epochs this process has run,
and an epoch whose checkpoint was saved but whose evaluation never ran (the process was killed
in between: the checkpoint says ``eval_pending``) is evaluated first.

A new run that fails before its first checkpoint (a bad value, missing data, a diverging first
epoch, Ctrl-C) removes what it created in the run folder, and the folder itself if it made it
(:class:`~spyolo.train.run_log.RunFolder`): a failed start leaves no run behind.

Under ``torchrun`` (``WORLD_SIZE`` > 1) rank 0 alone logs, evaluates and saves
(:mod:`spyolo.train.distributed`).
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from spyolo.checkpoint import load_checkpoint, pack_rng, save_checkpoint, unpack_rng
from spyolo.config import Config, config_from_dict, config_to_dict
from spyolo.data import build_dataloader
from spyolo.data.loader import seed_dataset
from spyolo.datasets.build import build_dataset
from spyolo.errors import CheckpointError, ConfigError, RunFolderError, TrainingDiverged
from spyolo.eval.loop import EvalSettings, evaluate_model
from spyolo.inference.draw import tile_images
from spyolo.inference.prediction import Prediction
from spyolo.stats.firing import FiringRateMonitor
from spyolo.stats.report import plot_map_per_timestep_figure
from spyolo.train.components import build_training
from spyolo.train.distributed import barrier, init_distributed, shutdown
from spyolo.train.run_log import RunFolder, RunLog, run_record
from spyolo.train.seeding import epoch_seeds
from spyolo.train.steps import LossParts
from spyolo.utils.memory import peak_memory_bytes
from spyolo.utils.runtime import resolve_runtime, rng_state, seed_everything, set_rng_state

__all__ = ["PREVIEW_IMAGES", "Trainer"]

PREVIEW_IMAGES = 8
"""Test images drawn with their predictions in ``val_batch_pred.jpg`` at every evaluation."""

log = logging.getLogger(__name__)


class Trainer:
    """Builds a run from a :class:`~spyolo.config.Config` and trains it with :meth:`fit`.

    Args:
        cfg: the full config.
        run_dir: the run folder (created, with any missing parent; it must be writable).
        resume: continue the run in ``run_dir`` from ``weights/last.pt``.
        progress: show progress bars.
    """

    def __init__(self, cfg: Config, run_dir: str | Path, resume: bool = False, progress: bool = True) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.weights_dir = self.run_dir / "weights"
        self.progress = progress
        self.resumed = resume
        self.run_log: RunLog | None = None
        self.monitor: FiringRateMonitor | None = None
        self.folder = RunFolder(self.run_dir)
        self._saved = False  # whether this start saved a checkpoint
        self._eval_pending = False  # the resumed checkpoint's epoch still needs its evaluation
        tc = cfg.train
        self.runtime = resolve_runtime(tc.device, tc.amp, tc.channels_last)
        self.dist = init_distributed(self.runtime.device.type)
        try:
            self._build(resume)
        except BaseException:
            self._abandon()
            raise

    def _build(self, resume: bool) -> None:
        cfg, tc = self.cfg, self.cfg.train
        if self.runtime.device.type == "cuda":
            torch.cuda.set_device(self.runtime.device)
        if self.dist.main:
            self.folder.prepare()
        seed_everything(tc.seed + self.dist.rank, tc.deterministic)

        # Data
        self.train_set = build_dataset(cfg, train=True)
        self.test_set = build_dataset(cfg, train=False) if self.dist.main else None
        self.class_names = list(self.train_set.class_names)
        if tc.batch_size % self.dist.world:
            raise ConfigError(f"train.batch_size={tc.batch_size} is not divisible by the {self.dist.world} processes")
        self.local_batch = tc.batch_size // self.dist.world
        few = (f"the training split has {len(self.train_set)} images, fewer than one batch of {self.local_batch} "
               f"(train.batch_size)")
        if len(self.train_set) < self.local_batch:
            raise ConfigError(few)
        self.train_loader = build_dataloader(
            self.train_set, self.local_batch, shuffle=True, workers=cfg.data.workers, seed=tc.seed,
            drop_last=True, distributed=self.dist.enabled, persistent_workers=False,
        )
        if len(self.train_loader) == 0:
            raise ConfigError(few)
        if self.test_set is not None:
            self.test_loader = build_dataloader(
                self.test_set, cfg.eval.batch_size, shuffle=False, workers=cfg.data.workers, seed=tc.seed,
                persistent_workers=False,
            )
        self.train_eval_set = self._training_subset() if self.dist.main else None
        if self.train_eval_set is not None:
            self.train_eval_loader = build_dataloader(
                self.train_eval_set, cfg.eval.batch_size, shuffle=False, workers=cfg.data.workers, seed=tc.seed,
                persistent_workers=False,
            )

        if tc.iterations > 0:  # the schedule is set by the number of batches, whatever the dataset's size
            epochs = max(1, -(-tc.iterations // self._iters_per_epoch()))
            if epochs != tc.epochs:
                log.info("train.iterations=%d at %d batches per epoch: %d epochs (train.epochs)", tc.iterations,
                         self._iters_per_epoch(), epochs)
            tc.epochs = epochs

        # Model, loss, optimiser, FPTT, step
        self.parts = build_training(cfg, len(self.class_names), self.runtime, self.dist, self._iters_per_epoch(),
                                    resume=resume, class_names=self.class_names)
        self.core = self.parts.core
        self.method = self.parts.method
        self.spiking = self.parts.spiking
        self.monitor = FiringRateMonitor(self.core) if self.spiking else None

        self.start_epoch = 0
        self.best = -1.0
        self.history: list[dict] = []
        if resume:
            self._resume(self.weights_dir / "last.pt")
        if self.dist.main:
            self.run_log = RunLog(self.run_dir)
            self.run_log.write_config(cfg)
            self.record = run_record(self.runtime)
            self.run_log.add_start(self.record, resumed_at_epoch=self.start_epoch if resume else None)
            if self.parts.transfer is not None:
                log.info("%s", self.parts.transfer.summary())
                self.run_log.write_text("transfer.txt", self.parts.transfer.summary() + "\n")
            self.run_log.write_results(self.history, title=self._title())
        else:
            self.record = {}

    # ------------------------------------------------------------------------------ set-up
    def _training_subset(self):
        """The training images scored at each evaluation (``eval.train_images``, evenly spaced over the
        training split, with the evaluation resize), or ``None``."""
        n = self.cfg.eval.train_images
        if n <= 0:
            return None
        as_test = copy.deepcopy(self.cfg)
        as_test.data.test_sets = list(self.cfg.data.train_sets)
        full = build_dataset(as_test, train=False)
        if not hasattr(full, "subset"):
            log.info("eval.train_images: %s sets are not scored on their training split", type(full).__name__)
            return None
        total = len(full)
        indices = sorted({int(i) for i in np.linspace(0, total - 1, num=min(n, total))})
        return full.subset(indices)

    def _abandon(self) -> None:
        """After a failed start: close everything and, for a new run that saved no checkpoint, remove
        what this start created in the run folder (a resumed run's folder is never touched)."""
        self.close()
        if self.dist.main and not self.resumed and not self._saved:
            self.folder.discard()

    def _iters_per_epoch(self) -> int:
        n = len(self.train_loader)
        cap = self.cfg.train.max_iters_per_epoch
        return min(n, cap) if cap > 0 else n

    def _title(self) -> str:
        c = self.cfg
        what = f"{c.model.kind} width {c.model.width:g}" + (
            f", {c.train.method} T={c.model.timesteps}" if c.model.kind != "ann" else ""
        )
        return f"{self.run_dir.name}: {what}, {c.data.img_size} px"

    # ---------------------------------------------------------------------- checkpoints
    def checkpoint(self, epoch: int, eval_pending: bool = False) -> dict:
        """The training checkpoint after ``epoch`` (0-based); ``eval_pending``: saved before that epoch's
        evaluation (a resumed run evaluates it first)."""
        p = self.parts
        return {
            "model": self.core.state_dict(),
            "optimizer": p.optimizer.state_dict(),
            "scheduler": p.scheduler.state_dict(),
            "fptt": p.fptt.state_dict() if p.fptt is not None else None,
            "epoch": epoch,
            "eval_pending": bool(eval_pending),
            "best": self.best,
            "history": self.history,
            "config": config_to_dict(self.cfg),
            "class_names": self.class_names,
            "rng": pack_rng(rng_state()),
            "spyolo_version": __import__("spyolo").__version__,
            "run": self.record,
        }

    def _save(self, name: str, epoch: int, eval_pending: bool = False) -> None:
        path = self.weights_dir / name
        try:
            save_checkpoint(self.checkpoint(epoch, eval_pending), path)
            self._saved = True
        except OSError as exc:
            kept = "the previous file is unchanged" if path.is_file() else "no earlier file existed"
            raise RunFolderError(
                f"{path}: cannot save the checkpoint of epoch {epoch + 1} ({exc.strerror or exc}); {kept}"
            ) from None

    def _resume(self, path: Path) -> None:
        ckpt = load_checkpoint(path, map_location=self.runtime.device)
        saved = config_from_dict(ckpt["config"], str(path))
        if config_to_dict(saved)["model"] != config_to_dict(self.cfg)["model"]:
            raise CheckpointError(f"{path}: the checkpoint's model config differs from this run's; "
                                  f"resume with its args.yaml")
        p = self.parts
        self.core.load_state_dict(ckpt["model"])
        p.optimizer.load_state_dict(ckpt["optimizer"])
        p.scheduler.load_state_dict(ckpt["scheduler"])
        if p.fptt is not None:
            if ckpt.get("fptt") is None:
                raise CheckpointError(f"{path}: no FPTT traces in this checkpoint "
                                      f"(was it trained with train.method=bptt?)")
            p.fptt.load_state_dict(ckpt["fptt"])
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.best = float(ckpt.get("best", -1.0))
        # The history ends at the checkpoint's epoch, whatever results.csv held after it.
        self.history = [row for row in ckpt.get("history", []) if int(row["epoch"]) <= self.start_epoch]
        # Saved before its epoch's evaluation (the run was killed in between): evaluate it first.
        # (Checkpoints without the flag: the epoch was due an evaluation and has no mAP.)
        if "eval_pending" in ckpt:
            self._eval_pending = bool(ckpt["eval_pending"])
        else:
            last = self.history[-1] if self.history else {}
            self._eval_pending = self._eval_due(int(ckpt["epoch"])) and not np.isfinite(last.get("map_voc07", 0.0))
        set_rng_state(unpack_rng(ckpt["rng"]))
        if self.dist.main:
            log.info("resumed from %s after epoch %d", path, self.start_epoch)

    def _checkpoint_note(self) -> str:
        """What the run folder holds now, for error messages."""
        last = self.weights_dir / "last.pt"
        if not self.history or not last.is_file():
            return "no checkpoint was saved (the run stopped in its first epoch)"
        epoch = int(self.history[-1]["epoch"])
        note = f"{last} holds the weights after epoch {epoch}"
        best = self.weights_dir / "best.pt"
        if best.is_file() and self.best >= 0:
            note += f"; {best} the best evaluated ({self.cfg.eval.metric} mAP {100 * self.best:.2f}%)"
        return note

    # ------------------------------------------------------------------------ one epoch
    def _set_epoch(self, epoch: int) -> None:
        """Re-seed data order, augmentation, state draws and torch's generator for ``epoch``."""
        seeds = epoch_seeds(self.cfg.train.seed, epoch, self.dist.rank)
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        gen = getattr(self.train_loader, "generator", None)
        if gen is not None:
            gen.manual_seed(seeds.order)
        if self.cfg.data.workers == 0:
            # In-process loading: the augmentation stream lives in this process's dataset.
            # (With workers, each worker re-seeds from the loader's generator seeded above.)
            seed_dataset(self.train_set, seeds.augment)
        if self.parts.state_generator is not None:
            self.parts.state_generator.manual_seed(seeds.states)
        torch.manual_seed(seeds.torch)

    def train_epoch(self, epoch: int) -> dict:
        """Train one epoch (0-based); return its results row (mAP not yet filled in)."""
        tc = self.cfg.train
        p = self.parts
        p.model.train()
        self._set_epoch(epoch)
        iters = self._iters_per_epoch()
        if self.monitor is not None:
            self.monitor.reset()
        sums: LossParts[torch.Tensor] | None = None
        t0 = time.perf_counter()
        bar = tqdm(
            total=iters, desc=f"epoch {epoch + 1}/{tc.epochs} [{self.method}]", unit="batch",
            disable=not (self.progress and self.dist.main), dynamic_ncols=True,
        )
        n_done = 0
        for i, (images, targets, _metas) in enumerate(self.train_loader):
            if i >= iters:
                break
            images = self.runtime.to_input(images)
            targets = targets.to(self.runtime.device, non_blocking=True)
            out = p.step(images, targets)
            p.scheduler.step()
            # One host sync per batch (never inside the time loop): stop on a non-finite loss.
            if not bool(torch.isfinite(out.loss)):
                where = f"epoch {epoch + 1}, iteration {i + 1}"
                if i == 0 and self.history:
                    held = (f"; {self.weights_dir / 'last.pt'} holds the weights that gave it (saved after epoch "
                            f"{epoch}); lower train.lr or check the data")
                else:
                    held = f"; {self._checkpoint_note()}"
                raise TrainingDiverged(f"non-finite loss ({float(out.loss)}) at {where}; training stopped{held}")
            sums = out if sums is None else sums + out
            n_done += 1
            bar.update(1)
            if self.dist.main and (i % max(1, tc.log_every) == 0 or i == iters - 1):
                mean = (sums / n_done).to_host()
                post = {"loss": f"{mean.loss:.3f}", "box": f"{mean.box:.3f}", "obj": f"{mean.obj:.3f}",
                        "cls": f"{mean.cls:.3f}"}
                if p.distill is not None:
                    post["kd"] = f"{mean.distill:.3f}"
                if p.energy is not None:
                    post["E"] = f"{mean.energy:.3f}"
                if self.monitor is not None:
                    post["fr"] = f"{self.monitor.mean_rate():.3f}"
                post["lr"] = f"{p.optimizer.param_groups[0]['lr']:.2e}"
                bar.set_postfix(post)
        bar.close()
        if p.fptt is not None and tc.reset_to_average == "epoch":
            p.fptt.reset_to_average()
        elapsed = time.perf_counter() - t0
        nan = float("nan")
        mean = (sums / n_done).to_host() if sums is not None else LossParts(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        return {
            "epoch": epoch + 1, "iterations": n_done, "lr": p.optimizer.param_groups[0]["lr"],
            "loss": mean.loss, "box": mean.box, "obj": mean.obj, "cls": mean.cls,
            "distill": mean.distill if p.distill is not None else nan,
            "spike_energy": mean.energy * self.cfg.model.timesteps if p.energy is not None else nan,
            "firing_rate": self.monitor.mean_rate() if self.monitor is not None else float("nan"),
            "map_voc07": float("nan"), "map_area": float("nan"), "epoch_time_s": elapsed,
            "images_per_s": n_done * tc.batch_size / max(elapsed, 1e-9),
            "peak_mem_mib": peak_memory_bytes(self.runtime.device) / 2**20,
        }

    def _check_finite_weights(self, epoch: int) -> None:
        bad = [name for name, t in self.core.state_dict().items()
               if t.is_floating_point() and not bool(torch.isfinite(t).all())]
        if bad:
            raise TrainingDiverged(
                f"the weights became non-finite during epoch {epoch + 1} ({', '.join(bad[:3])}"
                f"{', ...' if len(bad) > 3 else ''}); they were not saved; {self._checkpoint_note()}"
            )

    def evaluate(self, progress: bool | None = None) -> dict:
        """Score the current model on the test split (:func:`spyolo.eval.loop.evaluate_model`):
        mAP at the last timestep and, for SPYv4, at every timestep; the first images' detections."""
        return self._score(self.test_loader, self.test_set, self.spiking, PREVIEW_IMAGES, progress)

    def evaluate_training_subset(self, progress: bool | None = None) -> dict:
        """Score the current model on the training images of ``eval.train_images`` (last timestep)."""
        return self._score(self.train_eval_loader, self.train_eval_set, False, 0, progress)

    def _score(self, loader, dataset, per_timestep: bool, preview: int, progress: bool | None) -> dict:
        if self.monitor is not None:
            self.monitor.enabled = False
        try:
            return evaluate_model(
                self.core, loader, dataset, self.parts.spec, EvalSettings.from_config(self.cfg),
                self.runtime, per_timestep=per_timestep, preview=preview,
                progress=self.progress if progress is None else progress,
            )
        finally:
            if self.monitor is not None:
                self.monitor.enabled = True

    def _log_evaluation(self, res: dict, epoch: int) -> None:
        """``val_batch_pred.jpg`` and the TensorBoard views of one evaluation."""
        assert self.run_log is not None and self.test_set is not None
        images = []
        for index, boxes, scores, labels in res.get("preview", []):
            keep = scores >= self.cfg.eval.demo_conf
            image = self.test_set.load_image(index)
            pred = Prediction(boxes[keep].astype(np.float32), scores[keep].astype(np.float32),
                              labels[keep].astype(np.int64), tuple(self.class_names), image.shape[:2], image=image)
            images.append(pred.plot())
        if images:
            self.run_log.write_image("val_batch_pred.jpg", tile_images(images))
        per_t = res.get("per_timestep")
        if per_t:
            self.run_log.add_scalars("map_voc07_at_timestep", {f"t{r['t']}": r["map_voc07"] for r in per_t}, epoch + 1)
            self.run_log.add_figure("map_per_timestep", plot_map_per_timestep_figure(per_t), epoch + 1)
        if self.monitor is not None:
            self.run_log.add_scalars("firing_rate", self.monitor.rates(), epoch + 1)

    # ------------------------------------------------------------------------------ fit
    def _eval_due(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (0-based) ends with an evaluation."""
        tc = self.cfg.train
        return epoch == tc.epochs - 1 or (tc.eval_every > 0 and (epoch + 1) % tc.eval_every == 0)

    def _evaluate_epoch(self, epoch: int, row: dict) -> dict:
        """Evaluate the weights after ``epoch``: fill ``row``'s mAP, write ``best.pt`` if it improved,
        and ``last.pt`` again (now evaluated); returns the evaluation's results."""
        res = self.evaluate()
        self._log_evaluation(res, epoch)
        row["map_voc07"], row["map_area"] = res["map_voc07"], res["map_area"]
        if self.train_eval_set is not None:
            fit = self.evaluate_training_subset()
            row["train_map_voc07"], row["train_map_area"] = fit["map_voc07"], fit["map_area"]
        headline = row["map_voc07"] if self.cfg.eval.metric == "voc07" else row["map_area"]
        if headline > self.best:
            self.best = headline
            self._save("best.pt", epoch)
        self._save("last.pt", epoch)
        return res

    def _log_epoch(self, row: dict, res: dict | None) -> None:
        """The epoch's log line (with its evaluation's mAP when ``res`` is given) and results files."""
        gen1 = (res.get("gen1") or {}).get("map_coco") if res is not None else None
        log.info(
            "epoch %d: loss %.4f%s%s%s", row["epoch"], row["loss"],
            f"  firing rate {row['firing_rate']:.4f}" if self.spiking else "",
            f"  mAP VOC2007 11-point {100 * row['map_voc07']:.2f}%  area {100 * row['map_area']:.2f}%"
            + (f"  (training subset {100 * row['train_map_voc07']:.2f}%)" if "train_map_voc07" in row else "")
            if res is not None else "",
            f"  Gen1 COCO mAP@[.5:.95] {100 * gen1:.2f}%" if gen1 is not None else "",
        )
        assert self.run_log is not None
        self.run_log.write_results(self.history, title=self._title())

    def fit(self, stop_after: int | None = None) -> dict:
        """Train up to ``train.epochs`` epochs; returns the last epoch's results row.

        ``stop_after`` ends this call after that many epochs in total (as an interruption
        would), leaving a run that ``resume`` continues. A new run that fails before it saved
        its first checkpoint leaves no run folder behind (:meth:`RunFolder.discard`).
        """
        try:
            return self._fit(stop_after)
        except BaseException:
            if not self._saved and not self.resumed:
                self._abandon()
            raise

    def _fit(self, stop_after: int | None) -> dict:
        tc = self.cfg.train
        row: dict = {}
        if self._eval_pending and self.history:
            # the run stopped between this epoch's checkpoint and its evaluation: evaluate it now
            if self.dist.main:
                log.info("epoch %d was saved but not evaluated; evaluating it first", self.start_epoch)
                res = self._evaluate_epoch(self.start_epoch - 1, self.history[-1])
                self._log_epoch(self.history[-1], res)
            self._eval_pending = False
            barrier(self.dist)
        end = tc.epochs if stop_after is None else min(tc.epochs, stop_after)
        if self.start_epoch >= end:
            log.info("nothing to do: the run already finished %d epochs", self.start_epoch)
            return self.history[-1] if self.history else {}
        for epoch in range(self.start_epoch, end):
            row = self.train_epoch(epoch)
            self._check_finite_weights(epoch)
            do_eval = self._eval_due(epoch)
            if self.dist.main:
                self.history.append(row)
                # before evaluating: a failed evaluation loses no training
                self._save("last.pt", epoch, eval_pending=do_eval)
                self._log_epoch(row, self._evaluate_epoch(epoch, row) if do_eval else None)
            self.start_epoch = epoch + 1
            barrier(self.dist)
        return row

    def close(self) -> None:
        """Close TensorBoard, remove the hooks, leave the process group."""
        if self.run_log is not None:
            self.run_log.close()
        if self.monitor is not None:
            self.monitor.close()
        shutdown(self.dist)
