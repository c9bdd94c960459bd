"""The published defaults (docs/METHOD.md sections 4-6) as each script parses them, without any data."""
import inspect

import pytest

from continual_learning.main import build_parser as continual_parser
from cifar_features.generate_features import build_parser as features_parser
from metaplastic.experiments import continual
from metaplastic.method import sign_switch
from stream_cifar10.main import build_parser as stream_cifar10_parser


def _continual_config(*argv):
    return continual.config_from_args(continual_parser().parse_args(list(argv)))


def test_continual_learning_defaults_are_the_published_scripts():
    """docs/METHOD.md section 4: the defaults that apply whenever a published command omits a flag."""
    c = _continual_config()
    assert (c.decay, c.epochs_per_task, c.hidden_layers, c.meta, c.task_sequence) == (
        0.0, 5, [], [0.0], ["MNIST"])
    assert (c.lr, c.gamma, c.norm, c.init, c.init_width) == (0.005, 1.0, "bn", "uniform", 0.1)
    assert (c.ewc_lambda, c.si_lambda, c.scenario, c.net) == (0.0, 0.0, "task", "bnn")
    assert (c.ewc, c.si, c.interleaved, c.rnd_consolidation, c.ewc_fisher_mean) == (
        False, False, False, False, False)
    assert c.ewc_samples == 5000 and c.sign_switch_runs == 100


def test_metaplastic_run_gets_a_fresh_optimizer_per_task_with_lr_gamma_power():
    s = continual.sequence_settings(_continual_config("--gamma", "2"), progress=False)
    assert s.optimizer_per_task and not s.plain_adam
    assert (s.lr, s.gamma, s.consolidation) == (0.005, 2.0, [])


@pytest.mark.parametrize("random", [False, True])
def test_ewc_flags_reach_the_consolidation(random):
    argv = ["--ewc", "--ewc-lambda", "5000", "--ewc-fisher-mean"]
    s = continual.sequence_settings(
        _continual_config(*argv, *(["--rnd-consolidation"] if random else [])), progress=False)
    (ewc,) = s.consolidation
    assert type(ewc).__name__ == "EWC"
    assert (ewc.lam, ewc.samples, ewc.fisher_mean) == (5000.0, 5000, True)
    assert ewc.random_consolidation is random
    assert s.optimizer_per_task


def test_si_trains_with_one_plain_adam_for_the_sequence():
    """docs/METHOD.md section 5: one plain Adam (constant lr, coupled decay), created once, no per-task reset."""
    s = continual.sequence_settings(
        _continual_config("--si", "--si-lambda", "2", "--bin-path", "--decay", "1e-7"),
        progress=False)
    assert s.plain_adam and not s.optimizer_per_task
    (si,) = s.consolidation
    assert type(si).__name__ == "SynapticIntelligence"
    assert (si.lam, si.binary_path, s.weight_decay) == (2.0, True, 1e-7)


def test_stream_cifar10_defaults():
    """docs/METHOD.md section 6: batch --mbs 64, lr 1e-4, a random permutation first with --source keras."""
    args = stream_cifar10_parser().parse_args([])
    assert (args.mbs, args.lr, args.source) == (64, 1e-4, "keras")


def test_feature_generation_makes_ten_training_passes():
    assert features_parser().parse_args([]).train_passes == 10


def test_sign_switch_published_samples():
    """docs/METHOD.md section 6: 1000, 2000, 100 flipped weights for layers 1, 2, 3; 100 runs by default."""
    assert sign_switch.PUBLISHED_SAMPLES == (1000, 2000, 100)
    params = inspect.signature(sign_switch.sign_switch_analysis).parameters
    assert params["samples"].default == sign_switch.PUBLISHED_SAMPLES
    assert (params["n_bins"].default, params["runs"].default) == (15, 100)


def test_stream_fmnist_defaults_are_the_published_parsers():
    """The published stream FMNIST parser: --epochs-per-task 5, --decay 0.0, --hidden-layers
    1024 1024, --lr 0.005, --mbs 100, --nb-subset 1, --meta 0.0, --init uniform, --init-width
    0.1, --task FMNIST (its commands give --decay 1e-7 --epochs-per-task 20 explicitly)."""
    from stream_fmnist.main import build_parser, config_from_args

    c = config_from_args(build_parser().parse_args([]))
    assert (c.epochs_per_task, c.decay, c.hidden_layers, c.lr, c.mbs, c.nb_subset, c.meta,
            c.init, c.init_width, c.task) == (5, 0.0, [1024, 1024], 0.005, 100, 1, [0.0],
                                             "uniform", 0.1, "FMNIST")
