"""How the tuner starts Python processes of its own: nothing on their import path implicitly.

``python -m`` puts its working directory first on ``sys.path``, and an empty PYTHONPATH entry
means the working directory too: a child started that way beside a ``mindspore.py`` or a
planted ``evilmod.py`` would import it. Children run with ``-P`` (no such entry) and a
PYTHONPATH of exactly the directory tuner is imported from, the directory a
``package.module:factory`` model is imported from (as this process finds it, which is where the
user's ``--model`` was resolved), and the non-empty entries of the user's own PYTHONPATH.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping

from tuner.models import model_import_root

TUNER_ROOT = Path(__file__).resolve().parents[1]


def python_command(module: str, *args: str) -> list[str]:
    """The command line running ``python -m module args`` without the implicit path entry."""
    return [sys.executable, "-P", "-m", module, *args]


def import_path(model: str | None = None, inherited: str | None = None) -> str:
    """The PYTHONPATH of a child that may build ``model``."""
    paths = [str(TUNER_ROOT)]
    root = model_import_root(model) if model else None
    if root is not None:
        paths.append(str(root))
    paths += [entry for entry in (inherited or "").split(os.pathsep) if entry]
    return os.pathsep.join(dict.fromkeys(paths))


def child_environment(model: str | None = None,
                      base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with the child's PYTHONPATH."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = import_path(model, env.get("PYTHONPATH"))
    return env
