#!/usr/bin/env python3
"""``spyolo weights`` as a script: ``python tools/weights.py --help`` (see spyolo/cli/weights.py)."""

import sys

import _bootstrap  # noqa: F401  (the checkout's spyolo first on sys.path)

from spyolo.cli.weights import main

if __name__ == "__main__":
    sys.exit(main())
