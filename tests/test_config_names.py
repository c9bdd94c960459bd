"""One name per idea, from flag to config to the loop: every experiment's loop settings
(metaplastic.experiments.runner.RunSettings) are built from its config, field for field under the
same names (--epochs-per-task -> epochs_per_task, --no-flip-stats -> flip_stats,
--checkpoint-every -> checkpoint_every), and the per-layer --meta is the config's
meta_per_layer, computed in one place (metaplastic.method.optim.MetaPerLayer)."""
import dataclasses

import pytest

from metaplastic.experiments.runner import RunSettings
from metaplastic.method.optim import MetaPerLayer, expand_meta

LOOP_FIELDS = [f.name for f in dataclasses.fields(RunSettings)]
FLAGS = ["--epochs-per-task", "3", "--checkpoint-every", "2", "--no-flip-stats", "--meta", "1.5"]


def _continual(flags):
    from continual_learning.main import build_parser
    from metaplastic.experiments import continual

    config = continual.config_from_args(build_parser().parse_args(flags + ["--hidden-layers", "8", "8"]))
    return config, continual.sequence_settings(config, progress=False).loop


def _mnist_usps(flags):
    from mnist_usps.main import build_parser, config_from_args
    from mnist_usps.model_utils import sequence_settings

    config = config_from_args(build_parser().parse_args(flags))
    return config, sequence_settings(config, "task", progress=False).loop


def _stream(module):
    def build(flags):
        import importlib

        main = importlib.import_module(f"{module}.main")
        from metaplastic.experiments.stream import stream_settings

        config = main.config_from_args(main.build_parser().parse_args(flags))
        return config, stream_settings(config, 0.0, progress=False).loop
    return build


@pytest.mark.parametrize("build", [_continual, _mnist_usps, _stream("stream_fmnist"), _stream("stream_cifar10")],
                         ids=["continual_learning", "mnist_usps", "stream_fmnist", "stream_cifar10"])
def test_the_loop_takes_the_configs_values_under_the_configs_names(build):
    config, loop = build(FLAGS)
    config_fields = {f.name for f in dataclasses.fields(config)}
    shared = [name for name in LOOP_FIELDS if name in config_fields]
    assert {"epochs_per_task", "checkpoint_every", "flip_stats"} <= set(shared)
    for name in shared:
        assert getattr(loop, name) == getattr(config, name), name
    assert (loop.epochs_per_task, loop.checkpoint_every, loop.flip_stats) == (3, 2, False)
    assert isinstance(config, MetaPerLayer)
    assert list(loop.meta_per_layer) == config.meta_per_layer == expand_meta(1.5, config.n_layers)
    assert len(loop.meta_per_layer) == config.n_layers > 1


def test_a_meta_per_layer_of_the_wrong_length_is_refused_after_parsing():
    from continual_learning.main import build_parser
    from metaplastic.errors import ConfigError
    from metaplastic.experiments import continual

    args = build_parser().parse_args(["--hidden-layers", "8", "8", "--meta", "1", "2"])
    with pytest.raises(ConfigError, match=r"1 value or one per layer \(3\), got 2"):
        continual.config_from_args(args)


def test_a_setting_outside_its_dataclass_is_an_error():
    """The loop's settings live in ``loop``: setting one on the sequence's settings fails loudly
    (slots) instead of being silently ignored."""
    config, loop = _continual([])
    from metaplastic.experiments import continual

    settings = continual.sequence_settings(config, progress=False)
    with pytest.raises(AttributeError):
        settings.stop_after_epochs = 1
    settings.loop.stop_after_epochs = 1
