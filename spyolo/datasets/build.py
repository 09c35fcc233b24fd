"""The dataset a full config describes: what training, evaluation and the tools call.

:func:`build_dataset` parses the config's set entries with the table of kinds
(:mod:`spyolo.datasets.kinds`), finds the class list, and hands the sources to their kind's
reader. It takes the whole :class:`spyolo.config.Config` (only attribute access is used): event
sets need ``model.timesteps`` (their bins) and ``eval`` (the Gen1 protocol) too. It reads what is
on disk and writes no data: a synthetic set is generated before, by
:func:`spyolo.datasets.synthetic.ensure_synthetic`.
"""

from __future__ import annotations

from typing import Any

from spyolo.datasets.kinds import class_names, parse_entries, reader_kind

__all__ = ["build_dataset"]


def build_dataset(cfg: Any, train: bool) -> Any:
    """The training (``train=True``) or test dataset of a full config.

    The sets are ``cfg.data.train_sets`` or ``cfg.data.test_sets`` (relative to ``cfg.data.root``).
    The class list is ``cfg.data.classes`` (a file), else the first set of the training then the
    test sets that names classes, else the first set's kind's defaults, so that training and test
    always agree (:func:`~spyolo.datasets.kinds.class_names`). Image sets give a
    :class:`~spyolo.data.dataset.DetectionDataset` (every image checked at start-up), event sets
    an :class:`~spyolo.events.dataset.EventDetectionDataset`.

    Raises:
        DatasetError: naming the file or entry at fault; ConfigError: sets of several inputs.
    """
    d = cfg.data
    train_entries = parse_entries(d.train_sets, d.root)
    test_entries = parse_entries(d.test_sets, d.root)
    kind = reader_kind(train_entries + test_entries)
    names = class_names(d.classes, train_entries + test_entries)
    entries = train_entries if train else test_entries
    return kind.reader(cfg, [e.source for e in entries], names, train)
