"""Planning a tuned configuration for another batch size."""
from tuner.config import KernelChoice, ProgramConfig, TuningConfig
from tuner.backends import kernel_library
from tuner.serving import choices_at_batch
from tests.fixtures.tiny_models import tiny_net


def test_kernel_choices_move_to_the_same_problem_at_another_batch():
    library = kernel_library("CPU")
    net = tiny_net()
    tuned, other = (4, 3, 16, 16), (1, 3, 16, 16)
    groups = library.find_workloads(net, tuned)
    choices = tuple(KernelChoice(g.key, "onednn", (("impl", k % 2),))
                    for k, g in enumerate(groups))
    config = TuningConfig(programs=ProgramConfig("network"), kernels=choices)
    moved = choices_at_batch(config, net, library, tuned, other)
    at_other = {g.workload.batchless_key: g.key for g in library.find_workloads(net, other)}
    expected = {at_other[g.workload.batchless_key]: c.params for g, c in zip(groups, choices)
                if g.workload.batchless_key in at_other}
    assert {c.workload: c.params for c in moved.kernels} == expected
    assert len(expected) == sum(g.workload.op == "conv" for g in groups) > 0  # convolutions
    assert all("_n1_" in c.workload for c in moved.kernels)  # a product's rows are its batch
    assert choices_at_batch(TuningConfig(), net, library, tuned, other) == TuningConfig()
