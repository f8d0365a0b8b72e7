"""Loading a bundle: no compiler, no planning, nothing run that the bundle does not list."""
from __future__ import annotations

import ctypes
import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np

from tuner import cpuinfo
from tuner.bundle.manifest import EXPORT, MANIFEST, BundleError, BundleManifest, read_manifest
from tuner.exported_config import ExportedConfig, read_export


def bundle_directory(path: str | Path) -> Path | None:
    """The bundle ``path`` names (its directory, or the export inside it), else None."""
    path = Path(path)
    if path.is_dir() and (path / MANIFEST).is_file():
        return path
    if path.name == EXPORT and (path.parent / MANIFEST).is_file():
        return path.parent
    return None


def load_bundle(directory: Path, create_model: Callable[[ExportedConfig], object]):
    """The tuned network of the bundle in ``directory``, ready to call (tuned_network.serving_network).
    ``create_model`` builds the untuned architecture its export names; called only where
    programs do not cover the whole network. BundleError (one line) for a bundle this CPU cannot run, a damaged or
    altered file, or a network that does not match."""
    from tuner.tuned_network import apply_process_settings, serving_network

    manifest = read_manifest(directory)
    missing = sorted(set(manifest.isa) - cpuinfo.flags())
    if missing:
        raise BundleError(f"{directory}: compiled for a CPU with {', '.join(missing)}, which "
                          f"this one ({cpuinfo.description()}) lacks; write the bundle on a "
                          f"machine of this kind")
    if EXPORT not in manifest.files:
        raise BundleError(f"{directory}: {EXPORT} is not among the bundle's files")
    manifest.check_files(directory)
    exported = read_export(directory / EXPORT)
    config, shape = exported.config, exported.target.input_shape
    apply_process_settings(config)
    batches = {program.batch for program in manifest.programs}
    if manifest.programs and shape[0] not in batches:
        raise BundleError(f"{directory}: no programs for its tuned batch {shape[0]}")

    runtime = _runtime(directory, manifest) if manifest.programs else None

    def network(batch: int):
        if batch not in batches:
            raise BundleError(f"{directory}: no programs for batch {batch}")
        tuned = _tuned_network(directory, manifest, exported, batch, runtime, create_model)
        return serving_network(tuned, config, (batch, *shape[1:]))

    tuned = _tuned_network(directory, manifest, exported, shape[0], runtime, create_model)
    return serving_network(tuned, config, shape, network if len(batches) > 1 else None)


def _runtime(directory: Path, manifest: BundleManifest) -> Path:
    """The bundle's program runtime, loaded and checked (MindSpore's oneDNN loaded first: what
    the libraries link against)."""
    from tuner.kernels.cpu.program.program_runtime import ONEDNN, mindspore_lib_dir, runtime_problem

    if manifest.runtime is None:
        raise BundleError(f"{directory}: programs but no runtime library")
    lib = mindspore_lib_dir()
    if lib is None or not (lib / ONEDNN).exists():
        raise BundleError(f"{directory}: MindSpore's {ONEDNN} was not found")
    ctypes.CDLL(str(lib / ONEDNN), mode=ctypes.RTLD_GLOBAL)
    runtime = (directory / manifest.runtime).resolve()
    problem = runtime_problem(runtime)
    if problem:
        raise BundleError(f"{directory}: {manifest.runtime}: {problem}")
    return runtime


def _tuned_network(directory: Path, manifest: BundleManifest, exported, batch: int,
                   runtime: Path | None, create_model: Callable[[ExportedConfig], object]):
    """The tuned network (a TunedNetwork) of the bundle's programs planned at ``batch``."""
    from tuner.models import fingerprint
    from tuner.rewrites.network import TunedNetwork
    from tuner.tuned_network import finish_network

    cells = _program_cells(directory, manifest, batch, runtime)
    if len(cells) == 1 and cells[0].replaces == ("",):
        tuned = TunedNetwork(cells[0])
        tuned.set_train(False)
        return tuned
    net = create_model(exported)
    if fingerprint(net) != exported.fingerprint:
        raise BundleError(f"{directory}: the model built for it is not the architecture it was "
                          f"tuned for ({exported.target.model})")
    _install(net, cells, directory)
    tuned = finish_network(net, net, exported.config)
    _load_weights(net, directory, manifest, {cell.constants.name for cell in cells})
    return tuned


def _program_cells(directory: Path, manifest: BundleManifest, batch: int,
                   runtime: Path | None) -> list:
    programs = [(k, p) for k, p in enumerate(manifest.programs) if p.batch == batch]
    if not programs:
        return []
    from tuner.kernels.cpu.program import spec as s
    from tuner.kernels.cpu.program.cell import ProgramCell, StepInfo

    step_fields = {f.name for f in dataclasses.fields(StepInfo)}
    cells = []
    for k, program in programs:
        where = f"{directory}: programs[{k}]"
        words = _array(directory / program.spec, np.int64, where)
        constants = _array(directory / program.constants, np.float32, where)
        try:
            kernels, _ = s.encoded_kernels(words)
        except ValueError as exc:
            raise BundleError(f"{where}: spec: {exc}") from None
        unknown = [kernel for kernel in kernels if kernel not in manifest.kernels]
        if unknown:
            raise BundleError(f"{where}: spec names kernel {unknown[0]!r}, which the bundle "
                              f"does not list")
        located = tuple(str((directory / kernel).resolve()) for kernel in kernels)
        image = s.ProgramImage(s.with_kernels(words, located), constants, program.input_shape,
                               program.output_shape)
        steps = tuple(StepInfo(**{key: value for key, value in step.items()
                                  if key in step_fields}) for step in program.steps)
        cells.append(ProgramCell(runtime, image, program.name, steps, program.replaces))
    return cells


def _array(path: Path, dtype, where: str) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BundleError(f"{where}: {path.name}: not a .npy array ({exc})") from None
    if array.dtype != dtype or array.ndim != 1:
        raise BundleError(f"{where}: {path.name}: expected a vector of {np.dtype(dtype)}")
    return np.ascontiguousarray(array)


def _install(net, cells: list, directory: Path) -> None:
    from mindspore import nn

    from tuner.rewrites.network import set_child

    named = dict(net.cells_and_names())
    for cell in cells:
        for k, path in enumerate(cell.replaces):
            parent, _, child = path.rpartition(".")
            if path not in named or parent not in named:
                raise BundleError(f"{directory}: program {cell.layer_path} replaces {path!r}, "
                                  f"which this network does not have")
            set_child(named[parent], child, cell if k == 0 else nn.Identity())


def _load_weights(net, directory: Path, manifest: BundleManifest, in_programs: set[str]) -> None:
    import mindspore as ms

    outside = [p.name for p in net.get_parameters() if p.name not in in_programs]
    if not outside:
        return
    if manifest.weights is None:
        raise BundleError(f"{directory}: no weights for {outside[0]!r}, outside its programs")
    try:
        parameters = ms.load_checkpoint(str(directory / manifest.weights))
    except (RuntimeError, ValueError, OSError) as exc:
        raise BundleError(f"{directory}: {manifest.weights}: cannot load ({exc})") from None
    not_loaded, _ = ms.load_param_into_net(net, parameters)
    missing = [name for name in not_loaded if name not in in_programs]
    if missing:
        raise BundleError(f"{directory}: {manifest.weights}: no value for {missing[0]!r}")
