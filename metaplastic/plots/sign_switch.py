"""Fig. 5(c-e): loss increase caused by switching the sign of binary weights."""
from __future__ import annotations

from pathlib import Path

from metaplastic.errors import ConfigError
from metaplastic.plots.draw import SEQ_COLORS, new_figure, save
from metaplastic.plots.labels import fmt_value, layer_title, natural_key
from metaplastic.plots.runs import as_list, load_config_of, load_table, run_settings
from metaplastic.runs.records import SIGN_SWITCH_COLUMNS, SIGN_SWITCH_FILE
from metaplastic.runs.sign_switch_seeds import checked, over_seeds


def plot_sign_switch(runs, out, pdf: bool = False) -> list[Path]:
    """Fig. 5(c-e): one panel per layer, the loss increase per switched weight against the
    mean normalised hidden-weight magnitude of its bin. ``runs``: one run (its folder or
    sign_switch.csv), or the seeds of one configuration, combined by
    :func:`metaplastic.runs.sign_switch_seeds.over_seeds` (mean ± std over the seeds; one seed:
    ± std over its repeats)."""
    paths = as_list(runs)
    if not paths:
        raise ConfigError("no run directory or sign_switch.csv given")
    tables = [load_table(p, SIGN_SWITCH_FILE, SIGN_SWITCH_COLUMNS,
                         "one row per layer and magnitude bin") for p in paths]
    files = [path.resolve() for path, _ in tables]
    twice = sorted({str(f) for f in files if files.count(f) > 1})
    if twice:
        raise ConfigError(f"the sign-switch figure was given {', '.join(twice)} twice; each seed "
                          "once")
    _check_one_configuration([path for path, _ in tables])
    frame = over_seeds([checked(f, path) for path, f in tables])
    seeds = len(paths)
    layers = sorted(frame["layer"].unique(), key=natural_key)
    fig, axes = new_figure(len(layers), ncols=min(len(layers), 3), panel_size=(4.2, 3.4))
    for i, (ax, layer) in enumerate(zip(axes, layers)):
        rows = frame[frame["layer"] == layer].sort_values("magnitude_mean")
        x = rows["magnitude_mean"].to_numpy(float)
        y = rows["loss_increase_mean"].to_numpy(float)
        e = rows["loss_increase_std"].to_numpy(float)
        color = SEQ_COLORS[i % len(SEQ_COLORS)]
        ax.fill_between(x, y - e, y + e, color=color, alpha=0.2, lw=0)
        ax.errorbar(x, y, yerr=e, color=color, marker="o", ms=4, lw=1.4, capsize=2.5)
        ax.axhline(0.0, color="0.5", lw=0.8, ls=":")
        sample = rows["sample"].iloc[0]
        repeats = rows["runs"].iloc[0]
        ax.set_title(f"{layer_title(layer)}  (sample {fmt_value(sample)}, "
                     f"{fmt_value(repeats)} runs)", fontsize=10)
        ax.set_xlabel(r"mean normalised magnitude $|W_h|/\max|W_h|$")
        if i % 3 == 0:
            ax.set_ylabel("loss increase per switched weight")
        ax.set_xlim(0, 1.02)
        ax.grid(True, alpha=0.3)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    spread = f"mean ± std over {seeds} seeds" if seeds > 1 else "± std over the repeats"
    if seeds > 1 and (frame["spread_over"] == "repeats").any():
        spread += "; a bin only one seed has: ± std over its repeats"
    fig.suptitle(f"Loss increase caused by switching the sign of binary weights ({spread})",
                 fontsize=11)
    return save(fig, out, pdf)


def _check_one_configuration(csv_paths: list[Path]) -> None:
    """Seeds combined must share one configuration: their folders' config.json equal up to the
    seed and the other per-run settings (CSV files without a config.json: all or none)."""
    settings, bare = {}, []
    for path in csv_paths:
        config = load_config_of(path, path.parent)
        if config:
            settings[path] = run_settings(config)
        else:
            bare.append(path)
    if settings and bare:
        raise ConfigError(f"the sign-switch figure combines seeds of one configuration; "
                          f"{bare[0]} has no config.json beside it to show it is "
                          f"{next(iter(settings)).parent}'s")
    first = next(iter(settings.items()), None)
    for path, these in settings.items():
        if these != first[1]:
            differ = sorted(k for k in these.keys() | first[1].keys()
                            if these.get(k) != first[1].get(k))
            raise ConfigError(f"the sign-switch figure combines seeds of one configuration; "
                              f"{path.parent} and {first[0].parent} differ in "
                              f"{', '.join(differ)}")
