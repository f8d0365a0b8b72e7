"""SearchSpace.one_knob_neighbours: the screening design enqueued after the space's default."""
import optuna
import pytest

from tuner.config import TuningConfig
from tuner.space import load_space

SPACE = """version: 1
device: CPU
knobs:
  graph_kernel.enabled: {type: bool, default: false}
  graph_kernel.opt_level: {type: int, low: 1, high: 3, default: 2, when: {graph_kernel.enabled: true}}
  rewrites.fold_batchnorm: {type: categorical, choices: [none, all, modules], default: none}
  rewrites.fold_batchnorm_modules:
    {type: subset, choices: model_stages, default: [], when: {rewrites.fold_batchnorm: modules}}
  runtime.omp_num_threads: {type: categorical, choices: [null, 1, 2], default: null}
"""


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return load_space(path).with_model(("layer1", "layer2"))


def _config(**knobs):
    return TuningConfig.from_knobs({k.replace("__", "."): v for k, v in knobs.items()})


def test_each_unconditional_knob_is_flipped_alone_with_what_it_activates_at_its_default(space):
    neighbours = space.one_knob_neighbours(space.default_config())
    assert neighbours == [
        _config(graph_kernel__enabled=True, graph_kernel__opt_level=2),
        _config(rewrites__fold_batchnorm="all"),
        # fold_batchnorm=modules with its default (no module) folds nothing: the default again
        _config(runtime__omp_num_threads=1),
        _config(runtime__omp_num_threads=2)]


def test_the_other_knobs_keep_the_centre_values_and_every_neighbour_is_in_the_space(space):
    centre = _config(graph_kernel__enabled=True, graph_kernel__opt_level=3,
                     runtime__omp_num_threads=1)
    neighbours = space.one_knob_neighbours(centre)
    assert _config(runtime__omp_num_threads=1) in neighbours  # fusion off drops opt_level
    assert _config(graph_kernel__enabled=True, graph_kernel__opt_level=3,
                   rewrites__fold_batchnorm="all", runtime__omp_num_threads=1) in neighbours
    assert len(neighbours) == 4 and centre not in neighbours
    for neighbour in neighbours:
        study = optuna.create_study()
        study.enqueue_trial(space.params_for(neighbour))
        assert space.suggest(study.ask()).config == neighbour



PROGRAMS = """version: 1
device: CPU
knobs:
  programs.granularity: {type: categorical, choices: ["off", network], default: network}
  programs.layout:
    {type: categorical, choices: [any, nhwc], default: any, when: {programs.granularity: [network]}}
  graph_kernel.enabled: {type: bool, default: false, when: {programs.granularity: ["off"]}}
"""


def test_conditional_knobs_active_at_the_centre_are_screened_too(tmp_path):
    path = tmp_path / "programs.yaml"
    path.write_text(PROGRAMS)
    space = load_space(path)
    neighbours = space.one_knob_neighbours(space.default_config())
    assert neighbours == [_config(programs__granularity="off"),
                          _config(programs__granularity="network", programs__layout="nhwc")]


KERNELS = """version: 1
device: CPU
knobs:
  programs.granularity: {type: categorical, choices: ["off", network], default: network}
custom_kernels: {params: %s}
"""


def test_each_kernel_is_screened_on_every_workload_it_can_run(tmp_path):
    from tuner.kernels.param_space import DEFAULT_SPACE_PATH
    from tuner.kernels.workload import ConvWorkload, WorkloadGroup

    path = tmp_path / "kernels.yaml"
    path.write_text(KERNELS % DEFAULT_SPACE_PATH)
    three = ConvWorkload(1, 16, 16, 8, 8, (3, 3), (1, 1), (1, 1, 1, 1))
    strided = ConvWorkload(1, 16, 16, 8, 8, (3, 3), (2, 2), (1, 1, 1, 1))
    groups = (WorkloadGroup(three, ("a",), ("onednn", "conv2d_dense", "conv2d_winograd_nhwc")),
              WorkloadGroup(strided, ("b",), ("onednn", "conv2d_dense")))
    space = load_space(path).with_model((), groups)
    default = space.default_config()
    kernel_neighbours = [n for n in space.one_knob_neighbours(default) if n.programs.enabled]
    assert [[c.kernel for c in n.kernels] for n in kernel_neighbours] == [
        ["conv2d_dense", "conv2d_dense"], ["conv2d_winograd_nhwc", "onednn"]]
    winograd = kernel_neighbours[1].kernels[0]
    assert dict(winograd.params) == space.kernels.spaces["conv2d_winograd_nhwc"].defaults(three)
    for neighbour in kernel_neighbours:
        study = optuna.create_study()
        study.enqueue_trial(space.params_for(neighbour))
        assert space.suggest(study.ask()).config == neighbour
