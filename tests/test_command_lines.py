"""Every command line documents every flag and its default; --version names the code."""
import argparse
import os
import subprocess
import sys

import pytest
from conftest import REPO, run_script

import metaplastic
from metaplastic.runs import cli, provenance


def _parsers():
    from cifar_features.generate_features import build_parser as features_parser
    from cifar_features.main import build_parser as cifar_features_parser
    from continual_learning.main import build_parser as continual_parser
    from plot_figures import build_parser as plot_parser
    from mnist_usps.main import build_parser as mnist_usps_parser
    from stream_cifar10.main import build_parser as stream_cifar_parser
    from stream_fmnist.main import build_parser as stream_fmnist_parser
    import reproduce

    def reproduce_command(name):
        def build():
            parser = reproduce.build_parser()
            subparsers = next(a for a in parser._actions
                              if isinstance(a, argparse._SubParsersAction))
            return subparsers.choices[name]
        return build

    return {
        "reproduce.py": reproduce.build_parser,
        **{f"reproduce.py {c}": reproduce_command(c) for c in ("list", "run", "summarize")},
        "continual_learning/main.py": continual_parser,
        "cifar_features/main.py": cifar_features_parser,
        "cifar_features/generate_features.py": features_parser,
        "mnist_usps/main.py": mnist_usps_parser,
        "stream_fmnist/main.py": stream_fmnist_parser,
        "stream_cifar10/main.py": stream_cifar_parser,
        "plot_figures.py": plot_parser,
    }


PARSERS = _parsers()


def _rendered_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help text of one action as -h prints it (defaults expanded), on one line."""
    formatter = parser._get_formatter()
    return " ".join(formatter._expand_help(action).split())


def _with_subcommands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parser and the parsers of its sub-commands (plot_figures.py: one per figure)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [parser] + [p for a in subs for p in a.choices.values()]


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_flag_has_help_and_shows_its_default(name):
    problems = []
    for parser, action in [(p, a) for p in _with_subcommands(PARSERS[name]()) for a in p._actions]:
        if isinstance(action, argparse._SubParsersAction):
            continue
        label = "/".join(action.option_strings) or action.dest
        if not action.help or action.help == argparse.SUPPRESS:
            problems.append(f"{label}: no help")
            continue
        if isinstance(action, (argparse._HelpAction, cli._VersionAction)):
            continue
        text = _rendered_help(parser, action)
        if action.required or not action.option_strings:
            continue  # required: nothing to default to
        count = text.lower().count("default")
        if count != 1:
            problems.append(f"{label}: 'default' {count} times in {text!r}")
    assert not problems, f"{name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_help_renders(name):
    text = "".join(p.format_help() for p in _with_subcommands(PARSERS[name]()))
    assert "--version" in text and "(default: " in text


def test_defaults_are_shown_readably():
    from continual_learning.main import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "(default: 0.005)" in text            # --lr
    assert "(default: off)" in text              # a switch
    assert "(default: MNIST)" in text            # a list, without brackets
    assert "$METAPLASTIC_DATA" in text           # --data-root's default explained in words


@pytest.mark.slow
def test_version_flag_prints_package_version_and_commit():
    out = run_script("continual_learning/main.py", "--version")
    assert out.returncode == 0, out.stderr
    assert metaplastic.__version__ in out.stdout
    state = provenance.git_state()
    if state["git_commit"] is not None:
        assert state["git_commit"][:12] in out.stdout


def test_git_state_outside_a_checkout(tmp_path):
    assert provenance.git_state(tmp_path) == {"git_commit": None, "git_modified": None}


def test_git_state_without_git(monkeypatch):
    monkeypatch.setenv("PATH", "")
    assert provenance.git_state() == {"git_commit": None, "git_modified": None}
    assert provenance.code_version() == metaplastic.__version__


def test_git_state_of_a_checkout(tmp_path):
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    try:
        subprocess.run([*git, "init", "-q"], check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git not available")
    (tmp_path / "a.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "a.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "a"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert provenance.git_state(tmp_path) == {"git_commit": head, "git_modified": False}
    (tmp_path / "untracked.csv").write_text("results\n")
    assert provenance.git_state(tmp_path)["git_modified"] is False
    (tmp_path / "a.py").write_text("x = 2\n")
    assert provenance.git_state(tmp_path) == {"git_commit": head, "git_modified": True}
    # a folder inside the checkout is not the checkout's root: unknown rather than wrong
    (tmp_path / "sub").mkdir()
    assert provenance.git_state(tmp_path / "sub")["git_commit"] is None


def test_environment_summary_records_code_and_library_versions():
    import numpy
    import torch
    import torchvision

    env = provenance.environment_summary()
    assert env["code_version"] == metaplastic.__version__
    assert env["torch"] == torch.__version__
    assert env["torchvision"].split("+")[0] == torchvision.__version__.split("+")[0]
    assert env["numpy"] == numpy.__version__
    assert env["git_commit"] == provenance.git_state()["git_commit"]
    assert "git_modified" in env


def test_readme_faithfulness_table_is_generated_from_the_module():
    from metaplastic.method.faithfulness import DIFFERENCES, epilog, markdown_table

    readme = (REPO / "docs" / "FAITHFULNESS.md").read_text()
    start = readme.index("<!-- faithfulness-table:begin -->\n") + len(
        "<!-- faithfulness-table:begin -->\n")
    end = readme.index("\n<!-- faithfulness-table:end -->")
    assert readme[start:end] == markdown_table()
    assert all(d.option for d in DIFFERENCES)
    assert "Stream FMNIST evaluation" in epilog("stream_fmnist")
    assert "Stream FMNIST evaluation" not in epilog("continual_learning")


def test_the_job_script_in_docs_slurm_is_what_print_job_script_prints(tmp_path):
    """docs/SLURM.md shows the real job script (the clone's paths as /home/you/metaplastic)."""
    import re

    pytest.importorskip("submitit")
    doc = (REPO / "docs" / "SLURM.md").read_text()
    shown = re.search(r"```bash\n(#!/bin/bash\n.*?)```", doc, re.S).group(1)
    proc = subprocess.run(
        [sys.executable, str(REPO / "reproduce.py"), "run", "fig3", "--executor", "slurm",
         "--partition", "gpu", "--gpus", "1", "--time", "600", "--print-job-script",
         "--out", "/home/you/metaplastic/results/reproduce"],
        capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr
    printed = proc.stdout.replace(sys.executable, "/home/you/metaplastic/.venv/bin/python")
    assert printed.strip() == shown.strip()


@pytest.mark.slow
def test_main_py_run_from_inside_its_folder_finds_the_clones_data(tmp_path):
    """The published way (cd into the experiment's folder, python main.py ...): the data root
    is the clone's data/ folder, found from the package, not from the working directory."""
    from conftest import DATA_ROOT

    if DATA_ROOT != REPO / "data" or not (DATA_ROOT / "MNIST").is_dir():
        pytest.skip("the data are not prepared in the clone's data/ folder")
    env = {k: v for k, v in os.environ.items() if k not in ("METAPLASTIC_DATA", "PYTHONPATH")}
    proc = subprocess.run(
        [sys.executable, "main.py", "--task-sequence", "MNIST", "--epochs-per-task", "1",
         "--hidden-layers", "64", "--dry-run", "--out-dir", str(tmp_path / "run")],
        capture_output=True, text=True, cwd=REPO / "continual_learning", env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "dry run: flags and data OK" in proc.stdout


def _readme_commands() -> list[list[str]]:
    """Every command of README.md: the lines of its bash blocks and the commands of its table
    (comments and continuation lines joined)."""
    import re
    import shlex

    readme = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    commands += [shlex.split(c) for c in re.findall(r"\| `(\.venv/bin/[^`]+)` \|", readme)]
    return commands


def test_every_command_of_the_readme_is_runnable(tmp_path, capsys):
    """Parsed by its own parser; the cheap ones run (`list`), the launches as --dry-run into a
    temporary folder, the scripts and the notebook exist."""
    import reproduce
    from plot_figures import build_parser as plot_parser

    commands = _readme_commands()
    assert len(commands) >= 20
    for argv in commands:
        program, *args = argv
        if program == "bash":
            assert (REPO / args[0]).is_file(), argv
            continue
        if program.endswith("jupyter"):
            assert (REPO / args[-1]).is_file(), argv
            continue
        assert program == ".venv/bin/python", argv
        script, *args = args
        if script == "reproduce.py":
            if args[0] == "run":
                args = args + ["--dry-run", "--out", str(tmp_path / "out")]
            elif args[0] == "summarize":
                reproduce.build_parser().parse_args(args)
                continue
            assert reproduce.main(args) == 0, (argv, capsys.readouterr().err)
        elif script == "plot_figures.py":
            with pytest.raises(SystemExit) as done:
                plot_parser().parse_args(args)
            assert done.value.code == 0, argv
        else:
            raise AssertionError(f"a README command this test does not know: {argv}")
    capsys.readouterr()
