"""Average accuracy, backward transfer and forgetting (metaplastic/runs/forgetting.py) against a
plain-Python transcription of their definitions (Lopez-Paz & Ranzato 2017; Chaudhry et al.
2018), and the accuracy matrix read from a CSV."""
from __future__ import annotations

import random

import numpy as np
import pytest

from metaplastic.runs import records
from metaplastic.runs.forgetting import (FirstTaskCourse, accuracy_matrix, first_task_course,
                                         sequence_metrics)


def by_definition(r):
    t = len(r)
    acc = sum(r[t - 1]) / t
    bwt = sum(r[t - 1][i] - r[i][i] for i in range(t - 1)) / (t - 1)
    forgetting = sum(max(r[l][j] for l in range(t - 1)) - r[t - 1][j]
                     for j in range(t - 1)) / (t - 1)
    return acc, bwt, forgetting


@pytest.mark.parametrize("t", [2, 3, 6, 10])
def test_the_metrics_follow_their_definitions(t):
    rng = random.Random(t)
    r = [[rng.uniform(0, 100) for _ in range(t)] for _ in range(t)]
    got = sequence_metrics(np.array(r))
    acc, bwt, forgetting = by_definition(r)
    assert got.average_accuracy == pytest.approx(acc, abs=1e-9)
    assert got.backward_transfer == pytest.approx(bwt, abs=1e-9)
    assert got.forgetting == pytest.approx(forgetting, abs=1e-9)


def test_two_tasks_forgetting_is_minus_bwt():
    got = sequence_metrics(np.array([[97.0, 10.0], [20.0, 88.0]]))
    assert got.backward_transfer == -77.0 and got.forgetting == 77.0
    assert got.average_accuracy == 54.0


def _write(path, phases, epochs=2, n_tasks=3, seed=0):
    rng = np.random.default_rng(seed)
    columns = records.continual_columns(n_tasks)
    rows, final = [], {}
    for phase in phases:
        for epoch in range(1, epochs + 1):
            acc = rng.uniform(0, 100, n_tasks).round(2)
            row = dict.fromkeys(columns, 0)
            row.update(task_order=phase, epoch=epoch, tsk=f"pMNIST{phase}",
                       **{f"acc_test_tsk_{k + 1}": acc[k] for k in range(n_tasks)})
            rows.append(row)
            final[phase] = acc
    records.write_rows(path, columns, rows)
    return final


def test_the_matrix_is_read_from_the_last_row_of_each_task(tmp_path):
    final = _write(tmp_path / "m.csv", [1, 2, 3])
    expected = np.array([final[1], final[2], final[3]])
    np.testing.assert_allclose(accuracy_matrix(tmp_path / "m.csv"), expected)


def test_no_matrix_without_one_phase_per_task(tmp_path):
    _write(tmp_path / "interleaved.csv", [1])            # interleaved: one phase, 3 tasks
    assert accuracy_matrix(tmp_path / "interleaved.csv") is None
    _write(tmp_path / "cut.csv", [1, 2])                 # not finished
    assert accuracy_matrix(tmp_path / "cut.csv") is None
    _write(tmp_path / "one.csv", [1], n_tasks=1)
    assert accuracy_matrix(tmp_path / "one.csv") is None
    with pytest.raises(ValueError):
        sequence_metrics(np.array([[50.0]]))


def test_summaries_report_them_after_the_mean(tmp_path):
    from metaplastic.launch.summary import final_accuracies

    final = _write(tmp_path / "m.csv", [1, 2, 3])
    names, values = final_accuracies(tmp_path / "m.csv")
    assert names == ["task 1", "task 2", "task 3", "mean", "BWT", "forgetting"]
    acc, bwt, forgetting = by_definition([list(final[p]) for p in (1, 2, 3)])
    assert values[3:] == pytest.approx([acc, bwt, forgetting])
    _write(tmp_path / "interleaved.csv", [1])
    assert final_accuracies(tmp_path / "interleaved.csv")[0][-1] == "mean"


def _two_tasks(path, first, second):
    """A two-task CSV whose task 1 accuracy is ``first`` then ``second``, epoch by epoch."""
    columns = records.continual_columns(2)
    rows = []
    for phase, accuracies in ((1, first), (2, second)):
        for epoch, acc in enumerate(accuracies, start=1):
            row = dict.fromkeys(columns, 0)
            row.update(task_order=phase, epoch=epoch, tsk=f"T{phase}", acc_test_tsk_1=acc,
                       acc_test_tsk_2=50.0)
            rows.append(row)
    records.write_rows(path, columns, rows)


def test_task_1_course_through_task_2_reads_the_named_epochs(tmp_path):
    second = [80.0 - 2 * e for e in range(30)]             # epoch e+1: 80 - 2e; 24 at e = 28
    second[5] = 20.0                                       # a dip below 25 at epoch 6 ...
    second[29] = 26.0                                      # ... and a last epoch back above
    _two_tasks(tmp_path / "m.csv", [90.0, 96.5], second)
    course = first_task_course(tmp_path / "m.csv", epochs=(1, 10, 25, 40), threshold=25.0)
    below = [e + 1 for e, acc in enumerate(second) if acc < 25.0]
    assert below == [6, 29]
    assert course == FirstTaskCourse(96.5, (80.0, 62.0, 32.0, None), 20.0, 26.0, 6, None)
    second[29] = 22.0                                      # now below from epoch 29 on
    _two_tasks(tmp_path / "m.csv", [90.0, 96.5], second)
    course = first_task_course(tmp_path / "m.csv", epochs=(1, 10, 25, 40), threshold=25.0)
    assert (course.first_below, course.stays_below, course.final) == (6, 29, 22.0)
    _two_tasks(tmp_path / "kept.csv", [90.0], [89.0, 91.0])
    kept = first_task_course(tmp_path / "kept.csv")
    assert kept.first_below is None and kept.stays_below is None


def test_no_course_unless_two_tasks_one_after_the_other(tmp_path):
    _write(tmp_path / "three.csv", [1, 2, 3])
    assert first_task_course(tmp_path / "three.csv") is None
    _write(tmp_path / "interleaved.csv", [1], n_tasks=2)
    assert first_task_course(tmp_path / "interleaved.csv") is None
    _two_tasks(tmp_path / "numbered.csv", [90.0, 96.5], [50.0, 40.0])
    text = (tmp_path / "numbered.csv").read_text().splitlines()
    columns = text[0].split(",")
    rows = [line.split(",") for line in text[1:]]
    for row in rows[2:]:                                   # task 2's epochs numbered 3, 4
        row[columns.index("epoch")] = str(int(row[columns.index("epoch")]) + 2)
    (tmp_path / "numbered.csv").write_text("\n".join([text[0]] + [",".join(r) for r in rows]))
    assert first_task_course(tmp_path / "numbered.csv") is None


def test_a_damaged_csv_is_refused_not_read(tmp_path):
    _two_tasks(tmp_path / "m.csv", [90.0], [50.0, 40.0])
    text = (tmp_path / "m.csv").read_text().replace(",50.0,", ",nan,", 1)
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(records.RecordError, match="not a finite accuracy"):
        first_task_course(tmp_path / "m.csv")


def test_the_course_table_gives_mean_std_and_each_seeds_epochs(tmp_path):
    from metaplastic.launch.summary import course_table

    for seed, (end, last) in enumerate([(20.0, 24.0), (30.0, 35.0)]):
        (tmp_path / f"s{seed}").mkdir()
        _two_tasks(tmp_path / f"s{seed}" / "metrics.csv", [97.0],
                   [90.0] * 9 + [end] * 16 + [last] * 5)
    table = course_table([("m = 0", tmp_path / "s0"), ("m = 0", tmp_path / "s1")])
    # after 1: 90, 90; after 10 and 25: 20, 30 -> 25 ± 7.07; final 24, 35 -> 29.5 ± 7.78
    assert table.splitlines()[2] == ("| m = 0 | 2 | 97.00 ± 0.00 | 90.00 ± 0.00 | 25.00 ± 7.07 | "
                                     "25.00 ± 7.07 | 25.00 ± 7.07 | 29.50 ± 7.78 | 10, never | "
                                     "10, never |")
    (tmp_path / "three").mkdir()
    _write(tmp_path / "three" / "metrics.csv", [1, 2, 3])     # no course: left out
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.csv").write_text("not,a\nresult,file\n")
    excluded = []
    table = course_table([("m = 0", tmp_path / "s0"), ("x", tmp_path / "three"),
                          ("y", tmp_path / "bad")], excluded)
    assert [line.split(" | ")[0] for line in table.splitlines()[2:]] == ["| m = 0"]
    assert [d.name for d, _ in excluded] == ["bad"]
    assert course_table([("x", tmp_path / "three")]) is None
