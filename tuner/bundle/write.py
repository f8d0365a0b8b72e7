"""Writing a bundle: the export, and what running it takes, built once on the tuning host."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tuner import cpuinfo
from tuner.bundle.manifest import (EXPORT, ISA_FLAGS, MANIFEST, BundleManifest, StoredProgram,
                                   file_digest)
from tuner.errors import UsageError
from tuner.exported_config import ExportedConfig, write_export

WEIGHTS = "weights.ckpt"


def write_bundle(exported: ExportedConfig, directory: str | Path, net,
                 batches: tuple[int, ...] = ()) -> BundleManifest:
    """Write ``directory``: the export, the tuned network's programs (specs and constants,
    from ``net``'s weights) planned at the tuned batch and at each of ``batches``, the
    libraries they call (compiled for this CPU) and, where programs do not cover the whole
    network, a checkpoint of the rest. ``net`` is the untuned network with the weights to ship;
    it is rewritten. The directory is replaced whole, only once everything is written."""
    from tuner.apply_config import apply
    from tuner.serving import batch_planner

    directory = Path(directory)
    shape = exported.target.input_shape
    others = sorted(set(batches) - {shape[0]})
    plan = batch_planner(net, exported.config, shape, exported.target.device) if others else None
    if others and plan is None:
        raise UsageError(f"{exported.target.model}: the network cannot be copied to plan "
                         f"other batch sizes")
    networks = {shape[0]: apply(net, exported)}
    networks.update({batch: plan(batch) for batch in others})
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    try:
        # GraphNetwork -> TunedNetwork -> the rewritten network
        manifest = _stage(exported, staging, {b: n.network.network for b, n in networks.items()})
        _replace_directory(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _stage(exported: ExportedConfig, staging: Path, tops: dict) -> BundleManifest:
    from tuner.kernels.cpu.program import spec as s
    from tuner.kernels.cpu.program.cell import ProgramCell

    (staging / "lib").mkdir()
    (staging / "programs").mkdir()
    libraries: dict[Path, str] = {}

    def stored_library(path: Path) -> str:
        if path not in libraries:
            name = f"lib/{path.name}"
            shutil.copyfile(path, staging / name)
            libraries[path] = name
        return libraries[path]

    runtime = None
    kernels: list[str] = []
    programs = []
    for batch, top in tops.items():
        for cell in (c for _, c in top.cells_and_names() if isinstance(c, ProgramCell)):
            runtime = stored_library(cell.library)
            names, _ = s.encoded_kernels(cell.spec_words)
            stored = []
            for kernel in names:
                library, _, entry = kernel.rpartition(":")
                stored.append(f"{stored_library(Path(library))}:{entry}")
            kernels.extend(name for name in stored if name not in kernels)
            k = len(programs)
            spec_file, constants_file = f"programs/{k}.spec.npy", f"programs/{k}.constants.npy"
            np.save(staging / spec_file, s.with_kernels(cell.spec_words, tuple(stored)))
            np.save(staging / constants_file, cell.constants.asnumpy().astype(np.float32))
            programs.append(StoredProgram(
                cell.layer_path, cell.replaces, cell.input_shape, cell.output_shape, spec_file,
                constants_file, tuple(dataclasses.asdict(step) for step in cell.steps), batch))
    weights = None
    top = tops[exported.target.batch_size]
    program_parameters = {c.constants.name for _, c in top.cells_and_names()
                          if isinstance(c, ProgramCell)}
    kept = [{"name": p.name, "data": p} for p in top.get_parameters()
            if p.name not in program_parameters]
    if kept:  # the layers outside programs (the same at every batch size)
        import mindspore as ms

        ms.save_checkpoint(kept, str(staging / WEIGHTS))
        weights = WEIGHTS
    write_export(exported, staging / EXPORT)
    files = {}
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            files[path.relative_to(staging).as_posix()] = (path.stat().st_size, file_digest(path))
    manifest = BundleManifest(
        isa=tuple(sorted(cpuinfo.flags() & ISA_FLAGS)), cpu=cpuinfo.description(),
        mindspore_version=exported.mindspore_version, runtime=runtime, kernels=tuple(kernels),
        programs=tuple(programs), weights=weights, files=files)
    (staging / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=1) + "\n")
    return manifest


def _replace_directory(staging: Path, directory: Path) -> None:
    """``staging`` renamed to ``directory``; a directory already there is moved aside first
    and removed after (never half old, half new)."""
    old = None
    if directory.exists():
        old = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.old."))
        os.replace(directory, old / "bundle")
    os.replace(staging, directory)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
