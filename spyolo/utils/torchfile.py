"""Read a user's PyTorch file (a checkpoint, a state dict) with one clear error per problem.

Every such file is read with ``torch.load(..., weights_only=True)``: tensors and plain
containers only. A file that holds anything else (a pickled class or function, i.e. code) is
refused, never run; so are a text file, a truncated or corrupt archive, and anything that is
not a PyTorch file. Each message names the file and the problem in one line.
"""

from __future__ import annotations

import pickle
import string
from pathlib import Path
from typing import Any

__all__ = ["looks_like_text", "read_torch_file"]

_PRINTABLE = frozenset(string.printable.encode())


def looks_like_text(data: bytes) -> bool:
    """Whether the first bytes of a file (``data``) are all printable ASCII: a text file, not weights."""
    sample = data[:256]
    return len(sample) > 0 and all(b in _PRINTABLE for b in sample)


def _first_line(exc: BaseException, limit: int = 160) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_torch_file(path: str | Path, error: type[Exception], what: str = "PyTorch file",
                    map_location: Any = "cpu") -> Any:
    """The contents of ``path``, read with ``torch.load(..., weights_only=True)``.

    Args:
        path: the file.
        error: the exception class to raise (its message: ``"<path>: <problem>"``).
        what: what the file should be, for the messages (``"checkpoint"``, ``"weights file"``).
        map_location: as for :func:`torch.load`.

    Raises:
        error: the file is missing, unreadable, a text file, truncated or corrupt, not a PyTorch
            file, or holds objects other than tensors and plain containers.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    try:
        with path.open("rb") as f:
            head = f.read(256)
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if looks_like_text(head):
        raise error(f"{path}: a text file, not a {what} (a PyTorch file is binary)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise error(
                f"{path}: holds Python objects other than tensors and plain containers (classes or functions, i.e. "
                f"code), which spyolo never loads (it reads weights only); save the state dict instead"
            ) from None
        raise error(f"{path}: not a PyTorch {what} ({_first_line(exc)})") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, EOFError, KeyError, ... for a bad file
        text = str(exc)
        if isinstance(exc, EOFError) or "zip archive" in text or "central directory" in text:
            raise error(f"{path}: truncated or corrupt (not a complete PyTorch archive; was it copied or saved "
                        f"completely?)") from None
        raise error(f"{path}: not a readable PyTorch {what} ({type(exc).__name__}: {_first_line(exc)})") from None
