import pytest

from tuner.kernels import DEFAULT_SPACE_PATH, load_kernel_space


@pytest.fixture(scope="module")
def spaces():
    return load_kernel_space(DEFAULT_SPACE_PATH)


def test_yaml_declares_the_kernels_with_valid_defaults(spaces):
    assert list(spaces) == ["onednn", "conv2d_dense", "conv2d_depthwise", "conv2d_winograd",
                            "conv2d_winograd_nhwc", "conv2d_gemm_nhwc",
                            "pointwise_depthwise_nhwc"]
    for space in spaces.values():
        assert space.is_valid(space.defaults())
        assert (space.source.endswith(".cpp"))
    assert spaces["onednn"].runtime_params and spaces["onednn"].defines({}) == {}
    for native in ("conv2d_winograd_nhwc", "conv2d_gemm_nhwc", "pointwise_depthwise_nhwc"):
        assert spaces[native].runtime_params  # read from the spec, no variants
    assert all(spaces[k].hand_epilogue for k in list(spaces)[1:6])
    # the fused step takes any depthwise layer: one it cannot fuse runs on oneDNN
    assert not spaces["pointwise_depthwise_nhwc"].hand_epilogue


def test_which_workloads_each_kernel_runs(spaces):
    from tuner.kernels.workload import ConvWorkload, MatMulWorkload

    def runs(workload):
        return [k for k, space in spaces.items() if space.can_run(workload)]

    assert runs(ConvWorkload(1, 8, 8, 9, 9, (3, 3), (1, 1), (1, 1, 1, 1))) == [
        "onednn", "conv2d_dense", "conv2d_winograd", "conv2d_winograd_nhwc", "conv2d_gemm_nhwc"]
    assert runs(ConvWorkload(1, 8, 8, 9, 9, (3, 3), (2, 2), (1, 1, 1, 1))) == [
        "onednn", "conv2d_dense", "conv2d_gemm_nhwc"]
    assert runs(ConvWorkload(1, 8, 8, 9, 9, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2))) == ["onednn"]
    assert runs(ConvWorkload(1, 8, 24, 9, 9, (1, 1), (2, 2), (0, 0, 0, 0))) == [
        "onednn", "conv2d_dense", "conv2d_gemm_nhwc"]
    assert runs(ConvWorkload(1, 8, 24, 9, 9, (1, 1), (1, 1), (1, 1, 1, 1))) == [  # padding
        "onednn", "conv2d_dense"]                        # as wide as the window
    assert runs(ConvWorkload(1, 8, 24, 9, 9, (3, 3), (2, 1), (1, 1, 1, 1))) == [
        "onednn", "conv2d_dense"]                        # strides unlike
    assert runs(ConvWorkload(1, 8, 8, 9, 9, (7, 7), (1, 1), (3, 3, 3, 3), groups=8)) == [
        "onednn", "conv2d_depthwise"]
    assert runs(ConvWorkload(1, 32, 32, 9, 9, (3, 3), (2, 2), (1, 1, 1, 1), groups=32)) == [
        "onednn", "conv2d_depthwise", "pointwise_depthwise_nhwc"]
    assert "pointwise_depthwise_nhwc" not in runs(   # channels not a multiple of 16
        ConvWorkload(1, 24, 24, 9, 9, (3, 3), (1, 1), (1, 1, 1, 1), groups=24))
    assert runs(ConvWorkload(1, 8, 16, 9, 9, (3, 3), (1, 1), (1, 1, 1, 1), groups=8)) == [
        "onednn"]                                     # depthwise with a channel multiplier
    assert runs(ConvWorkload(1, 8, 8, 9, 9, (9, 9), (1, 1), (4, 4, 4, 4), groups=8)) == ["onednn"]
    assert runs(MatMulWorkload((2,), 50, 64, 64, False)) == ["onednn"]


def test_validate_names_the_offending_parameter(spaces):
    dense = spaces["conv2d_dense"]
    with pytest.raises(ValueError, match="oc_register_block"):
        dense.validate({"oc_register_block": 5})
    with pytest.raises(ValueError, match="no_such_param"):
        dense.validate({"no_such_param": 1})


def test_restrictions_are_enforced(spaces):
    dense = spaces["conv2d_dense"]
    with pytest.raises(ValueError, match="restriction"):
        dense.validate({"oc_register_block": 14, "spatial_vectors": 4})
    assert not dense.is_valid({"oc_register_block": 14, "spatial_vectors": 4})
    assert dense.is_valid({"oc_register_block": 14, "spatial_vectors": 2})


def test_defines_map_params_to_macros(spaces):
    dense = spaces["conv2d_dense"]
    defines = dense.defines({"loop_order": "m_outer", "oc_register_block": 12})
    assert defines["LOOP_ORDER"] == "1"
    assert defines["MR"] == "12"
    assert defines["KC"] == str(dense.defaults()["reduction_block"])


def test_configurations_are_all_valid_and_exclude_invalid(spaces):
    configs = list(spaces["conv2d_depthwise"].configurations())
    assert configs and all(spaces["conv2d_depthwise"].is_valid(c) for c in configs)
    assert all(c["ow_vectors"] * c["oh_rows"] <= 8 for c in configs)
    assert len(configs) < 16  # the restriction removed some of the 4 x 4 product


def test_malformed_file_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("k:\n  source: k.cpp\n  params:\n    p: {type: int, low: 3, high: 1, default: 2, define: P}\n")
    with pytest.raises(ValueError, match="low <= high"):
        load_kernel_space(path)
    path.write_text("k:\n  source: k.cpp\n  requires: avx512f\n  params: {}\n")
    with pytest.raises(ValueError, match="'requires' must be a list of CPU flags"):
        load_kernel_space(path)
    path.write_text("k:\n  source: k.cpp\n  defaults_when: {avx512f: {p: 9}}\n  params: {}\n")
    with pytest.raises(ValueError, match="'defaults_when' must be a list of"):
        load_kernel_space(path)
    path.write_text("k:\n  source: k.cpp\n  defaults_when: [{when: 'batch >', set: {}}]\n"
                    "  params: {}\n")
    with pytest.raises(ValueError, match="rule 'batch >' is not an expression"):
        load_kernel_space(path)
    path.write_text("k:\n  source: k.cpp\n  defaults_when: [{when: \"'avx512f' not in cpu\", "
                    "set: {p: 9}}]\n  params:\n"
                    "    p: {type: int, low: 1, high: 4, default: 2, define: P}\n")
    with pytest.raises(ValueError, match="params.p: 9 is not in"):  # on every CPU
        load_kernel_space(path, cpu_flags=frozenset({"avx512f"}))
    path.write_text("k:\n  source: k.cpp\n  hand_epilogue: true\n  activations: [gelu]\n"
                    "  params: {}\n")
    with pytest.raises(ValueError, match="'activations' must be a list of none, relu, relu6, "
                                         "silu"):
        load_kernel_space(path)


def test_defaults_depend_on_the_cpus_flags():
    """The runtime's Winograd keeps its register tile in AVX2's 16 registers without AVX-512."""
    avx2 = load_kernel_space(cpu_flags=frozenset({"avx2", "fma"}))["conv2d_winograd_nhwc"]
    avx512 = load_kernel_space(cpu_flags=frozenset({"avx2", "fma", "avx512f"}))[
        "conv2d_winograd_nhwc"]
    assert (avx2.defaults()["register_rows"], avx2.defaults()["register_vectors"]) == (6, 1)
    assert (avx512.defaults()["register_rows"], avx512.defaults()["register_vectors"]) == (8, 2)
    assert avx2.complete({"register_rows": 4}) == {**avx2.defaults(), "register_rows": 4}
    assert {k: v for k, v in avx2.defaults().items() if "register" not in k} == {
        k: v for k, v in avx512.defaults().items() if "register" not in k}


def test_kernels_require_the_cpu_flags_they_are_written_for(spaces):
    assert spaces["onednn"].requires == ()  # oneDNN picks its own code for the CPU it is on
    for name in ("conv2d_dense", "conv2d_depthwise", "conv2d_winograd"):
        assert spaces[name].requires == ("avx512f",)
        assert spaces[name].missing_flags(frozenset({"avx2", "fma"})) == ("avx512f",)
        assert spaces[name].missing_flags(frozenset({"avx2", "avx512f"})) == ()
    # the runtime's Winograd: on AVX-512, or on AVX2 with FMA (vec16.h)
    assert spaces["conv2d_winograd_nhwc"].missing_flags(frozenset({"avx2", "fma"})) == ()
    assert spaces["conv2d_winograd_nhwc"].missing_flags(frozenset({"avx", "fma"})) == ("avx2",)


def _conv3x3(batch: int, size: int, channels: int = 64):
    from tuner.kernels.workload import ConvWorkload

    return ConvWorkload(batch, channels, channels, size, size, (3, 3), (1, 1), (1, 1, 1, 1))


@pytest.mark.parametrize("flags", [{"avx2", "fma"}, {"avx2", "fma", "avx512f"}])
@pytest.mark.parametrize("batch, size, default", [
    (1, 56, True), (1, 14, True), (1, 7, False), (8, 7, True), (16, 7, True)])
def test_the_runtimes_winograd_is_the_default_where_its_tiles_fill_the_cores(
        flags, batch, size, default):
    """The 3x3 layers' default from batch 8 on, and at batch 1 on maps of 14x14 and more."""
    space = load_kernel_space(cpu_flags=frozenset(flags))["conv2d_winograd_nhwc"]
    assert space.is_default_for(_conv3x3(batch, size)) is default


@pytest.mark.parametrize("flags, batch, size, weights", [
    ({"avx2", "fma", "avx512f"}, 1, 14, "raw"), ({"avx2", "fma", "avx512f"}, 1, 28, "transformed"),
    ({"avx2", "fma", "avx512f"}, 16, 14, "transformed"), ({"avx2", "fma"}, 1, 14, "transformed")])
def test_defaults_depend_on_the_workload_and_the_cpu(flags, batch, size, weights):
    """On AVX-512, the runtime's Winograd reads raw weights on small maps at batch 1."""
    space = load_kernel_space(cpu_flags=frozenset(flags))["conv2d_winograd_nhwc"]
    workload = _conv3x3(batch, size)
    assert space.defaults(workload)["weights"] == weights
    assert space.complete({"tile_size": 2}, workload) == {**space.defaults(workload),
                                                          "tile_size": 2}
    assert space.defaults()["weights"] == "transformed"  # no workload: rules about the CPU only


def test_a_default_rule_can_read_the_cpus_flags(tmp_path):
    path = tmp_path / "k.yaml"
    path.write_text("k:\n  source: k.cpp\n  default_for: \"'avx512f' in cpu and batch > 1\"\n"
                    "  params: {}\n")
    workload = _conv3x3(2, 7)
    assert load_kernel_space(path, cpu_flags=frozenset({"avx512f"}))["k"].is_default_for(workload)
    assert not load_kernel_space(path, cpu_flags=frozenset({"avx2"}))["k"].is_default_for(workload)
