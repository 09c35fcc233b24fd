"""What every ``spyolo`` subcommand shares: logging flags and the error policy.

A subcommand's ``run(args)`` raises; :func:`run_command` turns what a user can fix (a
:class:`~spyolo.errors.SpyoloError` or a file-system error, ``OSError``) into one line on
standard error, ``error: <file or key>: <problem>``, and exit status 2. ``-v`` shows the
traceback as well; Ctrl-C ends with status 130. Any other exception is a bug in spyolo (or
in a library it calls): it propagates with its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence

from spyolo.errors import SpyoloError
from spyolo.utils.logging import logging_configured

__all__ = ["EXIT_BAD_INPUT", "add_logging_flags", "command_parser", "describe_os_error", "parse_command_line",
           "run_command"]

EXIT_BAD_INPUT = 2

log = logging.getLogger("spyolo.cli")


def add_logging_flags(parser: argparse.ArgumentParser) -> None:
    """``-v/--verbose`` (debug messages, tracebacks) and ``-q/--quiet`` (warnings and errors only)."""
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more messages (debug; tracebacks on errors)")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="fewer messages (warnings and errors only)")


def command_parser(
    name: str, doc: str | None, add_arguments: Callable[[argparse.ArgumentParser], None]
) -> argparse.ArgumentParser:
    """The parser of ``spyolo <name>``: its module docstring as help, its arguments, the logging flags."""
    parser = argparse.ArgumentParser(prog=f"spyolo {name}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    add_logging_flags(parser)
    return parser


def parse_command_line(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args`` that also takes ``section.key=value`` overrides after options.

    argparse reads a positional list once, so ``--config C a=1 --run-dir D b=2`` would reject
    ``b=2``; here every such leftover joins ``args.overrides`` in command-line order (for a
    command that takes overrides). Anything else left over is the usual usage error.
    """
    args, extra = parser.parse_known_args(argv)
    if extra:
        overrides = [a for a in extra if "=" in a and not a.startswith("-")]
        if not hasattr(args, "overrides") or len(overrides) != len(extra):
            parser.error("unrecognized arguments: " + " ".join(extra))
        args.overrides = [*(args.overrides or []), *overrides]
    return args


def describe_os_error(exc: OSError) -> str:
    """``<file>: <reason>`` for a file-system error."""
    name = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or str(exc)
    return f"{name}: {reason}" if name else reason


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run ``func(args)`` with logging configured and the error policy above; return the exit status."""
    verbosity = getattr(args, "verbose", 0) - getattr(args, "quiet", 0)
    with logging_configured(verbosity):
        try:
            return int(func(args) or 0)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except (SpyoloError, OSError) as exc:
            if verbosity > 0:
                traceback.print_exc()
            os_error = isinstance(exc, OSError) and not isinstance(exc, SpyoloError)
            message = describe_os_error(exc) if os_error else str(exc)
            print(f"error: {' '.join(message.split()) if message else type(exc).__name__}", file=sys.stderr)
            return EXIT_BAD_INPUT
