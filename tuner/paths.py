"""Where the project's own files are: the repository's root, the search spaces' directory and
each device's default space. Imports nothing of tuner's, so every layer may use it."""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SPACES_DIR = REPO_ROOT / "search_spaces"


def default_space_path(device: str) -> Path:
    """The search space a device's searches use unless told otherwise (``--space``)."""
    return SPACES_DIR / f"{device.lower()}.yaml"
