"""The trial process's network (tuner.runner.trial_network), loaded in the test process."""
import gc

import pytest

from tuner.runner import trial_network
from tuner.trial.request import WEIGHTS_FILE


@pytest.fixture
def collector_unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_a_loaded_network_is_out_of_the_garbage_collectors_reach(tiny_target, tiny_assets,
                                                                collector_unfrozen):
    """MindSpore collects garbage before every graph it compiles: the network loaded for a
    trial is frozen out of those collections, what the trial makes afterwards is not."""
    import mindspore as ms

    net = trial_network.new_network(tiny_target.model, ms, tiny_assets / WEIGHTS_FILE)
    made_later = [net]
    tracked = {id(o) for o in gc.get_objects()}
    assert id(net) not in tracked and not tracked & {id(p) for p in net.get_parameters()}
    assert gc.get_freeze_count() > 0 and id(made_later) in tracked
