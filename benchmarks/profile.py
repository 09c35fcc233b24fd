"""Where the time of one probe configuration goes: ``torch.profiler`` over a few iterations.

:func:`profile_probe` builds the configuration exactly as :mod:`benchmarks.probe` does (a
:class:`~benchmarks.probe.ProbeSession`: model, random batch, real YOLO loss, real FPTT
update), runs the warm-up iterations unprofiled, then runs ``iters`` iterations under
``torch.profiler.profile`` (CPU activity, plus CUDA on a CUDA device; no shapes recorded) and
returns a JSON-able summary:

* ``top_ops``: the operators with the most *self* time (on CUDA the device time of the kernels
  each operator launched itself, on CPU its self CPU time), with their calls, milliseconds in
  all and per iteration, and share of the total;
* ``top_kernels`` (CUDA only): the same per kernel name;
* ``categories``: the total split into coarse categories (see below), which add up to the total;
* ``total_ms`` / ``total_ms_per_iter``: the sum of all self times (CUDA: the summed duration
  of every kernel, copy and memset; CPU: the summed self CPU time of every operator, over all
  threads) and ``wall_ms_per_iter`` (wall clock of the profiled iterations, profiler overhead
  included).

Labels. The profiled iterations run inside ``torch.profiler.record_function`` ranges set
outside the model only: ``spyolo::iteration`` around each iteration, ``spyolo::loss`` around
each call of the YOLO loss, ``spyolo::loss.build_targets`` around the once-per-batch target
building, and ``spyolo::update`` around the training step's parameter update (FPTT
regulariser gradient, gradient clipping, optimiser step, zero-grad, FPTT trace update).

Categories. Every profiled operator (CUDA: every kernel, through the operator that launched it)
is classified by the names on its call chain: the operator itself, then its enclosing operators
and ranges outwards, then (CUDA) the kernel's own name. The ``spyolo::iteration`` range's own
self time -- host time spent in no operator (Python, the step's bookkeeping) -- is ``host``; it
is part of the CPU metric only, as no kernel belongs to it. Everything else goes through two
passes of case-insensitive regular expressions searched in each name:

1. *Semantic ranges* -- the innermost name of the chain that matches one of these decides:

   ============= ================================================================================
   loss          ``^spyolo::loss`` (the loss call and the target building, forward only), or a
                 loss-specific operator or backward node: ``binary_cross_entropy``,
                 ``BinaryCrossEntropy``, ``mse_loss``, ``l1_loss``, ``nll_loss``,
                 ``cross_entropy``, ``one_hot``
   optimizer     ``^spyolo::update``, ``^Optimizer.(step|zero_grad)``, ``_foreach_``,
                 ``_fused_adam``, ``multi_tensor_apply``, ``clip_grad``
   elementwise   the LTC update's own nodes: ``MultiGaussianSpike`` (surrogate),
                 ``FusedLTCUpdate`` (fused update, forward kernels and backward)
   ============= ================================================================================

2. *Operator kind* -- otherwise the innermost name matching one of these decides (checked in
   this order for each name):

   ============= ================================================================================
   memory        copies, casts, fills, concatenation and allocation: ``aten::`` ``copy_``,
                 ``_to_copy``, ``to``, ``clone``, ``contiguous``, ``cat``, ``stack``, ``fill_``,
                 ``zero_``, ``zeros(_like)``, ``ones(_like)``, ``full``, ``empty(_like)``,
                 ``empty_strided``, ``new_zeros``, ``new_empty(_strided)``; the backward nodes
                 ``ToCopy``, ``Copy``, ``Clone``, ``Cat``, ``Stack``; kernels ``Memcpy``,
                 ``Memset``, ``copy_kernel``
   batch_norm    ``batch_?norm`` (``aten::batch_norm``, ``native_batch_norm(_backward)``,
                 ``cudnn_batch_norm``, ``*BatchNormBackward*``, fused Triton kernels), cuDNN's
                 ``bn_fw`` / ``bn_bw`` kernels
   convolution   ``convolution``, ``conv[123]d``, ``conv_depthwise``; kernels ``xmma``,
                 ``implicit_gemm``, ``implicit_convolve``, ``cutlass``, ``winograd``,
                 ``dgrad``, ``wgrad``, ``fprop``
   elementwise   pointwise ``aten::`` operators (``add``, ``sub``, ``rsub``, ``mul``, ``div``,
                 ``neg``, ``exp``, ``log``, ``sigmoid``, ``tanh``, ``pow``, ``sqrt``,
                 ``clamp``, comparisons, ``where``, ``(leaky_)relu``, ``maximum``,
                 ``masked_fill``, ``lerp``, ``addcmul``, ``addcdiv``, their ``_backward`` forms
                 and in-place variants) and their backward nodes (``MulBackward0``...); Triton
                 pointwise kernels ``triton_poi``, inductor's CPU kernels ``cpp_fused``, ATen's
                 ``elementwise_kernel``
   ============= ================================================================================

3. Anything else is ``other`` (pooling, upsampling, reductions outside the loss, views,
   autograd bookkeeping; on CUDA also any kernel that no operator launched).

The self time of the ``spyolo::loss`` and ``spyolo::update`` ranges (Python inside them)
counts as ``loss`` and ``optimizer``.

So the loss's forward counts as ``loss`` wholesale, but the backward of its generic pointwise
operators (``SigmoidBackward0``, ``MulBackward0``...) counts as ``elementwise``: the backward
runs outside the loss call and cannot be told apart from the model's by name. Copies that an
operator makes inside itself (e.g. autocast's weight casts inside ``aten::conv2d``) count as
``memory``, because the innermost name decides.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, replace
from functools import lru_cache, wraps
from pathlib import Path
from typing import Any

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

from benchmarks.probe import ProbeConfig, ProbeSession, synchronize
from benchmarks.report import machine_lines, write_pair
from benchmarks.suite import run_sessions

__all__ = [
    "CATEGORIES",
    "CATEGORY_TITLES",
    "LABEL_ITERATION",
    "LABEL_LOSS",
    "LABEL_TARGETS",
    "LABEL_UPDATE",
    "classify",
    "config_name",
    "profile_configs",
    "profile_markdown",
    "profile_probe",
    "profile_session",
    "summarize_events",
    "write_profile_report",
]

LABEL_ITERATION = "spyolo::iteration"
LABEL_LOSS = "spyolo::loss"
LABEL_TARGETS = "spyolo::loss.build_targets"
LABEL_UPDATE = "spyolo::update"

CATEGORIES: tuple[str, ...] = (
    "convolution", "batch_norm", "elementwise", "optimizer", "loss", "memory", "host", "other",
)
"""Category keys, in report order."""

CATEGORY_TITLES: dict[str, str] = {
    "convolution": "convolution (forward and backward)",
    "batch_norm": "batch norm (forward and backward)",
    "elementwise": "elementwise / LTC update incl. surrogate",
    "optimizer": "optimizer / foreach / FPTT update",
    "loss": "YOLO loss (forward, targets, loss-specific backward)",
    "memory": "memory copies, casts, fills",
    "host": "host time between operators (Python)",
    "other": "other",
}
"""Human-readable title of each category (markdown tables)."""

_I = re.IGNORECASE
_POINTWISE = (
    r"add|sub|rsub|mul|div|neg|exp|log|sigmoid|tanh|pow|sqrt|rsqrt|reciprocal|abs|sign|square|clamp|clamp_min"
    r"|clamp_max|gt|ge|lt|le|eq|ne|where|leaky_relu|relu|threshold|maximum|minimum|masked_fill|lerp|addcmul"
    r"|addcdiv|heaviside|logical_and|logical_or|logical_not|bitwise_and|bitwise_or|bitwise_not|floor|ceil|round"
)

_SEMANTIC: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "loss",
        re.compile(r"^spyolo::loss|binary_?cross_?entropy|mse_?loss|l1_?loss|nll_?loss|cross_?entropy|one_?hot", _I),
    ),
    (
        "optimizer",
        re.compile(
            r"^spyolo::update|^Optimizer\.(step|zero_grad)|_foreach_|_fused_adam|multi_tensor_apply|clip_grad", _I
        ),
    ),
    ("elementwise", re.compile(r"MultiGaussianSpike|FusedLTCUpdate", _I)),
)
"""Pass 1: ranges and operators whose whole subtree belongs to one category."""

_KIND: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "memory",
        re.compile(
            r"^aten::(copy_|_to_copy|to|clone|contiguous|cat|stack|fill_|zero_|zeros|zeros_like|ones|ones_like|full"
            r"|empty|empty_like|empty_strided|new_zeros|new_empty|new_empty_strided)$"
            r"|evaluate_function: (ToCopy|Copy|Clone|Cat|Stack)Backward|^memcpy|^memset|copy_kernel",
            _I,
        ),
    ),
    ("batch_norm", re.compile(r"batch_?norm|\bbn_(fw|bw)", _I)),
    (
        "convolution",
        re.compile(
            r"convolution|conv[123]d|conv_depthwise|xmma|implicit_gemm|implicit_convolve|cutlass|winograd|dgrad|wgrad"
            r"|fprop",
            _I,
        ),
    ),
    (
        "elementwise",
        re.compile(
            rf"^aten::({_POINTWISE})(_backward)?_?$"
            rf"|evaluate_function: ({_POINTWISE.replace('_', '')})Backward\d*$"
            r"|triton_poi|cpp_fused|elementwise_kernel",
            _I,
        ),
    ),
)
"""Pass 2: the kind of operator or kernel."""


def classify(chain: Sequence[str]) -> str:
    """The category of a profiled operator or kernel from the names on its call chain.

    Args:
        chain: Names from the innermost outwards: the operator, its enclosing operators and
            ``record_function`` ranges, and last (CUDA) the kernel's own name.

    Returns:
        One of :data:`CATEGORIES` (the rules are in the module docstring).
    """
    return _classify_cached(tuple(chain))


@lru_cache(maxsize=65536)
def _classify_cached(chain: tuple[str, ...]) -> str:
    if chain and chain[0] == LABEL_ITERATION:
        return "host"
    for name in chain:
        for category, pattern in _SEMANTIC:
            if pattern.search(name):
                return category
    for name in chain:
        for category, pattern in _KIND:
            if pattern.search(name):
                return category
    return "other"


# -- labelling the step from the outside --------------------------------------------------------


class _LabelledLoss:
    """Delegates to a loss, running its calls and its target building inside profiler ranges."""

    def __init__(self, loss_fn: Any) -> None:
        self._loss_fn = loss_fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with record_function(LABEL_LOSS):
            return self._loss_fn(*args, **kwargs)

    def build_targets(self, *args: Any, **kwargs: Any) -> Any:
        with record_function(LABEL_TARGETS):
            return self._loss_fn.build_targets(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # only called for names not found on the wrapper
        if name == "_loss_fn":
            raise AttributeError(name)
        return getattr(self._loss_fn, name)


def _labelled(label: str, fn: Callable[[], None]) -> Callable[[], None]:
    @wraps(fn)
    def run() -> None:
        with record_function(label):
            fn()

    return run


def _iteration(session: ProbeSession, timesteps: int) -> Callable[[], None]:
    """One labelled iteration at ``T = timesteps`` (a fresh train step with labelled loss and update)."""
    images, targets = session.images, session.targets
    if session.cfg.method == "infer":
        inference = session.inference

        def infer() -> None:
            inference(images, timesteps)

        return _labelled(LABEL_ITERATION, infer)
    step = session.train_step(timesteps)
    step.loss_fn = _LabelledLoss(step.loss_fn)  # type: ignore[assignment]
    # The step's update (FPTT regulariser, clipping, optimiser, traces) is one private method;
    # an instance attribute shadows it. Without it the update is still classified by name.
    if callable(getattr(step, "_update", None)):
        step._update = _labelled(LABEL_UPDATE, step._update)  # type: ignore[method-assign]

    def train() -> None:
        step(images, targets)

    return _labelled(LABEL_ITERATION, train)


# -- summarising the events ---------------------------------------------------------------------


def _chain(event: Any) -> list[str]:
    names = []
    while event is not None:
        names.append(event.name)
        event = event.cpu_parent
    return names


class _Tally:
    """Self time, calls and per-category time of one operator or kernel name."""

    __slots__ = ("calls", "us", "by_category")

    def __init__(self) -> None:
        self.calls = 0
        self.us = 0.0
        self.by_category: dict[str, float] = {}

    def add(self, us: float, category: str, calls: int = 1) -> None:
        self.calls += calls
        self.us += us
        self.by_category[category] = self.by_category.get(category, 0.0) + us


def _rows(tallies: dict[str, _Tally], total_us: float, iters: int, limit: int) -> list[dict]:
    ranked = sorted(tallies.items(), key=lambda kv: kv[1].us, reverse=True)
    rows = []
    for name, tally in ranked[:limit]:
        if tally.us <= 0:
            break
        rows.append(
            {
                "name": name,
                "calls": tally.calls,
                "self_ms": tally.us / 1e3,
                "self_ms_per_iter": tally.us / 1e3 / iters,
                "percent": 100.0 * tally.us / total_us if total_us > 0 else 0.0,
                "category": max(tally.by_category.items(), key=lambda kv: kv[1])[0],
            }
        )
    return rows


def summarize_events(events: Iterable[Any], on_device: bool, iters: int, row_limit: int = 25) -> dict:
    """Top operators, top kernels and categories of profiled events (``prof.events()``).

    Args:
        events: The profiler's ``FunctionEvent`` objects, parents linked.
        on_device: Rank by device time (kernels, copies, memsets) instead of self CPU time.
        iters: How many iterations the events cover (for the per-iteration columns).
        row_limit: Rows of ``top_ops`` and ``top_kernels``.
    """
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    events = list(events)
    device_events = [e for e in events if e.device_type != DeviceType.CPU]
    # Kineto mirrors record_function ranges on the GPU timeline ("gpu_user_annotation"): spans,
    # not device work, so neither the total nor the operators' kernels include them.
    annotations = {e.name for e in device_events if getattr(e, "is_user_annotation", False)}
    device_total = sum(
        e.time_range.elapsed_us() for e in device_events if not getattr(e, "is_user_annotation", False)
    )
    ops: dict[str, _Tally] = {}
    kernels: dict[str, _Tally] = {}
    categories = dict.fromkeys(CATEGORIES, 0.0)
    cpu_total = 0.0
    attributed = 0.0
    for event in events:
        if event.device_type != DeviceType.CPU or event.is_async:
            continue
        chain = _chain(event)
        cpu_us = event.self_cpu_time_total
        cpu_total += cpu_us
        tally = ops.setdefault(event.name, _Tally())
        if not on_device:
            category = classify(chain)
            categories[category] += cpu_us
            tally.add(cpu_us, category)
            continue
        tally.calls += 1
        for kernel in event.kernels:
            if kernel.name in annotations:
                continue
            category = classify([*chain, kernel.name])
            categories[category] += kernel.duration
            attributed += kernel.duration
            tally.add(kernel.duration, category, calls=0)
            kernels.setdefault(kernel.name, _Tally()).add(kernel.duration, category)
    unattributed = max(0.0, device_total - attributed) if on_device else 0.0
    categories["other"] += unattributed  # device work that no operator launched (e.g. CUDA graph replays)
    # (attributed never exceeds the device total; max() keeps the categories' sum equal to it regardless)
    total = max(device_total, attributed) if on_device else cpu_total
    return {
        "metric": "self device time (CUDA kernels, copies, memsets)" if on_device else "self CPU time",
        "iters": iters,
        "total_ms": total / 1e3,
        "total_ms_per_iter": total / 1e3 / iters,
        "cpu_total_ms": cpu_total / 1e3,
        "unattributed_device_ms": unattributed / 1e3 if on_device else None,
        "top_ops": _rows(ops, total, iters, row_limit),
        "top_kernels": _rows(kernels, total, iters, row_limit) if on_device else [],
        "categories": [
            {
                "category": name,
                "title": CATEGORY_TITLES[name],
                "ms": us / 1e3,
                "ms_per_iter": us / 1e3 / iters,
                "percent": 100.0 * us / total if total > 0 else 0.0,
            }
            for name, us in categories.items()
        ],
    }


# -- profiling ----------------------------------------------------------------------------------



def profile_session(
    session: ProbeSession,
    timesteps: int | None = None,
    iters: int = 2,
    warmup: int | None = None,
    trace_path: str | Path | None = None,
    row_limit: int = 25,
) -> dict:
    """Warm up, then profile ``iters`` iterations of ``session`` at ``T = timesteps``.

    Args:
        session: A built probe session (its model may already be warmed up at other ``T``).
        timesteps: ``T`` (default: the session's ``cfg.timesteps``).
        iters: Profiled iterations (at least 1).
        warmup: Unprofiled iterations first (default ``cfg.warmup``; at least 2 when compiled,
            as in :meth:`ProbeSession.measure`).
        trace_path: Also write a Chrome trace (``chrome://tracing``, Perfetto) there.
        row_limit: Rows of the top-operator and top-kernel lists.

    Returns:
        The configuration (``ProbeConfig`` fields and the resolved LTC backend, autocast dtype,
        memory format, device) followed by :func:`summarize_events`'s summary.
    """
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    if row_limit < 1:
        raise ValueError(f"row_limit must be >= 1, got {row_limit}")
    cfg = replace(
        session.cfg,
        timesteps=session.cfg.timesteps if timesteps is None else timesteps,
        warmup=session.cfg.warmup if warmup is None else warmup,
        iters=iters,
    )
    cfg.validate()
    dev = session.runtime.device
    one_iter = _iteration(session, cfg.timesteps)
    for _ in range(max(cfg.warmup, 2) if cfg.compile else cfg.warmup):
        one_iter()
    synchronize(dev)
    on_device = dev.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_device else [])
    with profile(activities=activities, record_shapes=False) as prof:
        t0 = time.perf_counter()
        for _ in range(iters):
            one_iter()
        synchronize(dev)
        wall = time.perf_counter() - t0
    if trace_path is not None:
        Path(trace_path).parent.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(trace_path))
    summary = summarize_events(prof.events(), on_device, iters, row_limit)
    return {
        **asdict(cfg),
        "config_name": config_name(cfg),
        "ltc_backend": session.ltc_backend if session.spiking else "n/a",
        "amp_dtype": str(session.runtime.amp_dtype).replace("torch.", "") if session.runtime.amp_dtype else "off",
        "channels_last_on": session.runtime.channels_last,
        "device_name": torch.cuda.get_device_name(dev) if on_device else "cpu",
        "torch": torch.__version__,
        "wall_ms_per_iter": 1e3 * wall / iters,
        "trace": None if trace_path is None else str(trace_path),
        **summary,
    }


def profile_probe(
    cfg: ProbeConfig, iters: int = 2, trace_path: str | Path | None = None, row_limit: int = 25
) -> dict:
    """Build a :class:`ProbeSession` for ``cfg`` and profile it (see :func:`profile_session`)."""
    return profile_session(ProbeSession(cfg), iters=iters, trace_path=trace_path, row_limit=row_limit)


def config_name(cfg: ProbeConfig) -> str:
    """A file-name-safe name of a configuration, e.g. ``fptt_T8_b64_416px``."""
    return f"{cfg.method}_T{cfg.timesteps}_b{cfg.batch}_{cfg.img_size}px"


def profile_configs(
    configs: Sequence[ProbeConfig],
    iters: int = 2,
    row_limit: int = 25,
    trace_path: Callable[[ProbeConfig], str | Path | None] | None = None,
    on_row: Callable[[dict], None] | None = None,
    deadline: float | None = None,
) -> list[dict]:
    """Profile every configuration in this process; return one summary (or error) row each.

    Consecutive configurations that differ only in ``T`` share one session (one compilation).
    A failing configuration becomes ``{**config, "error": message}`` and the others still run.

    Args:
        configs: What to profile (e.g. :func:`benchmarks.suite.expand_grid`'s list).
        iters: Profiled iterations per configuration.
        row_limit: Rows of the top lists.
        trace_path: Where each configuration's Chrome trace goes (``None``: no trace).
        on_row: Called with each row as soon as it exists.
        deadline: ``time.monotonic()`` after which the remaining configurations are skipped.
    """
    def measure(session: ProbeSession, cfg: ProbeConfig) -> dict:
        trace = trace_path(cfg) if trace_path is not None else None
        return profile_session(session, cfg.timesteps, iters, cfg.warmup, trace, row_limit)

    def error_row(cfg: ProbeConfig, message: str) -> dict:
        return {**asdict(cfg), "config_name": config_name(cfg), "error": message}

    return run_sessions(configs, measure, error_row, on_row=on_row, deadline=deadline)


# -- reports ------------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}f}"


def _md_name(name: str, width: int = 90) -> str:
    short = name if len(name) <= width else name[: width - 3] + "..."
    return "`" + short.replace("|", "\\|").replace("`", "'") + "`"


def _table(rows: list[dict], iters: int) -> list[str]:
    lines = [
        f"| op | category | calls | self ms ({iters} iter) | ms / iter | % |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {_md_name(r['name'])} | {r['category']} | {r['calls']} | {_num(r['self_ms'])} "
            f"| {_num(r['self_ms_per_iter'])} | {r['percent']:.1f} |"
        )
    return lines


def _section(row: dict) -> list[str]:
    title = (
        f"## {row['method']} T={row['timesteps']}, batch {row['batch']}, {row['img_size']} px, "
        f"width {row['width']}"
    )
    if row.get("error"):
        return [title, "", f"failed: {row['error']}", ""]
    lines = [
        title,
        "",
        f"compile {'yes (' + row['compile_mode'] + ')' if row['compile'] else 'no'}, amp {row['amp_dtype']}, "
        f"channels-last {'yes' if row['channels_last_on'] else 'no'}, LTC update {row['ltc_backend']}, "
        f"device {row['device_name']}; {row['iters']} profiled iteration(s) after {row['warmup']} warm-up.",
        "",
        f"Total {row['metric']}: **{_num(row['total_ms_per_iter'])} ms per iteration** "
        f"({_num(row['total_ms'])} ms over {row['iters']}); wall clock under the profiler "
        f"{_num(row['wall_ms_per_iter'])} ms per iteration"
        + (f"; CPU self time {_num(row['cpu_total_ms'] / row['iters'])} ms per iteration" if row["top_kernels"] else "")
        + "."
        + (f" Trace: `{row['trace']}`." if row.get("trace") else ""),
        "",
        "| category | ms / iter | % |",
        "|---|---|---|",
    ]
    for c in sorted(row["categories"], key=lambda c: c["ms"], reverse=True):
        lines.append(f"| {c['title']} | {_num(c['ms_per_iter'])} | {c['percent']:.1f} |")
    lines += ["", f"Top operators by {row['metric']}:", "", *_table(row["top_ops"], row["iters"]), ""]
    if row["top_kernels"]:
        lines += ["Top kernels:", "", *_table(row["top_kernels"], row["iters"]), ""]
    return lines


def profile_markdown(report: dict) -> str:
    """The profile report as markdown: command, machine, conventions, one section per configuration."""
    lines = [
        "# spyolo profile",
        "",
        *machine_lines(report),
        "- conventions: torch.profiler over the profiled iterations (after unprofiled warm-up), one iteration = "
        "one batch (T timesteps; the ANN twin one step), real YOLO loss and FPTT update on random images. "
        "Self time: CUDA, the device time of the kernels each operator launched itself; CPU, self CPU time "
        "over all threads. Categories by operator names (benchmarks.profile's docstring); they add up to "
        "the total.",
        "",
    ]
    for row in report.get("profiles", []):
        lines += _section(row)
    return "\n".join(lines)


def write_profile_report(out_dir: str | Path, report: dict, stem: str = "benchmark") -> tuple[Path, Path]:
    """Write ``<out_dir>/<stem>_profile.json`` and ``<stem>_profile.md``; return both paths."""
    out = Path(out_dir)
    return write_pair(out / f"{stem}_profile.json", report, out / f"{stem}_profile.md", profile_markdown(report))
