"""Keep torch out of a serving process even where it is installed (dev/test venvs).

``transformers`` imports torch on import whenever torch is installed; the serving path
only needs its tokenizer classes. Marking torch absent in ``sys.modules`` before
transformers is imported makes this process behave exactly like the torch-free serving
install (``importlib.util.find_spec("torch")`` is None, ``import torch`` fails).
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger(__name__)


def block_torch() -> bool:
    """Mark torch as not installed for this process; call first thing in a serving entry
    point. Returns False (and changes nothing) if torch is already imported."""
    if sys.modules.get("torch") is not None:
        log.warning("torch is already imported; cannot keep it out of this process")
        return False
    sys.modules["torch"] = None  # type: ignore[assignment]
    return True


def torch_loaded() -> bool:
    """True if torch (or any of its submodules) is imported in this process."""
    return any(
        (name == "torch" or name.startswith("torch.")) and module is not None
        for name, module in list(sys.modules.items())
    )
