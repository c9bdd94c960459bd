"""One mark on config fields drives the --resume check and the grouping of runs in plots."""
import dataclasses

import pytest

from metaplastic.errors import ConfigError
from metaplastic.plots.runs import run_settings
from metaplastic.runs import records
from metaplastic.runs.run_config import RunOptions, config_marks, neutral, per_seed
from metaplastic.runs.rundir import open_run_dir


@dataclasses.dataclass
class ToyConfig(RunOptions):
    lr: float = 0.005
    eval_batch: int = neutral(100)
    windows: dict = per_seed(default_factory=dict)


def test_marks_are_collected_from_the_fields():
    marks = config_marks(ToyConfig())
    assert {"device", "out_dir", "data_root", "checkpoint_every", "eval_batch"} <= set(
        marks["result_neutral"])
    assert "lr" not in marks["result_neutral"] and "seed" not in marks["result_neutral"]
    assert marks["per_seed"] == ["windows"]


def test_resume_accepts_neutral_changes_and_refuses_the_others(tmp_path):
    run = tmp_path / "run"
    assert open_run_dir(run, ToyConfig(out_dir=str(run)), resume=False) is False
    saved = records.load_config(run)
    assert saved["result_neutral"] == config_marks(ToyConfig())["result_neutral"]
    # no checkpoint yet: a --resume with neutral changes starts again from the beginning
    assert open_run_dir(run, ToyConfig(out_dir=str(run), device="cpu", eval_batch=7),
                        resume=True) is False
    before = (run / "config.json").read_bytes()
    with pytest.raises(ConfigError, match="lr: 0.005 -> 0.01"):
        open_run_dir(run, ToyConfig(out_dir=str(run), lr=0.01), resume=True)
    assert (run / "config.json").read_bytes() == before


@dataclasses.dataclass
class ToyConfigWithNewOption(ToyConfig):
    new_option: bool = False


def test_resume_of_a_run_saved_before_an_option_existed(tmp_path):
    """A field added to the config later counts as its default in an older config.json."""
    run = tmp_path / "run"
    open_run_dir(run, ToyConfig(out_dir=str(run)), resume=False)
    assert "new_option" not in records.load_config(run)
    assert open_run_dir(run, ToyConfigWithNewOption(out_dir=str(run)), resume=True) is False
    with pytest.raises(ConfigError, match="new_option: False -> True"):
        open_run_dir(run, ToyConfigWithNewOption(out_dir=str(run), new_option=True), resume=True)


def test_plots_group_runs_that_differ_only_in_marked_fields():
    def saved(**kw):
        config = ToyConfig(**kw)
        return dataclasses.asdict(config) | config_marks(config)

    a = saved(seed=0, device="cpu", windows={"MNIST": [1, 2]})
    b = saved(seed=1, device="cuda", eval_batch=5, windows={"MNIST": [7, 2]})
    c = saved(seed=0, lr=0.01)
    assert run_settings(a) == run_settings(b)
    assert run_settings(a) != run_settings(c)


def test_plots_group_a_run_saved_before_an_option_existed_with_one_that_has_it_off():
    old = dataclasses.asdict(ToyConfig()) | config_marks(ToyConfig())
    new = dataclasses.asdict(ToyConfigWithNewOption()) | config_marks(ToyConfigWithNewOption())
    assert "new_option" not in old and new["new_option"] is False
    assert run_settings(old) == run_settings(new)
    on = dataclasses.asdict(ToyConfigWithNewOption(new_option=True))
    assert run_settings(on) != run_settings(old)
