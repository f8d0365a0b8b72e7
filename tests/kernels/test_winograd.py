"""The Winograd kernels (conv2d_winograd, NCHW, and the program runtime's conv2d_winograd_nhwc):
transforms, packing, correctness against MindSpore's builtin convolution, and a configuration
that chooses each applied to a whole network."""
import json

import mindspore as ms
import numpy as np
import pytest

import tuner
from conftest import relative_error
from test_apply import _input, _model, programs

from tests.conftest import needs_avx2_fma, needs_avx512
from tests.fixtures.tiny_models import Calling
from tuner.config import KernelChoice, ProgramConfig, TuningConfig
from tuner.exported_config import ExportedConfig, write_export
from tuner.kernels import ConvWorkload
from tuner.kernels.cpu.packing import pack_winograd_weight, winograd_weight
from tuner.kernels.cpu.program.program_runtime import timings
from tuner.models import TuningTarget, fingerprint

WINOGRAD = "conv2d_winograd"
WINOGRAD_NHWC = "conv2d_winograd_nhwc"
# B^T and A^T of kernels/cpu/conv2d_winograd.cpp
TRANSFORMS = {
    2: (np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]])),
    4: (np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]),
        np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                  [0, 1, -1, 8, -8, 1]])),
}


@pytest.mark.parametrize("m", [2, 4])
def test_weight_transform_computes_one_tile_exactly(m):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((3, 2, 3, 3))
    patch = rng.standard_normal((2, m + 2, m + 2))
    bt, at = TRANSFORMS[m]
    u = winograd_weight(weight, m).reshape(m + 2, m + 2, 3, 2)
    v = np.einsum("ir,crs,js->ijc", bt, patch, bt)
    tile = np.einsum("ai,ijoc,ijc,bj->oab", at, u, v, at)
    direct = np.array([[[np.sum(patch[:, a:a + 3, b:b + 3] * weight[o]) for b in range(m)]
                        for a in range(m)] for o in range(3)])
    np.testing.assert_allclose(tile, direct, atol=1e-9)


def test_packed_weight_layout():
    weight = np.random.default_rng(1).standard_normal((10, 5, 3, 3)).astype(np.float32)
    packed = pack_winograd_weight(weight, 4, 4)
    u = winograd_weight(weight, 4)
    assert packed.shape == (36, 3, 5, 4) and packed.dtype == np.float32
    np.testing.assert_allclose(packed[7, 1, 3, 2], u[7, 1 * 4 + 2, 3], rtol=1e-6)
    assert not packed[:, 2, :, 2:].any()  # output channels 10, 11 are zero padding


def _conv(n, c, h, w, o, padding=(1, 1, 1, 1), activation="none", residual=False):
    return ConvWorkload(n, c, o, h, w, (3, 3), (1, 1), padding, has_residual=residual,
                        activation=activation)


SHAPES = [  # (batch, in_ch, height, width, out_ch, padding): odd sizes, no multiple of 16
    (3, 5, 9, 13, 19, (1, 1, 1, 1)),
    (1, 20, 7, 7, 40, (1, 1, 1, 1)),
    (2, 17, 11, 10, 33, (0, 0, 0, 0)),
    (3, 6, 5, 6, 7, (0, 1, 2, 0)),
]


@needs_avx512
@pytest.mark.parametrize("tile_size", [2, 4])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: _conv(*s[:5], s[5]).key)
def test_matches_builtin(library, shape, tile_size):
    *dims, padding = shape
    result = library.verify(_conv(*dims, padding, "relu6", True), {"tile_size": tile_size},
                            kernel=WINOGRAD)
    assert result.ok, result.message


@needs_avx512
@pytest.mark.parametrize("activation,residual",
                         [("none", False), ("relu", False), ("relu6", False), ("none", True)])
def test_epilogues(library, activation, residual):
    result = library.verify(_conv(*SHAPES[0][:5], activation=activation, residual=residual), {},
                            kernel=WINOGRAD)
    assert result.ok, result.message


@pytest.mark.parametrize("variant", [
    {"oc_register_block": 14, "tile_vectors": 2, "tile_block": 32, "oc_block": 32, "unroll": 1},
    {"oc_register_block": 4, "tile_vectors": 1, "tile_block": 48, "oc_block": 512, "tile_size": 2},
])
@needs_avx512
def test_tiling_variants_with_several_blocks(library, variant):
    # 3 x 4 x 5 = 60 tiles (m=4) over several tile blocks, 50 channels over several oc blocks
    result = library.verify(_conv(3, 70, 15, 17, 50, activation="relu", residual=True), variant,
                            kernel=WINOGRAD)
    assert result.ok, result.message


def test_kernel_names(every_kernel_library):
    library = every_kernel_library
    assert library.kernel_names(_conv(1, 4, 8, 8, 4)) == ("onednn", "conv2d_dense", WINOGRAD,
                                                          WINOGRAD_NHWC, "conv2d_gemm_nhwc")
    strided = ConvWorkload(1, 4, 4, 8, 8, (3, 3), (2, 2), (1, 1, 1, 1))
    assert library.kernel_names(strided) == ("onednn", "conv2d_dense", "conv2d_gemm_nhwc")
    assert library.kernel_names(_conv(1, 4, 8, 8, 4), epilogue=None) == ("onednn",)
    assert library.kernel_names(_conv(1, 4, 8, 8, 4), epilogue=(True, "silu")) == (
        "onednn", "conv2d_gemm_nhwc")  # the GEMM step fuses SiLU too
    with pytest.raises(ValueError, match="cannot run"):
        library.custom_cell(strided, {}, np.zeros((4, 4, 3, 3), np.float32),
                            np.zeros(4, np.float32), WINOGRAD)


@needs_avx512
def test_a_config_choosing_winograd_loads_and_matches_untuned(library, tmp_path):
    """An exported config with winograd choices rebuilds exactly that network."""
    net = _model("resnet18")
    reference = Calling(net)(_input()).asnumpy()
    ms.save_checkpoint(net, str(tmp_path / "weights.ckpt"))
    groups = library.find_workloads(net, (2, 3, 32, 32))
    choices = [KernelChoice(g.key, WINOGRAD if WINOGRAD in g.kernels else g.kernel, ())
               for g in groups]
    winograd = [c for c in choices if c.kernel == WINOGRAD]
    assert winograd
    config = TuningConfig.from_dict(json.loads(json.dumps(TuningConfig(
        programs=ProgramConfig("block"), kernels=tuple(choices)).to_dict())))
    exported = ExportedConfig(TuningTarget("resnet18", 2, 32), config, fingerprint(net), ms.__version__)
    path = write_export(exported, tmp_path / "best.json")
    loaded = tuner.load(path, checkpoint=tmp_path / "weights.ckpt")
    calls = sum(c.spec_words.tobytes().count(b"Conv2dWinograd") for c in programs(loaded))
    assert calls == len({p for p in programs(loaded)
                         if b"Conv2dWinograd" in p.spec_words.tobytes()}) > 0
    assert relative_error(loaded(_input()).asnumpy(), reference) < 1e-4


@needs_avx2_fma
def test_a_config_choosing_the_runtimes_winograd_loads_and_matches_untuned(library, tmp_path):
    """Every 3x3 stride-1 workload on conv2d_winograd_nhwc, F(2x2) and F(4x4) mixed: the loaded
    network runs those layers as the runtime's Winograd steps and matches the untuned one."""
    net = _model("resnet18")
    reference = Calling(net)(_input()).asnumpy()
    ms.save_checkpoint(net, str(tmp_path / "weights.ckpt"))
    groups = library.find_workloads(net, (2, 3, 32, 32))
    eligible = [g for g in groups if WINOGRAD_NHWC in g.kernels]
    assert len(eligible) >= 2
    tiles = {g.key: (2, 4)[i % 2] for i, g in enumerate(eligible)}
    choices = [KernelChoice(g.key, WINOGRAD_NHWC, (("tile_size", tiles[g.key]),))
               if g.key in tiles else KernelChoice(g.key, g.kernel, ()) for g in groups]
    config = TuningConfig(programs=ProgramConfig("network", "nhwc"), kernels=tuple(choices))
    exported = ExportedConfig(TuningTarget("resnet18", 2, 32), config, fingerprint(net), ms.__version__)
    loaded = tuner.load(write_export(exported, tmp_path / "best.json"),
                        checkpoint=tmp_path / "weights.ckpt")
    steps = [step for cell in programs(loaded) for step in cell.steps]
    winograd_layers = {step.layer for step in steps if step.kernel == WINOGRAD_NHWC}
    layers_of_eligible = {layer for g in eligible for layer in g.layers}
    assert winograd_layers == layers_of_eligible
    assert relative_error(loaded(_input()).asnumpy(), reference) < 1e-4
    # the choices name only the tile size: each workload's other parameters are its defaults
    # (on AVX-512 raw weights on these small maps, defaults_when)
    space = library.space(WINOGRAD_NHWC)
    raw_expected = {g.key for g in eligible if space.defaults(g.workload)["weights"] == "raw"}
    raw_run = {cell.steps[action.step].workload for cell in programs(loaded)
               for action in timings(cell.library, cell.spec_words).actions
               if action.implementation.endswith(":raw_weights")}
    assert raw_run == raw_expected
    assert bool(raw_run) == ("avx512f" in space.cpu_flags)
