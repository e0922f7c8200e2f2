"""Make the shared fake runtime importable (tests/unit holds it)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
