"""The run store under faults (docs/RELIABILITY.md): one writer per run folder, the checkpoint as
the source of truth of a resumed run, no file written or read through a symbolic link. Each case
makes the fault in a copy of a real run folder (a continual-learning run stopped after its first
epoch), runs the real command line, and checks the exit status, the one-line message and that
every file the command did not own is byte-identical afterwards."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DATA_ROOT, REPO, needs_data

from metaplastic.runs import runlock
from metaplastic.runs.rundir import RUN_FILES

pytestmark = [pytest.mark.slow, needs_data("MNIST")]

FLAGS = ["--hidden-layers", "8", "--epochs-per-task", "1", "--task-sequence", "pMNIST", "pMNIST",
         "--meta", "0.0", "--impl", "reference", "--seed", "2", "--no-progress",
         "--data-root", str(DATA_ROOT)]


def main(argv):
    from continual_learning.main import main as continual_main

    return continual_main(argv)


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> Path:
    """A run of two tasks stopped after its first epoch: config.json, a checkpoint, one row."""
    from continual_learning.main import build_parser, run
    from metaplastic.experiments.continual import config_from_args
    from metaplastic.experiments.runner import SimulatedCrash

    out = tmp_path_factory.mktemp("store") / "stopped"
    config = config_from_args(build_parser().parse_args(FLAGS + ["--out-dir", str(out)]))
    with pytest.raises(SimulatedCrash):
        run(config, progress=False, stop_after_epochs=1)
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("store") / "whole"
    assert main(FLAGS + ["--out-dir", str(out)]) == 0
    return (out / "metrics.csv").read_text()


def copy_of(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run, target, ignore=shutil.ignore_patterns(".lock"))
    return target


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()
            if p.is_file() and not p.is_symlink() and p.name != runlock.LOCK_FILE}


def resume(run: Path, *extra) -> int:
    return main(FLAGS + ["--out-dir", str(run), "--resume", *extra])


def test_the_stopped_run_resumes_to_the_uninterrupted_csv(stopped_run, uninterrupted, tmp_path):
    run = copy_of(stopped_run, tmp_path)
    assert resume(run) == 0
    assert (run / "metrics.csv").read_text() == uninterrupted


def test_a_second_writer_is_refused_naming_the_holder(stopped_run, tmp_path, capsys):
    run = copy_of(stopped_run, tmp_path)
    before = snapshot(run)
    holder = runlock.acquire(run)             # another writer (its own open file)
    try:
        assert resume(run) == 2
        err = capsys.readouterr().err
        assert "is being written by process" in err and str(os.getpid()) in err
        assert err.count("\n") == 1           # one line
        assert snapshot(run) == before
    finally:
        holder.close()


def test_a_second_process_is_refused_while_the_first_holds_the_folder(stopped_run, tmp_path):
    run = copy_of(stopped_run, tmp_path)
    holder = runlock.acquire(run)
    try:
        proc = subprocess.run([sys.executable, str(REPO / "continual_learning" / "main.py"),
                               *FLAGS, "--out-dir", str(run), "--resume"], capture_output=True,
                              text=True, cwd=REPO, timeout=300,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))
    finally:
        holder.close()
    assert proc.returncode == 2 and "one writer per run folder" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not runlock.is_held(run)


@pytest.mark.parametrize("content", [None, b"{}", b"[]", b"null", b"{bad", b'"str"',
                                     b"\xff\xfe"])
def test_config_json_missing_or_broken_is_replaced_by_the_checkpoints(
        stopped_run, uninterrupted, tmp_path, content, capsys):
    run = copy_of(stopped_run, tmp_path)
    if content is None:
        (run / "config.json").unlink()
    else:
        (run / "config.json").write_bytes(content)
    before = snapshot(run)
    # other settings than the run's: refused by the checkpoint's configuration
    assert resume(run, "--meta", "1.35") == 2
    assert "other settings than the run" in capsys.readouterr().err
    assert snapshot(run) == before
    # the run's own: resumed, and config.json is the run's again
    assert resume(run) == 0
    assert (run / "metrics.csv").read_text() == uninterrupted
    assert json.loads((run / "config.json").read_text())["meta"] == [0.0]


def test_a_config_json_from_another_run_is_refused(stopped_run, tmp_path, capsys):
    run = copy_of(stopped_run, tmp_path)
    config = json.loads((run / "config.json").read_text())
    config["meta"] = [1.5]
    (run / "config.json").write_text(json.dumps(config))
    before = snapshot(run)
    assert resume(run, "--meta", "1.5") == 2
    assert "disagrees with the checkpoint" in capsys.readouterr().err
    assert snapshot(run) == before


def test_rows_without_a_checkpoint_are_never_deleted(stopped_run, uninterrupted, tmp_path, capsys):
    # more rows than can precede a first checkpoint: the checkpoint was lost; refused
    run = copy_of(stopped_run, tmp_path)
    for name in ("checkpoint.pt", "checkpoint.pt.sha256"):
        (run / name).unlink()
    lines = (run / "metrics.csv").read_text().splitlines()
    (run / "metrics.csv").write_text("\n".join(lines + [lines[1]] * 2) + "\n")   # 3 rows
    before = snapshot(run)
    assert resume(run) == 2
    err = capsys.readouterr().err
    assert "has 3 rows but" in err and "nothing was changed" in err
    assert snapshot(run) == before
    # one row, no checkpoint: stopped before its first one; the row is kept aside, not deleted
    run = copy_of(stopped_run, tmp_path / "early")
    for name in ("checkpoint.pt", "checkpoint.pt.sha256"):
        (run / name).unlink()
    row = (run / "metrics.csv").read_bytes()
    assert resume(run) == 0
    assert (run / "metrics.csv").read_text() == uninterrupted
    kept = list(run.glob("metrics.csv.before-first-checkpoint-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == row


def test_a_csv_shorter_than_its_checkpoint_is_refused(stopped_run, tmp_path, capsys):
    run = copy_of(stopped_run, tmp_path)
    header = (run / "metrics.csv").read_text().splitlines()[0]
    (run / "metrics.csv").write_text(header + "\n")
    before = snapshot(run)
    assert resume(run) == 2
    assert "has 0 rows but its checkpoint says 1" in capsys.readouterr().err
    assert snapshot(run) == before


@pytest.mark.parametrize("name", ["metrics.csv", ".lock", "config.json", "log.txt"])
def test_a_symbolic_link_in_the_run_folder_is_refused_and_its_target_untouched(
        stopped_run, tmp_path, capsys, name):
    run = copy_of(stopped_run, tmp_path)
    target = tmp_path / "elsewhere.txt"
    if (run / name).exists():
        shutil.move(run / name, target)
    else:
        target.write_text("someone else's file\n")
    (run / name).symlink_to(target)
    kept = target.read_bytes()
    assert resume(run) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert target.read_bytes() == kept


def test_every_run_file_is_checked():
    assert {"metrics.csv", "config.json", "checkpoint.pt", "log.txt", ".lock",
            "finished.json"} <= set(RUN_FILES)


def test_a_resume_with_other_arithmetic_is_refused_unless_asked(stopped_run, uninterrupted,
                                                                tmp_path, capsys):
    """Case 7: --impl (and, on a CPU, the thread count) change the float sums; a resumed run
    keeps them or says it mixes them."""
    run = copy_of(stopped_run, tmp_path)
    before = snapshot(run)
    assert resume(run, "--impl", "fast") == 2
    err = capsys.readouterr().err
    assert "implementation" in err and "--mixed-resume" in err
    assert snapshot(run) == before
    assert resume(run, "--impl", "fast", "--mixed-resume") == 0
    launches = json.loads((run / "config.json").read_text())["launches"]
    assert len(launches) == 2
    assert launches[0]["implementation"].startswith("reference")
    assert launches[1]["implementation"].startswith("fast")
    # the same arithmetic resumes without a word, and the first launch stays recorded
    run2 = copy_of(stopped_run, tmp_path / "again")
    assert resume(run2) == 0
    assert (run2 / "metrics.csv").read_text() == uninterrupted
    assert len(json.loads((run2 / "config.json").read_text())["launches"]) == 2


def _edit_checkpoint(run: Path, edit) -> None:
    """Change the checkpoint's contents and record its new digest, as a hand-made or edited
    checkpoint would (the digest alone then cannot tell)."""
    import torch

    from metaplastic.runs.checkpoint import save_checkpoint

    path = run / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    edit(state)
    (run / "checkpoint.pt.sha256").unlink()
    save_checkpoint(state, path)


def _drop(key):
    return lambda state: state.pop(key)


def _set(key, value):
    return lambda state: state.__setitem__(key, value)


@pytest.mark.parametrize("edit, message", [
    (_drop("model"), "the entry 'model' is missing"),
    (_drop("position"), "the entry 'position' is missing"),
    (_set("model", [1, 2]), "the entry 'model' is a list, not dict"),
    (_set("generator", "seed"), "the entry 'generator' is a str, not Tensor"),
    (_set("torch_rng", __import__("torch").zeros(3)), "not a random generator's uint8 state"),
    (_set("position", {"phase": 0, "epoch": "1", "rows": 1}), "position['epoch'] is '1'"),
    (_set("position", {"phase": 0, "epoch": 1, "rows": -1}), "position['rows'] is -1"),
    (_set("optimizer", 3.0), "the entry 'optimizer' is a float, not dict or None"),
    (lambda s: s["model"].pop(next(iter(s["model"]))), "does not fit this run"),
])
def test_a_checkpoint_with_a_missing_or_mistyped_entry_is_refused(stopped_run, tmp_path, capsys,
                                                                  edit, message):
    """Case 8: an edited checkpoint whose digest matches is refused by one line, exit 2."""
    run = copy_of(stopped_run, tmp_path)
    _edit_checkpoint(run, edit)
    before = snapshot(run)
    assert resume(run) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    after = snapshot(run)
    if "does not fit" in message:   # found when the model loads: the rows and checkpoint stay
        after = {k: v for k, v in after.items() if k not in ("config.json", "log.txt")}
        before = {k: v for k, v in before.items() if k not in ("config.json", "log.txt")}
    assert after == before


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs of its own (root only: skipped elsewhere), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({made.stderr.strip() or 'not root'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; the filler file is returned (delete it to free the disk)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as stream:
        for size in (1 << 16, 1 << 12, 1 << 8, 1):
            try:
                while True:
                    stream.write(b"\0" * size)
            except OSError:
                pass
    return filler


def test_a_full_disk_ends_the_run_in_one_line_with_its_resume_command(
        stopped_run, uninterrupted, small_disk, capsys):
    """Case 9: disk full: exit 2, one line naming the file and the exact command that
    continues, no file of the run changed; with room again, the run completes to the
    uninterrupted CSV."""
    run = small_disk / "run"
    shutil.copytree(stopped_run, run, ignore=shutil.ignore_patterns(".lock"))
    filler = _fill(small_disk)
    before = snapshot(run)
    assert resume(run) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "No space left on device" in err and str(run) in err
    assert err.rstrip().endswith(f"--out-dir {run} --resume")
    assert snapshot(run) == before
    filler.unlink()
    assert resume(run) == 0
    assert (run / "metrics.csv").read_text() == uninterrupted


def test_a_write_fault_offers_resume_only_where_something_was_kept(tmp_path, monkeypatch):
    import errno

    from metaplastic.runs import faults

    monkeypatch.setattr(faults, "RUN_FOLDER", [tmp_path])
    monkeypatch.setattr(sys, "argv", ["continual_learning/main.py"])
    full = OSError(errno.ENOSPC, "No space left on device")
    tail = faults.write_fault_tail(full, ["--lr", "0.1", "--out-dir", str(tmp_path)])
    assert "--resume" not in tail and "run the same command again" in tail
    (tmp_path / "config.json").write_text("{}")
    tail = faults.write_fault_tail(full, ["--lr", "0.1", "--out-dir", str(tmp_path)])
    assert tail.endswith(f"--lr 0.1 --out-dir {tmp_path} --resume")


def test_a_row_cut_by_a_full_disk_is_taken_back(tmp_path, monkeypatch):
    """The CSV never keeps half a row: a write that fails part-way is cut back."""
    import errno

    from metaplastic import fileio
    from metaplastic.runs import records

    recorder = records.CsvRecorder(tmp_path / "metrics.csv", ["epoch", "acc"])
    recorder.write({"epoch": 1, "acc": 90.5})
    kept = (tmp_path / "metrics.csv").read_bytes()

    def half_then_full(fd, data):
        if len(data) > 4:
            return os.write(fd, data[:4])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio, "write_some", half_then_full)
    with pytest.raises(fileio.FileWriteError, match="cannot append a row to .*metrics.csv: No "
                                                    "space left on device"):
        recorder.write({"epoch": 2, "acc": 91.25})
    assert (tmp_path / "metrics.csv").read_bytes() == kept


#: kill -9 at each point of a run's life (the point, and which occurrence): the wrapper below
#: patches the run's own functions to SIGKILL the process there, so the moment is exact
KILL_POINTS = [
    ("after-row", 1),                    # phase 1's row written, its checkpoint not yet
    ("before-checkpoint-replace", 1),    # phase 1's checkpoint written to its temporary file
    ("after-checkpoint", 1),             # between the phases
    ("after-row", 2),                    # the last row written, the last checkpoint not yet
    ("before-checkpoint-replace", 2),    # the last checkpoint half in place
]

KILLER = """
import os, signal, sys
from metaplastic.experiments import runner
from metaplastic.runs import records
point, n = sys.argv[1], int(sys.argv[2])
seen = [0]
def count_and_maybe_die():
    seen[0] += 1
    if seen[0] == n:
        os.kill(os.getpid(), signal.SIGKILL)
if point == "after-row":
    write = records.CsvRecorder.write
    def patched(self, row):
        write(self, row)
        count_and_maybe_die()
    records.CsvRecorder.write = patched
elif point == "before-checkpoint-replace":
    replace = os.replace
    def patched(src, dst, *args, **kwargs):
        if str(dst).endswith("checkpoint.pt"):
            count_and_maybe_die()
        return replace(src, dst, *args, **kwargs)
    os.replace = patched
elif point == "after-checkpoint":
    save = runner.save_checkpoint
    def patched(state, path):
        save(state, path)
        count_and_maybe_die()
    runner.save_checkpoint = patched
from continual_learning.main import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize("point, occurrence", KILL_POINTS)
def test_kill_9_at_every_point_then_resume_gives_the_uninterrupted_csv(
        uninterrupted, tmp_path, point, occurrence):
    """SIGKILL at each point of the run (a row without its checkpoint, a checkpoint half
    written, the phase boundary): --resume completes it to the uninterrupted run's CSV."""
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO))   # the threads of the in-process fixture
    killed = subprocess.run([sys.executable, "-c", KILLER, point, str(occurrence), *FLAGS,
                             "--out-dir", str(run)], capture_output=True, text=True, env=env,
                            cwd=REPO, timeout=600)
    assert killed.returncode == -9, killed.stderr
    resumed = subprocess.run([sys.executable, str(REPO / "continual_learning" / "main.py"),
                              *FLAGS, "--out-dir", str(run), "--resume"], capture_output=True,
                             text=True, env=env, cwd=REPO, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert (run / "metrics.csv").read_text() == uninterrupted
    assert not list(run.glob(".checkpoint.pt.*.tmp"))


def test_a_lock_file_replaced_before_the_flock_is_not_trusted(tmp_path, monkeypatch):
    """The lock is taken on the file that bears the name .lock after the flock: a file
    replaced in between (another program, a cleanup) is opened again."""
    run = tmp_path / "run"
    run.mkdir()
    opened = []
    real_open = runlock._open_lock_file

    def open_then_replace(run_dir):
        fd = real_open(run_dir)
        if not opened:                        # the first time: .lock is replaced at once
            (run_dir / runlock.LOCK_FILE).unlink()
            (run_dir / runlock.LOCK_FILE).write_text("")
        opened.append(fd)
        return fd

    monkeypatch.setattr(runlock, "_open_lock_file", open_then_replace)
    lock = runlock.acquire(run)
    try:
        assert len(opened) == 2
        assert os.fstat(lock.fileno()).st_ino == (run / runlock.LOCK_FILE).stat().st_ino
        assert runlock.is_held(run)
    finally:
        lock.close()


def test_the_thread_count_matters_only_for_runs_on_the_cpu():
    """The check of case 7 looks at the run's device, not at whether the machine has a GPU."""
    from metaplastic.errors import ConfigError
    from metaplastic.runs.rundir import check_same_arithmetic

    cpu = {"implementation": "reference", "threads": 2, "device": "cpu", "cuda": "H100"}
    check_same_arithmetic(cpu, dict(cpu))
    with pytest.raises(ConfigError, match="threads 1"):       # a CPU run on a GPU machine
        check_same_arithmetic(cpu, cpu | {"threads": 1})
    gpu = cpu | {"device": "cuda"}
    check_same_arithmetic(gpu, gpu | {"threads": 1})           # GPU sums: threads irrelevant
    older = {"implementation": "reference", "threads": 2, "cuda": "H100"}   # no "device" yet
    check_same_arithmetic(older, gpu | {"threads": 1})
    # an older run's launch rebuilt with today's keys holds "device": None: still a GPU machine
    check_same_arithmetic(older | {"device": None}, gpu | {"threads": 1})
    with pytest.raises(ConfigError, match="device"):       # GPU and CPU sums differ
        check_same_arithmetic(gpu, cpu)
    with pytest.raises(ConfigError, match="implementation"):
        check_same_arithmetic(cpu, cpu | {"implementation": "fast"})


def test_a_second_resume_of_a_running_folder_is_refused_and_the_first_finishes_whole(
        uninterrupted, tmp_path):
    """Case 1 as a user meets it: while main.py trains in a folder, a second `main.py --resume`
    of that folder is refused at once, naming the first; the first ends with the CSV of an
    uninterrupted run."""
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    script = str(REPO / "continual_learning" / "main.py")
    # the second is started first and waits, imports done, for the word to go: it then
    # reaches the lock within the first run's first epoch
    waiting = ("import sys; from continual_learning.main import main; sys.stdin.readline(); "
               "sys.exit(main(sys.argv[1:]))")
    second = subprocess.Popen([sys.executable, "-c", waiting, *FLAGS, "--out-dir", str(run),
                               "--resume"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    first = subprocess.Popen([sys.executable, script, *FLAGS, "--out-dir", str(run)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env=env, cwd=REPO)
    try:
        deadline = time.time() + 300
        while not (run / "config.json").is_file():
            assert first.poll() is None and time.time() < deadline, "the first run ended early"
            time.sleep(0.05)
        _, second_err = second.communicate("go\n", timeout=300)
        assert first.poll() is None, "the first run ended before the second was tried"
        assert second.returncode == 2 and "one writer per run folder" in second_err
        assert f"process {first.pid}" in second_err and "Traceback" not in second_err
    finally:
        if second.poll() is None:
            second.kill()
        _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert (run / "metrics.csv").read_text() == uninterrupted
