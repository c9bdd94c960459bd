"""Summaries of the paper's runs over seeds: final accuracies as mean ± std, and the figures.

For each figure of :mod:`metaplastic.paper` and each scale, the finished seeds found under an
output folder (:func:`metaplastic.launch.plan`'s layout) give one table row per configuration:
the final test accuracy of every task (the last CSV row; stream runs: the test set) and their
mean over tasks, as mean ± sample standard deviation over seeds. Tables are written as
Markdown and CSV; the figure is drawn by :mod:`metaplastic.plots` with its seed bands.
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from metaplastic import paper, published
from metaplastic.errors import ConfigError
from metaplastic.launch import FINISHED_FILE, run_folder


@dataclass
class Row:
    label: str
    run_name: str
    hidden: str                      # the hidden layers at the summarized scale
    seeds: int                       # finished seeds in the row
    unfinished: int                  # seeds started but not finished (not in the statistics)
    columns: list[str]               # per-task column names ("task 1", ..., "mean")
    values: list[list[float]]        # per seed, per column


def final_accuracies(csv_path: Path) -> tuple[list[str], list[float]]:
    """(names, values) of the last row's test accuracies: every task's and their mean, or the
    stream's test (and first-part) accuracy."""
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
        return names, values
    names = [k for k in ("acc_test", "acc_1st_sub") if k in last]
    return names, [float(last[k]) for k in names]


def mean_std(values: Sequence[float]) -> str:
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return f"{mean:.2f}"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return f"{mean:.2f} ± {std:.2f}"


def figure_rows(figure: paper.Figure, out: Path, scale: str) -> list[Row]:
    """One row per configuration of ``figure`` with at least one seed under ``out``."""
    rows, seen = [], set()
    for run in figure.runs:
        folder = run_folder(out, run, scale)
        if folder in seen:   # scaled down, two configurations can become one (cpu: widths)
            continue
        seen.add(folder)
        seeds = sorted(folder.glob("seed-*")) if folder.is_dir() else []
        finished = [s for s in seeds if (s / FINISHED_FILE).is_file()]
        columns, values = [], []
        for seed_dir in finished:
            names, vals = final_accuracies(seed_dir / "metrics.csv")
            columns = columns or names
            values.append(vals)
        if seeds:
            hidden = dict(paper._flag_values(paper.scaled(run, scale))).get("--hidden-layers")
            rows.append(Row(run.label, run.name, "-".join(hidden) if hidden else "",
                            len(finished), len(seeds) - len(finished), columns, values))
    return rows


def markdown_table(rows: Sequence[Row]) -> str:
    columns = max((r.columns for r in rows), key=len, default=[])
    lines = ["| configuration | hidden | seeds | " + " | ".join(columns) + " |",
             "|---|---|---|" + "---|" * len(columns)]
    for r in rows:
        seeds = f"{r.seeds}" + (f" (+{r.unfinished} unfinished)" if r.unfinished else "")
        cells = [mean_std([v[i] for v in r.values]) if r.values and i < len(r.columns) else "–"
                 for i in range(len(columns))]
        lines.append(f"| {r.label} | {r.hidden or '–'} | {seeds} | " + " | ".join(cells) + " |")
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


def finished_run_dirs(figure: paper.Figure, out: Path, scale: str) -> list[Path]:
    """The finished seed folders of ``figure``'s runs at ``scale`` (each folder once)."""
    folders = dict.fromkeys(run_folder(out, r, scale) for r in figure.runs)
    return [seed for folder in folders for seed in sorted(folder.glob("seed-*"))
            if (seed / FINISHED_FILE).is_file()]


def draw(figure: paper.Figure, run_dirs: Sequence[Path], target: Path) -> list[Path]:
    """The figure's plot (plot_figures.py's) from its finished runs, seeds as bands."""
    from metaplastic import plots

    if not figure.plot or not run_dirs:
        return []
    if figure.plot in ("histograms", "sign-switch"):   # one run each: the first seed
        draw_one = (plots.plot_hidden_weight_histograms if figure.plot == "histograms"
                    else plots.plot_sign_switch)
        written = []
        for d in run_dirs:
            if d.name == "seed-0":
                written += draw_one(d, target.with_name(f"{target.stem}_{d.parent.name}.png"))
        return written
    several = {"accuracy": plots.plot_task_accuracies, "hidden-size": plots.plot_hidden_size,
               "two-task": plots.plot_two_task, "stream": plots.plot_stream}
    written = several[figure.plot](list(run_dirs), target)
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
        folders = {run_folder(out, r, scale) for r in figure.runs}
        present[scale] = {f for f in folders if any(f.glob("seed-*"))}
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
    target = Path(target) if target else out / "summary"
    written: list[Path] = []
    for figure in _figures(figure_ids):
        for scale in scales_present(figure, out):
            rows = figure_rows(figure, out, scale)
            if not rows:
                continue
            target.mkdir(parents=True, exist_ok=True)
            stem = f"{figure.id}_{scale}"   # ids may hold dots (fig2_v1.0.0): no with_suffix
            table = markdown_table(rows)
            log(f"\n## {figure.title} ({scale} scale)\n\n" + table)
            md, csv_file = target / f"{stem}.md", target / f"{stem}.csv"
            md.write_text(f"## {figure.title} ({scale} scale)\n\n"
                          "final test accuracy (%), mean ± std over seeds\n\n" + table)
            csv_file.write_text(csv_table(rows))
            written += [md, csv_file]
            written += draw(figure, finished_run_dirs(figure, out, scale),
                            target / f"{stem}.png")
    if not written:
        log(f"no runs of the paper's figures under {out}")
    return written


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
