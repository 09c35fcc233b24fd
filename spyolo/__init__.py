"""spyolo: spiking object detection (SPYv4, LTC neurons, FPTT training).

``from spyolo import Detector`` gives the inference API
(:class:`spyolo.inference.detector.Detector`); it is imported on first access, so
``import spyolo`` itself stays light (no torch import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Detector", "Prediction", "__version__"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from spyolo.inference.detector import Detector
    from spyolo.inference.prediction import Prediction

_LAZY = {
    "Detector": "spyolo.inference.detector",
    "Prediction": "spyolo.inference.prediction",
}


def __getattr__(name: str) -> Any:
    """Import the lazily exported names on first use (PEP 562)."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'spyolo' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
