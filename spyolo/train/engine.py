"""The training loop: data, model, FPTT/BPTT/ANN steps, evaluation, logging, checkpoints.

A run lives in ``runs/<name>/``: ``args.yaml`` (the full config), ``results.csv`` (one row per
epoch), TensorBoard events, ``weights/last.pt`` and ``weights/best.pt`` (best by VOC mAP,
``eval.metric``), all checkpoints written atomically. ``resume=True`` reloads ``last.pt``
(model, optimiser, scheduler, FPTT traces, epoch, RNG states) and continues so that the loss
curve matches an uninterrupted run: data order and augmentation are functions of
(seed, epoch), not of how many epochs this process has run.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in DistributedDataParallel,
each replica keeps its own neuron states, the global batch is split across ranks, and rank
0 alone logs, evaluates and saves.
"""

from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from spyolo.config import Config, config_from_dict, config_to_dict, save_config
from spyolo.data import build_dataloader, build_dataset
from spyolo.data.loader import seed_dataset
from spyolo.inference.evaluate import EvalSettings, evaluate_model
from spyolo.inference.postprocess import head_spec_for
from spyolo.loss import YOLOLoss
from spyolo.models import build_model
from spyolo.snn.ltc import set_ltc_backend
from spyolo.stats.firing import FiringRateMonitor
from spyolo.train.checkpoint import load_checkpoint, pack_rng, save_checkpoint, unpack_rng
from spyolo.train.fptt import FPTT
from spyolo.train.optim import LRSchedule, build_optimizer, build_scheduler
from spyolo.train.steps import StepSettings, TrainStep
from spyolo.utils.runtime import Runtime, resolve_runtime, rng_state, seed_everything, set_rng_state

__all__ = ["Trainer", "TrainingDiverged", "head_spec_for", "CSV_FIELDS"]

CSV_FIELDS = [
    "epoch", "iterations", "lr", "loss", "box", "obj", "cls", "firing_rate",
    "map_voc07", "map_area", "epoch_time_s", "images_per_s", "peak_mem_mib",
]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_type: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


class Trainer:
    """Builds everything from a :class:`~spyolo.config.Config` and runs :meth:`fit`."""

    def __init__(self, cfg: Config, run_dir: str | Path, resume: bool = False, progress: bool = True) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.progress = progress
        tc = cfg.train
        self.runtime: Runtime = resolve_runtime(tc.device, tc.amp, tc.channels_last)
        self.dist = _init_distributed(self.runtime.device.type)
        if self.runtime.device.type == "cuda":
            torch.cuda.set_device(self.runtime.device)
        seed_everything(tc.seed + self.dist.rank, tc.deterministic)

        # Data
        self.train_set = build_dataset(cfg.data, train=True)
        self.test_set = build_dataset(cfg.data, train=False) if self.dist.main else None
        self.class_names = list(self.train_set.class_names)
        if tc.batch_size % self.dist.world:
            raise ValueError(f"train.batch_size={tc.batch_size} is not divisible by the {self.dist.world} processes")
        self.local_batch = tc.batch_size // self.dist.world
        self.train_loader = build_dataloader(
            self.train_set, self.local_batch, shuffle=True, workers=cfg.data.workers, seed=tc.seed,
            drop_last=True, distributed=self.dist.world > 1, persistent_workers=False,
        )
        if len(self.train_loader) == 0:
            raise ValueError(
                f"the training split has {len(self.train_set)} images, fewer than one batch of {self.local_batch}"
            )
        if self.test_set is not None:
            self.test_loader = build_dataloader(
                self.test_set, cfg.eval.batch_size, shuffle=False, workers=cfg.data.workers, seed=tc.seed,
                persistent_workers=False,
            )

        # Model, loss, optimiser
        model = build_model(cfg.model, num_classes=len(self.class_names)).to(self.runtime.device)
        if self.runtime.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.cfg.model.kind == "spyv4":
            set_ltc_backend(model, tc.ltc_backend)
        self.core = model
        self.spiking = bool(getattr(model, "is_spiking", False))
        self.method = tc.method if self.spiking else "ann"
        self.spec = head_spec_for(model, cfg.data.img_size, cfg.model.anchor_ref_size)
        self.loss_fn = YOLOLoss(
            self.spec.anchors_px.to(self.runtime.device), self.spec.masks, self.spec.num_classes,
            strides=self.spec.strides, ignore_thresh=tc.ignore_thresh, label_smoothing=tc.label_smoothing,
        ).to(self.runtime.device)
        self.optimizer = build_optimizer(model, tc.optimizer, tc.lr, tc.momentum, tc.weight_decay)
        iters = self._iters_per_epoch()
        self.schedule = LRSchedule(
            total_iters=iters * tc.epochs, warmup_iters=int(round(tc.warmup_epochs * iters)),
            kind=tc.scheduler, min_ratio=tc.min_lr_ratio, milestones=tuple(tc.step_milestones), gamma=tc.step_gamma,
        )
        self.scheduler = build_scheduler(self.optimizer, self.schedule)
        self.fptt = (
            FPTT(model.parameters(), alpha=tc.fptt_alpha, beta=tc.fptt_beta, alpha_reg=tc.fptt_alpha_reg)
            if self.method == "fptt" else None
        )
        if self.dist.world > 1:
            ids = [self.runtime.device.index] if self.runtime.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.model = torch.compile(model) if tc.compile else model
        self.state_gen = None
        if cfg.model.state_init == "uniform":
            self.state_gen = torch.Generator(device=self.runtime.device)
        self.step = TrainStep(
            self.model, self.loss_fn, self.optimizer,
            StepSettings(self.method, cfg.model.timesteps, tc.step_weighting, tc.update_every, tc.clip_norm,
                         cfg.model.state_init),
            self.runtime, fptt=self.fptt, state_generator=self.state_gen,
        )
        self.monitor = FiringRateMonitor(self.core) if self.spiking else None

        self.start_epoch = 0
        self.best = -1.0
        self.history: list[dict] = []
        self.weights_dir = self.run_dir / "weights"
        if resume:
            self._resume(self.weights_dir / "last.pt")
        if self.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if not resume:  # a fresh run in a reused folder starts a fresh results table
                (self.run_dir / "results.csv").unlink(missing_ok=True)
            save_config(cfg, self.run_dir / "args.yaml")
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.run_dir))
        else:
            self.tb = None

    # ------------------------------------------------------------------------------------
    def _iters_per_epoch(self) -> int:
        n = len(self.train_loader)
        cap = self.cfg.train.max_iters_per_epoch
        return min(n, cap) if cap > 0 else n

    def _log(self, msg: str) -> None:
        if self.dist.main:
            tqdm.write(msg)

    def checkpoint(self, epoch: int) -> dict:
        return {
            "model": self.core.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "fptt": self.fptt.state_dict() if self.fptt is not None else None,
            "epoch": epoch,
            "best": self.best,
            "history": self.history,
            "config": config_to_dict(self.cfg),
            "class_names": self.class_names,
            "rng": pack_rng(rng_state()),
            "spyolo_version": __import__("spyolo").__version__,
        }

    def _resume(self, path: Path) -> None:
        ckpt = load_checkpoint(path, map_location=self.runtime.device)
        saved = config_from_dict(ckpt["config"], str(path))
        if config_to_dict(saved)["model"] != config_to_dict(self.cfg)["model"]:
            raise ValueError(f"{path}: the checkpoint's model config differs from this run's; resume with its args.yaml")
        self.core.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.fptt is not None:
            if ckpt.get("fptt") is None:
                raise ValueError(f"{path}: no FPTT traces in this checkpoint (was it trained with train.method=bptt?)")
            self.fptt.load_state_dict(ckpt["fptt"])
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.best = float(ckpt.get("best", -1.0))
        self.history = list(ckpt.get("history", []))
        set_rng_state(unpack_rng(ckpt["rng"]))
        self._log(f"resumed from {path} at epoch {self.start_epoch + 1}")

    def _set_epoch(self, epoch: int) -> None:
        """Make data order, augmentation and state draws functions of (seed, epoch)."""
        seed = self.cfg.train.seed
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        gen = getattr(self.train_loader, "generator", None)
        if gen is not None:
            gen.manual_seed(seed * 1000003 + epoch)
        if self.cfg.data.workers == 0:
            # In-process loading: the augmentation stream lives in this process's dataset.
            # (With workers, each worker re-seeds from the loader's generator seeded above.)
            seed_dataset(self.train_set, seed * 1000003 + epoch * 101 + self.dist.rank)
        if self.state_gen is not None:
            self.state_gen.manual_seed(seed * 1000003 + epoch * 7919 + self.dist.rank)
        torch.manual_seed(seed * 1000003 + epoch + 7 * self.dist.rank)

    def evaluate(self, progress: bool | None = None) -> dict:
        cfg = self.cfg
        settings = EvalSettings(
            img_size=cfg.data.img_size, timesteps=cfg.model.timesteps, conf_thresh=cfg.eval.conf_thresh,
            nms_iou=cfg.eval.nms_iou, max_det=cfg.eval.max_det, iou_threshold=cfg.eval.iou_threshold,
            state_init=cfg.model.state_init, state_seed=cfg.model.state_seed, max_images=cfg.eval.max_images,
        )
        if self.monitor is not None:
            self.monitor.enabled = False
        try:
            return evaluate_model(
                self.core, self.test_loader, self.test_set, self.spec, settings, self.runtime.device,
                amp_dtype=self.runtime.amp_dtype, channels_last=self.runtime.channels_last,
                progress=self.progress if progress is None else progress,
            )
        finally:
            if self.monitor is not None:
                self.monitor.enabled = True

    # ------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict:
        tc = self.cfg.train
        self.model.train()
        self._set_epoch(epoch)
        iters = self._iters_per_epoch()
        if self.monitor is not None:
            self.monitor.reset()
        sums = torch.zeros(5, device=self.runtime.device)
        t0 = time.perf_counter()
        bar = tqdm(
            total=iters, desc=f"epoch {epoch + 1}/{tc.epochs} [{self.method}]", unit="batch",
            disable=not (self.progress and self.dist.main), dynamic_ncols=True,
        )
        n_done = 0
        for i, (images, targets, _metas) in enumerate(self.train_loader):
            if i >= iters:
                break
            images = images.to(self.runtime.device, non_blocking=True)
            targets = targets.to(self.runtime.device, non_blocking=True)
            if self.runtime.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            out = self.step(images, targets)
            self.scheduler.step()
            # One host sync per batch (never inside the time loop): stop on a non-finite loss.
            if not bool(torch.isfinite(out["loss"])):
                raise TrainingDiverged(
                    f"non-finite loss ({float(out['loss'])}) at epoch {epoch + 1}, iteration {i + 1}; "
                    f"training stopped, the last good checkpoint is {self.weights_dir / 'last.pt'}"
                )
            sums += torch.stack([out[k] for k in ("loss", "box", "obj", "cls", "num_pos")])
            n_done += 1
            bar.update(1)
            if self.dist.main and (i % max(1, tc.log_every) == 0 or i == iters - 1):
                mean = (sums / n_done).tolist()
                post = {"loss": f"{mean[0]:.3f}", "box": f"{mean[1]:.3f}", "obj": f"{mean[2]:.3f}", "cls": f"{mean[3]:.3f}"}
                if self.monitor is not None:
                    post["fr"] = f"{self.monitor.mean_rate():.3f}"
                post["lr"] = f"{self.optimizer.param_groups[0]['lr']:.2e}"
                bar.set_postfix(post)
        bar.close()
        if self.fptt is not None and tc.reset_to_average == "epoch":
            self.fptt.reset_to_average()
        elapsed = time.perf_counter() - t0
        mean = (sums / max(1, n_done)).tolist()
        row = {
            "epoch": epoch + 1, "iterations": n_done, "lr": self.optimizer.param_groups[0]["lr"],
            "loss": mean[0], "box": mean[1], "obj": mean[2], "cls": mean[3],
            "firing_rate": self.monitor.mean_rate() if self.monitor is not None else float("nan"),
            "map_voc07": float("nan"), "map_area": float("nan"), "epoch_time_s": elapsed,
            "images_per_s": n_done * tc.batch_size / max(elapsed, 1e-9),
            "peak_mem_mib": self._peak_memory() / 2**20,
        }
        return row

    def _peak_memory(self) -> int:
        """CUDA: max allocated bytes on this device; CPU: this process's peak RSS."""
        if self.runtime.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.runtime.device))
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024

    def _write_results(self, row: dict) -> None:
        path = self.run_dir / "results.csv"
        new = not path.exists()
        with path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            if new:
                w.writeheader()
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        if self.tb is not None:
            for k, v in row.items():
                if k != "epoch" and isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(f"train/{k}" if not k.startswith("map") else f"val/{k}", v, row["epoch"])
            self.tb.flush()

    def fit(self, stop_after: int | None = None) -> dict:
        """Train up to ``train.epochs`` epochs; returns the last epoch's results row.

        ``stop_after`` ends this call after that many epochs in total (as an interruption
        would), leaving a run that ``resume`` continues.
        """
        tc = self.cfg.train
        row: dict = {}
        end = tc.epochs if stop_after is None else min(tc.epochs, stop_after)
        if self.start_epoch >= end:
            self._log(f"nothing to do: the run already finished {self.start_epoch} epochs")
            return self.history[-1] if self.history else {}
        for epoch in range(self.start_epoch, end):
            row = self.train_epoch(epoch)
            last = epoch == tc.epochs - 1
            do_eval = last or (tc.eval_every > 0 and (epoch + 1) % tc.eval_every == 0)
            if self.dist.main:
                if do_eval:
                    res = self.evaluate()
                    row["map_voc07"], row["map_area"] = res["map_voc07"], res["map_area"]
                    headline = row["map_voc07"] if self.cfg.eval.metric == "voc07" else row["map_area"]
                    self._log(
                        f"epoch {epoch + 1}: loss {row['loss']:.4f}  "
                        + (f"firing rate {row['firing_rate']:.4f}  " if self.spiking else "")
                        + f"mAP VOC2007 11-point {100 * row['map_voc07']:.2f}%  area {100 * row['map_area']:.2f}%"
                    )
                else:
                    headline = None
                    self._log(f"epoch {epoch + 1}: loss {row['loss']:.4f}")
                self.history.append(row)
                self._write_results(row)
                if headline is not None and headline > self.best:
                    self.best = headline
                    save_checkpoint(self.checkpoint(epoch), self.weights_dir / "best.pt")
                save_checkpoint(self.checkpoint(epoch), self.weights_dir / "last.pt")
            self.start_epoch = epoch + 1
            if self.dist.world > 1:
                dist.barrier()
        if self.tb is not None and end == tc.epochs:
            self.tb.close()
        return row

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.monitor is not None:
            self.monitor.close()
        if self.dist.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
