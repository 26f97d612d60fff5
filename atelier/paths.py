"""Where atelier keeps state outside the work tree: ``$ATELIER_HOME``, else ``~/.cache/atelier``.

Under it: ``runs/`` (checkpoints, logs, samples), ``models/`` (trained model folders, found by
name), ``data/`` (rendered datasets and latent caches).
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The root of atelier's run state and caches."""
    return Path(os.environ.get("ATELIER_HOME", Path.home() / ".cache" / "atelier")).expanduser()
