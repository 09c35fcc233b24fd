"""Values quoted in messages, kept short: an error line must stay one readable line, whatever
the input held (a megabyte string, a deeply nested list)."""

from __future__ import annotations

import math
import reprlib
from collections.abc import Sequence
from typing import Any

__all__ = ["cut", "first_few", "short_repr"]

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 60, 60
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 6


def cut(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters (ending in ``...`` when cut)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def first_few(items: Sequence[Any], limit: int, noun: str = "in all") -> str:
    """The first ``limit`` of ``items`` joined by commas, then ``", ... (N <noun>)"`` when there are more."""
    shown = ", ".join(map(str, list(items)[:limit]))
    return shown + (f", ... ({len(items)} {noun})" if len(items) > limit else "")


def short_repr(value: Any, limit: int = 100) -> str:
    """``repr(value)`` abbreviated (long strings, long or deeply nested containers) to about ``limit``
    characters, without walking more of ``value`` than it shows."""
    return cut(_SHORT.repr(value), limit)


def finite_number(token: str, where: str, error: type[Exception]) -> float:
    """``token`` as a finite float, else ``error("<where> '<token>' is not a number")`` (or ``is not finite``)."""
    try:
        value = float(token)
    except ValueError:
        raise error(f"{where} {token!r} is not a number") from None
    if not math.isfinite(value):
        raise error(f"{where} {token!r} is not finite")
    return value
