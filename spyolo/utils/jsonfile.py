"""Read a user's JSON file with one clear error per problem (the message names the file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["read_json"]


def read_json(path: str | Path, error: type[Exception], what: str = "JSON file") -> Any:
    """The parsed contents of ``path`` (UTF-8, a byte-order mark allowed).

    Raises:
        error: ``"<path>: <what> not found"``, empty, not UTF-8 text, malformed JSON (with the
            line and column), or unreadable (with the operating system's reason).
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
        if not text.strip():
            raise error(f"{path}: empty file ({path.stat().st_size} bytes), not a {what}")
        return json.loads(text)
    except UnicodeDecodeError:
        raise error(f"{path}: not a JSON text file (not UTF-8)") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except OSError as exc:
        raise error(f"{path}: cannot read file ({exc.strerror or exc})") from None
