"""The named choices of the settings that the owning modules check and the config validates.

Kept in one torch-free leaf so that :mod:`spyolo.config` (below ``train`` and ``eval`` in the
layering, and light to import) reads the same tuples as the modules that act on them; each
owner imports its own from here (e.g. :data:`OPTIMIZERS` is
``spyolo.train.optim.OPTIMIZERS``). The event-frame choices live with their owner,
:mod:`spyolo.events.frames`, which is torch-free itself.
"""

from __future__ import annotations

from types import MappingProxyType

from spyolo.utils.tau_modes import TAU_MODES

__all__ = [
    "AMP_MODES", "CHANNELS_LAST_MODES", "EVAL_INTERPOLATION_MODES", "EVAL_METRICS", "EVAL_RESIZE_MODES",
    "LTC_BACKENDS", "LTC_LAYER_GROUPS", "LTC_LAYER_NAMES", "MODEL_INIT_HEADS", "MODEL_INIT_TAU", "MODEL_INPUT_CHANNELS",
    "MODEL_KINDS",
    "OPTIMIZERS", "READOUTS", "RESET_TO_AVERAGE_MODES", "SCHEDULERS", "STATE_INITS", "STEP_WEIGHTINGS", "TAU_MODES",
    "TRAIN_METHODS",
]

# data (spyolo.data.transforms)
EVAL_RESIZE_MODES: tuple[str, ...] = ("stretch", "letterbox")
EVAL_INTERPOLATION_MODES: tuple[str, ...] = ("cubic", "linear")

# model (spyolo.models, spyolo.snn)
MODEL_KINDS: tuple[str, ...] = ("spyv4", "ann")
MODEL_INPUT_CHANNELS = MappingProxyType({"image": 3, "events": 2})  # model.input -> channels per timestep
# model.input -> whether each timestep sees its own frame (event bins; the ANN twin then reads the T frames
# stacked) or the same image at every timestep
MODEL_INPUT_PER_TIMESTEP = MappingProxyType({"image": False, "events": True})
STATE_INITS: tuple[str, ...] = ("zero", "uniform")
READOUTS: tuple[str, ...] = ("last", "mean")
# what model.init_from copies of heads trained on other classes (spyolo.models.transfer)
MODEL_INIT_HEADS: tuple[str, ...] = ("auto", "names", "boxes", "matching")
MODEL_INIT_TAU: tuple[str, ...] = ("keep", "neutral")
"""``model.init_tau``: what an LTC layer's time constant starts from when ``model.init_from`` brings no
tau path (an ANN source): ``keep`` its initial (random) path, or ``neutral``: tau = 0.5 everywhere."""
LTC_BACKENDS: tuple[str, ...] = ("reference", "fused", "fused-eager")
# the LTC time constant's path: TAU_MODES, the names of the table spyolo.utils.tau_modes.TAU_MODE_TABLE (imported
# above; a live view of its keys)
# SPYv4's 19 LTC layers in forward order (spyolo/models/spyv4.py), and the CSP blocks that group four
# of them: the names model.tau_mode_layers may set
LTC_LAYER_GROUPS: tuple[str, ...] = ("block1", "block2", "block3")
LTC_LAYER_NAMES: tuple[str, ...] = (
    "conv1", "conv2",
    *(f"{block}.c{i}" for block in LTC_LAYER_GROUPS for i in range(1, 5)),
    "conv3", "conv_p5", "neck1", "conv_up", "neck2",
)

# train (spyolo.train, spyolo.utils.runtime); model.kind=ann trains the twin whatever train.method says
TRAIN_METHODS: tuple[str, ...] = ("fptt", "bptt")
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")
SCHEDULERS: tuple[str, ...] = ("cosine", "step", "constant")
STEP_WEIGHTINGS: tuple[str, ...] = ("uniform", "linear")
RESET_TO_AVERAGE_MODES: tuple[str, ...] = ("epoch", "never")
AMP_MODES: tuple[str, ...] = ("auto", "bf16", "off")
CHANNELS_LAST_MODES: tuple[str, ...] = ("auto", "on", "off")

# eval (spyolo.eval)
EVAL_METRICS: tuple[str, ...] = ("voc07", "area")
