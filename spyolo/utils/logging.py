"""Logging for spyolo: the library logs to the ``spyolo`` logger; programs configure it.

Modules log with ``logging.getLogger(__name__)`` (children of ``spyolo``) and never print.
The ``spyolo`` command and the scripts in ``tools/`` call :func:`configure_logging` once:
messages go to standard error through ``tqdm.write``, so they never tear a progress bar.
A program that embeds spyolo configures logging as it likes (by default Python shows
warnings and errors only).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from tqdm import tqdm

__all__ = ["LOGGER_NAME", "configure_logging", "level_for", "logging_configured"]

LOGGER_NAME = "spyolo"


class _TqdmHandler(logging.Handler):
    """Writes records through ``tqdm.write`` (progress bars stay intact)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def level_for(verbosity: int) -> int:
    """``-q`` (-1): warnings only; default (0): info; ``-v`` (1 or more): debug."""
    if verbosity < 0:
        return logging.WARNING
    if verbosity == 0:
        return logging.INFO
    return logging.DEBUG


def configure_logging(verbosity: int = 0) -> logging.Logger:
    """Send the ``spyolo`` logger's records to standard error at the level of ``verbosity``.

    Calling it again replaces the handler it installed (it never adds a second one).
    """
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if isinstance(handler, _TqdmHandler):
            logger.removeHandler(handler)
    handler = _TqdmHandler()
    fmt = "%(levelname)s %(name)s: %(message)s" if verbosity > 0 else "%(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    logger.addHandler(handler)
    logger.setLevel(level_for(verbosity))
    logger.propagate = False
    return logger


@contextlib.contextmanager
def logging_configured(verbosity: int = 0) -> Iterator[logging.Logger]:
    """:func:`configure_logging` for the duration of a block; the logger's earlier set-up is restored after.

    For commands run in-process (``spyolo.cli.<cmd>.main([...])`` from Python or a test).
    """
    logger = logging.getLogger(LOGGER_NAME)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    try:
        yield configure_logging(verbosity)
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]
