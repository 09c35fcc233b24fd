"""Typed configuration: YAML files loaded into dataclasses, with ``section.key=value`` overrides.

A config has four sections, ``data``, ``model``, ``train`` and ``eval``, each a dataclass
below. ``load_config("configs/spyv4_synthetic.yaml", ["train.epochs=3", "model.width=0.5"])``
reads the file, applies the overrides and checks every key and type: an unknown or
mistyped key is an error that lists the valid keys of its section.

Override values are parsed as YAML (``train.lr=1e-3`` is a float, ``data.train_sets=[A:trainval,B:trainval]``
a list, ``train.fptt_alpha_reg=null`` is None).
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Union

import yaml

from spyolo.datasets.kinds import check_data_config
from spyolo.errors import ConfigError
from spyolo.events.frames import EVENT_REPRESENTATIONS, EVENT_RESIZE_MODES
from spyolo.utils.choices import (
    AMP_MODES,
    CHANNELS_LAST_MODES,
    EVAL_INTERPOLATION_MODES,
    EVAL_METRICS,
    EVAL_RESIZE_MODES,
    LTC_BACKENDS,
    LTC_LAYER_GROUPS,
    LTC_LAYER_NAMES,
    MODEL_INIT_HEADS,
    MODEL_INIT_TAU,
    MODEL_INPUT_CHANNELS,
    MODEL_KINDS,
    OPTIMIZERS,
    READOUTS,
    RESET_TO_AVERAGE_MODES,
    SCHEDULERS,
    STATE_INITS,
    STEP_WEIGHTINGS,
    TAU_MODES,
    TRAIN_METHODS,
)
from spyolo.utils.text import cut, short_repr

__all__ = [
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "EvalConfig",
    "Config",
    "load_config",
    "apply_overrides",
    "config_to_dict",
    "config_from_dict",
    "save_config",
    "MAX_CONFIG_BYTES",
    "MAX_YAML_NODES",
    "parse_yaml",
    "read_yaml_file",
]

MAX_CONFIG_BYTES = 1 << 20
"""Largest config file read (1 MiB; a full config is about 3 KB): a larger file is refused unread."""
MAX_YAML_NODES = 100_000
"""Most values a YAML document may expand to, aliases counted at every use: a document of nested
aliases (each one repeating the one before) would otherwise expand to billions of values."""


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a document expanding to more than :data:`MAX_YAML_NODES`
    values, or one whose aliases refer to themselves, before building any Python object."""

    def construct_document(self, node: yaml.Node) -> Any:
        sizes: dict[int, int] = {}
        open_nodes: set[int] = set()

        def size(n: yaml.Node) -> int:
            key = id(n)
            if key in sizes:
                return sizes[key]
            if key in open_nodes:
                raise yaml.YAMLError("an alias refers to the value that contains it (a recursive alias)")
            open_nodes.add(key)
            total = 1
            if isinstance(n, yaml.SequenceNode):
                children: list[yaml.Node] = list(n.value)
            elif isinstance(n, yaml.MappingNode):
                children = [part for pair in n.value for part in pair]
            else:
                children = []
            for child in children:
                total += size(child)
                if total > MAX_YAML_NODES:
                    raise yaml.YAMLError(
                        f"the document expands to more than {MAX_YAML_NODES} values (through its aliases); "
                        f"a config holds a few hundred"
                    )
            open_nodes.discard(key)
            sizes[key] = total
            return total

        size(node)
        return super().construct_document(node)


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load(text)`` with the bounds of :class:`_BoundedLoader` (raises ``yaml.YAMLError``)."""
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise yaml.YAMLError("values nested too deeply (a config nests a few levels)") from None


def _head_default(name: str) -> list[list]:
    """A default of the heads' geometry, from its one home (imported on first use: it needs torch)."""
    from spyolo.models import heads

    return [list(v) for v in getattr(heads, name)]


@dataclass
class DataConfig:
    """Where the data lives (any kind of spyolo.datasets.kinds) and how it is augmented."""

    # Folder the set entries' relative paths start from (a VOCdevkit, or the synthetic data's parent).
    root: str = "data/synthetic"
    # Set entries (docs/datasets.md): "YEAR_FOLDER:split" (VOC), "coco:FILE.json:IMAGE_DIR",
    # "yolo:DATA_FILE:split" (ultralytics data.yaml or Darknet obj.data), "gen1:FOLDER" (events).
    train_sets: list[str] = field(default_factory=lambda: ["SYNTH:trainval"])
    test_sets: list[str] = field(default_factory=lambda: ["SYNTH:test"])
    # Class list file; None: the first set's own (classes.txt, COCO categories, YOLO names), else VOC's 20.
    classes: str | None = None
    img_size: int = 416
    keep_difficult: bool = False  # keep difficult objects in *training* targets
    # Every image is checked at start-up (header and end marker, cached in ~/.cache/spyolo or
    # $SPYOLO_CACHE_DIR): a bad one stops the start, naming it; skip_bad leaves bad samples out and
    # lists them (decoding every image, as verify_images does, to find the undecodable ones too).
    skip_bad: bool = False
    verify_images: bool = False  # decode every image whole at start-up (cached)
    eval_resize: str = "stretch"  # "stretch" (the paper) or "letterbox"
    # Interpolation of that resize: "cubic" (the release's bicubic) or "linear" (bilinear: Darknet's and
    # OpenCV's; spyolo convert sets it, so that a converted Darknet model sees the input Darknet gives it).
    eval_interpolation: str = "cubic"
    mosaic: float = 0.0  # probability of a 4-image mosaic per training sample
    scale_min: float = 0.25
    scale_max: float = 2.0
    aspect_jitter: float = 0.3
    hflip: float = 0.5
    hue: float = 0.1
    saturation: float = 0.7
    value: float = 0.4
    contrast: float = 0.0  # contrast factor range [1 - contrast, 1 + contrast] (0: none, the release)
    brightness_shift: float = 0.0  # added brightness U(-b, b) x 255 after the colour jitter (0: none)
    workers: int = 2
    # Generate the synthetic VOC-format set into root/<first train year folder> when missing.
    synthetic_train: int = 0
    synthetic_test: int = 0
    synthetic_seed: int = 0
    # Generator settings (spyolo.data.synthetic): class subset (empty: all eight shapes),
    # image side range in pixels, and difficulty knobs (SyntheticSpec fields, e.g.
    # {distractors: [0, 2], objects_per_image: [1, 3]}; unset knobs keep their defaults).
    synthetic_classes: list[str] = field(default_factory=list)
    synthetic_min_side: int = 300
    synthetic_max_side: int = 500
    synthetic_spec: dict[str, Any] = field(default_factory=dict)
    # Event-camera sets (gen1:FOLDER entries; spyolo/events/): a labelled time stamp becomes the
    # events of the event_window_ms before it, cut into model.timesteps bins of 2-channel (OFF, ON)
    # frames, "count" (events per pixel) or "binary"; the sensor frame sits at the input's top-left
    # corner, 1:1 ("pad") or scaled to fit ("scale"). event_sensor = [width, height] for files whose
    # header states none (Gen1: [304, 240]). For gen1 sets, synthetic_train / synthetic_test count
    # recordings and synthetic_spec holds spyolo.events.synthetic.EventSpec fields.
    event_window_ms: float = 50.0
    event_representation: str = "count"
    event_resize: str = "pad"
    event_sensor: list[int] = field(default_factory=list)


@dataclass
class ModelConfig:
    """The detector: SPYv4 (LTC spiking) or its ANN twin."""

    kind: str = "spyv4"  # "spyv4" | "ann"
    # What one timestep sees: "image" (3 RGB channels, the same image at every timestep) or "events"
    # (2 polarity channels, bin t of an event window at timestep t; the ANN twin reads the T bins
    # stacked as 2T channels). Event-camera sets (data gen1: entries) need "events".
    input: str = "image"
    width: float = 1.0
    timesteps: int = 8
    # Anchors (w, h) in pixels at anchor_ref_size, scaled to data.img_size; masks: anchor indices
    # of the stride-32 and stride-16 heads. Defaults: spyolo.models.heads (YOLOv4-tiny's).
    anchors: list[list[float]] = field(default_factory=lambda: _head_default("DEFAULT_ANCHORS"))
    anchor_ref_size: int = 416  # = spyolo.models.heads.ANCHOR_REF_SIZE (checked by the tests)
    masks: list[list[int]] = field(default_factory=lambda: _head_default("DEFAULT_MASKS"))
    threshold: float = 1.0
    # Multi-Gaussian surrogate gradient dS/dv (reference section 1): width s, side-lobe height h,
    # scale gamma. Defaults are the paper's; height 0 gives a plain Gaussian of area gamma.
    surrogate_sigma: float = 0.3
    surrogate_height: float = 0.15
    surrogate_gamma: float = 0.5
    state_init: str = "zero"  # "zero" | "uniform" (the release's U[0,1) draw)
    state_seed: int = 0  # seed of the uniform draw at evaluation
    # Heads' objectness/class bias = logit(head_prior) at init (0: PyTorch default, as the release).
    head_prior: float = 0.01
    # How the heads are read over the timesteps: "last" (each step's own heads; the release) or
    # "mean" (their running mean since the reset, a rate-coded read-out; spyolo/models/readout.py).
    readout: str = "last"
    # Path of every LTC neuron's time constant, a mode of the table spyolo/utils/tau_modes.py (docs/energy.md):
    # "ltc" (the paper's sigmoid(BN(Conv3x3(I + u))), dense analog MACs), "spike" (Conv3x3 of the layer's
    # previous spikes, accumulate-only), "depthwise" (depthwise 3x3 on I + u), "coarse" (the same at stride 2,
    # one tau per 2x2 block), "affine" (per-channel scale and shift of the neuron's own I + u, 1 MAC per
    # neuron) or "channel" (one learned constant per channel).
    tau_mode: str = "ltc"
    # Another tau_mode for some LTC layers: {layer or CSP block: mode}, e.g. {block1: coarse, conv1: coarse}
    # (names: spyolo.utils.choices.LTC_LAYER_NAMES; a layer's own entry wins over its block's).
    tau_mode_layers: dict[str, str] = field(default_factory=dict)
    # Dropout2d probability on the input image in training (the release: 0.1).
    input_dropout: float = 0.0
    # Centre scale of the heads' decoding, Darknet's scale_x_y: centre = sigmoid(t) * k - (k - 1) / 2
    # + cell. 1 for SPYv4 (the release); 1.05 in the original yolov4-tiny.cfg (spyolo convert keeps it).
    scale_xy: float = 1.0
    # Start training from these weights (spyolo.models.transfer_weights): a trained ANN twin or
    # SPYv4 checkpoint, a YOLOv4-tiny state dict in the widely shared naming, a Darknet .weights file,
    # the sFPTT release's state dict, or the name of pretrained weights (spyolo weights lists them:
    # yolov4-tiny-coco, sfptt-voc, ...). Not on --resume.
    init_from: str | None = None
    # What init_from copies of heads trained on other classes than the dataset's: "names" (each anchor
    # slot's box and objectness channels, and the class channels of the classes both name, matched by
    # name: spyolo/utils/classnames.py; the others keep their init), "boxes" (the box and objectness
    # channels only), "matching" (nothing: heads are copied only for the same classes, remapped by
    # name) or "auto": "names" when the source names its classes and shares one with the dataset,
    # else "boxes". Same classes: the whole heads.
    init_heads: str = "auto"
    # The time constant of LTC layers whose tau path init_from does not bring (an ANN source): "keep"
    # its random initial path (tau = sigmoid(BN(Conv(I + u))) with fresh weights: a different tau per
    # neuron and input), or "neutral": tau_bn's scale set to 0, so tau = sigmoid(0) = 0.5 for every
    # neuron until training grows the path (the copied network then fires where its current exceeds
    # 2 x threshold at the first step, the same rule for every neuron).
    init_tau: str = "keep"


@dataclass
class TrainConfig:
    """Optimisation: FPTT or BPTT, optimiser, schedule, run folder."""

    name: str = "spyv4"
    out_dir: str = "runs"
    method: str = "fptt"  # "fptt" | "bptt" (ignored for model.kind=ann)
    epochs: int = 100
    # > 0: the length of training in batches (iterations) instead of epochs: train.epochs becomes
    # ceil(iterations / batches per epoch), so that a small and a large dataset get the same number of
    # updates (the schedule, warm-up excepted, spans the whole run either way). 0: train.epochs as given.
    iterations: int = 0
    batch_size: int = 16
    optimizer: str = "adam"  # "adam" | "adamw" | "sgd"
    lr: float = 1e-3
    momentum: float = 0.937  # SGD momentum / Adam beta1
    weight_decay: float = 0.0
    # Step size of the LTC time constants' path (tau_conv, tau_bn, tau_param) as a multiple of lr: a path
    # that model.init_from does not bring starts from its init while the rest starts trained.
    tau_lr_scale: float = 1.0
    scheduler: str = "cosine"  # "cosine" | "step" | "constant"
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    step_milestones: list[float] = field(default_factory=lambda: [0.7, 0.9])  # fractions of training
    step_gamma: float = 0.1
    clip_norm: float = 1.0
    label_smoothing: float = 0.0
    ignore_thresh: float = 0.5
    # FPTT (section 4 of the reference)
    fptt_alpha: float = 0.5  # trace update alpha
    fptt_alpha_reg: float | None = None  # regulariser alpha; None -> fptt_alpha
    fptt_beta: float = 0.5
    step_weighting: str = "uniform"  # "uniform" (the release) | "linear" (t/T)
    update_every: int = 1  # FPTT: optimiser step every K timesteps
    reset_to_average: str = "epoch"  # "epoch" | "never"
    # Distillation from a trained, frozen teacher (spyolo/train/distill.py): its head outputs,
    # computed once per batch, pull SPYv4's at every timestep; distill_weight scales the term,
    # distill_box_weight its box part; distill_feature_weight > 0 also pulls every LTC layer's synaptic
    # current towards the teacher's of the same layer (feature distillation). A file or
    # the name of pretrained weights: an ANN twin (one pass per batch), or a SPYv4 (run over the model's
    # timesteps, step t teaching step t: e.g. the paper's LTC model teaching a cheaper tau_mode).
    distill_from: str | None = None
    distill_weight: float = 1.0
    distill_box_weight: float = 1.0
    distill_feature_weight: float = 0.0
    # Energy term (spyolo/train/energy.py): > 0 adds, at every timestep, energy_weight x the energy of
    # SPYv4's spike-driven convolutions per image over the ANN twin's energy per image (the count of
    # spyolo eval --spikes, differentiable through the surrogate): firing costs loss. Spiking models
    # only (ignored, with a note, when model.kind=ann trains the twin from the same file).
    energy_weight: float = 0.0
    # Execution
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    amp: str = "auto"  # "auto" (bf16 on CUDA) | "bf16" | "off"
    channels_last: str = "auto"  # "auto" (on CUDA) | "on" | "off"
    compile: bool = False
    # Elementwise LTC update: "reference" (plain PyTorch) or "fused" (spyolo/snn/fused.py,
    # torch.compile'd kernels; Triton on CUDA, C++ on CPU).
    ltc_backend: str = "reference"
    seed: int = 0
    deterministic: bool = False
    eval_every: int = 1  # epochs between mAP evaluations (0: only at the end)
    log_every: int = 10  # iterations between results logging in the progress bar
    max_iters_per_epoch: int = 0  # 0: full epoch (a cap for smoke runs)


@dataclass
class EvalConfig:
    """Post-processing and evaluation."""

    conf_thresh: float = 0.001
    nms_iou: float = 0.5
    max_det: int = 300  # cap on boxes per image (0: no cap)
    iou_threshold: float = 0.5  # VOC match threshold
    metric: str = "voc07"  # headline metric for best.pt: "voc07" | "area"
    batch_size: int = 16
    max_images: int = 0  # 0: the whole test split
    # Training images scored beside the test split at every evaluation of a training run: a fixed,
    # evenly spaced subset of the training split with the evaluation resize (no augmentation);
    # results.csv's train_map_voc07 / train_map_area. Test mAP far below it is over-fitting, both
    # low under-fitting. 0: not scored.
    train_images: int = 64
    # A dataset whose classes differ from the model's is scored with the classes matched by name
    # (spyolo/utils/classnames.py: case and spaces ignored, COCO's spellings of VOC's classes aliased);
    # class_map: a YAML file of "model class: dataset class" lines that replaces that matching
    # (null drops a class; docs/configuration.md).
    class_map: str | None = None
    demo_conf: float = 0.25
    demo_nms: float = 0.45
    # The Gen1 protocol (event sets): boxes with a diagonal under gen1_min_box_diag or a side under
    # gen1_min_box_side (sensor pixels) are ignored, and time stamps up to gen1_skip_ms of each
    # recording are not evaluated.
    gen1_min_box_diag: float = 30.0
    gen1_min_box_side: float = 10.0
    gen1_skip_ms: float = 500.0


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


_SECTION_TYPES = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "eval": EvalConfig}


def _closest(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert ``value`` to the annotated type ``tp``; raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {short_repr(value)}")
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of key: value, got {short_repr(value)}")
        key_tp, val_tp = typing.get_args(tp) or (str, Any)
        return {_coerce(k, key_tp, where): _coerce(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if origin is list:
        (item_tp,) = typing.get_args(tp) or (Any,)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {short_repr(value)}")
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {short_repr(value)}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {short_repr(value)}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "2e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {short_repr(value)}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {short_repr(value)}")
        return number
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {short_repr(value)}")
        return str(value)
    raise ConfigError(f"{where}: unsupported type {tp}")


_CHOICES: dict[tuple[str, str], Collection[str]] = {
    # the tuples the owning modules check (spyolo.utils.choices, spyolo.events.frames)
    ("data", "eval_resize"): EVAL_RESIZE_MODES,
    ("data", "eval_interpolation"): EVAL_INTERPOLATION_MODES,
    ("model", "kind"): MODEL_KINDS,
    ("model", "input"): tuple(MODEL_INPUT_CHANNELS),
    ("data", "event_representation"): EVENT_REPRESENTATIONS,
    ("data", "event_resize"): EVENT_RESIZE_MODES,
    ("model", "state_init"): STATE_INITS,
    ("model", "readout"): READOUTS,
    ("model", "init_heads"): MODEL_INIT_HEADS,
    ("model", "init_tau"): MODEL_INIT_TAU,
    ("model", "tau_mode"): TAU_MODES,
    ("train", "method"): TRAIN_METHODS,
    ("train", "optimizer"): OPTIMIZERS,
    ("train", "scheduler"): SCHEDULERS,
    ("train", "step_weighting"): STEP_WEIGHTINGS,
    ("train", "reset_to_average"): RESET_TO_AVERAGE_MODES,
    ("train", "amp"): AMP_MODES,
    ("train", "channels_last"): CHANNELS_LAST_MODES,
    ("train", "ltc_backend"): LTC_BACKENDS,
    ("eval", "metric"): EVAL_METRICS,
}


def _set_key(cfg: Config, section: str, key: str, value: Any, source: str) -> None:
    if section not in _SECTION_TYPES:
        raise ConfigError(
            f"{source}: unknown section '{cut(section)}'.{_closest(section, list(_SECTION_TYPES))} "
            f"Valid sections: {', '.join(_SECTION_TYPES)}"
        )
    sec = getattr(cfg, section)
    hints = typing.get_type_hints(type(sec))
    if key not in hints:
        valid = [f.name for f in fields(sec)]
        raise ConfigError(
            f"{source}: unknown key '{section}.{cut(key)}'.{_closest(key, valid)} "
            f"Valid keys of '{section}': {', '.join(valid)}"
        )
    value = _coerce(value, hints[key], f"{source}: {section}.{key}")
    choices = _CHOICES.get((section, key))
    if choices is not None and value not in choices:
        raise ConfigError(
            f"{source}: {section}.{key} must be one of {', '.join(choices)}; got {short_repr(value)}")
    setattr(sec, key, value)


def config_from_dict(d: dict, source: str = "<dict>") -> Config:
    """Build a Config from a nested dict (sections of keys); every key is checked."""
    cfg = Config()
    if d is None:
        return cfg
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(d).__name__}")
    for section, values in d.items():
        if section not in _SECTION_TYPES:
            raise ConfigError(
                f"{source}: unknown section '{cut(str(section))}'.{_closest(str(section), list(_SECTION_TYPES))} "
                f"Valid sections: {', '.join(_SECTION_TYPES)}"
            )
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section '{section}' must be a mapping of key: value")
        for key, value in values.items():
            _set_key(cfg, section, str(key), value, source)
    validate(cfg, source)
    return cfg


_RANGES: dict[tuple[str, str], str] = {
    ("data", "scale_min"): "> 0",
    ("data", "aspect_jitter"): "[0, 1)",
    ("data", "hflip"): "[0, 1]",
    ("data", "mosaic"): "[0, 1]",
    ("data", "hue"): ">= 0",
    ("data", "saturation"): ">= 0",
    ("data", "value"): ">= 0",
    ("data", "contrast"): "[0, 1)",
    ("data", "brightness_shift"): "[0, 1]",
    ("data", "workers"): ">= 0",
    ("data", "synthetic_train"): ">= 0",
    ("data", "synthetic_test"): ">= 0",
    ("model", "anchor_ref_size"): "> 0",
    ("model", "head_prior"): "[0, 1)",
    ("train", "lr"): "> 0",
    ("train", "momentum"): "[0, 1)",
    ("train", "weight_decay"): ">= 0",
    ("train", "warmup_epochs"): ">= 0",
    ("train", "iterations"): ">= 0",
    ("train", "tau_lr_scale"): "> 0",
    ("train", "min_lr_ratio"): "[0, 1]",
    ("train", "step_gamma"): "> 0",
    ("train", "clip_norm"): ">= 0",
    ("train", "label_smoothing"): "[0, 1)",
    ("train", "ignore_thresh"): "[0, 1]",
    ("train", "fptt_alpha"): "> 0",
    ("train", "fptt_alpha_reg"): "> 0",
    ("train", "fptt_beta"): "(0, 1]",
    ("train", "eval_every"): ">= 0",
    ("train", "log_every"): ">= 1",
    ("train", "max_iters_per_epoch"): ">= 0",
    ("eval", "conf_thresh"): "[0, 1]",
    ("eval", "nms_iou"): "(0, 1]",
    ("eval", "max_det"): ">= 0",
    ("eval", "iou_threshold"): "(0, 1]",
    ("eval", "batch_size"): ">= 1",
    ("eval", "max_images"): ">= 0",
    ("eval", "train_images"): ">= 0",
    ("eval", "demo_conf"): "[0, 1]",
    ("eval", "demo_nms"): "(0, 1]",
}
"""The range of each numeric key with one: ``"> 0"``, ``">= 0"``, or an interval such as ``"[0, 1)"``
(a ``None`` value, where a key allows it, is not checked)."""


def _in_range(value: float, rule: str) -> bool:
    if rule.startswith(">"):
        bound = float(rule.split()[-1])
        return value >= bound if rule.startswith(">=") else value > bound
    low, high = (float(v) for v in rule[1:-1].split(","))
    return (low <= value if rule[0] == "[" else low < value) and (value <= high if rule[-1] == "]" else value < high)


def validate(cfg: Config, source: str = "config") -> None:
    """Cross-field checks that single-key typing cannot express."""
    for (section, key), rule in _RANGES.items():
        value = getattr(getattr(cfg, section), key)
        if value is not None and not _in_range(value, rule):
            where = f"must be {rule}" if rule.startswith(">") else f"must be in {rule}"
            raise ConfigError(f"{source}: {section}.{key} {where}, got {value}")
    if cfg.data.img_size % 32 != 0 or cfg.data.img_size <= 0:
        raise ConfigError(f"{source}: data.img_size must be a positive multiple of 32, got {cfg.data.img_size}")
    if cfg.model.timesteps < 1:
        raise ConfigError(f"{source}: model.timesteps must be >= 1")
    if len(cfg.model.anchors) != 6 or any(len(a) != 2 for a in cfg.model.anchors):
        raise ConfigError(f"{source}: model.anchors must be six [w, h] pairs")
    if len(cfg.model.masks) != 2 or any(len(m) != 3 for m in cfg.model.masks):
        raise ConfigError(f"{source}: model.masks must be two lists of three anchor indices")
    if any(not 0 <= i < 6 for m in cfg.model.masks for i in m):
        raise ConfigError(f"{source}: model.masks indices must be in 0..5")
    if cfg.model.width <= 0:
        raise ConfigError(f"{source}: model.width must be > 0")
    if cfg.model.threshold <= 0:
        raise ConfigError(f"{source}: model.threshold must be > 0")
    if cfg.model.surrogate_sigma <= 0 or cfg.model.surrogate_gamma <= 0 or cfg.model.surrogate_height < 0:
        raise ConfigError(
            f"{source}: the surrogate needs model.surrogate_sigma > 0, model.surrogate_gamma > 0 and "
            f"model.surrogate_height >= 0"
        )
    for name, mode in cfg.model.tau_mode_layers.items():
        if name not in LTC_LAYER_NAMES and name not in LTC_LAYER_GROUPS:
            raise ConfigError(f"{source}: model.tau_mode_layers: {short_repr(name)} is not an LTC layer of SPYv4; "
                              f"valid names are {', '.join(LTC_LAYER_GROUPS)} or one of {', '.join(LTC_LAYER_NAMES)}")
        if mode not in TAU_MODES:
            raise ConfigError(f"{source}: model.tau_mode_layers.{name} must be one of {', '.join(TAU_MODES)}; "
                              f"got {short_repr(mode)}")
    if not 1.0 <= cfg.model.scale_xy <= 2.0:
        raise ConfigError(f"{source}: model.scale_xy must be in [1, 2], got {cfg.model.scale_xy}")
    if not 0.0 <= cfg.model.input_dropout < 1.0:
        raise ConfigError(f"{source}: model.input_dropout must be in [0, 1), got {cfg.model.input_dropout}")
    if cfg.train.distill_weight < 0 or cfg.train.distill_box_weight < 0 or cfg.train.distill_feature_weight < 0:
        raise ConfigError(f"{source}: train.distill_weight, train.distill_box_weight and "
                          f"train.distill_feature_weight must be >= 0")
    if not cfg.train.energy_weight >= 0:
        raise ConfigError(f"{source}: train.energy_weight must be >= 0, got {cfg.train.energy_weight}")
    if cfg.train.update_every < 1:
        raise ConfigError(f"{source}: train.update_every must be >= 1")
    if cfg.train.batch_size < 1 or cfg.train.epochs < 1:
        raise ConfigError(f"{source}: train.batch_size and train.epochs must be >= 1")
    if cfg.data.scale_max < cfg.data.scale_min:
        raise ConfigError(f"{source}: data.scale_max ({cfg.data.scale_max}) must be >= data.scale_min "
                          f"({cfg.data.scale_min})")
    if any(not (w > 0 and h > 0) for w, h in cfg.model.anchors):
        raise ConfigError(f"{source}: model.anchors must be positive [w, h] pairs, got "
                          f"{short_repr(cfg.model.anchors)}")
    if not cfg.data.train_sets or not cfg.data.test_sets:
        raise ConfigError(f"{source}: data.train_sets and data.test_sets must not be empty")
    check_data_config(cfg, source)
    if cfg.data.event_window_ms <= 0:
        raise ConfigError(f"{source}: data.event_window_ms must be > 0")
    if cfg.data.event_sensor and (len(cfg.data.event_sensor) != 2 or min(cfg.data.event_sensor) < 1):
        raise ConfigError(f"{source}: data.event_sensor must be [width, height] in pixels "
                          f"(or [] to read it from the files)")
    if cfg.eval.gen1_min_box_diag < 0 or cfg.eval.gen1_min_box_side < 0 or cfg.eval.gen1_skip_ms < 0:
        raise ConfigError(f"{source}: eval.gen1_min_box_diag, gen1_min_box_side and gen1_skip_ms must be >= 0")


def apply_overrides(cfg: Config, overrides: list[str] | None) -> Config:
    """Apply ``section.key=value`` strings (values parsed as YAML) to ``cfg`` in place."""
    for item in overrides or []:
        shown = cut(item, 120)
        if "=" not in item:
            raise ConfigError(f"override '{shown}': expected section.key=value")
        dotted, raw = item.split("=", 1)
        if "." not in dotted:
            raise ConfigError(
                f"override '{shown}': expected section.key=value with a section "
                f"({', '.join(_SECTION_TYPES)})"
            )
        section, key = dotted.strip().split(".", 1)
        try:
            value = parse_yaml(raw) if raw.strip() != "" else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"override '{shown}': cannot parse value: {cut(str(e), 300)}") from None
        _set_key(cfg, section, key, value, f"override '{shown}'")
    validate(cfg, "overrides")
    return cfg


def read_yaml_file(path: str | Path, what: str = "config file", hint: str = "a full config is about 3 KB",
                   error: type[Exception] = ConfigError, where: str | None = None) -> Any:
    """The YAML document of a user's file, read with :func:`parse_yaml`'s bounds.

    ``what`` names the file in the messages, ``hint`` says what size is usual, ``where`` (default: the
    path) starts every message.

    Raises:
        error: missing, unreadable, over 1 MiB (refused unread), not UTF-8, or not YAML.
    """
    p = Path(path)
    where = str(p) if where is None else where
    if not p.is_file():
        raise error(f"{where}: {what} not found")
    try:
        size = p.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise error(f"{where}: {size / 2**20:.1f} MiB is too large for a {what} (at most "
                        f"{MAX_CONFIG_BYTES // 2**20} MiB; {hint})")
        return parse_yaml(p.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as e:
        raise error(f"{where}: not a YAML text file (not UTF-8: byte {e.object[e.start]:#04x} at offset "
                    f"{e.start})") from None
    except OSError as e:
        raise error(f"{where}: cannot read {what} ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise error(f"{where}: invalid YAML: {cut(str(e), 300)}") from None


MAX_BASE_DEPTH = 8
"""How many ``base:`` files a config may chain."""


def _config_mapping(p: Path, chain: tuple[Path, ...] = ()) -> Any:
    """The file's mapping with its ``base:`` chain merged in (the file's own values win, key by key).

    ``base: other.yaml`` (relative to the file) names a config whose values this one starts from: the
    configs of several datasets can share one recipe file and state only their data.
    """
    d = read_yaml_file(p)
    if not isinstance(d, dict) or "base" not in d:
        return d
    base = d.pop("base")
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{p}: base: expected the path of another config file, got {cut(repr(base), 100)}")
    base_path = (p.parent / base).resolve()
    here = p.resolve()
    if base_path in (*chain, here):
        raise ConfigError(f"{p}: base: {base} leads back to {base_path.name} (a cycle of base files)")
    if len(chain) >= MAX_BASE_DEPTH:
        raise ConfigError(f"{p}: base: more than {MAX_BASE_DEPTH} base files in a chain")
    if not base_path.is_file():
        raise ConfigError(f"{p}: base: {base}: config file not found (looked for {base_path})")
    merged = _config_mapping(base_path, (*chain, here))
    if not isinstance(merged, dict):
        return d  # config_from_dict names the base file's problem when it is used on its own
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in merged.items()}
    for section, values in d.items():
        if isinstance(values, dict) and isinstance(out.get(section), dict):
            out[section].update(values)
        else:
            out[section] = values
    return out


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config file (or the defaults when ``path`` is None) and apply overrides.

    A file may start from another: ``base: recipe.yaml`` (a path relative to the file) loads that
    file first and the file's own values replace the base's key by key.
    """
    if path is None:
        cfg = Config()
    else:
        p = Path(path)
        cfg = config_from_dict(_config_mapping(p), str(p))
    return apply_overrides(cfg, overrides)


def config_to_dict(cfg: Config) -> dict:
    return asdict(cfg)


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write ``cfg`` as YAML (atomically); :func:`load_config` reads it back."""
    from spyolo.utils.io import atomic_write_text

    return atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))

