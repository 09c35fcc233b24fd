"""Puts the repository root first on ``sys.path``, so the scripts here run the checkout's spyolo
(also when another copy is installed). Every script in ``tools/`` imports it first."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
