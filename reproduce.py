#!/usr/bin/env python
"""Run the paper's figures: list their runs, launch them over seeds, summarize the results.

    python reproduce.py list [FIGURE ...] [--scale paper|cpu|smoke]
    python reproduce.py run FIGURE ... [--seeds N] [--scale ...] [--jobs J] [--out DIR]
                                       [--executor local|slurm]
    python reproduce.py summarize DIR [FIGURE ...]

Every run of every figure is listed in metaplastic/paper.py with its published flags. A run's
folder is DIR/<experiment>/<configuration id>/seed-<k>, derived from its flags and seed, so
running the same command again skips the finished runs and resumes the others from their
checkpoints. --scale paper keeps the published configuration, cpu caps every hidden layer at
512 (published epochs), smoke shrinks everything to seconds (tests).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

from metaplastic import paper
from metaplastic.errors import ConfigError
from metaplastic.flag_types import non_negative_int, positive_int
from metaplastic.launch import local as launch, slurm, summary
from metaplastic.method import published
from metaplastic.runs.cli import ArgumentParser
from metaplastic.runs.faults import main_guard

DEFAULT_OUT = Path("results") / "reproduce"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="reproduce.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           help="list, run or summarize (COMMAND -h for its flags)")

    ls = sub.add_parser("list", help="the figures, their runs and commands",
                        formatter_class=p.formatter_class)
    ls.add_argument("figures", nargs="*", metavar="FIGURE", help="figure ids (default: all)")
    ls.add_argument("--scale", choices=paper.SCALES, default="paper",
                    help="paper: published; cpu: hidden layers <= 512; smoke: seconds")
    _add_version_argument(ls)

    run = sub.add_parser("run", help="launch a figure's runs (finished ones are skipped)",
                         formatter_class=p.formatter_class)
    run.add_argument("figures", nargs="+", metavar="FIGURE", help="figure ids, or all")
    run.add_argument("--only", nargs="+", default=None, metavar="RUN",
                     help="only these runs of the figure (names from `list`; default: every run)")
    run.add_argument("--seeds", type=positive_int, default=None,
                     help="seeds 0..N-1 (default: the figure's, shown by `list`)")
    run.add_argument("--scale", choices=paper.SCALES, default="paper",
                     help="paper: published; cpu: hidden layers <= 512; smoke: seconds")
    _add_version_argument(run)
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    run.add_argument("--data-root", default=None,
                     help="dataset folder passed to every run (unset: each run's own default)")
    run.add_argument("--jobs", type=positive_int, default=1,
                     help="runs at once on this machine (local executor)")
    run.add_argument("--threads", type=positive_int, default=None,
                     help="CPU threads per run (default: this machine's cores / --jobs)")
    run.add_argument("--executor", choices=("local", "slurm"), default="local",
                     help="local: subprocesses on this machine; slurm: a SLURM job array "
                          "through submitit")
    run.add_argument("--dry-run", action="store_true",
                     help="print the runs and their state (done / to resume / new), run nothing")
    g = run.add_argument_group("slurm (with --executor slurm)")
    g.add_argument("--partition", default=None, help="SLURM partition (default: the cluster's)")
    g.add_argument("--time", type=positive_int, default=720,
                   help="minutes per job; a job that runs out is requeued and resumes")
    g.add_argument("--cpus-per-task", type=positive_int, default=2, help="CPU cores per job")
    g.add_argument("--gpus", type=non_negative_int, default=0, help="GPUs per job")
    g.add_argument("--mem-gb", type=positive_int, default=None,
                   help="memory per job in GB (default: the cluster's)")
    g.add_argument("--account", default=None, help="SLURM account (default: yours)")
    g.add_argument("--qos", default=None, help="SLURM quality of service (default: none)")
    g.add_argument("--array-parallelism", type=positive_int, default=64,
                   help="jobs of the array running at once")
    g.add_argument("--setup", nargs="+", default=[], metavar="LINE",
                   help="shell lines run before each job, e.g. 'module load cuda'")
    g.add_argument("--print-job-script", action="store_true",
                   help="print the sbatch script submitit would submit, and exit")
    g.add_argument("--submitit-cluster", choices=slurm.CLUSTERS, default="slurm",
                   help="slurm; or submitit's local/debug stand-ins that run the same jobs on "
                        "this machine (tests)")

    sm = sub.add_parser("summarize", help="tables (mean ± std over seeds) and figures",
                        formatter_class=p.formatter_class)
    sm.add_argument("out", type=Path, metavar="DIR", help="the --out folder of `run`")
    sm.add_argument("figures", nargs="*", metavar="FIGURE", help="figure ids (default: all)")
    sm.add_argument("--to", type=Path, default=None, help="where to write (default: DIR/summary)")
    sm.add_argument("--report", type=Path, default=None, metavar="FILE",
                    help="also refill the tables under each '<!-- summary:NAME -->' line of FILE "
                         "(e.g. docs/REPRODUCTION.md) from the summaries (default: no report)")
    for parser in (p, ls, run, sm):
        parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return p


def _add_version_argument(parser) -> None:
    parser.add_argument("--published-version", choices=tuple(published.VERSIONS),
                        default=published.DEFAULT_VERSION,
                        help="the authors' code to reproduce (metaplastic/method/published.py): v1.0.0 "
                             "drew the paper's figures; its runs get folders of their own and "
                             "summaries named <figure>_v1.0.0")


def list_figures(figure_ids: Sequence[str], scale: str,
                 version: str = published.DEFAULT_VERSION) -> None:
    known = {f.id for f in paper.FIGURES}
    for fid in figure_ids:
        if fid not in known:
            raise ConfigError(f"unknown figure {fid}; figures: {', '.join(sorted(known))}")
    for fig in paper.FIGURES:
        if figure_ids and fig.id not in figure_ids:
            continue
        fig = paper.in_version(fig, version)
        unique = {paper.run_id(r, scale): r for r in fig.runs}.values()
        total = [paper.expected_cpu_seconds(r, scale) for r in unique]
        time_text = ("" if None in total else
                     f"; about {paper.format_duration(sum(total))} per seed on a 2-core CPU")
        print(f"\n{fig.id}: {fig.title}\n  {len(fig.runs)} runs x {fig.seeds} seeds{time_text}")
        if fig.note:
            print(f"  note: {fig.note}")
        seen = {}
        for r in fig.runs:
            key = paper.run_id(r, scale)
            if key in seen:   # scaled down, two configurations can become one
                print(f"  {r.name:22s} {r.label}: at {scale} scale the same run as {seen[key]}")
                continue
            seen[key] = r.name
            needs = f"  [needs {r.needs}]" if r.needs else ""
            print(f"  {r.name:22s} {r.label}{needs}\n    {paper.command(r, scale)}")
    if not figure_ids:
        print(f"\nfig5ab: Fig. 5(a, b), the quadratic binary task notebook (about 10 s)\n"
              f"    {paper.NOTEBOOK_COMMAND}")


def run_figures(args) -> int:
    jobs = launch.plan(args.figures, args.seeds, args.scale, args.out, args.only or (),
                       args.published_version)
    if args.executor == "slurm" and args.print_job_script:
        print(slurm.job_script(len(jobs), args.out / "slurm", _slurm_options(args)))
        return 0
    states = {j: j.state() for j in jobs}
    expected = [j.seconds_left() for j in jobs if states[j] != "done"]
    print(f"{len(jobs)} runs ({sum(s == 'done' for s in states.values())} finished, "
          f"{sum(s == 'started' for s in states.values())} to resume, "
          f"{sum(s == 'new' for s in states.values())} new) at {args.scale} scale in {args.out}"
          + ("" if None in expected or not expected else
             f"; about {paper.format_duration(sum(expected) / args.jobs)} on a 2-core CPU "
             f"with {args.jobs} at once (estimate)"))
    if args.dry_run:
        for j in jobs:
            state = "running" if launch.is_running(j.run_dir) else states[j]
            print(f"  {state:8s} {j.name:40s} {j.run_dir}")
        return 0
    if args.executor == "slurm":
        slurm.submit(jobs, args.out / "slurm", _slurm_options(args), args.submitit_cluster,
                     args.data_root, wait=args.submitit_cluster != "slurm")
        return 0
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    failed = launch.LocalExecutor(args.jobs, threads, args.data_root).run(jobs)
    if failed:
        print(f"{len(failed)} runs failed: " + ", ".join(j.name for j in failed), file=sys.stderr)
        return 1
    print(f"all {len(jobs)} runs finished; `python reproduce.py summarize {args.out}` "
          "tabulates them")
    return 0


def _slurm_options(args) -> slurm.SlurmOptions:
    return slurm.SlurmOptions(partition=args.partition, time_min=args.time,
                              cpus_per_task=args.cpus_per_task, gpus_per_node=args.gpus,
                              mem_gb=args.mem_gb, account=args.account, qos=args.qos,
                              array_parallelism=args.array_parallelism, setup=args.setup)


@main_guard
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        list_figures(args.figures, args.scale, args.published_version)
        return 0
    if args.command == "run":
        return run_figures(args)
    summary.summarize(args.out, args.figures, args.to)
    if args.report:
        summary.update_report(args.report, args.to or args.out / "summary")
    return 0


if __name__ == "__main__":
    sys.exit(main())
