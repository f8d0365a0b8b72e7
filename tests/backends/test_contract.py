"""Every registered backend honours the same contract."""
import pytest

from tuner.backends import backend_names, get_backend
from tuner.errors import UsageError
from tuner.space import load_space


@pytest.fixture(params=backend_names())
def backend(request):
    return get_backend(request.param)


def test_name_is_the_device_target_and_lookup_ignores_case(backend):
    assert backend.name in ("CPU", "GPU", "Ascend")
    assert get_backend(backend.name.lower()).name == backend.name


def test_availability_is_a_reason_or_none_and_refusal_is_one_line(backend):
    reason = backend.unavailable_reason()
    assert reason is None or (isinstance(reason, str) and reason and "\n" not in reason)
    if reason is None:
        backend.require_available()
    else:
        with pytest.raises(UsageError, match=f"^--device {backend.name}: not available here: "):
            backend.require_available()


def test_plugin_problem_is_none_or_one_line_naming_the_device(backend):
    import mindspore as ms

    problem = backend.plugin_problem(ms)
    if backend.name == "CPU":
        assert problem is None
    elif not ms.hal.is_available(backend.name):
        assert problem.endswith(f"cannot load its {backend.name} plugin on this machine")
        assert "\n" not in problem
    else:
        assert problem is None


def test_default_space_exists_and_is_for_the_device(backend):
    space = load_space(backend.default_space_path())
    assert space.device == backend.name and space.knobs


def test_available_backend_runs_a_trial(backend, measure_tiny):
    if backend.unavailable_reason():
        pytest.skip(f"{backend.name} is not available here: {backend.unavailable_reason()}")
    assert measure_tiny().ok


def test_unknown_device_lists_the_known_ones():
    with pytest.raises(UsageError, match=r"unknown device \(choose from Ascend, CPU, GPU\)"):
        get_backend("TPU")


def test_every_backend_gives_its_trials_a_kernel_library(backend, tmp_path):
    """The trial process runs through the same hooks on every device; one without custom
    kernels gets a library whose hooks do nothing and which says what the device lacks."""
    from tuner.kernels.base import KernelLibrary, PreparedInputs

    library = backend.trial_kernel_library()
    assert isinstance(library, KernelLibrary) and library.device == backend.name
    if backend.has_kernels:
        return
    assert library.unavailable_reason() == backend.kernels_missing
    assert library.prepare_study(None, (1, 3, 8, 8), tmp_path).to_dict() == {
        "workloads": [], "kernels_unavailable": backend.kernels_missing}
    assert library.prepared_inputs(None, tmp_path) == PreparedInputs()
    assert library.missing_references(None, None, (1, 3, 8, 8), tmp_path) == 0
    assert library.workload_times(None) == {} and library.expand_profile((), None) == ()
    assert library.write_call_trace(tmp_path / "trace.json", None, [0.0], [1.0]) == ""
    assert not list(tmp_path.iterdir())
