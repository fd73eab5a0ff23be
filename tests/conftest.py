"""Test set-up: make the shared helpers in ``tests/simtools.py`` importable under any pytest import mode."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
