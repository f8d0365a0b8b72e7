"""apply() on whole networks: programs at each granularity match the untuned network; the
hand-written kernels run inside them where chosen; excluded modules stay MindSpore's own."""

import mindcv
import numpy as np
import pytest
from mindspore import Tensor, nn

from conftest import relative_error
from tests.conftest import needs_avx2_fma, needs_avx512
from tests.fixtures.tiny_models import Calling
from tuner.config import KernelChoice, ProgramConfig, TuningConfig
from tuner.kernels import ConvWorkload, KernelBuildError
from tuner.kernels.cpu import CpuKernelLibrary
from tuner.kernels.cpu.program import program_runtime
from tuner.kernels.cpu.program.cell import ProgramCell

INPUT = (2, 3, 32, 32)


def _input(shape=INPUT, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _randomize_batchnorms(net, seed=1):
    """Non-trivial BN statistics so that folding errors would show."""
    rng = np.random.default_rng(seed)
    for _, cell in net.cells_and_names():
        if isinstance(cell, nn.BatchNorm2d):
            n = cell.num_features
            cell.gamma.set_data(Tensor(rng.uniform(0.5, 1.5, n).astype(np.float32)))
            cell.beta.set_data(Tensor(rng.normal(0, 0.2, n).astype(np.float32)))
            cell.moving_mean.set_data(Tensor(rng.normal(0, 0.2, n).astype(np.float32)))
            cell.moving_variance.set_data(Tensor(rng.uniform(0.5, 1.5, n).astype(np.float32)))


def _for_inference(net):
    """``net`` in inference mode with non-trivial BatchNorm statistics."""
    net.set_train(False)
    _randomize_batchnorms(net)
    return net


def _model(name):
    return _for_inference(mindcv.create_model(name))


def programs(net):
    return [c for _, c in net.cells_and_names() if isinstance(c, ProgramCell)]


def _step_implementations(program):
    """What ran each step of a program cell that has run (its input and output conversions
    left out), as the runtime reports it."""
    times = program_runtime.timings(program.library, program.spec_words)
    return [a.implementation for a in times.actions if a.label == "step"]


def _config(granularity="network", layout="any", excluded=(), kernels=()):
    return TuningConfig(programs=ProgramConfig(granularity, layout, tuple(excluded)),
                        kernels=tuple(kernels))


@pytest.mark.parametrize("model,convs", [("resnet18", 20), ("mobilenet_v2_100", 52)])
def test_the_whole_network_as_one_program_matches_untuned(library, model, convs):
    net = _model(model)
    x = _input()
    reference = Calling(net)(x).asnumpy()
    groups = library.find_workloads(net, INPUT)
    assert sum(len(g.layers) for g in groups if g.workload.op == "conv") == convs
    assert all(g.kernel == "onednn" for g in groups)
    tuned = library.apply(net, _config(), INPUT)
    assert isinstance(tuned, ProgramCell)
    out = Calling(tuned)(x).asnumpy()
    assert out.shape == reference.shape
    assert relative_error(out, reference) < 1e-4


@pytest.mark.parametrize("granularity,layout", [("layer", "blocked"), ("block", "nhwc"),
                                                ("stage", "any")])
def test_each_granularity_matches_untuned(library, granularity, layout):
    net = _model("resnet18")
    x = _input()
    reference = Calling(net)(x).asnumpy()
    tuned = Calling(library.apply(net, _config(granularity, layout), INPUT))
    cells = programs(tuned)
    limit = ProgramConfig(granularity).limit
    explained = library.explain(_model("resnet18"), _config(granularity, layout), INPUT)
    heavy = [int(line.split(", ")[-1].split()[0]) for line in explained.splitlines()
             if line.startswith("program ")]
    assert len(cells) == len(heavy) > 1 and max(heavy) <= limit
    assert relative_error(tuned(x).asnumpy(), reference) < 1e-4


def test_excluded_modules_stay_mindspores_own(library):
    net = _model("resnet18")
    x = _input()
    reference = Calling(net)(x).asnumpy()
    # as the search draws them: a choice for every workload, the excluded module's too
    everywhere = [KernelChoice(g.key, "onednn", (("impl", 0),))
                  for g in library.find_workloads(net, INPUT)]
    tuned = Calling(library.apply(net, _config("network", excluded=["layer2"], kernels=everywhere),
                                INPUT))
    assert all(isinstance(c, nn.Conv2d) for p, c in net.cells_and_names()
               if p.startswith("layer2.") and p.endswith(("conv1", "conv2")))
    assert programs(tuned)
    assert relative_error(tuned(x).asnumpy(), reference) < 1e-4
    explained = library.explain(_model("resnet18"), _config("network", excluded=["layer2"]), INPUT)
    assert "overlaps the excluded module layer2" in explained


@needs_avx512
def test_hand_written_kernels_run_inside_the_programs(library):
    net = _model("resnet18")
    x = _input()
    reference = Calling(net)(x).asnumpy()
    groups = library.find_workloads(net, INPUT)
    choices = []
    for group in groups:
        if "conv2d_winograd" in group.kernels:
            choices.append(KernelChoice(group.key, "conv2d_winograd", (("tile_size", 2),)))
        elif "conv2d_dense" in group.kernels:
            choices.append(KernelChoice(group.key, "conv2d_dense", (("oc_register_block", 4),)))
    assert {c.kernel for c in choices} == {"conv2d_winograd", "conv2d_dense"}
    tuned = Calling(library.apply(net, _config("network", kernels=choices), INPUT))
    (program,) = programs(tuned)
    assert "Conv2dWinograd" in bytes(program.spec_words.tobytes()).decode("latin-1")
    assert relative_error(tuned(x).asnumpy(), reference) < 1e-4


@needs_avx2_fma
@pytest.mark.parametrize("layout", ["nhwc", "blocked"])
def test_the_runtimes_gemm_convolution_runs_every_dense_layer(library, layout):
    """ResNet18's 20 convolutions (7x7 stem, 3x3 of strides 1 and 2, strided 1x1 shortcuts,
    residual adds) as GEMM steps with varied register tiles, in either program layout."""
    net = _model("resnet18")
    x = _input()
    reference = Calling(net)(x).asnumpy()
    tiles = [(14, 2), (7, 4), (6, 1), (9, 2)]
    choices = [KernelChoice(g.key, "conv2d_gemm_nhwc",
                            (("register_rows", tiles[i % 4][0]),
                             ("register_vectors", tiles[i % 4][1])))
               for i, g in enumerate(library.find_workloads(net, INPUT))
               if "conv2d_gemm_nhwc" in g.kernels]
    tuned = library.apply(net, _config("network", layout, kernels=choices), INPUT)
    assert len([step for step in tuned.steps if step.kernel == "conv2d_gemm_nhwc"]) == 20
    assert relative_error(Calling(tuned)(x).asnumpy(), reference) < 1e-4
    assert len([i for i in _step_implementations(tuned) if i.startswith("gemm_conv_nhwc")]) == 20


@needs_avx2_fma
def test_the_gemm_convolution_fuses_silu(library):
    """SiLU, as MindSpore's cell or as x * sigmoid(x), is the GEMM step's epilogue (EfficientNet's
    1x1 layers); the hand-written AOT kernels do not take it."""
    class SiluNet(nn.Cell):
        def __init__(self):
            super().__init__()
            self.expand = nn.SequentialCell([nn.Conv2d(16, 64, 1), nn.BatchNorm2d(64), nn.SiLU()])
            self.conv = nn.Conv2d(64, 32, 3, pad_mode="pad", padding=1, has_bias=True)
            self.sigmoid = nn.Sigmoid()

        def construct(self, x):
            y = self.conv(self.expand(x))
            return y * self.sigmoid(y)

    net = _for_inference(SiluNet())
    shape = (1, 16, 7, 7)
    x = _input(shape)
    reference = Calling(net)(x).asnumpy()
    groups = library.find_workloads(net, shape)
    assert all("conv2d_gemm_nhwc" in g.kernels and "conv2d_dense" not in g.kernels
               for g in groups)
    choices = [KernelChoice(g.key, "conv2d_gemm_nhwc", ()) for g in groups]
    tuned = library.apply(net, _config("network", "nhwc", kernels=choices), shape)
    assert relative_error(Calling(tuned)(x).asnumpy(), reference) < 1e-4
    assert [i.split(":")[0] for i in _step_implementations(tuned)] == ["gemm_conv_nhwc"] * 2


def test_a_kernel_that_cannot_run_a_workload_is_refused(every_kernel_library):
    library = every_kernel_library
    net = _model("resnet18")
    strided = next(g for g in library.find_workloads(net, INPUT)
                   if g.workload.op == "conv" and g.workload.stride == (2, 2))
    with pytest.raises(ValueError, match="cannot run"):
        library.apply(net, _config(kernels=[KernelChoice(strided.key, "conv2d_winograd", ())]),
                      INPUT)



def test_a_cpu_without_avx512_is_offered_onednn_and_the_runtimes_kernels(kernel_cache):
    """AVX2-only CPUs (AMD Zen 3): the AVX-512 kernels are neither offered nor built, and a
    configuration that names one is refused saying why; the runtime's own (Winograd, GEMM) are."""
    library = CpuKernelLibrary(cache_dir=kernel_cache, flags=frozenset({"sse2", "avx2", "fma"}))
    assert library.kernel_names(ConvWorkload(1, 16, 16, 8, 8, (3, 3), (1, 1), (1, 1, 1, 1))) == (
        "onednn", "conv2d_winograd_nhwc", "conv2d_gemm_nhwc")
    built = library.build("conv2d_dense", {})
    assert not built.ok and built.library is None
    assert built.error == "conv2d_dense needs the CPU flag avx512f, which this CPU lacks"
    net = _model("resnet18")
    groups = library.find_workloads(net, INPUT)
    assert {kernel for g in groups for kernel in g.kernels} == {
        "onednn", "conv2d_winograd_nhwc", "conv2d_gemm_nhwc"}
    three_by_three = next(g for g in groups if g.workload.op == "conv"
                          and g.workload.kernel == (3, 3) and g.workload.stride == (1, 1))
    choice = KernelChoice(three_by_three.key, "conv2d_winograd", ())
    with pytest.raises(ValueError, match=f"kernels.{three_by_three.key}: conv2d_winograd "
                                         "needs the CPU flag avx512f, which this CPU lacks"):
        library.apply(net, _config(kernels=[choice]), INPUT)


class _OddNet(nn.Cell):
    """'same' padding on odd sizes, dilated, grouped and depthwise convolutions."""

    def __init__(self):
        super().__init__()
        self.body = nn.SequentialCell([
            nn.Conv2d(3, 16, 3, stride=2, pad_mode="same"), nn.BatchNorm2d(16), nn.ReLU6(),
            nn.Conv2d(16, 16, 3, pad_mode="pad", padding=2, dilation=2),
            nn.Conv2d(16, 16, 3, pad_mode="pad", padding=1, group=2), nn.ReLU(),
            nn.Conv2d(16, 16, 3, pad_mode="same", group=16), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 8, 1, has_bias=True),
        ])

    def construct(self, x):
        return self.body(x)


def test_dilated_grouped_and_depthwise_convolutions(library):
    net = _for_inference(_OddNet())
    shape = (3, 3, 15, 11)
    x = _input(shape)
    reference = Calling(net)(x).asnumpy()
    groups = library.find_workloads(net, shape)
    kinds = sorted((g.layers[0], g.workload.kind) for g in groups)
    assert kinds == [("body.0", "dense"), ("body.3", "dense"), ("body.4", "grouped"),
                     ("body.6", "depthwise"), ("body.9", "dense")]
    dilated = next(g for g in groups if g.layers == ("body.3",))
    assert dilated.kernels == ("onednn",)  # the hand-written kernels have no dilation
    tuned = Calling(library.apply(net, _config("network"), shape))
    assert relative_error(tuned(x).asnumpy(), reference) < 1e-4


def test_unknown_workload_key_is_refused(library):
    unknown = KernelChoice("dense_n1_c1_h1_w1_o1_k1x1_s1_p0", "onednn", ())
    with pytest.raises(ValueError, match="not a workload"):
        library.apply(_OddNet(), _config(kernels=[unknown]), (3, 3, 15, 11))


def test_failed_build_raises_kernel_build_error(tmp_path, kernel_cache):
    broken = tmp_path / "broken.cpp"
    broken.write_text("this is not C++\n")
    space = tmp_path / "space.yaml"
    space.write_text(
        "onednn:\n  source: program/program.cpp\n  runtime_params: true\n"
        "  params: {impl: {type: int, low: 0, high: 0, default: 0}}\n"
        f"conv2d_dense:\n  source: {broken}\n  runs: \"op == 'conv' and groups == 1\"\n"
        "  hand_epilogue: true\n  params:\n"
        "    oc_register_block: {type: categorical, choices: [8], default: 8, define: MR}\n")
    broken_library = CpuKernelLibrary(space_path=space, cache_dir=kernel_cache)
    net = _OddNet()
    shape = (1, 3, 15, 11)
    group = next(g for g in broken_library.find_workloads(net, shape)
                 if "conv2d_dense" in g.kernels)
    with pytest.raises(KernelBuildError) as error:
        broken_library.apply(net, _config(kernels=[KernelChoice(group.key, "conv2d_dense", ())]),
                             shape)
    assert "error" in error.value.compiler_message
    assert error.value.kernel_name == "conv2d_dense"
    verdict = broken_library.verify(group.workload, {}, kernel="conv2d_dense")
    assert verdict.build_failed and not verdict.ok and "conv2d_dense" in verdict.message


def test_a_program_the_runtime_cannot_run_is_left_to_mindspore_and_the_rest_planned_again(
        library, monkeypatch):
    """As when oneDNN has no implementation of a step on this machine: the region is refused
    with the runtime's reason, its sub-regions are tried instead."""
    import tuner.kernels.cpu.library as cpu
    from mindspore import Tensor as MsTensor

    real = cpu.build_programs
    broken_once = []

    def build_with_a_broken_network_program(plan, *args):
        programs = real(plan, *args)
        for program in programs:
            if program.planned.region.cells == ("",) and not broken_once:
                words = program.cell.spec_words.copy()
                words[1] = 999  # a spec version no runtime reads
                program.cell.spec = MsTensor(words)
                program.cell.spec_words = words
                broken_once.append(program)
        return programs

    monkeypatch.setattr(cpu, "build_programs", build_with_a_broken_network_program)
    net = _model("resnet18")
    x = _input()
    reference = Calling(net)(x).asnumpy()
    tuned = Calling(library.apply(net, _config("network"), INPUT))
    names = [c.layer_path for c in programs(tuned)]
    assert broken_once and names and "network" not in names  # the top cells chained instead
    assert relative_error(tuned(x).asnumpy(), reference) < 1e-4
