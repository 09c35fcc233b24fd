"""Matching two class lists by name: a model's classes to a dataset's, or a source's heads to a model's.

Two names match when their keys are equal: :func:`class_key` ignores case, spaces, ``_`` and ``-``
(``"Dining Table"``, ``"dining_table"`` and ``"diningtable"`` are one key) and maps the usual COCO
spellings onto PASCAL VOC's (:data:`CLASS_ALIASES`: airplane/aeroplane, motorcycle/motorbike,
couch/sofa, tv/tvmonitor, dining table/diningtable, potted plant/pottedplant). Darknet's
``coco.names`` already spells the 20 classes COCO shares with VOC as VOC does.

:func:`match_classes` pairs each target class with the first source class of the same key and
returns a :class:`ClassMatching`; :func:`spyolo.eval.classes.read_class_map` reads a user's explicit
pairing (``eval.class_map``) into the same form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from spyolo.utils.text import first_few

__all__ = ["CLASS_ALIASES", "ClassMatching", "class_key", "match_classes"]

CLASS_ALIASES: Mapping[str, str] = {
    "airplane": "aeroplane",
    "motorcycle": "motorbike",
    "couch": "sofa",
    "tv": "tvmonitor",
    "diningtable": "diningtable",
    "pottedplant": "pottedplant",
}
"""Key of a spelling -> key it stands for (after :func:`class_key`'s folding; ``"dining table"`` and
``"potted plant"`` fold to ``diningtable`` and ``pottedplant`` already, listed for completeness)."""

def class_key(name: str) -> str:
    """The key two names must share to match: lower case, without spaces, ``_`` and ``-``, aliased."""
    key = "".join(ch for ch in str(name).casefold() if not ch.isspace() and ch not in "_-")
    return CLASS_ALIASES.get(key, key)


@dataclass(frozen=True)
class ClassMatching:
    """Which source class stands for which target class.

    Attributes:
        source: the source's classes (a model's, or the weights' a model starts from).
        target: the target's classes (a dataset's, or the model's being started).
        pairs: ``(source index, target index)`` pairs, in target order; a source class pairs with at
            most one target class, a target class may have several source classes (a class map only).
        how: ``"name"`` (:func:`match_classes`) or the class-map file it was read from.
    """

    source: tuple[str, ...]
    target: tuple[str, ...]
    pairs: tuple[tuple[int, int], ...]
    how: str = "name"

    @property
    def identical(self) -> bool:
        """The same list: every class pairs with the class of the same index and name."""
        return self.source == self.target and self.pairs == tuple((i, i) for i in range(len(self.target)))

    def target_of_source(self) -> list[int]:
        """For each source class, its target class (``-1``: none, its detections are dropped)."""
        out = [-1] * len(self.source)
        for s, t in self.pairs:
            out[s] = t
        return out

    def source_of_target(self) -> list[int | None]:
        """For each target class, the (first) source class that stands for it, or ``None``."""
        out: list[int | None] = [None] * len(self.target)
        for s, t in self.pairs:
            if out[t] is None:
                out[t] = s
        return out

    @property
    def unmatched_target(self) -> list[str]:
        """Target classes no source class stands for."""
        return [name for name, s in zip(self.target, self.source_of_target()) if s is None]

    @property
    def unmatched_source(self) -> list[str]:
        """Source classes that stand for no target class."""
        return [name for name, t in zip(self.source, self.target_of_source()) if t < 0]

    def describe_pairs(self, limit: int = 30) -> str:
        """``"aeroplane <- aeroplane, sofa <- couch, ..."`` (target <- source), cut after ``limit`` pairs."""
        shown = [self.target[t] if self.source[s] == self.target[t] else f"{self.target[t]} <- {self.source[s]}"
                 for s, t in sorted(self.pairs, key=lambda p: (p[1], p[0]))]
        return first_few(shown, limit, "pairs")


def match_classes(source: Sequence[str], target: Sequence[str]) -> ClassMatching:
    """Pair each target class with the first source class of the same :func:`class_key`.

    A source class that two target classes would both take pairs with the first of them only.
    """
    first: dict[str, int] = {}
    for i, name in enumerate(source):
        first.setdefault(class_key(name), i)
    pairs, taken = [], set()
    for t, name in enumerate(target):
        s = first.get(class_key(name))
        if s is not None and s not in taken:
            taken.add(s)
            pairs.append((s, t))
    return ClassMatching(tuple(map(str, source)), tuple(map(str, target)), tuple(pairs))
