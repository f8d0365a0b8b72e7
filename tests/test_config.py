import json

import pytest

from tuner.config import KernelChoice, TuningConfig
from tuner.errors import ConfigError


def test_default_is_untuned_and_sets_no_environment():
    assert TuningConfig().environment() == {}
    assert TuningConfig().non_default_knobs() == {}


def test_json_round_trip_preserves_every_section():
    config = TuningConfig.from_knobs(
        {"graph_kernel.enabled": True, "graph_kernel.opt_level": 2,
         "graph_kernel.disable_expand_ops": ["ReLU", "Mul"], "graph_kernel.excluded_modules": ["layer3"],
         "rewrites.fold_batchnorm": "modules", "rewrites.fold_batchnorm_modules": ["layer1"],
         "runtime.omp_num_threads": 2, "runtime.omp_wait_policy": "PASSIVE"},
        kernels=(KernelChoice("dense_a", "conv2d_dense", (("oc_block", 32),)),))
    assert TuningConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_fusion_flags_and_environment():
    config = TuningConfig.from_knobs({"graph_kernel.enabled": True, "graph_kernel.opt_level": 2,
                                      "graph_kernel.disable_expand_ops": ["ReLU"],
                                      "graph_kernel.enable_stitch_fusion": True,
                                      "runtime.omp_num_threads": 1})
    env = config.environment()
    assert env["MS_DEV_GRAPH_KERNEL_FLAGS"] == (
        "--opt_level=2 --disable_expand_ops=ReLU --enable_stitch_fusion=true")
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"  # fusion's OpenMP must not spin
    assert env["OMP_NUM_THREADS"] == "1"


@pytest.mark.parametrize("knobs, message", [
    ({"graph_kernel.opt_level": 9}, "graph_kernel.opt_level: 9 is out of range"),
    ({"rewrites.fold_batchnorm": "some"}, "rewrites.fold_batchnorm: 'some' is not one of"),
    ({"graph_kernel.disable_expand_ops": ["Re LU"]}, "'Re LU' is not a valid name"),
    ({"runtime.omp_wait_policy": "SPIN"}, "runtime.omp_wait_policy"),
    ({"graph_kernel.enabled": "yes"}, "graph_kernel.enabled: 'yes' is not true/false"),
    ({"graph_kernel.opt_levl": 1}, "unknown key 'opt_levl'"),
    ({"fusion.enabled": True}, "unknown knob section 'fusion'"),
])
def test_invalid_values_are_refused_with_the_knob_named(knobs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        TuningConfig.from_knobs(knobs)


def test_unknown_section_in_json_is_refused():
    with pytest.raises(ConfigError, match="unknown section 'extra'"):
        TuningConfig.from_dict({"extra": {}})


def test_describe_summarizes_kernels_instead_of_listing_their_parameters():
    config = TuningConfig.from_knobs(
        {"rewrites.fold_batchnorm": "all"},
        kernels=(KernelChoice("dense_a", "conv2d_dense", (("oc_block", 32),)),))
    assert config.describe() == "rewrites.fold_batchnorm=all, kernels conv2d_dense on 1 workloads"
    assert config.non_default_knobs() == {"rewrites.fold_batchnorm": "all"}
    assert TuningConfig().describe() == "none (the untuned defaults)"


def test_folding_the_batchnorms_of_no_module_hashes_as_folding_none():
    def folding(mode, modules=()):
        return TuningConfig.from_knobs({"rewrites.fold_batchnorm": mode,
                                        "rewrites.fold_batchnorm_modules": modules})
    assert folding("modules").canonical_hash() == TuningConfig().canonical_hash()
    assert folding("modules", ["layer1"]).canonical_hash() != TuningConfig().canonical_hash()
    assert folding("all").canonical_hash() != TuningConfig().canonical_hash()
