"""A new consolidation method is one class in one file: this test defines one (an L2 pull of the
hidden weights toward where the last task left them), registers it, and runs it through
continual_learning/main.py's command line; no other file knows it (docs/METHOD.md section 5,
metaplastic/method/consolidation.py)."""
import json

import pytest
import torch
from conftest import DATA_ROOT, needs_data

from continual_learning import main as continual_main
from metaplastic.flag_types import non_negative_float
from metaplastic.method import consolidation
from metaplastic.method.models import layer_weight, weight_layers

CALLS: list[str] = []


class HiddenAnchor(consolidation.ConsolidationMethod):
    """lambda * sum (W_h - W_h at the end of the previous task)^2."""

    name, switch = "hidden_anchor", "hidden_anchor"
    options = ("hidden_anchor", "hidden_anchor_lambda")

    @classmethod
    def add_arguments(cls, group) -> None:
        group.add_argument("--hidden-anchor", action="store_true", help="L2 pull to the last task")
        group.add_argument("--hidden-anchor-lambda", type=non_negative_float, default=0.0)

    @classmethod
    def create(cls, values: dict, seed: int) -> "HiddenAnchor":
        return cls(values["hidden_anchor_lambda"])

    def __init__(self, lam: float):
        self.lam, self.anchors = lam, None

    def begin_task(self, model) -> None:
        CALLS.append("begin")

    def end_task(self, model, train_x, train_y) -> None:
        CALLS.append(f"end {len(train_x)}")
        self.anchors = [layer_weight(l).detach().clone() for l in weight_layers(model)]

    def penalty(self, model) -> torch.Tensor:
        if self.anchors is None:
            return torch.zeros(())
        CALLS.append("penalty")
        return self.lam * sum(((layer_weight(l) - a) ** 2).sum()
                              for l, a in zip(weight_layers(model), self.anchors))

    def state_dict(self) -> dict:
        return {"anchors": self.anchors}

    def load_state_dict(self, state: dict) -> None:
        self.anchors = state["anchors"]


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(consolidation.METHODS, HiddenAnchor.name, HiddenAnchor)
    CALLS.clear()


def test_the_new_method_has_its_flags_and_checks(registered, capsys):
    with pytest.raises(SystemExit):
        continual_main.main(["-h"])
    assert "--hidden-anchor-lambda" in capsys.readouterr().out
    # the registry's rule: one method at a time
    code = continual_main.main(["--hidden-anchor", "--ewc", "--dry-run"])
    assert code == 2 and "choose one of --ewc and --hidden-anchor" in capsys.readouterr().err


@pytest.mark.slow
@needs_data("MNIST")
def test_a_registered_method_runs_from_the_command_line(registered, tmp_path):
    out = tmp_path / "run"
    code = continual_main.main(["--hidden-layers", "16", "--task-sequence", "pMNIST", "pMNIST",
                                "--epochs-per-task", "1", "--hidden-anchor",
                                "--hidden-anchor-lambda", "0.5", "--data-root", str(DATA_ROOT),
                                "--out-dir", str(out), "--no-progress", "--device", "cpu"])
    assert code == 0
    assert CALLS.count("begin") == 2 and CALLS.count("end 60000") == 2
    assert CALLS.count("penalty") == 600          # every batch of the second task (60000 / 100)
    config = json.loads((out / "config.json").read_text())
    assert config["consolidation_options"] == {
        "hidden_anchor": {"hidden_anchor": True, "hidden_anchor_lambda": 0.5}}
    saved = torch.load(out / "checkpoint.pt", weights_only=False)["state"]["hidden_anchor"]
    assert [a.shape for a in saved["anchors"]] == [(16, 784), (10, 16)]
