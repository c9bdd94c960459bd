"""Fig. 5(c-e): loss increase caused by switching the sign of binary weights."""
from __future__ import annotations

from pathlib import Path

from metaplastic.plots.draw import SEQ_COLORS, new_figure, save
from metaplastic.plots.labels import fmt_value, layer_title, natural_key
from metaplastic.plots.runs import load_table
from metaplastic.runs.records import SIGN_SWITCH_COLUMNS, SIGN_SWITCH_FILE


def plot_sign_switch(run_or_csv, out, pdf: bool = False) -> list[Path]:
    """Fig. 5(c-e): one panel per layer, mean loss increase of a sign switch (+/- std over
    the repeats) against the mean normalised hidden-weight magnitude of its bin."""
    _, frame = load_table(run_or_csv, SIGN_SWITCH_FILE, SIGN_SWITCH_COLUMNS,
                          "one row per layer and magnitude bin")
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
    fig.suptitle("Loss increase caused by switching the sign of binary weights", fontsize=11)
    return save(fig, out, pdf)
