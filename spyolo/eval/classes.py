"""Scoring a model on a dataset of other classes: which model class stands for which dataset class.

``spyolo eval`` on a dataset whose class list differs from the model's (another order, other
spellings, a subset: the 80-class COCO detector on VOC's 20) pairs the classes by name
(:func:`spyolo.utils.classnames.match_classes`: case and spaces ignored, COCO's spellings of VOC's
classes aliased), or as a class-map file says (``eval.class_map``, :func:`read_class_map`). A model
class with no dataset class is left out: each box takes the best of the model's paired classes (its
score is the objectness times that class's probability), so no detection of an unpaired class is
made, as if the model had been built for the dataset's classes (``model.init_heads=names`` builds that
model: it scores the same). A dataset class that no model class stands for keeps its ground truth and
so scores AP 0.

A class map is a YAML mapping, one ``model class: dataset class`` line per pair, names spelled
exactly as the model and the dataset spell them (quote a name YAML would read as a number or a
boolean)::

    car: car
    truck: car          # several model classes may stand for one dataset class
    motorcycle: motorbike
    person: null        # null (or no line): the class's detections are dropped

It replaces the matching by name entirely: model classes it does not name are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from spyolo.config import read_yaml_file
from spyolo.errors import ConfigError
from spyolo.utils.classnames import ClassMatching, match_classes
from spyolo.utils.text import first_few

__all__ = ["class_matching", "describe_matching", "read_class_map"]


def read_class_map(path: str | Path, model: Sequence[str], dataset: Sequence[str]) -> ClassMatching:
    """The pairing a class-map file states (see the module doc).

    Raises:
        ConfigError: ``eval.class_map=<path>: <problem>``: missing, unreadable, over 1 MiB, not UTF-8
            YAML, not a non-empty mapping, a name that is not the model's (a key) or the dataset's (a
            value).
    """
    where = f"eval.class_map={path}"
    data = read_yaml_file(path, what="class map", hint="a class map holds one line per class", where=where)
    if not isinstance(data, Mapping) or not data:
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ConfigError(f"{where}: expected a YAML mapping of 'model class: dataset class' lines, got {got}")
    model_index = {str(name): i for i, name in enumerate(model)}
    dataset_index = {str(name): i for i, name in enumerate(dataset)}
    pairs = []
    for key, value in data.items():
        if not isinstance(key, str) or key not in model_index:
            raise ConfigError(f"{where}: {key!r} is not one of the model's classes ({first_few(model, 6)})")
        if value is None:
            continue
        if not isinstance(value, str) or value not in dataset_index:
            raise ConfigError(f"{where}: {key!r} maps to {value!r}, which is not one of the dataset's classes "
                              f"({first_few(dataset, 6)})")
        pairs.append((model_index[key], dataset_index[value]))
    pairs.sort(key=lambda p: (p[1], p[0]))
    return ClassMatching(tuple(map(str, model)), tuple(map(str, dataset)), tuple(pairs), how=str(path))


def class_matching(model: Sequence[str], dataset: Sequence[str], class_map: str | Path | None = None) -> ClassMatching:
    """How the model's classes are scored on the dataset's: the class map if given, else by name.

    Raises:
        ConfigError: a bad class map, or no model class that stands for any dataset class.
    """
    matching = read_class_map(class_map, model, dataset) if class_map else match_classes(model, dataset)
    if not matching.pairs:
        how = f"the class map {class_map}" if class_map else "name (eval.class_map=FILE pairs them explicitly)"
        raise ConfigError(f"the model's classes ({first_few(model, 6)}) and the dataset's "
                          f"({first_few(dataset, 6)}) share no class by {how}")
    return matching


def describe_matching(matching: ClassMatching) -> list[str]:
    """A few lines for the user: the pairs, the dropped model classes, the dataset classes left without one."""
    how = "by name" if matching.how == "name" else f"by the class map {matching.how}"
    lines = [f"classes matched {how}: {len(matching.pairs)} pairs, dataset <- model: "
             f"{matching.describe_pairs(limit=len(matching.pairs))}"]
    dropped = matching.unmatched_source
    if dropped:
        lines.append(f"left out (no detections): {len(dropped)} model classes without a dataset class: "
                     f"{first_few(dropped, 8)}")
    missing = matching.unmatched_target
    if missing:
        lines.append(f"dataset classes without a model class (AP 0 where they have ground truth): {', '.join(missing)}")
    return lines
