"""A study's assets (weights, fixed input, untuned reference output, model.json) rebuilt for an
exported configuration, in a fresh process, as the search prepared them."""
from __future__ import annotations

import json
from pathlib import Path

from tuner.errors import UsageError
from tuner.exported_config import ExportedConfig, check_model_trusted
from tuner.runner.isolate import run_isolated
from tuner.trial.request import MODEL_INFO_FILE, TrialRequest


def prepare_export_assets(exported: ExportedConfig, source: Path, work: Path,
                          timeout: float, trust_model_code: bool = False) -> Path:
    """Build ``exported``'s model with the study's weights seed into ``work/assets``; a model
    that does not build, or builds another architecture than was tuned, is a UsageError naming
    ``source``; a ``package.module:factory`` model is refused before anything runs unless
    ``trust_model_code`` (exported_config.check_model_trusted)."""
    check_model_trusted(exported, trust_model_code)
    seed = int(exported.study.get("weights_seed", 0))
    assets = work / "assets"
    prepared = run_isolated(TrialRequest("prepare", exported.target, str(assets), seed=seed),
                            work / "prepare", timeout)
    if not prepared.ok:
        raise UsageError(f"{source}: cannot build {exported.target.model}: {prepared.reason()}")
    info = json.loads((assets / MODEL_INFO_FILE).read_text())
    if exported.fingerprint and info["fingerprint"] != exported.fingerprint:
        raise UsageError(f"{source}: tuned for another architecture than "
                         f"{exported.target.model} builds here")
    return assets
