"""``gen1:FOLDER`` set entries of ``data.train_sets`` / ``data.test_sets`` (no heavy imports: the
config checks entries with it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from spyolo.errors import DatasetError

__all__ = ["GEN1_PREFIX", "Gen1Source", "is_event_set", "parse_event_sets", "uses_events"]

GEN1_PREFIX = "gen1:"


class Gen1Source(NamedTuple):
    """A ``gen1:FOLDER`` set entry: a folder of ``NAME_td.dat`` + ``NAME_bbox.npy`` recordings."""

    folder: Path


def is_event_set(spec: str) -> bool:
    """Whether a set entry names an event-camera set (``gen1:...``)."""
    return str(spec).strip().startswith(GEN1_PREFIX)


def uses_events(data: Any) -> bool:
    """Whether a data config (``train_sets``, ``test_sets``) reads event-camera sets."""
    return any(is_event_set(s) for s in [*data.train_sets, *data.test_sets])


def parse_event_sets(specs: Sequence[str], root: str | Path) -> list[Gen1Source]:
    """``gen1:FOLDER`` entries -> sources (FOLDER under ``root`` unless absolute)."""
    out = []
    for spec in specs:
        folder = str(spec).strip()[len(GEN1_PREFIX):].strip()
        if not is_event_set(spec) or not folder:
            raise DatasetError(f"bad event set entry {spec!r}: expected 'gen1:FOLDER', e.g. 'gen1:train'")
        path = Path(folder)
        out.append(Gen1Source(path if path.is_absolute() else Path(root) / path))
    return out
