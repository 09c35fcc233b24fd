#!/usr/bin/env python3
"""``spyolo train`` as a script: ``python tools/train.py --help`` (see spyolo/cli/train.py)."""

import sys

import _bootstrap  # noqa: F401  (the checkout's spyolo first on sys.path)

from spyolo.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
