"""The source of a ``gen1:FOLDER`` set entry (no heavy imports: the configuration checks entries
with it; the entry's syntax is in :mod:`spyolo.datasets.kinds`)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from spyolo.data.voc import read_class_file
from spyolo.errors import DatasetError

__all__ = ["GEN1_CLASSES", "Gen1Source"]

GEN1_CLASSES: tuple[str, ...] = ("car", "pedestrian")
"""Gen1's classes, in ``class_id`` order."""


class Gen1Source(NamedTuple):
    """A ``gen1:FOLDER`` set entry: a folder of ``NAME_td.dat`` + ``NAME_bbox.npy`` recordings."""

    folder: Path

    def __str__(self) -> str:
        return str(self.folder)

    def declared_classes(self) -> list[str] | None:
        """``classes.txt`` in the folder or its parent, if there is one."""
        for folder in (self.folder, self.folder.parent):
            if (folder / "classes.txt").is_file():
                return read_class_file(folder / "classes.txt")
        return None

    def recordings(self) -> list[Path]:
        """The folder's ``*_td.dat`` files, sorted.

        Raises:
            DatasetError: the folder is missing or holds no recording.
        """
        if not self.folder.is_dir():
            raise DatasetError(f"{self.folder}: event dataset folder not found")
        files = sorted(self.folder.glob("*_td.dat"))
        if not files:
            raise DatasetError(f"{self.folder}: no *_td.dat event files (expected the Gen1 layout: NAME_td.dat with "
                               f"NAME_bbox.npy)")
        return files
