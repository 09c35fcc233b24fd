"""``spyolo``'s public names: exported lazily (``import spyolo`` loads no torch), each the object
of the module that defines it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import spyolo

REPO = Path(__file__).resolve().parents[1]

PUBLIC = {
    "Detector": "spyolo.inference.detector",
    "Prediction": "spyolo.inference.prediction",
    "load_config": "spyolo.config",
    "Trainer": "spyolo.train.trainer",
    "evaluate_checkpoint": "spyolo.eval.evaluate",
    "export_onnx": "spyolo.export.onnx",
    "transfer_weights": "spyolo.models.transfer",
}


def test_all_lists_the_public_names() -> None:
    assert set(spyolo.__all__) == {*PUBLIC, "__version__"}
    assert set(PUBLIC) <= set(dir(spyolo))


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_each_public_name_is_its_modules_object(name: str) -> None:
    import importlib

    assert getattr(spyolo, name) is getattr(importlib.import_module(PUBLIC[name]), name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Trainr'"):
        spyolo.Trainr  # noqa: B018


def test_the_public_names_load_on_first_use() -> None:
    code = (
        "import sys, spyolo\n"
        "assert 'torch' not in sys.modules, 'import spyolo imported torch'\n"
        "from spyolo import load_config\n"
        "assert 'torch' not in sys.modules, 'load_config imported torch'\n"
        "assert load_config(None).model.kind == 'spyv4'\n"
        "from spyolo import Trainer, evaluate_checkpoint, transfer_weights\n"
        "assert 'torch' in sys.modules\n"
        "print(Trainer.__name__, evaluate_checkpoint.__name__, transfer_weights.__name__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["Trainer", "evaluate_checkpoint", "transfer_weights"]
