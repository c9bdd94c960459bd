"""Summaries of the paper's runs over seeds: final accuracies as mean ± std, and the figures.

For each figure of :mod:`metaplastic.paper` and each scale, the finished seeds found under an
output folder (:func:`metaplastic.launch.local.plan`'s layout) give one table row per configuration:
the final test accuracy of every task (the last CSV row; stream runs: the test set), their
mean over tasks, and backward transfer and forgetting (docs/METRICS.md), as mean ± sample
standard deviation over seeds. Tables are written as
Markdown and CSV, with a table of each finished run's machine and times
(:mod:`metaplastic.launch.run_times`, ``<figure>_<scale>_times.md``), for two tasks learned one
after the other task 1's course through task 2 (``<figure>_<scale>_course.md``: Fig. 1(a)'s
caption), for runs saved with ``--save`` (Fig. 2(g, h)) the spread of the hidden weights after
each task (``_hidden_spread.md``), for Fig. 5(c-e) the sign-switch analysis over seeds
(``_sign_switch.md``); the figure is drawn by :mod:`metaplastic.plots` with its seed bands.
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from metaplastic import paper
from metaplastic.errors import ConfigError, MetaplasticError
from metaplastic.launch import run_times
from metaplastic.launch.sign_switch_table import sign_switch_table
from metaplastic.method import published
from metaplastic.runs import records
from metaplastic.runs.folders import FINISHED_FILE, SEED_PREFIX, seed_folders
from metaplastic.runs.forgetting import (COURSE_EPOCHS, COURSE_THRESHOLD, METRIC_NAMES,
                                         accuracy_matrix, first_task_course, sequence_metrics)
from metaplastic.runs.hidden_spread import hidden_weight_spread


@dataclass
class Row:
    label: str
    run_name: str
    hidden: str                      # the hidden layers at the summarized scale
    seeds: int                       # finished seeds in the row
    unfinished: int                  # seeds started but not finished (not in the statistics)
    columns: list[str]               # per-task column names ("task 1", ..., "mean")
    values: list[list[float]]        # per seed, per column
    excluded: int = 0                # finished seeds left out (summary.run_problem)


#: a stream run's accuracies in its table (metaplastic/experiments/stream.py): on the test set,
#: and on the first part's training samples, at the end of the whole stream
STREAM_COLUMN_NAMES = {"acc_test": "test set", "acc_1st_sub": "first part (training samples)"}


def final_accuracies(csv_path: Path) -> tuple[list[str], list[float]]:
    """(names, values) of the last row's test accuracies: every task's and their mean (the
    average accuracy), then backward transfer and forgetting where tasks were learned one by one
    (:mod:`metaplastic.runs.forgetting`); or the stream's test (and first-part) accuracy."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return [], []
    last = rows[-1]
    tasks = sorted((k for k in last if re.fullmatch(r"acc_test_tsk_\d+", k)),
                   key=lambda k: int(k.rsplit("_", 1)[1]))
    if tasks:
        values = [float(last[k]) for k in tasks]
        names = [f"task {k.rsplit('_', 1)[1]}" for k in tasks]
        if len(values) > 1:
            names.append("mean")
            values.append(sum(values) / len(values))
            matrix = accuracy_matrix(csv_path)   # tasks learned one by one: BWT, forgetting
            if matrix is not None:
                metrics = sequence_metrics(matrix)
                names += list(METRIC_NAMES)
                values += [metrics.backward_transfer, metrics.forgetting]
        return names, values
    columns = [k for k in STREAM_COLUMN_NAMES if k in last]
    return [STREAM_COLUMN_NAMES[k] for k in columns], [float(last[k]) for k in columns]


def expected_config(run: paper.PaperRun, scale: str, seed: int) -> tuple[dict, set, dict]:
    """What a seed folder of ``run`` must hold in config.json: (the configuration its command
    line makes, the fields that do not change results or differ per seed, the defaults)."""
    import importlib

    from metaplastic.runs.run_config import config_dict, config_marks
    from metaplastic.runs.rundir import field_defaults

    module = importlib.import_module(f"{run.experiment}.main")
    args = module.build_parser().parse_args([*paper.scaled(run, scale), "--seed", str(seed)])
    if hasattr(module, "config_from_args"):
        config = module.config_from_args(args)
    else:
        from metaplastic.experiments.continual import config_from_args

        config = config_from_args(args)
    marks = config_marks(config)
    return (config_dict(config), set(marks["result_neutral"]) | set(marks["per_seed"]),
            field_defaults(config))


def run_problem(seed_dir: Path, run: paper.PaperRun, scale: str) -> str | None:
    """Why the finished seed folder ``seed_dir`` cannot enter ``run``'s row (None: it can): a
    symbolic link among its files, a config.json that is not the run's (flags, seed, published
    version), a metrics.csv without the rows that configuration makes, or a value that is not
    a finite number."""
    from metaplastic.method.published import older_run_defaults
    from metaplastic.runs.rundir import RUN_FILES, data_rows, differing_fields, expected_rows

    links = [name for name in RUN_FILES if (seed_dir / name).is_symlink()]
    if links or seed_dir.is_symlink():
        return f"symbolic link: {', '.join(links) or seed_dir.name}"
    try:
        saved = records.load_config(seed_dir)
    except records.RecordError as exc:
        return str(exc)
    if not saved:
        return "no config.json"
    seed = int(seed_dir.name.split("-", 1)[1]) if seed_dir.name[5:].isdigit() else None
    if seed is None:
        return f"not a seed folder: {seed_dir.name}"
    expected, neutral, defaults = expected_config(run, scale, seed)
    differing = differing_fields(saved, expected, neutral, defaults | older_run_defaults(saved))
    if differing:
        return ("config.json is another run's: "
                + ", ".join(f"{k} {saved.get(k, defaults.get(k))!r} (expected {expected.get(k)!r})"
                            for k in differing))
    rows, want = data_rows(seed_dir / "metrics.csv"), expected_rows(saved)
    if want is not None and rows != want:
        return f"metrics.csv has {rows} rows, the configuration makes {want}"
    try:
        _, values = final_accuracies(seed_dir / "metrics.csv")
    except (OSError, ValueError, KeyError) as exc:
        return f"metrics.csv unreadable ({type(exc).__name__})"
    if not values:
        return "metrics.csv has no accuracy"
    if not all(math.isfinite(v) for v in values):
        return "metrics.csv holds NaN or infinite accuracies"
    return None


def mean_std(values: Sequence[float]) -> str:
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return f"{mean:.2f}"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return f"{mean:.2f} ± {std:.2f}"


def figure_rows(figure: paper.Figure, out: Path, scale: str,
                excluded: list | None = None) -> list[Row]:
    """One row per configuration of ``figure`` with at least one seed under ``out``; finished
    seeds that fail :func:`run_problem` are left out and appended to ``excluded`` as
    (folder, reason)."""
    excluded = [] if excluded is None else excluded
    rows, seen = [], set()
    for run in figure.runs:
        folder = paper.configuration_folder(out, run, scale)
        if folder in seen:   # scaled down, two configurations can become one (cpu: widths)
            continue
        seen.add(folder)
        seeds = seed_folders(folder)
        finished = [s for s in seeds if (s / FINISHED_FILE).is_file()]
        problems = {s: run_problem(s, run, scale) for s in finished}
        excluded += [(s, why) for s, why in problems.items() if why]
        n_finished = len(finished)
        finished = [s for s in finished if not problems[s]]
        columns, values = [], []
        for seed_dir in finished:
            names, vals = final_accuracies(seed_dir / "metrics.csv")
            columns = columns or names
            values.append(vals)
        if seeds:
            hidden = dict(paper._flag_values(paper.scaled(run, scale))).get("--hidden-layers")
            rows.append(Row(paper.scaled_label(run, scale), run.name,
                            "-".join(hidden) if hidden else "",
                            len(finished), len(seeds) - n_finished, columns, values,
                            n_finished - len(finished)))
    return rows


def markdown_table(rows: Sequence[Row]) -> str:
    columns = max((r.columns for r in rows), key=len, default=[])
    lines = ["| configuration | hidden | seeds | " + " | ".join(columns) + " |",
             "|---|---|---|" + "---|" * len(columns)]
    for r in rows:
        seeds = (f"{r.seeds}" + (f" (+{r.unfinished} unfinished)" if r.unfinished else "")
                 + (f" (+{r.excluded} excluded)" if r.excluded else ""))
        cells = [mean_std([v[i] for v in r.values]) if r.values and i < len(r.columns) else "–"
                 for i in range(len(columns))]
        lines.append(f"| {r.label} | {r.hidden or '–'} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def course_table(runs: Sequence[tuple[str, Path]],
                 excluded: list | None = None) -> str | None:
    """Task 1's course through task 2 (:func:`metaplastic.runs.forgetting.first_task_course`)
    as a Markdown table, one row per configuration, mean ± std over its seeds (``runs``: (label,
    seed folder) in table order); runs that are not two tasks learned one after the other are
    left out, those whose CSV cannot be read appended to ``excluded`` as (folder, reason).
    None where no run has a course."""
    courses: dict[str, list] = {}
    for label, seed_dir in runs:
        try:
            course = first_task_course(seed_dir / "metrics.csv")
        except records.RecordError as exc:
            if excluded is not None:
                excluded.append((seed_dir, str(exc)))
            continue
        if course is not None:
            courses.setdefault(label, []).append(course)
    if not courses:
        return None

    def cell(values) -> str:
        known = [v for v in values if v is not None]
        if len(known) < len(values):   # a seed without it: each seed's value
            return ", ".join("–" if v is None else f"{v:g}" for v in values)
        return mean_std(known)

    def epochs(values) -> str:         # each seed's epoch ("never": not below the threshold)
        if all(v is None for v in values):
            return "never"
        return ", ".join("never" if v is None else str(v) for v in values)

    threshold = f"{COURSE_THRESHOLD:g} %"
    lines = ["| configuration | seeds | task 1 learned | "
             + " | ".join(f"after {e}" for e in COURSE_EPOCHS)
             + f" | lowest | final | first epoch below {threshold} "
             f"| below {threshold} from epoch |",
             "|---|---|---|" + "---|" * (len(COURSE_EPOCHS) + 4)]
    for label, seeds in courses.items():
        cells = ([cell([c.learned for c in seeds])]
                 + [cell([c.after[k] for c in seeds]) for k in range(len(COURSE_EPOCHS))]
                 + [cell([c.lowest for c in seeds]), cell([c.final for c in seeds]),
                    epochs([c.first_below for c in seeds]),
                    epochs([c.stays_below for c in seeds])])
        lines.append(f"| {label} | {len(seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def hidden_spread_table(runs: Sequence[tuple[str, Path]], excluded: list) -> str | None:
    """The spread of each layer's hidden weights after each task
    (:func:`metaplastic.runs.hidden_spread.hidden_weight_spread`, Fig. 2(g, h)) as a Markdown
    table, one row per configuration and layer, mean ± std over its seeds (``runs``: (label,
    seed folder)); seeds without ``hidden_weight_hist.csv`` are left out, unreadable ones
    appended to ``excluded`` as (folder, reason). None where no run saved its hidden weights."""
    spreads: dict[str, list[dict]] = {}
    for label, seed_dir in runs:
        path = seed_dir / records.HIDDEN_HIST_FILE
        if not path.is_file():
            continue
        try:
            spreads.setdefault(label, []).append(hidden_weight_spread(path))
        except records.RecordError as exc:
            excluded.append((seed_dir, str(exc)))
    spreads = {label: seeds for label, seeds in spreads.items() if any(seeds)}
    if not spreads:
        return None
    tasks = sorted({t for seeds in spreads.values() for s in seeds for t, _ in s})
    lines = ["| configuration | layer | seeds | " + " | ".join(f"after task {t}" for t in tasks)
             + " |", "|---|---|---|" + "---|" * len(tasks)]
    for label, seeds in spreads.items():
        for layer in sorted({layer for s in seeds for _, layer in s}):
            cells = [[s[(t, layer)] for s in seeds if (t, layer) in s] for t in tasks]
            lines.append(f"| {label} | {layer} | {len(seeds)} | "
                         + " | ".join(mean_std(c) if c else "–" for c in cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(rows: Sequence[Row]) -> str:
    columns = max((r.columns for r in rows), key=len, default=[])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["configuration", "run", "hidden", "seeds"]
                    + [c for name in columns for c in (f"{name} mean", f"{name} std")])
    for r in rows:
        cells = []
        for i in range(len(columns)):
            vals = [v[i] for v in r.values] if r.values and i < len(r.columns) else []
            mean = sum(vals) / len(vals) if vals else float("nan")
            std = (math.sqrt(sum((x - mean) ** 2 for x in vals) / (len(vals) - 1))
                   if len(vals) > 1 else float("nan"))
            cells += [f"{mean:.4f}", f"{std:.4f}"]
        writer.writerow([r.label, r.run_name, r.hidden, r.seeds] + cells)
    return buffer.getvalue()


def finished_runs(figure: paper.Figure, out: Path,
                  scale: str) -> list[tuple[paper.PaperRun, Path]]:
    """(run, seed folder) for the finished seed folders of ``figure``'s runs at ``scale`` (each
    folder once) that pass :func:`run_problem`."""
    folders = {paper.configuration_folder(out, r, scale): r for r in reversed(figure.runs)}
    return [(run, seed) for folder, run in reversed(folders.items())
            for seed in seed_folders(folder)
            if (seed / FINISHED_FILE).is_file() and not run_problem(seed, run, scale)]


def draw(figure: paper.Figure, run_dirs: Sequence[Path], target: Path) -> list[Path]:
    """The figure's plot (plot_figures.py's) from its finished runs: seeds as bands; a one-run
    kind, one figure per configuration from its seeds (``over_seeds``) or its seed 0."""
    from metaplastic import plots

    if not figure.plot or not run_dirs:
        return []
    kind = plots.FIGURE_KINDS[figure.plot]
    if kind.one_run:   # one figure per configuration: its seeds' mean, else its first seed
        written = []
        for folder in dict.fromkeys(d.parent for d in run_dirs):
            seeds = [d for d in run_dirs if d.parent == folder]
            source = seeds if kind.over_seeds else folder / f"{SEED_PREFIX}0"
            if kind.over_seeds or source in seeds:
                written += kind.draw(source, target.with_name(f"{target.stem}_{folder.name}.png"))
        return written
    written = kind.draw(list(run_dirs), target)
    if figure.plot == "hidden-size":   # and each method's tasks through training (one width:
        # the hidden-size plot alone is a point per method)
        written += plots.plot_task_accuracies(list(run_dirs),
                                              target.with_name(f"{target.stem}_tasks.png"))
    return written


def scales_present(figure: paper.Figure, out: Path) -> list[str]:
    """The scales at which ``figure`` has runs under ``out``, each set of run folders once. Two
    scales can share folders (mnist_usps: no hidden layer to cap, cpu = paper; Fig. 3: cpu's
    four runs are paper's 512-wide ones); the scale with the larger share of its runs present
    is kept (then the order of :data:`paper.SCALES`), a scale adding no other folder left out."""
    present, share = {}, {}
    for scale in paper.SCALES:
        folders = {paper.configuration_folder(out, r, scale) for r in figure.runs}
        present[scale] = {f for f in folders if seed_folders(f)}
        share[scale] = len(present[scale]) / len(folders)
    chosen, covered = [], set()
    for scale in sorted(paper.SCALES, key=lambda s: -share[s]):   # stable: SCALES order
        if present[scale] - covered:
            chosen.append(scale)
            covered |= present[scale]
    return chosen


def summarize(out: Path, figure_ids: Sequence[str] = (), target: Path | None = None,
              log=print) -> list[Path]:
    """Tables (Markdown, CSV) and figures for every figure with runs under ``out``; written to
    ``target`` (default OUT/summary). Returns the written files."""
    out = Path(out)
    if not out.is_dir():
        raise ConfigError(f"summarize: no folder {out} (give the --out folder of `run`)")
    known = {f.id for f in _figures(())} | {f.id for f in paper.FIGURES}
    unknown = [i for i in figure_ids if i not in known]
    if unknown:
        raise ConfigError(f"summarize: unknown figure {', '.join(unknown)}; figures: "
                          + ", ".join(f.id for f in paper.FIGURES))
    target = Path(target) if target else out / "summary"
    written: list[Path] = []
    excluded: list[tuple[Path, str]] = []
    for figure in _figures(figure_ids):
        for scale in scales_present(figure, out):
            left_out: list[tuple[Path, str]] = []
            rows = figure_rows(figure, out, scale, left_out)
            excluded += left_out
            if not rows:
                continue
            target.mkdir(parents=True, exist_ok=True)
            stem = f"{figure.id}_{scale}"   # ids may hold dots (fig2_v1.0.0): no with_suffix
            table = markdown_table(rows)
            note = "".join(f"\nexcluded: {d} ({why})" for d, why in left_out)
            log(f"\n## {figure.title} ({scale} scale)\n\n" + table + note)
            md, csv_file = target / f"{stem}.md", target / f"{stem}.csv"
            md.write_text(f"## {figure.title} ({scale} scale)\n\n"
                          "final test accuracy (%), mean ± std over seeds\n\n" + table
                          + (note.replace("\nexcluded", "\n- excluded") + "\n" if note else ""))
            csv_file.write_text(csv_table(rows))
            finished = finished_runs(figure, out, scale)
            times = target / f"{stem}_times.md"
            times.write_text(f"## {figure.title} ({scale} scale): machines and times\n\n"
                             + run_times.markdown_table(
                                 [run_times.run_times(paper.scaled_label(run, scale), seed)
                                  for run, seed in finished]))
            written += [md, csv_file, times]
            labelled = [(paper.scaled_label(run, scale), seed) for run, seed in finished]
            for suffix, what, make, heading in (
                    ("course", "the course table", figure.task1_course and course_table,
                     "task 1 while task 2 is learned\n\ntask 1's test accuracy (%) after task 1, "
                     "after k epochs of task 2, its lowest and final value, mean ± std over "
                     "seeds; the epochs below the threshold: each seed's (docs/METRICS.md)"),
                    ("hidden_spread", "the hidden-weight table", hidden_spread_table,
                     "the hidden weights' spread\n\nstandard deviation of each layer's hidden "
                     "weights W_h after each task, from hidden_weight_hist.csv (bin midpoints), "
                     "mean ± std over seeds (docs/METRICS.md)")):
                unreadable: list[tuple[Path, str]] = []
                table = make(labelled, unreadable) if make else None
                for d, why in unreadable:
                    log(f"excluded from {what}: {d} ({why})")
                excluded += unreadable
                written += _write_or_remove(target / f"{stem}_{suffix}.md",
                                            f"## {figure.title} ({scale} scale): {heading}", table)
            written += _write_or_remove(
                target / f"{stem}_sign_switch.md",
                f"## {figure.title} ({scale} scale): over seeds\n\n"
                "per layer and bin of |W_h| / max|W_h|: the mean normalised magnitude of the "
                "flipped weights and the loss increase per switched weight, mean ± std over seeds",
                _sign_switch(figure, [seed for _, seed in finished], excluded, log))
            try:
                written += draw(figure, [seed for _, seed in finished], target / f"{stem}.png")
            except MetaplasticError as exc:   # a seed's file the figure cannot read
                log(f"excluded from the figure: {exc}")
                listed = {d for d, _ in excluded}
                excluded += [(seed, str(exc)) for _, seed in finished if seed not in listed]
    for path in written:
        log(f"wrote {path}")
    if excluded:
        raise SummaryExclusions(f"{len(excluded)} finished run(s) left out of the tables (listed "
                                "above with the reason); the tables were written without them")
    if not written:
        raise ConfigError(f"summarize: no finished runs of "
                          f"{', '.join(figure_ids) if figure_ids else 'the paper' + chr(39) + 's figures'}"
                          f" under {out}")
    return written


def _write_or_remove(path: Path, heading: str, table: str | None) -> list[Path]:
    """Write ``heading`` and ``table`` to ``path`` (returned); without a table, remove the file
    an earlier summary may have left."""
    if not table:
        path.unlink(missing_ok=True)
        return []
    path.write_text(heading + "\n\n" + table)
    return [path]


def _sign_switch(figure: paper.Figure, seed_dirs: Sequence[Path], excluded: list,
                 log) -> str | None:
    """A sign-switch figure's table over seeds (:mod:`metaplastic.launch.sign_switch_table`);
    an unreadable file: every seed listed in ``excluded``, no table."""
    if figure.plot != "sign-switch":
        return None
    try:
        return sign_switch_table(seed_dirs)
    except records.RecordError as exc:
        log(f"excluded from the sign-switch table: {exc}")
        excluded += [(d, str(exc)) for d in seed_dirs]
        return None


class SummaryExclusions(MetaplasticError):
    """Some finished runs could not enter the tables."""


def _figures(figure_ids: Sequence[str]) -> list[paper.Figure]:
    """The figures to summarize, each under every published version (the default's under its
    plain id; another version's as ``<id>_<version>``, where its runs differ), keeping those
    named in ``figure_ids`` (a plain id names all its versions)."""
    out, seen = [], set()
    for figure in paper.FIGURES:
        for version in published.VERSIONS:
            candidate = paper.in_version(figure, version)
            if candidate.id in seen:
                continue
            seen.add(candidate.id)
            if not figure_ids or figure.id in figure_ids or candidate.id in figure_ids:
                out.append(candidate)
    return out


REPORT_MARKER = re.compile(r"<!-- summary:([\w.-]+) -->")


def fill_report(text: str, summary_dir: Path) -> str:
    """A report whose tables come from the summaries: the table under each
    ``<!-- summary:NAME -->`` line is replaced by the table of ``summary_dir/NAME.md``."""
    lines, out, i = text.splitlines(keepends=True), [], 0
    while i < len(lines):
        out.append(lines[i])
        match = REPORT_MARKER.fullmatch(lines[i].strip())
        i += 1
        if not match:
            continue
        source = Path(summary_dir) / f"{match.group(1)}.md"
        if not source.is_file():
            raise ConfigError(f"the report's table {match.group(1)!r} has no {source}")
        out += [line + "\n" for line in source.read_text().splitlines() if line.startswith("|")]
        while i < len(lines) and lines[i].startswith("|"):   # the old table
            i += 1
    return "".join(out)


def update_report(report: Path, summary_dir: Path, log=print) -> bool:
    """Rewrite ``report`` with :func:`fill_report`; returns whether it changed."""
    report = Path(report)
    old = report.read_text()
    new = fill_report(old, summary_dir)
    if new != old:
        report.write_text(new)
    log(f"{report}: {'tables updated' if new != old else 'tables already up to date'}")
    return new != old
