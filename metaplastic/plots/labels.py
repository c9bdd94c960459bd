"""Titles, legends and labels of the figures, read from the runs' configurations."""
from __future__ import annotations

import json
import math
from typing import Sequence

from metaplastic.errors import ConfigError
from metaplastic.plots.runs import GROUPING_COLUMNS, KIND_TITLES, Run, RunGroup, run_settings
from metaplastic.runs.records import parse_meta_mapping


def fmt_value(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt_value(v) for v in value) + "]"
    return str(value)


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    try:
        return bool(value) and not (isinstance(value, float) and math.isnan(value))
    except (TypeError, ValueError):
        return False


def meta_of(run: Run):
    value = run.identity("meta", 0.0)
    if isinstance(value, str) and value.strip().startswith("{"):  # published "{'l1': m1, ...}"
        value = parse_meta_mapping(value)
        if len(set(value)) == 1:
            value = value[0]
    if isinstance(value, (list, tuple)) and len(value) == 1:  # one m for all layers
        value = value[0]
    if isinstance(value, (list, tuple)):
        return fmt_value(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def method_of(run: Run) -> str:
    """'interleaved', 'EWC', 'SI', 'random consolidation' or 'sequential'."""
    if _truthy(run.config.get("interleaved", False)):
        return "interleaved"
    if _truthy(run.config.get("rnd_consolidation", False)):
        return "random consolidation"
    if _truthy(run.identity("ewc", False)):
        return "EWC"
    if _truthy(run.identity("SI", False)):
        return "SI"
    return "sequential"


def subsets_of(run: Run) -> int:
    """How many parts a stream run's training set was cut into: config.json's ``nb_subset``,
    else (no config) the parts its CSV reached."""
    return int(run.config.get("nb_subset", run.n_tasks))


def subsets_text(n: int) -> str:
    """'1 subset' or 'N subsets'."""
    return f"{n} subset" if n == 1 else f"{n} subsets"


def describe(run: Run) -> str:
    """A short title from the configuration, e.g. 'BNN m=1.35 4096-4096'."""
    if run.kind != "continual":
        parts = [KIND_TITLES[run.kind], f"m={fmt_value(meta_of(run))}"]
        parts.append(subsets_text(subsets_of(run)))
        return ", ".join(parts)
    net = run.identity("net", "")
    arch = run.identity("arch", "")
    parts = [str(net).upper() if str(net).lower() in ("bnn", "dnn") else str(net),
             f"m={fmt_value(meta_of(run))}", str(arch)]
    method = method_of(run)
    if method != "sequential":
        parts.append(method)
    return " ".join(p for p in parts if p and p != "nan")


_SHOWN_KEYS = frozenset({"net", "meta", "hidden_layers", "interleaved", "ewc", "si",
                         "rnd_consolidation", "task_sequence", "experiment", "nb_subset"})


def _sequence_text(run: Run) -> str:
    seq = run.config.get("task_sequence")
    if isinstance(seq, (list, tuple)) and seq:
        items = [str(s) for s in seq]
    else:
        items = run.row_task_names()
    return " → ".join(i for i in items if i)


def differences(groups: Sequence[RunGroup]) -> list[list[str]]:
    """Per group, 'key=value' for the settings (beyond those in the title) that differ
    between the groups, so that panels with otherwise equal titles can be told apart."""
    def settings(run: Run) -> dict:
        if run.config:
            return {k: v for k, v in run_settings(run.config).items() if k not in _SHOWN_KEYS}
        first = run.frame.iloc[0]
        return {c: first[c] for c in GROUPING_COLUMNS[run.kind]
                if c not in ("net", "meta", "arch", "ewc", "SI")}

    all_settings = [settings(g.first) for g in groups]
    keys = sorted({k for s in all_settings for k in s})
    differing = [k for k in keys
                 if len({json.dumps(s.get(k), default=str) for s in all_settings}) > 1]
    return [[f"{k}={fmt_value(s.get(k, '-'))}" for k in differing] for s in all_settings]


def group_labels(groups: Sequence[RunGroup], labels: Sequence[str] | None,
                 with_sequence: bool | None = None) -> list[str]:
    """Titles of the groups: ``labels`` if given (one per group), else from the config, with
    the task sequence (always if ``with_sequence``, else when it differs between groups) and
    any other differing setting on a second line."""
    if labels is None:
        sequences = [_sequence_text(g.first) for g in groups]
        if with_sequence is None:
            with_sequence = len(set(sequences)) > 1
        titles = []
        for g, seq, diff in zip(groups, sequences, differences(groups)):
            title = describe(g.first)
            if with_sequence and seq and g.first.kind == "continual":
                title = f"{seq}: {title}"
            if diff:
                title += "\n" + ", ".join(diff)
            titles.append(title)
        return titles
    labels = list(labels)
    if len(labels) != len(groups):
        listing = "; ".join(f"[{i + 1}] {describe(g.first)} ({', '.join(r.name for r in g.runs)})"
                            for i, g in enumerate(groups))
        raise ConfigError(
            f"got {len(labels)} labels for {len(groups)} configurations (runs sharing one "
            f"configuration apart from the seed are drawn together): {listing}")
    return labels


def _seed_note(group: RunGroup) -> str:
    return f" (mean ± std, {len(group)} seeds)" if len(group) > 1 else ""


#: characters per line of a panel title (a panel is about a third of a figure wide)
TITLE_WIDTH = 44


def title_with_seeds(title: str, group: RunGroup) -> str:
    """The panel title with its seed note, each line wrapped at :data:`TITLE_WIDTH`
    characters so that the titles of neighbouring panels never overlap."""
    import textwrap

    first, sep, rest = title.partition("\n")
    lines = (first + _seed_note(group) + sep + rest).split("\n")
    return "\n".join(textwrap.fill(line, TITLE_WIDTH) or line for line in lines)


def natural_key(value):
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def layer_title(layer) -> str:
    text = fmt_value(layer.item() if hasattr(layer, "item") else layer)
    return text if not text.replace(".", "").isdigit() else f"layer {text}"


def describe_config(config: dict) -> str:
    parts = []
    if "net" in config:
        parts.append(str(config["net"]).upper())
    if "meta" in config:
        meta = config["meta"]
        if isinstance(meta, (list, tuple)) and len(meta) == 1:
            meta = meta[0]
        parts.append(f"m={fmt_value(meta)}")
    if isinstance(config.get("hidden_layers"), (list, tuple)):
        parts.append("-".join(str(h) for h in config["hidden_layers"]))
    return " ".join(parts)
