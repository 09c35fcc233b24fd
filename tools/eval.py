#!/usr/bin/env python3
"""``spyolo eval`` as a script: ``python tools/eval.py --help`` (see spyolo/cli/eval.py)."""

import sys

import _bootstrap  # noqa: F401  (the checkout's spyolo first on sys.path)

from spyolo.cli.eval import main

if __name__ == "__main__":
    sys.exit(main())
