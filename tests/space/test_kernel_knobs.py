import optuna
import pytest

from tuner.config import KernelChoice
from tuner.kernels.param_space import load_kernel_space
from tuner.kernels.workload import ConvWorkload, MatMulWorkload, WorkloadGroup
from tuner.space.kernel_knobs import PER_WORKLOAD, TILE_PER_WORKLOAD, KernelKnobs

SPACES = load_kernel_space()
HAND = ("onednn", "conv2d_dense")  # the kernels of a dense convolution that is not 3x3/1
AVX512 = frozenset({"avx2", "fma", "avx512f"})


def _group(workload, kernels=None):
    kernels = kernels or tuple(k for k, space in SPACES.items() if space.can_run(workload))
    return WorkloadGroup(workload, (workload.key,), kernels)


def _dense(i, kernel=(1, 1), stride=(1, 1), size=14, batch=1):
    return ConvWorkload(batch, 16 + i, 32, size, size, kernel, stride, (0, 0, 0, 0))


WORKLOADS = tuple(_group(_dense(i), HAND) for i in range(20)) + (
    _group(ConvWorkload(1, 32, 32, 14, 14, (3, 3), (1, 1), (1, 1, 1, 1), groups=32),
           ("onednn", "conv2d_depthwise")),)


def test_repair_changes_one_parameter_to_the_nearest_valid_value():
    dense = SPACES["conv2d_dense"]
    broken = dense.complete({"oc_register_block": 14, "spatial_vectors": 4})
    assert not dense.is_valid(broken)
    repaired = dense.nearest_valid(broken)
    assert dense.is_valid(repaired)
    assert sum(repaired[k] != broken[k] for k in broken) == 1
    assert dense.nearest_valid(dense.defaults()) == dense.defaults()


def test_every_suggestion_is_valid_even_with_many_workloads():
    knobs = KernelKnobs(SPACES, WORKLOADS)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    repaired_trials = 0
    for _ in range(30):
        trial = study.ask()
        drawn = knobs.suggest(trial)
        assert knobs.invalid_reason(drawn.choices) is None
        repaired_trials += bool(drawn.repaired)
        study.tell(trial, 0.0)
    assert repaired_trials > 0  # 20 dense workloads: many trials needed a repair


def test_params_round_trip_for_enqueueing():
    knobs = KernelKnobs(SPACES, WORKLOADS)
    defaults = knobs.default_choices()
    assert len(defaults) == len(WORKLOADS)
    assert {c.kernel for c in defaults} == {"onednn"}
    study = optuna.create_study()
    study.enqueue_trial(knobs.params_for(defaults))
    assert knobs.suggest(study.ask()).choices == defaults


WINOGRAD = _dense(0, (3, 3), size=56, batch=16)             # 3x3/1: oneDNN, dense, winograd
SMALL = _dense(1, (3, 3), size=7)                           # the same kernels
STRIDED = _dense(2, (3, 3), stride=(2, 2), size=56)         # stride 2: no winograd choice, GEMM
MATMUL = MatMulWorkload((), 1, 512, 1000)                   # oneDNN only
MIXED = tuple(_group(w) for w in (WINOGRAD, SMALL, STRIDED, MATMUL))


def test_each_workload_offers_the_kernels_that_can_run_it():
    knobs = KernelKnobs(SPACES, MIXED)
    assert list(knobs.kernel_options(MIXED[0])) == ["onednn", "dense", "winograd", "winograd_nhwc",
                                                    "gemm_nhwc"]
    assert list(knobs.kernel_options(MIXED[2])) == ["onednn", "dense", "gemm_nhwc"]
    assert list(knobs.kernel_options(MIXED[3])) == ["onednn"]
    defaults = {c.workload: c.kernel for c in knobs.default_choices()}
    # the runtime's Winograd is the default of 3x3 stride-1 convolutions from batch 8 on
    assert defaults == {WINOGRAD.key: "conv2d_winograd_nhwc", SMALL.key: "onednn",
                        STRIDED.key: "onednn", MATMUL.key: "onednn"}


def test_choices_of_several_kernels_round_trip_with_distinct_parameter_names():
    knobs = KernelKnobs(SPACES, MIXED)
    winograd = SPACES["conv2d_winograd"]
    choices = (KernelChoice(WINOGRAD.key, "conv2d_winograd",
                            tuple(sorted(winograd.complete({"tile_size": 2}).items()))),
               KernelChoice(SMALL.key, "conv2d_dense",
                            tuple(sorted(SPACES["conv2d_dense"].defaults().items()))),
               KernelChoice(STRIDED.key, "onednn", (("impl", 1),)),
               KernelChoice(MATMUL.key, "onednn", (("impl", 1),)))
    params = knobs.params_for(choices)
    assert params[f"kernels.{WINOGRAD.key}"] == "winograd"
    assert params["kernels.conv2d_winograd.tile_size"] == 2  # one set per kernel: shared
    assert params["kernels.onednn.impl"] == 1
    assert f"kernels.{MATMUL.key}" not in params  # one kernel can run it: no knob
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.enqueue_trial(params)
    assert knobs.suggest(study.ask()).choices == choices
    for _ in range(15):  # dense and winograd parameters of one workload never collide
        trial = study.ask()
        assert knobs.invalid_reason(knobs.suggest(trial).choices) is None
        study.tell(trial, 0.0)
    with pytest.raises(ValueError, match="cannot run"):
        knobs.params_for((KernelChoice(STRIDED.key, "conv2d_winograd", ()),))


def test_kernels_are_chosen_per_workload_only_behind_the_switch():
    knobs = KernelKnobs(SPACES, MIXED)
    default_kernels = {c.workload: c.kernel for c in knobs.default_choices()}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = {False: 0, True: 0}
    for _ in range(40):
        trial = study.ask()
        choices = knobs.suggest(trial).choices
        per_workload = trial.params[PER_WORKLOAD]
        seen[per_workload] += 1
        sampled_kernels = [name for name in trial.params
                           if name.count(".") == 1 and name not in (PER_WORKLOAD, TILE_PER_WORKLOAD)]
        if not per_workload:  # only tilings sampled; every workload on its default kernel
            assert sampled_kernels == []
            assert {c.workload: c.kernel for c in choices} == default_kernels
        else:  # a kernel knob for each workload that more than one kernel can run
            assert len(sampled_kernels) == len(MIXED) - 1
        study.tell(trial, 0.0)
    assert seen[False] > 5 and seen[True] > 5


@pytest.mark.parametrize("mixed, expected", [(False, False), (True, True)])
def test_the_switch_round_trips(mixed, expected):
    knobs = KernelKnobs(SPACES, MIXED)
    defaults = knobs.default_choices()
    dense = SPACES["conv2d_dense"].defaults()
    dense_small = KernelChoice(SMALL.key, "conv2d_dense", tuple(sorted(dense.items())))
    choices = tuple(dense_small if mixed and c.workload == SMALL.key else c for c in defaults)
    params = knobs.params_for(choices)
    assert params[PER_WORKLOAD] is expected
    assert (f"kernels.{MIXED[1].key}" in params) is expected
    study = optuna.create_study()
    study.enqueue_trial(params)
    assert knobs.suggest(study.ask()).choices == choices


@pytest.mark.parametrize("unrolls, per_workload", [((4, 4), False), ((4, 2), True)])
def test_tilings_are_shared_per_kernel_unless_they_differ(unrolls, per_workload):
    knobs = KernelKnobs(SPACES, WORKLOADS[:2])
    dense = SPACES["conv2d_dense"]
    choices = tuple(KernelChoice(w.key, "conv2d_dense", tuple(sorted(dense.complete(
        {"unroll": unroll}).items()))) for w, unroll in zip(WORKLOADS[:2], unrolls))
    params = knobs.params_for(choices)
    assert params[TILE_PER_WORKLOAD] is per_workload
    assert (f"kernels.{WORKLOADS[0].key}.dense.unroll" in params) is per_workload
    assert ("kernels.conv2d_dense.unroll" in params) is not per_workload
    study = optuna.create_study()
    study.enqueue_trial(params)
    assert knobs.suggest(study.ask()).choices == choices


def test_shared_tilings_need_one_variant_per_kernel():
    knobs = KernelKnobs(SPACES, MIXED)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    for _ in range(20):
        trial = study.ask()
        choices = knobs.suggest(trial).choices
        variants = {(c.kernel, c.params) for c in choices}
        if not trial.params[TILE_PER_WORKLOAD]:
            assert len(variants) == len({c.kernel for c in choices})
        study.tell(trial, 0.0)


def test_the_gemm_step_is_the_default_of_small_1x1_layers_with_avx512():
    """Up to 196 output pixels (ResNet50 b1's 14x14 and 7x7 1x1 layers), and only 1x1 ones;
    AVX2-only CPUs keep oneDNN (unmeasured there)."""
    def default(workload, flags):
        spaces = load_kernel_space(cpu_flags=frozenset(flags))
        group = _group(workload, tuple(k for k, s in spaces.items() if s.can_run(workload)))
        return KernelKnobs(spaces, (group,)).default_choices()[0].kernel

    avx512 = AVX512
    late = ConvWorkload(1, 512, 2048, 7, 7, (1, 1), (1, 1), (0, 0, 0, 0))
    shortcut = ConvWorkload(1, 512, 1024, 28, 28, (1, 1), (2, 2), (0, 0, 0, 0))  # 14x14 out
    assert default(late, avx512) == default(shortcut, avx512) == "conv2d_gemm_nhwc"
    assert default(ConvWorkload(1, 256, 64, 56, 56, (1, 1), (1, 1), (0, 0, 0, 0)),
                   avx512) == "onednn"
    assert default(ConvWorkload(1, 512, 512, 7, 7, (3, 3), (1, 1), (1, 1, 1, 1)),
                   avx512) == "onednn"
    assert default(late, {"avx2", "fma"}) == "onednn"


@pytest.mark.parametrize("workload, flags, tile", [
    # ResNet50 b1's 14x14 1x1 layer of 1024 inputs: 2**25.6 multiply-adds
    (ConvWorkload(1, 1024, 256, 14, 14, (1, 1), (1, 1), (0, 0, 0, 0)), AVX512, (7, 4)),
    # EfficientNet-B0's 7x7 projection: 2**23.4
    (ConvWorkload(1, 1152, 192, 7, 7, (1, 1), (1, 1), (0, 0, 0, 0)), AVX512, (14, 2)),
    (ConvWorkload(1, 1024, 256, 14, 14, (1, 1), (1, 1), (0, 0, 0, 0)), {"avx2", "fma"}, (6, 1)),
])
def test_the_gemm_steps_default_tile_follows_the_layers_size(workload, flags, tile):
    """Panels of 64 channels (7 x 4) from 2**25 multiply-adds with AVX-512, 14 x 2 below;
    6 x 1 with AVX2."""
    defaults = load_kernel_space(cpu_flags=frozenset(flags))["conv2d_gemm_nhwc"].defaults(workload)
    assert (defaults["register_rows"], defaults["register_vectors"]) == tile


@pytest.mark.parametrize("kernel, name, value, adjacent", [
    ("conv2d_winograd_nhwc", "register_rows", 8, (6, 12)),     # categorical, declared order
    ("conv2d_winograd_nhwc", "register_rows", 2, (4,)),        # first: one side
    ("conv2d_winograd_nhwc", "weights", "raw", ("transformed",)),
    ("conv2d_gemm_nhwc", "register_rows", 14, (13,)),          # int range, its end
    ("conv2d_gemm_nhwc", "register_rows", 99, tuple(range(4, 15))),  # not a value: all
])
def test_adjacent_values_are_the_neighbours_in_declared_order(kernel, name, value, adjacent):
    assert SPACES[kernel].param(name).adjacent(value) == adjacent


def test_a_workloads_neighbours_move_one_parameter_or_its_kernel():
    spaces = load_kernel_space(cpu_flags=AVX512)  # the defaults (8 x 2 tiles) of AVX-512
    three = _group(ConvWorkload(1, 32, 32, 14, 14, (3, 3), (1, 1), (1, 1, 1, 1)))
    knobs = KernelKnobs(spaces, WORKLOADS[:2] + (three,))
    choices = knobs.default_choices()
    current = choices[2]
    neighbours = knobs.workload_neighbours(choices, three.key)
    assert all(n[:2] == choices[:2] and len(n) == 3 for n in neighbours)
    moved = [n[2] for n in neighbours]
    assert len(set(moved)) == len(moved) and current not in moved
    same_kernel = [dict(c.params) for c in moved if c.kernel == current.kernel]
    before = dict(current.params)
    space = spaces[current.kernel]
    expected = sum(len(p.adjacent(before[p.name])) for p in space.params)
    assert current.kernel == "conv2d_winograd_nhwc" and len(same_kernel) == expected == 11
    assert all(space.is_valid(p) for p in same_kernel)
    # each moves one parameter, but 4 vectors with 8 rows breaks rows * vectors <= 28 and is
    # repaired to the nearest valid combination (6 rows)
    assert [sum(p[k] != before[k] for k in before) for p in same_kernel].count(1) == expected - 1
    assert {"register_rows": 6, "register_vectors": 4}.items() <= next(
        p for p in same_kernel if p["register_vectors"] == 4).items()
    others = [c for c in moved if c.kernel != current.kernel]
    assert {c.kernel for c in others} == set(three.kernels) - {current.kernel}
    assert all(dict(c.params) == spaces[c.kernel].defaults(three.workload) for c in others)
