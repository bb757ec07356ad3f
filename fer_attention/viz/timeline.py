"""Expression timelines of a video: each track's class probabilities over time and its label strip."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from fer_attention.viz.figures import save_figure

# at most this many tracks get a panel (the ones with the most labelled frames); the rest are named
MAX_TRACKS = 8


def class_colours(n: int) -> list:
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def tracks_of(rows: Sequence[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Face rows (no error) grouped by track, each in time order."""
    out: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("error") is None and r.get("label") is not None:
            out.setdefault(int(r.get("track") or 0), []).append(r)
    for rs in out.values():
        rs.sort(key=lambda r: (r["time_s"], r["frame"]))
    return out


def plot_timeline(
    rows: Sequence[dict[str, Any]],
    class_names: Sequence[str],
    path: str | Path,
    title: str = "",
) -> Path | None:
    """One panel per track: a line per class (probability against ``time_s``) and below it the label
    strip (the top class of each labelled frame, coloured as its line). Returns the PNG path, or None when
    the rows hold no face."""
    tracks = tracks_of(rows)
    if not tracks:
        return None
    shown = sorted(sorted(tracks, key=lambda t: -len(tracks[t]))[:MAX_TRACKS])
    colours = class_colours(len(class_names))
    t_max = max(r["time_s"] for rs in tracks.values() for r in rs)
    t_min = min(r["time_s"] for rs in tracks.values() for r in rs)
    span = max(t_max - t_min, 1e-3)
    xlim = (t_min - 0.02 * span, t_max + 0.02 * span)
    ratios = [h for _ in shown for h in (3.0, 0.45)]
    fig = Figure(figsize=(10, 0.6 + 2.3 * len(shown)))
    axes = fig.subplots(
        2 * len(shown),
        1,
        gridspec_kw={"height_ratios": ratios, "hspace": 0.15},
        squeeze=False,
    )
    axes = axes[:, 0]
    for k, tid in enumerate(shown):
        ax, strip = axes[2 * k], axes[2 * k + 1]
        _plot_track(ax, tid, tracks[tid], class_names, colours, xlim)
        _plot_label_strip(strip, tracks[tid], class_names, colours, ax.get_xlim(), span)
        if k < len(shown) - 1:
            strip.tick_params(labelbottom=False)
    axes[-1].set_xlabel("time (s)")
    handles = [Patch(color=c, label=n) for n, c in zip(class_names, colours, strict=True)]
    axes[0].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    hidden = len(tracks) - len(shown)
    heading = title or "expression timeline"
    if hidden > 0:
        heading += f" ({hidden} shorter track(s) not shown)"
    axes[0].set_title(heading, fontsize=10, loc="left")
    fig.subplots_adjust(
        left=0.09, right=0.86, top=1 - 0.35 / fig.get_figheight(), bottom=0.45 / fig.get_figheight()
    )
    return save_figure(fig, path)


def _plot_track(
    ax: Axes,
    tid: int,
    rs: list[dict[str, Any]],
    class_names: Sequence[str],
    colours: list,
    xlim: tuple[float, float],
) -> None:
    """A track's panel: one probability line per class against time, over the time span of all tracks."""
    t = np.array([r["time_s"] for r in rs], dtype=float)
    marker = "o" if len(rs) <= 30 else None
    for c, colour in zip(class_names, colours, strict=True):
        ax.plot(t, [r[c] for r in rs], color=colour, lw=1.4, marker=marker, ms=3, label=c)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(*xlim)
    ax.set_ylabel(f"track {tid}\nprobability")
    ax.grid(alpha=0.3)
    ax.tick_params(labelbottom=False)


def _plot_label_strip(
    strip: Axes,
    rs: list[dict[str, Any]],
    class_names: Sequence[str],
    colours: list,
    xlim: tuple[float, float],
    span: float,
) -> None:
    """The strip under a track's panel: each labelled frame coloured by its top class, up to the next
    labelled frame (the last one for the median frame gap, or 2% of the time span for a lone frame)."""
    index = {c: i for i, c in enumerate(class_names)}
    t = np.array([r["time_s"] for r in rs], dtype=float)
    labels = np.array([index[r["label"]] for r in rs])
    edges = np.append(t, t[-1] + (np.median(np.diff(t)) if len(t) > 1 else 0.02 * span))
    strip.pcolormesh(
        edges,
        [0, 1],
        labels[None, :],
        cmap=ListedColormap(colours),
        vmin=-0.5,
        vmax=len(class_names) - 0.5,
        shading="flat",
    )
    strip.set_xlim(xlim)
    strip.set_yticks([])
    strip.set_ylabel("label", rotation=0, ha="right", va="center")
