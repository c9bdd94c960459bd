"""The task-sequence runner: CSV schema, norm-state protocol, resume, pMNIST permutations."""
import csv
import dataclasses

import pytest
import torch
from conftest import gaussian_tasks

from metaplastic.data.tasks import (PMNIST_TEST_BATCH, TaskData, draw_permutations, permuted_task,
                                    positional_names)
from metaplastic.experiments.runner import RunSettings, SimulatedCrash
from metaplastic.experiments.sequence import SequenceSettings, run_sequence
from metaplastic.method.engine import evaluate
from metaplastic.method.flips import flip_columns
from metaplastic.method.models import BNN
from metaplastic.method.norms import load_norm_state
from metaplastic.runs import records
from metaplastic.runs.checkpoint import load_checkpoint

PREFIX = records.continual_row_prefix("bnn", "task", "16", "bn", [1.0, 1.0], bn_gamma_init="ones",
                                      bn_stats="batch")


def _model(seed=0):
    torch.manual_seed(seed)
    return BNN([20, 16, 4])


LOOP_FIELDS = {f.name for f in dataclasses.fields(RunSettings)}


def _settings(**kw):
    """Sequence settings: the loop's (RunSettings) and the sequence's own, from one set of names."""
    base = dict(epochs_per_task=2, lr=0.01, meta_per_layer=[1.0, 1.0], weight_decay=1e-7,
                batch_size=20, seed=0, progress=False)
    base.update(kw)
    loop = RunSettings(**{k: v for k, v in base.items() if k in LOOP_FIELDS})
    return SequenceSettings(loop, **{k: v for k, v in base.items() if k not in LOOP_FIELDS})


def _read(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_csv_schema_and_rows(tmp_path):
    rows = run_sequence(_model(), gaussian_tasks(), _settings(), tmp_path, PREFIX, log=lambda s: None)
    table = _read(tmp_path / records.METRICS_FILE)
    assert table[0] == [
        "net", "scenario", "arch", "norm", "lr", "meta", "ewc", "SI", "task_order", "tsk", "epoch",
        "acc_tr", "loss_tr", "acc_test_tsk_1", "loss_test_tsk_1", "acc_test_tsk_2",
        "loss_test_tsk_2", "bn_gamma_init", "bn_stats", *flip_columns(2)]
    assert [r[17:19] for r in table[1:]] == [["ones", "batch"]] * 4
    assert len(table) == 1 + 4 and len(rows) == 4
    assert [r[4:11] for r in table[1:]] == [
        ["0.01", "{'l1': 1.0, 'l2': 1.0}", "0.0", "0.0", str(t), name, str(e)]
        for t, name in ((1, "A"), (2, "B")) for e in (1, 2)]
    for r in rows:
        assert 0 <= r["acc_tr"] <= 100 and r["acc_tr"] == round(r["acc_tr"], 2)
    frame = records.read_records(tmp_path / records.METRICS_FILE)
    assert list(frame.columns) == table[0]


def test_lr_column_is_the_current_task_learning_rate(tmp_path):
    rows = run_sequence(_model(), gaussian_tasks(), _settings(gamma=2.0, epochs_per_task=1),
                        tmp_path, PREFIX, log=lambda s: None)
    assert [r["lr"] for r in rows] == [0.01, 0.005]
    rows = run_sequence(_model(), gaussian_tasks(), _settings(
        gamma=2.0, epochs_per_task=1, optimizer_per_task=False), tmp_path / "one", PREFIX,
        log=lambda s: None)
    assert [r["lr"] for r in rows] == [0.01, 0.01]  # one optimizer: constant lr


def test_acc_tr_is_measured_on_the_shuffled_training_loader(tmp_path):
    """acc_tr / loss_tr: the training set in a seeded shuffled order (the draw after the epoch's
    batch order), batches of train_eval_batch_size normalized with their own statistics."""
    model, tasks = _model(), gaussian_tasks()[:1]
    rows = run_sequence(model, tasks, _settings(epochs_per_task=1), tmp_path, PREFIX,
                        log=lambda s: None)
    replica = torch.Generator().manual_seed(0)
    torch.randperm(200, generator=replica)            # the epoch's batch order
    order = torch.randperm(200, generator=replica)    # the evaluation loader's order
    x, y = tasks[0].train_x, tasks[0].train_y
    shuffled = evaluate(model, x[order], y[order], 50)
    stored = evaluate(model, x, y, 50)
    assert rows[0]["loss_tr"] == pytest.approx(shuffled.loss, rel=1e-6)
    assert rows[0]["acc_tr"] == shuffled.accuracy
    assert stored.loss != pytest.approx(shuffled.loss, rel=1e-6)  # the order matters with BN


def test_scenario_task_evaluates_earlier_tasks_with_their_stored_norm_state(tmp_path):
    model, tasks = _model(), gaussian_tasks()
    rows = run_sequence(model, tasks, _settings(), tmp_path, PREFIX, log=lambda s: None)
    stored = load_checkpoint(tmp_path / "checkpoint.pt")["state"]["norm_states"]["states"]
    assert len(stored) == 2
    current = evaluate(model, tasks[0].test_x, tasks[0].test_y, 50)
    load_norm_state(model, stored[0])
    with_task1_state = evaluate(model, tasks[0].test_x, tasks[0].test_y, 50)
    assert rows[-1]["acc_test_tsk_1"] == with_task1_state.accuracy
    assert rows[-1]["loss_test_tsk_1"] == pytest.approx(with_task1_state.loss, rel=1e-6)
    assert with_task1_state.loss != pytest.approx(current.loss, rel=1e-6)  # the state matters


def test_scenario_domain_uses_the_current_state(tmp_path):
    model, tasks = _model(), gaussian_tasks()
    rows = run_sequence(model, tasks, _settings(scenario="domain"), tmp_path, PREFIX,
                        log=lambda s: None)
    current = evaluate(model, tasks[0].test_x, tasks[0].test_y, 50)
    assert rows[-1]["loss_test_tsk_1"] == pytest.approx(current.loss, rel=1e-6)


@pytest.mark.parametrize("crash_after", [1, 2, 3])
def test_resume_equals_an_uninterrupted_run(tmp_path, crash_after):
    full_dir, crash_dir = tmp_path / "full", tmp_path / "crash"
    run_sequence(_model(), gaussian_tasks(), _settings(), full_dir, PREFIX, log=lambda s: None)
    with pytest.raises(SimulatedCrash):
        run_sequence(_model(), gaussian_tasks(), _settings(stop_after_epochs=crash_after),
                     crash_dir, PREFIX, log=lambda s: None)
    # a half-written extra row (crash during the next epoch) must not survive the resume
    with open(crash_dir / records.METRICS_FILE, "a") as f:
        f.write("bnn,task,partial\n")
    # resume in a fresh process state: a differently initialised model, new settings
    run_sequence(_model(seed=99), gaussian_tasks(), _settings(), crash_dir, PREFIX,
                 resume=True, log=lambda s: None)
    assert _read(crash_dir / records.METRICS_FILE) == _read(full_dir / records.METRICS_FILE)


def test_resume_with_ewc_and_hidden_weights(tmp_path):
    from metaplastic.method.consolidation import EWC

    def settings(**kw):
        return _settings(consolidation=[EWC(100.0, samples=50)], save_hidden_weights=True, **kw)

    run_sequence(_model(), gaussian_tasks(), settings(), tmp_path / "full", PREFIX,
                 log=lambda s: None)
    with pytest.raises(SimulatedCrash):
        run_sequence(_model(), gaussian_tasks(), settings(stop_after_epochs=3),
                     tmp_path / "crash", PREFIX, log=lambda s: None)
    run_sequence(_model(), gaussian_tasks(), settings(), tmp_path / "crash", PREFIX,
                 resume=True, log=lambda s: None)
    for name in (records.METRICS_FILE, records.HIDDEN_HIST_FILE):
        assert _read(tmp_path / "crash" / name) == _read(tmp_path / "full" / name)
    hist = records.read_records(tmp_path / "full" / records.HIDDEN_HIST_FILE,
                                records.HIDDEN_HIST_COLUMNS)
    assert sorted(hist.task.unique()) == [1, 2] and sorted(hist.layer.unique()) == [1, 2]
    weights = torch.load(tmp_path / "full" / "hidden_weights_task2.pt")
    assert [w.shape for w in weights] == [(16, 20), (4, 16)]


def test_interleaved_learns_one_concatenated_task(tmp_path):
    rows = run_sequence(_model(), gaussian_tasks(), _settings(interleaved=True), tmp_path,
                        PREFIX, log=lambda s: None)
    assert [(r["task_order"], r["tsk"]) for r in rows] == [(1, "interleaved")] * 2
    assert all("acc_test_tsk_2" in r for r in rows)


def test_pmnist_permutations_reproducible_and_distinct():
    a = draw_permutations(3, 784, seed=5)
    b = draw_permutations(3, 784, seed=5)
    c = draw_permutations(3, 784, seed=6)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not torch.equal(a[0], a[1]) and not torch.equal(a[1], a[2])
    assert not torch.equal(a[0], c[0])
    assert all(torch.equal(p.sort().values, torch.arange(784)) for p in a)


def test_permuted_task_and_batch_sizes():
    x = torch.arange(3 * 784, dtype=torch.float32).reshape(3, 784)
    base = TaskData("MNIST", x, torch.zeros(3, dtype=torch.long), x, torch.zeros(3, dtype=torch.long))
    perm = draw_permutations(1, 784, seed=0)[0]
    task = permuted_task("pMNIST1", base, perm)
    assert torch.equal(task.training_inputs()[1], x[1][perm])
    assert torch.equal(task.test_x[2], x[2][perm])
    assert task.test_batch_size == PMNIST_TEST_BATCH == 1000
    assert base.test_batch_size == 100 and base.train_eval_batch_size == 100
    assert positional_names(["pMNIST", "MNIST", "pMNIST"]) == ["pMNIST1", "MNIST", "pMNIST3"]
    assert positional_names(["MNIST", "pMNIST", "pMNIST"]) == ["MNIST", "pMNIST2", "pMNIST3"]


def test_a_last_batch_of_one_sample_is_skipped_under_batchnorm():
    """21 samples in batches of 10: BatchNorm1d cannot train on the last batch of one sample;
    it is skipped (documented in the Faithfulness table) instead of stopping the run."""
    from metaplastic.fast import make_optimizer
    from metaplastic.method.engine import train_epoch

    torch.manual_seed(0)
    model = BNN([20, 16, 4])
    steps = []
    optimizer = make_optimizer(model, 0.01, 0.0, implementation="eager")
    x, y = torch.randn(21, 20), torch.randint(0, 4, (21,))
    train_epoch(model, optimizer, x, y, 10, torch.Generator().manual_seed(0),
                after_step=lambda: steps.append(1))
    assert len(steps) == 2
    steps.clear()
    x, y = torch.randn(22, 20), torch.randint(0, 4, (22,))  # last batch of two: kept
    train_epoch(model, optimizer, x, y, 10, torch.Generator().manual_seed(0),
                after_step=lambda: steps.append(1))
    assert len(steps) == 3
