"""A self-contained training/inference probe on random tensors, for speed and memory.

``python -m benchmarks.probe --method fptt --timesteps 8 --batch 4 --img-size 160 --width 0.5``
prints one JSON line: seconds per iteration (median of the timed iterations), images/s, ms per
image-timestep, and peak memory (CUDA: ``torch.cuda.max_memory_allocated`` over the timed
iterations; CPU: the peak RSS over the timed iterations, :class:`~benchmarks.rss.RSSWindow`,
with the method it used in ``peak_method``; run one configuration per fresh process to compare
peaks, since memory freed by earlier work may stay resident).

It runs the real :class:`~spyolo.train.steps.TrainStep` (real YOLO loss, real FPTT update) on
random images with a few random boxes each, so it needs no dataset. ``method="infer"`` runs
``T`` no-grad steps of the model in eval mode instead.

One iteration is one batch: ``T`` timesteps for FPTT, BPTT and inference, one step for the ANN
twin. Timing is synchronised (``torch.cuda.synchronize`` before reading the clock) and follows
``warmup`` untimed iterations (which include any compilation).

:class:`ProbeSession` builds the model, data and optimiser once and measures several ``T``
on them, so a compiled model is compiled once per input shape and reused across ``T``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.rss import RSSWindow
from spyolo.loss import YOLOLoss
from spyolo.models import SPYv4, YOLOv4Tiny
from spyolo.models.heads import scale_anchors
from spyolo.snn import reset_states
from spyolo.snn.ltc import StateLayout, init_states, set_ltc_backend, state_layouts
from spyolo.train.fptt import FPTT
from spyolo.train.optim import build_optimizer
from spyolo.train.steps import StepSettings, TrainStep
from spyolo.utils.runtime import Runtime, resolve_runtime

__all__ = [
    "METHODS",
    "ProbeConfig",
    "ProbeSession",
    "configure_compiler",
    "forward_flops_per_image",
    "host_sync_error",
    "random_batch",
    "run_probe",
    "synchronize",
]

# -- FLOPs of one forward timestep --------------------------------------------------------------
# Counted by PyTorch's FlopCounterMode: matrix products and convolutions only, a multiply-add as 2
# FLOPs; elementwise work (BN, the LTC update, activations, pooling) is not counted. For SPYv4 at
# 416x416, width 1 and 20 classes: 17.18 GFLOP per image and timestep (reference section 2).
# Training throughput is reported as 3 x the forward FLOPs (forward + backward, the backward
# costing about two forwards).


def forward_flops_per_image(
    model: nn.Module, img_size: int, device: torch.device | str, channels_last: bool = False
) -> int:
    """FLOPs of one forward timestep of ``model`` on one ``img_size`` x ``img_size`` image.

    The model runs one step on a random image without gradients and in eval mode (so the
    BN running statistics are not touched); its states are reset before and after, and its
    training mode is restored.

    Args:
        model: A detector (spiking or not); an uncompiled module.
        img_size: Input side in pixels.
        device: Where to run the counting step.
        channels_last: Feed a channels-last image (as the benchmark does).

    Returns:
        The FLOP count (multiply-add = 2) of the convolutions and matrix products.
    """
    channels = getattr(model, "in_channels", 3) * getattr(model, "input_frames", 1)
    image = torch.rand(1, channels, img_size, img_size, device=device)
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    was_training = model.training
    model.eval()
    reset_states(model)
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(image)
        return int(counter.get_total_flops())
    finally:
        reset_states(model)
        model.train(was_training)


# -- host-device synchronisation -----------------------------------------------------------------
# torch.cuda.set_sync_debug_mode("error") makes every synchronising CUDA call (an .item(), a
# device-to-host copy, a nonzero, an explicit synchronise...) raise a RuntimeError inside the
# region. The training time loop must run without any.


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU. Used around timed regions only."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def host_sync_error(device: torch.device) -> Iterator[None]:
    """Within the block, a synchronising CUDA call raises ``RuntimeError`` (no-op off CUDA).

    The previous sync debug mode is restored on exit, also when the block raises.
    """
    if device.type != "cuda":
        yield
        return
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


METHODS: tuple[str, ...] = ("fptt", "bptt", "ann", "infer")
"""Valid values of :attr:`ProbeConfig.method`."""

COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
"""Valid values of :attr:`ProbeConfig.compile_mode` (``torch.compile``'s ``mode``)."""


@dataclass
class ProbeConfig:
    """One measured configuration.

    Attributes:
        method: ``"fptt"``, ``"bptt"``, ``"ann"`` (ANN-twin training step) or ``"infer"``
            (``T`` no-grad steps of SPYv4).
        timesteps: ``T`` (ignored for ``"ann"``).
        batch: Images per batch.
        img_size: Square input size in pixels (a multiple of 32).
        width: Channel multiplier of the model.
        num_classes: Number of classes of the heads and the loss.
        boxes_per_image: Random ground-truth boxes per image.
        warmup: Untimed iterations first (compilation happens here; at least 2 when compiled).
        iters: Timed iterations; the median is reported.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        amp: ``"auto"`` (bf16 on CUDA, off on CPU), ``"bf16"`` or ``"off"``.
        channels_last: ``"auto"`` (on CUDA), ``"on"`` or ``"off"``.
        compile: ``torch.compile`` the model's per-timestep forward.
        compile_mode: ``torch.compile`` mode (see :data:`COMPILE_MODES`).
        compile_loss: Also ``torch.compile`` the YOLO loss (training methods).
        ltc_backend: ``"auto"`` (``"fused"`` on CUDA, ``"reference"`` on CPU) or one of
            :data:`spyolo.snn.ltc.LTC_BACKENDS`.
        flops: Count the forward FLOPs of one timestep (``FlopCounterMode``) and report
            the achieved TFLOP/s.
        sync_check: After timing, run one more iteration's time loop with
            ``torch.cuda.set_sync_debug_mode("error")`` (CUDA only) and report whether
            it synchronised.
        seed: Seed of the weights and the random batch.
        threads: CPU threads (0: torch's default).
        input: ``"image"`` (random images, the same at every timestep) or ``"events"`` (event
            samples: simulated recordings, :mod:`spyolo.events.synthetic`, the window before a
            labelled time stamp cut into ``T`` bins of ``event_bin_us``; bin t feeds timestep t).
        event_bin_us: Duration of one bin of an event sample.
    """

    method: str = "fptt"
    timesteps: int = 8
    batch: int = 4
    img_size: int = 160
    width: float = 0.5
    num_classes: int = 20
    boxes_per_image: int = 3
    warmup: int = 1
    iters: int = 2
    device: str = "auto"
    amp: str = "auto"
    channels_last: str = "auto"
    compile: bool = False
    compile_mode: str = "default"
    compile_loss: bool = False
    ltc_backend: str = "auto"
    flops: bool = False
    sync_check: bool = False
    seed: int = 0
    threads: int = 0
    input: str = "image"
    event_bin_us: int = 5000

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        if self.method not in METHODS:
            raise ValueError(f"ProbeConfig.method must be one of {list(METHODS)}, got {self.method!r}")
        if self.timesteps < 1 or self.batch < 1 or self.warmup < 0 or self.iters < 1:
            raise ValueError(
                f"ProbeConfig: need timesteps >= 1, batch >= 1, warmup >= 0, iters >= 1; got timesteps="
                f"{self.timesteps}, batch={self.batch}, warmup={self.warmup}, iters={self.iters}"
            )
        if self.img_size < 32 or self.img_size % 32:
            raise ValueError(f"ProbeConfig.img_size must be a positive multiple of 32, got {self.img_size}")
        if self.input not in ("image", "events") or self.event_bin_us < 1:
            raise ValueError(f"ProbeConfig.input must be 'image' or 'events' and event_bin_us >= 1, got "
                             f"{self.input!r}, {self.event_bin_us}")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"ProbeConfig.compile_mode must be one of {list(COMPILE_MODES)}, "
                             f"got {self.compile_mode!r}")


def random_batch(
    cfg: ProbeConfig, device: torch.device, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images ``(B, 3, S, S)`` in [0, 1) and ``boxes_per_image`` random target rows per image."""
    images = torch.rand(cfg.batch, 3, cfg.img_size, cfg.img_size, generator=generator).to(device)
    n = cfg.batch * cfg.boxes_per_image
    wh = 0.05 + 0.4 * torch.rand(n, 2, generator=generator)
    cxy = wh / 2 + (1 - wh) * torch.rand(n, 2, generator=generator)
    rows = torch.cat(
        [
            torch.arange(cfg.batch).repeat_interleave(cfg.boxes_per_image).unsqueeze(1).float(),
            torch.randint(0, cfg.num_classes, (n, 1), generator=generator).float(),
            cxy,
            wh,
        ],
        dim=1,
    )
    return images, rows.to(device)


def event_batch(cfg: ProbeConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Event samples ``(B, T, 2, S, S)`` and their box targets: recording ``i`` of the simulated set
    (seed ``cfg.seed``; sensor ``S`` x ``3S/4``; 4 shape classes), the ``T * event_bin_us`` before its
    first labelled time stamp, binned as the event dataset does (counts, sensor at the top-left)."""
    from spyolo.events.frames import FrameGeometry, bin_events
    from spyolo.events.synthetic import EventSpec, simulate_recording

    window = cfg.timesteps * cfg.event_bin_us
    spec = EventSpec(width=cfg.img_size, height=max(16, 3 * cfg.img_size // 4), duration_us=2 * window,
                     frame_us=min(1000, window), label_every_us=window)
    geometry = FrameGeometry(spec.sensor, cfg.img_size)
    frames, rows = [], []
    classes = ["circle", "square", "triangle", "cross"]
    for i in range(cfg.batch):
        rec = simulate_recording(cfg.seed, i, classes, spec)
        frames.append(torch.from_numpy(bin_events(rec.events, window, window, cfg.timesteps, geometry)))
        at = rec.label_t == window
        for (x1, y1, x2, y2), label in zip(rec.boxes[at], rec.labels[at]):
            rows.append([i, int(label) % cfg.num_classes, (x1 + x2) / 2 / cfg.img_size, (y1 + y2) / 2 / cfg.img_size,
                         (x2 - x1) / cfg.img_size, (y2 - y1) / cfg.img_size])
    targets = torch.tensor(rows, dtype=torch.float32).reshape(-1, 6)
    return torch.stack(frames).to(device), targets.to(device)


def configure_compiler(recompile_limit: int = 64) -> None:
    """Raise dynamo's recompile limit so that a benchmark never silently falls back to eager.

    The benchmark compiles several models and step variants in one process; with the default
    limit (8 graphs per code object) later ones could run uncompiled without notice.
    """
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(int(getattr(config, name)), recompile_limit))


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


class _Inference:
    """``T`` no-grad steps of a spiking model, states created before the first step when known."""

    def __init__(self, model: nn.Module, run_model: nn.Module, runtime: Runtime) -> None:
        self.model = model
        self.run_model = run_model
        self.runtime = runtime
        self.layouts: tuple[StateLayout, ...] | None = None

    def __call__(self, images: torch.Tensor, timesteps: int) -> None:
        self.prepare(images)
        self.time_loop(images, timesteps)

    def prepare(self, images: torch.Tensor) -> None:
        if self.layouts is None:
            reset_states(self.model)
        else:
            init_states(self.model, self.layouts, images.device)

    @torch.no_grad()
    def time_loop(self, images: torch.Tensor, timesteps: int) -> None:
        with self.runtime.autocast():
            for t in range(timesteps):
                if t == 0 and self.layouts is None:
                    self.model(images)  # lazily created states: uncompiled, then record the layouts
                    self.layouts = state_layouts(self.model)
                else:
                    self.run_model(images)


class ProbeSession:
    """Model, data, loss and optimiser of one configuration, measured at one or more ``T``.

    Args:
        cfg: The configuration; ``cfg.timesteps`` is the default ``T`` of :meth:`measure`.
    """

    def __init__(self, cfg: ProbeConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        if cfg.compile:
            configure_compiler()
        torch.manual_seed(cfg.seed)
        self.runtime = resolve_runtime(cfg.device, cfg.amp, cfg.channels_last)
        dev = self.runtime.device
        self.spiking = cfg.method != "ann"
        events = cfg.input == "events"
        extra = {"in_channels": 2} if events else {}
        if events and not self.spiking:
            extra["input_frames"] = cfg.timesteps  # the twin reads the T bins stacked
        model: nn.Module = (SPYv4 if self.spiking else YOLOv4Tiny)(num_classes=cfg.num_classes, width=cfg.width,
                                                                   **extra)
        self.ltc_backend = (
            ("fused" if dev.type == "cuda" else "reference") if cfg.ltc_backend == "auto" else cfg.ltc_backend
        )
        if self.spiking:
            set_ltc_backend(model, self.ltc_backend)
        model = model.to(dev)
        if self.runtime.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        gen = torch.Generator().manual_seed(cfg.seed)
        self.images, self.targets = event_batch(cfg, dev) if events else random_batch(cfg, dev, gen)
        if self.runtime.channels_last:
            self.images = self.runtime.to_input(self.images)
        self.flops_per_image_step = (
            forward_flops_per_image(model, cfg.img_size, dev, self.runtime.channels_last) if cfg.flops else None
        )
        mode = None if cfg.compile_mode == "default" else cfg.compile_mode
        self.run_model: nn.Module = torch.compile(model, mode=mode) if cfg.compile else model
        self.loss_fn: YOLOLoss | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.fptt: FPTT | None = None
        if cfg.method == "infer":
            model.eval()
            self.inference = _Inference(model, self.run_model, self.runtime)
        else:
            anchors = scale_anchors(model.anchors, cfg.img_size, 416)
            loss_fn = YOLOLoss(anchors, model.masks, cfg.num_classes, strides=model.strides).to(dev)
            self.loss_fn = torch.compile(loss_fn, mode=mode) if cfg.compile_loss else loss_fn  # type: ignore[assignment]
            self.optimizer = build_optimizer(model, "adam", 1e-4, 0.9, 0.0)
            self.fptt = FPTT(model.parameters()) if cfg.method == "fptt" else None

    def train_step(self, timesteps: int) -> TrainStep:
        """A new :class:`~spyolo.train.steps.TrainStep` at ``T = timesteps`` on the probe's
        model, loss, optimiser and FPTT state (training methods only)."""
        if self.loss_fn is None or self.optimizer is None:
            raise ValueError(f"method {self.cfg.method!r} has no training step")
        return TrainStep(
            self.run_model, self.loss_fn, self.optimizer, StepSettings(self.cfg.method, timesteps),
            self.runtime, fptt=self.fptt,
        )

    def iteration_fns(self, timesteps: int) -> tuple[Callable[[], None], Callable[[], None]]:
        """``(one_iter, sync_checked_iter)``: closures running one iteration at ``T = timesteps``.

        ``sync_checked_iter`` runs the per-batch preparation normally and the time loop under
        :func:`host_sync_error`.
        """
        images, targets = self.images, self.targets
        if self.cfg.method == "infer":
            inference = self.inference

            def one_infer() -> None:
                inference(images, timesteps)

            def checked_infer() -> None:
                inference.prepare(images)
                with host_sync_error(images.device):
                    inference.time_loop(images, timesteps)

            return one_infer, checked_infer
        step = self.train_step(timesteps)

        def one_train() -> None:
            step(images, targets)

        def checked_train() -> None:
            built = step.prepare(images, targets)
            synchronize(images.device)
            with host_sync_error(images.device):
                step.time_loop(images, built)

        return one_train, checked_train

    def measure(self, timesteps: int | None = None, warmup: int | None = None, iters: int | None = None) -> dict:
        """Warm up, time ``iters`` iterations at ``T = timesteps`` and return the result row."""
        cfg = replace(
            self.cfg,
            timesteps=self.cfg.timesteps if timesteps is None else timesteps,
            warmup=self.cfg.warmup if warmup is None else warmup,
            iters=self.cfg.iters if iters is None else iters,
        )
        cfg.validate()
        dev = self.runtime.device
        one_iter, checked_iter = self.iteration_fns(cfg.timesteps)
        # A new step records the state layouts in its first iteration (step 0 uncompiled); a
        # compiled model can meet a new graph in the second one (e.g. T = 1, or BPTT's step 0).
        warmup = max(cfg.warmup, 2) if cfg.compile else cfg.warmup
        t0 = time.perf_counter()
        for _ in range(warmup):
            one_iter()
        synchronize(dev)
        warmup_s = time.perf_counter() - t0
        window = None
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        else:
            window = RSSWindow().start()
        times = []
        for _ in range(cfg.iters):
            synchronize(dev)
            t0 = time.perf_counter()
            one_iter()
            synchronize(dev)
            times.append(time.perf_counter() - t0)
        if window is None:
            peak, base, peak_method = torch.cuda.max_memory_allocated(dev), None, "cuda_max_allocated"
        else:
            rss = window.stop()
            peak, base, peak_method = rss.peak_bytes, rss.base_bytes, rss.method
        sync_free: bool | None = None
        sync_error = ""
        if cfg.sync_check and dev.type == "cuda":
            try:
                checked_iter()
                synchronize(dev)
                sync_free = True
            except RuntimeError as e:  # raised by the sync debug mode
                sync_free = False
                sync_error = str(e).splitlines()[0][:300]
        row = self._row(cfg, times, warmup_s, peak, sync_free, sync_error)
        row["peak_method"] = peak_method
        row["peak_base_bytes"] = base
        return row

    def _row(
        self, cfg: ProbeConfig, times: list[float], warmup_s: float, peak: int, sync_free: bool | None, sync_error: str
    ) -> dict:
        dev = self.runtime.device
        steps = cfg.timesteps if self.spiking else 1
        sec = statistics.median(times)
        flops = self.flops_per_image_step
        # Training: forward + backward = 3 x forward FLOPs; inference: the forward alone.
        factor = 1 if cfg.method == "infer" else 3
        tflops = None if flops is None else factor * flops * cfg.batch * steps / sec / 1e12
        row = {
            **asdict(cfg),
            "ltc_backend": self.ltc_backend if self.spiking else "n/a",
            "amp_dtype": str(self.runtime.amp_dtype).replace("torch.", "") if self.runtime.amp_dtype else "off",
            "channels_last_on": self.runtime.channels_last,
            "device_name": _device_name(dev),
            "torch": torch.__version__,
            "sec_per_iter": sec,
            "sec_per_iter_all": times,
            "warmup_s": warmup_s,
            "images_per_s": cfg.batch / sec,
            "ms_per_image_timestep": 1000 * sec / (cfg.batch * steps),
            "peak_bytes": peak,
            "peak_gib": peak / 2**30,
            "peak_kind": "cuda_max_allocated" if dev.type == "cuda" else "cpu_peak_rss",
            "gflops_per_image_timestep": None if flops is None else flops / 1e9,
            "tflops_achieved": tflops,
            "sync_free": sync_free,
            "sync_error": sync_error,
        }
        if tflops is not None and not math.isfinite(tflops):
            row["tflops_achieved"] = None
        return row


def run_probe(cfg: ProbeConfig) -> dict:
    """Build a :class:`ProbeSession` for ``cfg`` and measure it at ``cfg.timesteps``."""
    return ProbeSession(cfg).measure()


def build_parser() -> argparse.ArgumentParser:
    """One flag per :class:`ProbeConfig` field (``--img-size``; booleans as ``--compile/--no-compile``)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(ProbeConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = str(f.type)
        if kind in ("bool", "<class 'bool'>"):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            typ = {"int": int, "float": float, "str": str}.get(kind, str)
            p.add_argument(flag, type=typ, default=f.default)
    p.add_argument("--config-json", help="a ProbeConfig as a JSON object (overrides the other flags)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    config_json = args.pop("config_json")
    cfg = ProbeConfig(**json.loads(config_json)) if config_json else ProbeConfig(**args)
    print(json.dumps(run_probe(cfg)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
