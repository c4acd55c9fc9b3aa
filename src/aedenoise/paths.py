"""Where aedenoise keeps files of its own: the user cache (downloads, compiled kernels)."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir(name: str) -> Path:
    """``$XDG_CACHE_HOME/aedenoise/<name>`` (a relative or empty ``XDG_CACHE_HOME``: ``~/.cache``)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return root / "aedenoise" / name
