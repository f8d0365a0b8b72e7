from pathlib import Path

import optuna
import pytest

from tuner.backends import backend_names, get_backend
from tuner.config import ProgramConfig, TuningConfig
from tuner.space import SpaceError, load_space

VALID_HEADER = "version: 1\ndevice: CPU\nknobs:\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("body, key, reason", [
    ("  graph_kernel.opt_levl: {type: int, low: 1, high: 3, default: 1}\n",
     "knobs.graph_kernel.opt_levl", "unknown knob (did you mean graph_kernel.opt_level?)"),
    ("  graph_kernel.opt_level: {type: int, low: 1, high: 9, default: 1}\n",
     "knobs.graph_kernel.opt_level", "out of the knob's domain: 9 is out of range [0, 3]"),
    ("  graph_kernel.opt_level: {type: float, low: 1, high: 3, default: 1}\n",
     "knobs.graph_kernel.opt_level.type", "'float' is not one of"),
    ("  graph_kernel.opt_level: {type: int, low: 1, high: 3, default: 5}\n",
     "knobs.graph_kernel.opt_level.default", "5 is not in range"),
    ("  graph_kernel.opt_level: {type: int, low: 1, high: 3}\n",
     "knobs.graph_kernel.opt_level.default", "missing"),
    ("  graph_kernel.opt_level: {type: int, low: 1, high: 3, default: 1, choices: [1]}\n",
     "knobs.graph_kernel.opt_level.choices", "not a setting of a int knob"),
    ("  rewrites.fold_batchnorm: {type: categorical, choices: [none, sometimes], default: none}\n",
     "knobs.rewrites.fold_batchnorm", "'sometimes' is not one of"),
    ("  graph_kernel.enabled: {type: categorical, choices: [0, 1], default: 0}\n",
     "knobs.graph_kernel.enabled", "takes bool, not 0"),
    ("  graph_kernel.opt_level: {type: int, low: 1, high: 3, default: 1, when: {graph_kernel.enabled: true}}\n",
     "knobs.graph_kernel.opt_level.when.graph_kernel.enabled", "not a knob declared before this one"),
    ("  graph_kernel.enabled: {type: bool, default: false}\n"
     "  graph_kernel.opt_level: {type: int, low: 1, high: 3, default: 1, when: {graph_kernel.enabled: 2}}\n",
     "knobs.graph_kernel.opt_level.when.graph_kernel.enabled", "2 is not true/false"),
    ("  graph_kernel.disable_expand_ops: {type: subset, choices: [ReLU, ReLU], default: []}\n",
     "knobs.graph_kernel.disable_expand_ops.choices", "has duplicates"),
    ("  graph_kernel.disable_expand_ops: {type: subset, choices: [ReLU], default: [Mul]}\n",
     "knobs.graph_kernel.disable_expand_ops.default", "'Mul' is not one of"),
])
def test_malformed_knob_is_refused_naming_file_key_and_reason(tmp_path, body, key, reason):
    path = write(tmp_path, VALID_HEADER + body)
    with pytest.raises(SpaceError) as error:
        load_space(path)
    message = str(error.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert reason in message
    assert "\n" not in message


@pytest.mark.parametrize("text, key", [
    ("version: 1\ndevice: CPU\nknobs: [\n", "line"),
    ("- a list\n", "<top>"),
    ("version: 2\ndevice: CPU\nknobs: {}\n", "version"),
    ("version: 1\nknobs: {graph_kernel.enabled: {type: bool, default: false}}\n", "device"),
    ("version: 1\ndevice: CPU\nknobs: {}\n", "knobs"),
    ("version: 1\ndevice: CPU\nknob: {}\n", "knob"),
])
def test_malformed_file_is_refused(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(SpaceError, match=f"^{path}: {key}"):
        load_space(path)


def test_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(SpaceError, match="cannot read search space"):
        load_space(tmp_path / "absent.yaml")


@pytest.mark.parametrize("device", backend_names())
def test_every_default_space_loads_and_expresses_the_baseline(device):
    space = load_space(get_backend(device).default_space_path())
    assert space.device == device
    space = space.with_model(("layer1", "layer2"))
    params = space.params_for(TuningConfig())
    assert params  # the baseline is reachable through the space's knobs
    study = optuna.create_study()
    study.enqueue_trial(params)
    assert space.suggest(study.ask()).config == TuningConfig()
    default = space.default_config()
    if device == "CPU":  # every knob at MindSpore's own setting, the network one program
        assert default == TuningConfig(programs=ProgramConfig("network", "nhwc"))
    else:
        assert default == TuningConfig()


def test_suggestions_respect_conditions_and_model_stages():
    space = load_space(get_backend("CPU").default_space_path()).with_model(("s1", "s2"))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen_fold_modules, seen_fusion = set(), False
    for _ in range(40):
        trial = study.ask()
        config = space.suggest(trial).config
        study.tell(trial, 0.0)
        if not config.graph_kernel.enabled:
            assert not any(name.startswith("graph_kernel.opt_level") for name in trial.params)
        else:
            seen_fusion = True
        if config.rewrites.fold_batchnorm != "modules":
            assert config.rewrites.fold_batchnorm_modules == ()
        seen_fold_modules.update(config.rewrites.fold_batchnorm_modules)
        assert space.suggest(_replay(space, config)).config == config
    assert seen_fusion and seen_fold_modules == {"s1", "s2"}


def _replay(space, config):
    study = optuna.create_study()
    study.enqueue_trial(space.params_for(config))
    return study.ask()
