"""Generating the synthetic set a config asks for: an explicit step of the commands that need it.

``spyolo train``, ``spyolo eval``, the main job and the benchmarks call :func:`ensure_synthetic`
before they build their datasets; building a dataset never writes one.
"""

from __future__ import annotations

import logging
from typing import Any

from spyolo.datasets.kinds import parse_entries

__all__ = ["ensure_synthetic"]

log = logging.getLogger(__name__)


def ensure_synthetic(data: Any) -> None:
    """Generate the synthetic set the data config asks for, when it asks for one.

    When ``data.synthetic_train > 0``, the first training set (a VOC year folder, a YOLO
    ``FOLDER/data.yaml`` or a ``gen1:NAME/train`` folder: the kinds of
    :data:`spyolo.datasets.kinds.KINDS` with a generator) must hold the synthetic set the config
    describes (``synthetic_train``, ``synthetic_test``, ``synthetic_seed`` and the generator
    settings ``synthetic_classes``, ``synthetic_min_side``, ``synthetic_max_side``,
    ``synthetic_spec``), completely generated. A missing set is generated; a set the generator
    wrote with other settings (its ``synthetic_spec.json`` differs), or whose generation was
    interrupted (no completion marker), is regenerated in place; a non-empty folder without that
    record is refused (it may be a user's data). One line is logged when something is generated.
    Otherwise nothing happens.

    Raises:
        FileExistsError: the folder holds data the generator did not write.
        ConfigError: the first training set's kind has no generator, or bad generator settings.
    """
    if data.synthetic_train <= 0:
        return
    from spyolo.errors import ConfigError

    first = parse_entries(data.train_sets, data.root)[0]
    if first.kind.synthesize is None:
        raise ConfigError(f"data.synthetic_train > 0 writes the synthetic set into the first training set; "
                          f"{first.kind.name} sets have no generator (got {first.text})")
    if first.kind.synthesize(data, first.source):
        log.info("generated a synthetic %s dataset for %s (%d train, %d test, seed %d)", first.kind.title,
                 first.text, data.synthetic_train, data.synthetic_test, data.synthetic_seed)
