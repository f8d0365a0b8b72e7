"""Bundles: written on the tuning host, loaded where there is no compiler and no kernel cache,
checked file by file."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO

WRITE = r"""
import json, os, sys
import numpy as np
import mindspore as ms
from tuner.bundle import write_bundle
from tuner.config import KernelChoice, ProgramConfig, RewriteConfig, TuningConfig
from tuner.exported_config import ExportedConfig
from tuner.backends import kernel_library
from tuner.models import TuningTarget, fingerprint
from tests.fixtures.tiny_models import randomize_batchnorm, tiny_net

work = sys.argv[1]
ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
shape = (4, 3, 16, 16)
hand = [KernelChoice(g.key, "conv2d_dense", (("oc_register_block", 4),))
        for g in kernel_library("CPU").find_workloads(tiny_net(), shape)
        if "conv2d_dense" in g.kernels]
configs = {
    "network": TuningConfig(programs=ProgramConfig("network")),
    "layer": TuningConfig(programs=ProgramConfig("layer")),
    "excluded": TuningConfig(programs=ProgramConfig("network", excluded_modules=("stage2",)),
                             rewrites=RewriteConfig(fold_batchnorm="all")),
}
if hand:
    configs["hand"] = TuningConfig(programs=ProgramConfig("network"), kernels=tuple(hand))
rng = np.random.default_rng(0)
inputs = {batch: rng.standard_normal((batch, 3, 16, 16)).astype(np.float32) for batch in (1, 4, 7)}
np.savez(f"{work}/inputs.npz", **{str(b): x for b, x in inputs.items()})
written = {}
for name, config in configs.items():
    trained = randomize_batchnorm(tiny_net(), seed=len(written))
    untuned = randomize_batchnorm(tiny_net())
    ms.load_param_into_net(untuned, trained.parameters_dict())
    np.savez(f"{work}/{name}.reference.npz",
             **{str(b): untuned(ms.Tensor(x)).asnumpy() for b, x in inputs.items()})
    exported = ExportedConfig(TuningTarget("tests.fixtures.tiny_models:tiny_net", 4, 16), config,
                              fingerprint(trained), ms.__version__)
    batches = (1,) if name in ("network", "excluded") else ()
    manifest = write_bundle(exported, f"{work}/{name}", trained, batches)
    written[name] = {"weights": manifest.weights, "programs": len(manifest.programs),
                     "kernels": list(manifest.kernels),
                     "batches": sorted({p.batch for p in manifest.programs})}
print(json.dumps(written))
sys.stdout.flush()
os._exit(0)
"""

LOAD = r"""
import json, os, shutil, sys, time
import numpy as np
import mindspore as ms
import tuner

work, names = sys.argv[1], sys.argv[2].split(",")
inputs = np.load(f"{work}/inputs.npz")
out = {"compiler": shutil.which("g++") or shutil.which("cc"), "errors": {}}
for name in names:
    started = time.perf_counter()
    net = tuner.load(f"{work}/{name}" if name != "layer" else f"{work}/{name}/best.json",
                     trust_model_code=name in ("layer", "excluded"))  # these build the model
    out.setdefault("seconds", {})[name] = time.perf_counter() - started
    reference = np.load(f"{work}/{name}.reference.npz")
    for batch in inputs.files:
        y = net(ms.Tensor(inputs[batch])).asnumpy()
        scale = np.abs(reference[batch]).max()
        out["errors"][f"{name} b{batch}"] = (float(np.abs(y - reference[batch]).max() / scale)
                                             if y.shape == reference[batch].shape else None)
    out.setdefault("planned", {})[name] = list(net.planned_batches)
print(json.dumps(out))
sys.stdout.flush()
os._exit(0)
"""


def _python(script: str, *args, env=None) -> dict:
    process = subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=REPO,
                             capture_output=True, text=True, timeout=600,
                             env=env or {**os.environ, "GLOG_v": "3", "PYTHONPATH": str(REPO)})
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(process.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    work = tmp_path_factory.mktemp("bundles")
    return work, _python(WRITE, work)


def test_bundles_load_and_match_without_a_compiler_or_kernel_cache(bundles, tmp_path):
    work, written = bundles
    assert written["network"]["weights"] is None and written["network"]["programs"] == 2
    assert written["network"]["batches"] == written["excluded"]["batches"] == [1, 4]
    assert written["excluded"]["weights"] == "weights.ckpt"
    assert written["layer"]["programs"] > 1
    if "hand" in written:
        assert written["hand"]["kernels"] and all(k.startswith("lib/")
                                                  for k in written["hand"]["kernels"])
    cache = tmp_path / "kernel-cache"
    bare = {"PATH": str(tmp_path / "no-bin"), "HOME": str(tmp_path / "home"), "GLOG_v": "3",
            "TUNER_KERNEL_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    out = _python(LOAD, work, ",".join(written), env=bare)
    assert out["compiler"] is None
    assert len(out["errors"]) == 3 * len(written)
    assert all(error is not None and error < 1e-4 for error in out["errors"].values()), out
    assert not cache.exists() or not any(cache.iterdir())
    # batch 1 on the programs planned for it where the bundle has them, else in chunks of 4
    assert out["planned"] == {name: [1] if name in ("network", "excluded") else []
                              for name in written}


def _copy(bundles, tmp_path, name="network"):
    work, _ = bundles
    target = tmp_path / name
    shutil.copytree(work / name, target)
    return target


def _rewrite_manifest(bundle, change):
    manifest = json.loads((bundle / "bundle.json").read_text())
    change(manifest)
    (bundle / "bundle.json").write_text(json.dumps(manifest))


def _rehash(bundle, path):
    from tuner.bundle.manifest import file_digest

    _rewrite_manifest(bundle, lambda m: m["files"].__setitem__(
        path, [(bundle / path).stat().st_size, file_digest(bundle / path)]))


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _spec_naming_another_library(bundle):
    from tuner.kernels.cpu.program import spec as s

    path = bundle / "programs/0.spec.npy"
    words = np.load(path)
    kernels, _ = s.encoded_kernels(words)
    np.save(path, s.with_kernels(words, tuple("/tmp/planted.so:Run" for _ in kernels) or ()))
    if not kernels:  # a spec without external kernels: claim one
        words = np.load(path)
        words[6] = 1
        np.save(path, np.concatenate([words[:7], [19], np.frombuffer(
            b"/tmp/planted.so:Run\0\0\0\0\0", "<i8"), words[7:]]).astype(np.int64))
    _rehash(bundle, "programs/0.spec.npy")


@pytest.mark.parametrize("tamper, message", [
    (lambda b: _flip_byte(b / "programs/0.constants.npy"), "size or sha256 differs"),
    (lambda b: _flip_byte(next((b / "lib").iterdir())), "size or sha256 differs"),
    (lambda b: (b / "programs/0.spec.npy").unlink(), "cannot read"),
    (lambda b: _rewrite_manifest(b, lambda m: m.__setitem__("runtime", "../../evil.so")),
     "is not a path inside the bundle"),
    (lambda b: _rewrite_manifest(b, lambda m: m.__setitem__("isa", m["isa"] + ["avx1024"])),
     "compiled for a CPU with avx1024"),
    (lambda b: _rewrite_manifest(b, lambda m: m.__setitem__("bundle_version", 9)),
     "not a bundle manifest"),
    (_spec_naming_another_library, "spec names kernel '/tmp/planted.so:Run'"),
], ids=["constants", "library", "missing-file", "path", "isa", "version", "planted-kernel"])
def test_a_damaged_or_altered_bundle_is_refused_in_one_line(bundles, tmp_path, tamper, message):
    import tuner
    from tuner.errors import UsageError

    bundle = _copy(bundles, tmp_path)
    tamper(bundle)
    with pytest.raises(UsageError, match=message) as error:
        tuner.load(bundle)
    assert "\n" not in str(error.value) and str(bundle) in str(error.value)


def test_a_bundle_refuses_another_checkpoint(bundles, tmp_path):
    import tuner
    from tuner.errors import UsageError

    bundle = _copy(bundles, tmp_path)
    with pytest.raises(UsageError, match="a bundle carries its weights"):
        tuner.load(bundle, checkpoint=tmp_path / "other.ckpt")


def test_writing_a_bundle_again_replaces_it_whole(bundles, tmp_path):
    from tuner.bundle.write import _replace_directory

    bundle = _copy(bundles, tmp_path)
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "bundle.json").write_text("{}")
    _replace_directory(staging, bundle)
    assert sorted(p.name for p in bundle.iterdir()) == ["bundle.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["network"]


def test_export_checkpoint_needs_bundle(tmp_path):
    process = subprocess.run([sys.executable, "-m", "tuner.export", "--checkpoint", "w.ckpt",
                              "--runs-dir", str(tmp_path)], cwd=REPO, capture_output=True,
                             text=True, timeout=120)
    assert process.returncode == 2 and "--checkpoint: only with --bundle" in process.stderr
