"""The datasets a config names: the table of dataset kinds, building a config's dataset, and the
synthetic set's explicit generation step.

:mod:`~spyolo.datasets.kinds` (the one place that knows every kind), :mod:`~spyolo.datasets.build`
(:func:`build_dataset`), :mod:`~spyolo.datasets.synthetic` (:func:`ensure_synthetic`). All light to
import (the configuration uses the table): the readers load when a dataset is built.
"""

from spyolo.datasets.build import build_dataset
from spyolo.datasets.kinds import KINDS, DatasetKind, class_names, kind_of, parse_entries, with_split
from spyolo.datasets.synthetic import ensure_synthetic

__all__ = ["KINDS", "DatasetKind", "build_dataset", "class_names", "ensure_synthetic", "kind_of", "parse_entries",
           "with_split"]
