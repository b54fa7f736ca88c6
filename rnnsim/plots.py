"""Figures from tidy tables: one seaborn theme for the project and a few reusable helpers.

Every figure function of an experiment takes the tidy table and returns a matplotlib Figure; the
framework saves it as PNG and SVG. The helpers here carry the project's conventions: axes
labelled in words with units (:func:`label`), log scales where norms span decades, legends that
name the parameters, confidence bands over seeds, theory as dashed lines (:func:`theory_line`).

Importing this module leaves matplotlib's backend alone; the ``rnnsim`` command and experiment
scripts choose the non-interactive Agg backend (`rnnsim.experiment.run_from_args`): figures are files.
"""

from __future__ import annotations

import numbers
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import LogNorm, TwoSlopeNorm

from rnnsim.validation import finite_float, require_columns

__all__ = [
    "LABELS",
    "theme",
    "label",
    "save",
    "line_with_band",
    "facets",
    "theory_line",
    "heatmap",
    "mesh",
    "measured_vs_theory",
    "rates",
    "cliff_surface",
    "hue_palette",
    "legend_outside",
    "mean_ci",
    "summarize",
]

#: Axis labels in words (with units) for common column names; experiments may add their own
#: (``plots.LABELS["my_col"] = "..."``) or pass ``xlabel``/``ylabel`` explicitly.
LABELS: dict[str, str] = {
    "layer": "layer l (0 = input)",
    "depth": "depth L (hidden layers)",
    "width": "width n (units per layer)",
    "step": "time step t",
    "lag": "lag T - k (steps)",
    "T": "sequence length T (steps)",
    "seed": "seed",
    "gain": "weight scale g",
    "sigma_w": "weight scale sigma_w",
    "sigma_b": "bias scale sigma_b",
    "sigma_w2": "weight variance sigma_w^2 (times fan-in)",
    "sigma_b2": "bias variance sigma_b^2",
    "lr": "learning rate",
    "loss": "loss",
    "grad_norm": "gradient norm ||dL/dtheta||",
    "grad_W_norm": "||dL/dW_l||_F",
    "grad_h_norm": "||dL/dh_l|| (one sample)",
    "act_mean": "mean activation",
    "act_std": "std of activations",
    "frac_saturated": "fraction of saturated units",
    "log_spectral": "ln ||J||_2 (nats)",
    "log_frobenius": "ln ||J||_F (nats)",
    "singular_value": "singular value",
}

# Seaborn's "colorblind" palette (Okabe & Ito's colours) reordered so that the first levels of a
# categorical hue never pair orange with vermillion, which thin lines do not tell apart.
_CATEGORICAL = [
    "#0173b2",
    "#de8f05",
    "#029e73",
    "#cc78bc",
    "#56b4e9",
    "#d55e00",
    "#949494",
    "#ca9161",
    "#ece133",
    "#fbafe4",
]

_THEME = {
    "context": "notebook",
    "style": "whitegrid",
    "palette": _CATEGORICAL,
    "rc": {
        "figure.dpi": 100,
        "savefig.dpi": 150,
        "savefig.bbox": "tight",
        "axes.titlesize": "medium",
        "legend.fontsize": "small",
        "legend.title_fontsize": "small",
        "svg.hashsalt": "rnnsim",  # stable SVG ids: re-drawing an unchanged figure changes no byte
        "svg.fonttype": "none",
    },
}


def theme() -> None:
    """Apply the project's seaborn theme (idempotent; call it at the top of figure functions)."""
    sns.set_theme(**_THEME)


def label(column: str, unit: str | None = None) -> str:
    """Words for a column name (from :data:`LABELS`), optionally with a unit in brackets."""
    text = LABELS.get(column, column.replace("_", " "))
    return f"{text} [{unit}]" if unit else text


def save(fig, path, formats: Sequence[str] = ("png", "svg"), dpi: int = 150) -> list[Path]:
    """Save ``fig`` as ``path.png`` and ``path.svg`` (atomically: temporary name, then rename).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or Path
        Destination without extension; parent folders are created.
    formats : sequence of str
        File formats, each also the extension.
    dpi : int
        Resolution of raster formats.

    Returns
    -------
    list of Path
        The files written.
    """
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        target = base.with_name(f"{base.name}.{fmt}")
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            metadata = {"Date": None} if fmt in ("svg", "pdf") else None
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata, bbox_inches="tight")
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        written.append(target)
    return written


def _new_ax(ax, figsize=(6.0, 4.0)):
    if ax is not None:
        return ax.figure, ax
    theme()
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def summarize(
    table: pd.DataFrame,
    x: str,
    y: str,
    by: Sequence[str] = (),
    *,
    log: bool = False,
    level: float = 0.95,
    estimator: str = "mean",
) -> pd.DataFrame:
    """Mean of ``y`` and its Student-t confidence interval for every ``(by..., x)`` group.

    With ``estimator="median"``: the median and its distribution-free interval instead, the
    order statistics of ranks n/2 -+ z sqrt(n)/2 in the group's sorted values (the normal
    approximation to the binomial count of values below the median).

    The rows of one group (seeds, samples) are the repeated measurements. With ``log=True`` the
    statistics are taken on ln(y) (positive entries) and mapped back: a geometric mean whose
    interval stays positive and symmetric on a log axis. Vectorised over groups (seaborn's own
    bootstrap loops in Python and takes minutes on per-layer tables).

    Returns
    -------
    DataFrame
        Columns ``by..., x, y`` (the estimate), ``y_low``, ``y_high``, ``y_count`` (rows in the
        group; named after ``y`` so that it cannot overwrite a parameter column such as ``n``);
        low = high = the estimate for groups of one row.
    """
    from scipy import stats

    if estimator not in ("mean", "median"):
        raise ValueError(f"estimator must be 'mean' or 'median', got {estimator!r}")
    keys = [k for k in dict.fromkeys([*by, x]) if k is not None]
    v = pd.to_numeric(table[y], errors="coerce").astype(float)
    if log:
        v = np.log(v.where(v > 0))
    frame = table[keys].assign(_v=v.to_numpy()).dropna(subset=["_v"])
    frame = frame[np.isfinite(frame["_v"])]
    agg = frame.groupby(keys, sort=False, observed=True)["_v"].agg(["mean", "std", "count"])
    n = agg["count"].to_numpy()
    dof = np.maximum(n - 1, 1)
    mean, std = agg["mean"].to_numpy(), agg["std"].fillna(0.0).to_numpy()
    half = np.where(n > 1, stats.t.ppf(0.5 + level / 2, dof) * std / np.sqrt(n), 0.0)
    est, low, high = mean, mean - half, mean + half
    if estimator == "median":
        est, low, high = _median_ci(frame, keys, agg.index, stats.norm.ppf(0.5 + level / 2))
    out = agg.index.to_frame(index=False)
    trans = np.exp if log else np.asarray
    out[y], out[f"{y}_low"], out[f"{y}_high"] = trans(est), trans(low), trans(high)
    out[f"{y}_count"] = n
    return out  # groups in order of first appearance (seaborn keeps that order)


def _median_ci(frame: pd.DataFrame, keys: list[str], index: pd.Index, z: float):
    """Median of ``frame["_v"]`` per ``keys`` group, in the order of ``index`` (the groups), and
    the order statistics of 0-based ranks floor(n/2 - z sqrt(n)/2) - 1 and
    ceil(n/2 + z sqrt(n)/2), clipped to the group: three arrays of len(index)."""
    groups = frame.groupby(keys, sort=False, observed=True)["_v"]
    est = groups.median().reindex(index).to_numpy()
    n = groups.count().reindex(index).to_numpy()
    lo = np.clip(np.floor(n / 2 - z * np.sqrt(n) / 2), 1, n).astype(int) - 1
    hi = np.clip(np.ceil(1 + n / 2 + z * np.sqrt(n) / 2), 1, n).astype(int) - 1
    ranked = frame.assign(_r=groups.rank(method="first").astype(int) - 1)
    values = ranked.set_index([*keys, "_r"])["_v"]
    groups_at = index.to_frame(index=False)
    low, high = (
        values.reindex(pd.MultiIndex.from_frame(groups_at.assign(_r=r))).to_numpy()
        for r in (lo, hi)
    )
    return est, low, high


def mean_ci(values, log: bool = False, level: float = 0.95):
    """``(estimate, low, high)`` of one sample, as :func:`summarize` computes per group."""
    s = summarize(
        pd.DataFrame({"x": 0, "y": np.asarray(values, dtype=float)}), "x", "y", log=log, level=level
    )
    if s.empty:
        return (np.nan, np.nan, np.nan)
    return tuple(float(s.loc[0, c]) for c in ("y", "y_low", "y_high"))


def hue_palette(table, hue, palette=None):
    """An explicit level -> colour dict (categorical; a sequential map for numeric hues).

    Figures drawn from different tables share it to colour the same level alike. ``palette``:
    a dict (returned as is), a seaborn palette name, or None for the theme's colours.
    """
    if hue is None or isinstance(palette, dict):
        return palette
    levels = list(pd.unique(table[hue].dropna()))
    if pd.api.types.is_numeric_dtype(table[hue]) and not pd.api.types.is_bool_dtype(table[hue]):
        levels = sorted(levels)
        colors = sns.color_palette(palette or "viridis", len(levels))
    else:
        colors = sns.color_palette(palette, len(levels))
    return dict(zip(levels, colors, strict=True))


def _bands(ax, agg, x, y, hue, style, palette, alpha=0.2):
    """Shade ``y_low .. y_high`` for every line (hue, style) drawn on ``ax``."""
    keys = [k for k in (hue, style) if k is not None]
    groups = agg.groupby(keys, sort=False, observed=True) if keys else [((), agg)]
    for level, part in groups:
        level = level if isinstance(level, tuple) else (level,)
        if (part[f"{y}_count"] < 2).all():
            continue
        color = palette[level[0]] if hue is not None else sns.color_palette()[0]
        part = part.sort_values(x)
        ax.fill_between(
            part[x], part[f"{y}_low"], part[f"{y}_high"], color=color, alpha=alpha, linewidth=0
        )


def line_with_band(
    table: pd.DataFrame,
    x: str,
    y: str,
    hue: str | None = None,
    style: str | None = None,
    ax=None,
    logy: bool = False,
    logx: bool = False,
    *,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    band: bool = True,
    markers: bool = False,
    palette=None,
    references: Sequence[tuple[float, str]] = (),
):
    """Mean of ``y`` against ``x`` with a 95% confidence band over the rows that share ``x``.

    Rows repeated over seeds (or samples) become the band (:func:`summarize`: the mean and its
    Student-t interval; with ``logy`` both on the logs, i.e. a geometric mean).

    Parameters
    ----------
    table : DataFrame
        Tidy table with columns ``x``, ``y`` and the ``hue``/``style`` parameters.
    x, y : str
        Columns on the axes.
    hue, style : str, optional
        Parameter columns that set colour and line style (the legend names them).
    ax : matplotlib Axes, optional
        Draw into this axes; otherwise a new figure is made.
    logy, logx : bool
        Log scales (for norms that span decades).
    band : bool
        Shade the confidence band.
    references : sequence of (float, str)
        Horizontal theory lines ``(y, label)`` (e.g. a stability threshold), each drawn black and
        dashed (:func:`theory_line`) from the smallest to the largest ``x`` drawn (rows with a
        finite ``y``), with ``label`` as its legend entry.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the axes.
    """
    references = [(finite_float("references level", y), str(text)) for y, text in references]
    fig, ax = _new_ax(ax)
    agg = summarize(table, x, y, [hue, style], log=logy)
    palette = hue_palette(agg, hue, palette)
    sns.lineplot(
        data=agg,
        x=x,
        y=y,
        hue=hue,
        style=style,
        ax=ax,
        estimator=None,
        markers=markers,
        palette=palette,
        sort=True,
    )
    if band:
        _bands(ax, agg, x, y, hue, style, palette)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ends = [agg[x].min(), agg[x].max()]
    for level, text in references:
        theory_line(ax, ends, [level, level], text)
    _label_axes(
        ax, label(x) if xlabel is None else xlabel, label(y) if ylabel is None else ylabel, title
    )
    return fig


def facets(
    table: pd.DataFrame,
    x: str,
    y: str | dict[str, str],
    *,
    hue: str | None = None,
    style: str | None = None,
    col: str | None = None,
    row: str | None = None,
    col_wrap: int | None = None,
    logy: bool = False,
    logx: bool = False,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    band: bool = True,
    sharey: bool = True,
    height: float = 3.0,
    aspect: float = 1.3,
    palette=None,
    theory: pd.DataFrame | None = None,
    theory_style: str | None = None,
    hlines: Sequence[tuple[float, str, str]] = (),
    events: pd.DataFrame | None = None,
    units: str | None = None,
    estimator: str = "mean",
    markers: bool = False,
):
    """A grid of :func:`line_with_band` panels, one per value of ``col`` (and ``row``).

    Same band and log conventions as :func:`line_with_band`; ``sharey=False`` for rows of
    different quantities. Panel titles name the ``col``/``row`` parameter and its value
    ("T = 20"), except for a ``row`` named ``"variable"`` (quantities melted into one column, as
    for ``y`` given as a dict), whose values are the titles.

    Parameters
    ----------
    table : DataFrame
        Tidy table with columns ``x``, ``y`` and the ``hue``/``style``/``col``/``row`` parameters.
    x : str
        Column on the horizontal axis.
    y : str or dict of str to str
        Column on the vertical axis, or ``{column: name}`` for several quantities, one row of
        panels each, in the order given and titled by ``name``: the table is melted into the
        columns ``"variable"`` (the names; it becomes ``row``, which must then be None) and
        ``"value"`` (the y column for ``theory`` and ``events``).
    theory : DataFrame, optional
        Predictions to overlay, shape (m, ...): columns ``x``, ``y`` and the ``row``/``col``/``hue``
        parameters. Each (row, col, hue[, theory_style]) group is drawn as a line in its panel, in
        the colour of its hue level; rows with a non-finite ``y`` are left out. The panels keep the
        y-range of the data (a theory line never rescales them).
    theory_style : str, optional
        A column of ``theory`` whose levels get the line styles ``--``, ``:``, ``-.`` and
        dash-dot-dot (at most four levels, in order of first appearance); all dashed without it.
    hlines : sequence of (float, str, str)
        Horizontal reference lines ``(y, linestyle, color)`` in every panel (thresholds, chance
        levels).
    events : DataFrame, optional
        Points to mark, shape (k, ...): columns ``x``, ``y`` and the ``row``/``col`` parameters;
        each row is drawn in its panel as a red cross above the lines (e.g. steps that raised the
        loss).
    units : str, optional
        A column (e.g. ``"seed"``) whose levels are drawn as separate thin lines, without a band
        or mean: for a log axis over which the runs spread by decades.
    estimator : {"mean", "median"}
        The line drawn and its band (:func:`summarize`): the mean and its Student-t interval,
        or the median and its order-statistic interval.
    markers : bool
        Tell the ``style`` levels apart by marker on solid lines instead of by dash pattern, so
        that dashed lines keep one meaning (theory).

    Returns
    -------
    matplotlib.figure.Figure
        The figure of the seaborn FacetGrid.
    """
    theme()
    if isinstance(y, dict):
        if row is not None:
            raise ValueError(f"row must be None when y is a dict of columns; got row={row!r}")
        require_columns("table", table, [x, hue, style, col, units, *y])
        ids = [c for c in dict.fromkeys([x, hue, style, col, units]) if c is not None]
        table = table.melt(id_vars=ids, value_vars=list(y))
        table["variable"] = table["variable"].map(y)
        y, row = "value", "variable"
    if theory is not None:
        require_columns("theory", theory, [x, y, row, col, hue, theory_style])
        if theory_style is not None and theory[theory_style].nunique() > len(_STYLES):
            raise ValueError(
                f"theory_style must have at most {len(_STYLES)} levels; got "
                f"{theory[theory_style].nunique()} in column {theory_style!r}"
            )
    if events is not None:
        require_columns("events", events, [x, y, row, col])
    if units is None:
        agg = summarize(table, x, y, [row, col, hue, style], log=logy, estimator=estimator)
    else:  # the runs themselves, one thin line each
        require_columns("table", table, [units])
        agg = table[[c for c in dict.fromkeys([x, y, row, col, hue, style, units]) if c]]
        band = False
    palette = hue_palette(agg, hue, palette)
    grid = sns.relplot(
        data=agg,
        x=x,
        y=y,
        hue=hue,
        style=style,
        col=col,
        row=row,
        col_wrap=col_wrap,
        kind="line",
        units=units,
        linewidth=None if units is None else 0.8,
        markers=markers if style else False,
        dashes=not (markers and style),
        estimator=None,
        height=height,
        aspect=aspect,
        palette=palette,
        facet_kws={"sharey": sharey, "margin_titles": bool(row and col)},
        sort=True,
    )
    for key, ax in grid.axes_dict.items() if (col or row) else [((), grid.ax)]:
        key = key if isinstance(key, tuple) else (key,)
        panel = dict(zip([k for k in (row, col) if k], key, strict=True))
        part = _in_panel(agg, panel)
        if band:
            _bands(ax, part, x, y, hue, style, palette)
        if logy:
            ax.set_yscale("log")
        if logx:
            ax.set_xscale("log")
        if theory is not None:
            _theory_lines(ax, theory, panel, x, y, hue, theory_style, palette)
        for level, linestyle, color in hlines:
            ax.axhline(level, ls=linestyle, color=color, lw=1)
        if events is not None:
            marks = _in_panel(events, panel)
            ax.scatter(marks[x], marks[y], marker="x", color="red", zorder=5)
    ytext = label(y) if ylabel is None else ylabel
    grid.set_axis_labels(label(x) if xlabel is None else xlabel, ytext)
    if ytext and row is not None and len(grid.row_names) > 1:  # one label for all rows: a
        grid.set_ylabels("")  # long one repeated per row overlaps its neighbours
        grid.figure.supylabel(ytext, x=0.0, ha="left", fontsize=plt.rcParams["axes.labelsize"])
    if col or row:
        grid.set_titles(
            col_template="{col_var} = {col_name}",
            row_template="{row_name}" if row == "variable" else "{row_var} = {row_name}",
        )
    if title:  # above the panels' own titles; `save` crops to what is drawn
        grid.figure.suptitle(title, y=1.0, va="bottom")
    return grid.figure


_STYLES = ("--", ":", "-.", (0, (5, 2, 1, 2, 1, 2)))  # theory line styles, in order of use


def _label_axes(ax, xlabel, ylabel, title):
    """Set the axis labels of ``ax`` and, when given, its title."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)


def _in_panel(frame, panel):
    """The rows of ``frame`` whose ``panel`` columns ({column: level}) hold the panel's levels."""
    for name, value in panel.items():
        frame = frame[frame[name] == value]
    return frame


def _theory_lines(ax, theory, panel, x, y, hue, style, palette):
    """Draw the rows of ``theory`` that belong to ``panel`` ({column: level}) on ``ax``."""
    part = _in_panel(
        theory[np.isfinite(pd.to_numeric(theory[y], errors="coerce").astype(float))], panel
    )
    styles = {} if style is None else dict(zip(pd.unique(theory[style]), _STYLES, strict=False))
    keys = [k for k in (hue, style) if k is not None]
    ylim = ax.get_ylim()
    for level, line in part.groupby(keys, sort=False) if keys else [((), part)]:
        level = dict(zip(keys, level if isinstance(level, tuple) else (level,), strict=True))
        color = palette.get(level[hue], "black") if hue is not None else "black"
        linestyle = styles[level[style]] if style is not None else "--"
        line = line.sort_values(x)
        ax.plot(line[x], line[y], linestyle=linestyle, color=color, lw=1.2)
    ax.set_ylim(ylim)


def theory_line(ax, x, y, label: str, color=None, **kwargs):
    """Overlay a theoretical prediction as a dashed line (the project's convention).

    Parameters
    ----------
    ax : matplotlib Axes
    x, y : array_like
        The prediction's abscissae and values.
    label : str
        Legend entry, e.g. ``"theory: chi1^(L-l)"``.
    color : optional
        Line colour (default: black, or pass the colour of the matching data line).
    """
    kwargs.setdefault("linewidth", 1.5)
    (line,) = ax.plot(
        np.asarray(x), np.asarray(y), linestyle="--", color=color or "black", label=label, **kwargs
    )
    ax.legend()
    return line


def heatmap(
    table: pd.DataFrame,
    x: str,
    y: str,
    value: str,
    ax=None,
    *,
    log: bool = False,
    cmap: str = "viridis",
    annot: bool = False,
    fmt: str = ".2g",
    center: float | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    colorbar_label: str | None = None,
    title: str | None = None,
    aggfunc: str = "mean",
):
    """Heat map of ``value`` over two parameters (the mean over seeds and repeated rows).

    Parameters
    ----------
    table : DataFrame
    x, y : str
        Parameter columns on the horizontal and vertical axes (y increases upwards).
    value : str
        Column to colour by.
    log : bool
        Logarithmic colour scale (positive values).
    center : float, optional
        Centre of a diverging colour map (e.g. 0 for a log-ratio).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = _new_ax(ax, figsize=(6.0, 4.5))
    pivot = table.pivot_table(index=y, columns=x, values=value, aggfunc=aggfunc)
    pivot = pivot.sort_index(ascending=False)
    norm = None
    if log:
        positive = pivot.to_numpy()[np.isfinite(pivot.to_numpy()) & (pivot.to_numpy() > 0)]
        if positive.size:
            norm = LogNorm(vmin=positive.min(), vmax=positive.max())
    sns.heatmap(
        pivot,
        ax=ax,
        cmap=cmap,
        annot=annot,
        fmt=fmt,
        center=center,
        norm=norm,
        cbar_kws={"label": colorbar_label or label(value)},
    )
    _label_axes(
        ax, label(x) if xlabel is None else xlabel, label(y) if ylabel is None else ylabel, title
    )
    return fig


def mesh(
    table: pd.DataFrame,
    x: str,
    y: str,
    value: str,
    ax=None,
    *,
    center: float | None = None,
    cmap: str = "viridis",
    colorbar_label: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    aggfunc: str = "mean",
    figsize: tuple[float, float] = (6.0, 4.5),
    theory: pd.DataFrame | None = None,
    theory_label: str = "theory",
):
    """Colour map of ``value`` over two numeric parameters, on axes in data coordinates.

    Unlike :func:`heatmap` (one labelled cell per value), the axes here are numeric, so that a
    theory curve (:func:`theory_line`, e.g. a critical line) can be drawn over the map. Each cell
    is centred on its grid point (uneven grids are fine).

    Parameters
    ----------
    table : DataFrame
        Tidy table with columns ``x``, ``y`` and ``value``; repeated rows of a grid point are
        reduced by ``aggfunc``, giving an (n_y, n_x) grid.
    x, y : str
        Numeric parameter columns on the horizontal and vertical axes (y increases upwards).
    value : str
        Column to colour by.
    center : float, optional
        Centre of a diverging colour map, with limits ``center -+ max |value - center|`` so that
        equal distances from the centre get equal colour strength (e.g. 0 for a growth rate).
    cmap : str
        Colour map name (a diverging one such as ``"RdBu_r"`` with ``center``).
    theory : DataFrame, optional
        A predicted curve over the same plane, shape (m, ...): columns ``x`` and ``y``, drawn in
        row order as a dashed line (:func:`theory_line`) with the legend entry ``theory_label``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure; its first axes holds the map, the second the colour bar. The axes' limits
        are the map's edges, so curves drawn over it later are clipped to the map as well.
    """
    require_columns("table", table, [x, y, value])
    if theory is not None:
        require_columns("theory", theory, [x, y])
    fig, ax = _new_ax(ax, figsize=figsize)
    pivot = table.pivot_table(index=y, columns=x, values=value, aggfunc=aggfunc)
    grid = pivot.to_numpy(dtype=float)
    norm = None
    if center is not None:
        center = finite_float("center", center)
        lim = np.nanmax(np.abs(grid - center))
        lim = lim if lim > 0 else 1.0
        norm = TwoSlopeNorm(center, center - lim, center + lim)
    cells = ax.pcolormesh(pivot.columns, pivot.index, grid, shading="nearest", cmap=cmap, norm=norm)
    fig.colorbar(cells, ax=ax, label=colorbar_label or label(value))
    ax.set_xlim(ax.get_xlim())  # fixed: a curve drawn over the map does not widen the axes
    ax.set_ylim(ax.get_ylim())
    if theory is not None:
        theory_line(ax, theory[x], theory[y], theory_label)
    _label_axes(
        ax, label(x) if xlabel is None else xlabel, label(y) if ylabel is None else ylabel, title
    )
    return fig


def measured_vs_theory(
    table: pd.DataFrame,
    theory: str,
    measured: str,
    *,
    hue: str | None = None,
    yerr: str | None = None,
    ax=None,
    hue_label: str | None = None,
    identity_label: str = "theory: measured = predicted",
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (6.5, 5.0),
):
    """Measured values against their predictions, one marker per row, and the identity dashed.

    Parameters
    ----------
    table : DataFrame
        One row per compared point (n rows), with columns ``theory``, ``measured`` and the
        optional ``hue`` and ``yerr``.
    theory, measured : str
        Columns on the horizontal (prediction) and vertical (measurement) axes.
    hue : str, optional
        Parameter column; each level is one series with a legend entry ``"{hue_label} = level"``.
    yerr : str, optional
        Column of symmetric error bars (e.g. the sd over seeds; NaN is drawn as 0).
    identity_label : str
        Legend entry of the line measured = predicted.

    Returns
    -------
    matplotlib.figure.Figure
    """
    require_columns("table", table, [theory, measured, hue, yerr])
    fig, ax = _new_ax(ax, figsize=figsize)
    for level, part in table.groupby(hue, sort=True) if hue else [(None, table)]:
        text = f"{level:g}" if isinstance(level, numbers.Real) else str(level)
        ax.errorbar(
            part[theory],
            part[measured],
            yerr=None if yerr is None else part[yerr].fillna(0.0),
            fmt="o",
            ms=4,
            capsize=2,
            label=None if hue is None else f"{hue_label or hue} = {text}",
        )
    both = table[[theory, measured]]
    ends = [both.min().min(), both.max().max()]
    theory_line(ax, ends, ends, identity_label)
    _label_axes(
        ax,
        label(theory) if xlabel is None else xlabel,
        label(measured) if ylabel is None else ylabel,
        title,
    )
    ax.legend(loc="upper left")
    return fig


def rates(
    table: pd.DataFrame,
    x: str,
    rate: str,
    *,
    hue: str,
    ax=None,
    labels: dict | None = None,
    marker: str = "o",
    dodge: float = 0.0,
    log_base: float | None = None,
    figsize: tuple[float, float] = (6.0, 4.0),
):
    """Rates with their intervals as error bars against ``x``, one series per ``hue`` level.

    Parameters
    ----------
    table : DataFrame
        One row per point (n rows) with columns ``x``, ``hue`` and the rate's
        ``{rate}_rate``, ``{rate}_lo`` and ``{rate}_hi`` (the estimate and its interval, as in
        :func:`rnnsim.train.success_rates`).
    x : str
        Column on the horizontal axis.
    rate : str
        Name of the rate, e.g. ``"success"``.
    hue : str
        Parameter column; its levels, in order of first appearance, are the series, drawn in the
        colours of the axes' cycle.
    labels : dict, optional
        Legend entry of each hue level (default: the level as text); no legend is drawn.
    marker : str
        Marker of the estimates.
    dodge : float
        Series k of m is drawn at ``x * (1 + dodge * (k - (m - 1) / 2))``, so that the bars of one
        ``x`` stand side by side on a log axis.
    log_base : float, optional
        A log-scaled x-axis of this base, ticked at the values of ``x`` (no minor ticks).

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    An interval end on the wrong side of the estimate is drawn as no bar on that side.
    """
    mid, low, high = f"{rate}_rate", f"{rate}_lo", f"{rate}_hi"
    require_columns("table", table, [x, hue, mid, low, high])
    dodge = finite_float("dodge", dodge)
    if log_base is not None and finite_float("log_base", log_base) <= 1:
        raise ValueError(f"log_base must be > 1; got {log_base}")
    levels = list(pd.unique(table[hue]))
    if labels is not None and any(level not in labels for level in levels):
        missing = [level for level in levels if level not in labels]
        raise ValueError(f"labels must name every level of {hue!r}; missing {missing}")
    fig, ax = _new_ax(ax, figsize=figsize)
    for k, level in enumerate(levels):
        part = table[table[hue] == level]
        ax.errorbar(
            part[x] * (1 + dodge * (k - (len(levels) - 1) / 2)),
            part[mid],
            yerr=np.clip([part[mid] - part[low], part[high] - part[mid]], 0, None),
            marker=marker,
            capsize=3,
            label=str(level) if labels is None else labels[level],
        )
    if log_base is not None:
        ticks = sorted(table[x].unique())
        ax.set_xscale("log", base=log_base)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
    return fig


#: The theory curves of :func:`cliff_surface`: column -> (colour, legend entry or None).
_CLIFF_CURVES = {
    "b_basin_boundary": ("red", "basin boundary of h0"),
    "b_saddle_node_lower": ("orange", "saddle-node curves"),
    "b_saddle_node_upper": ("orange", None),
}


def cliff_surface(
    surface: pd.DataFrame,
    wall: pd.DataFrame,
    theory: pd.DataFrame,
    paths: pd.DataFrame,
    *,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    colorbar_label: str = "loss E",
    title: str | None = None,
    figsize: tuple[float, float] = (7.5, 5.5),
):
    """The single-unit loss surface over (w, b) with its wall, fixed-point theory and GD paths.

    Parameters
    ----------
    surface : DataFrame
        The loss on an (n_b, n_w) grid, one row per point: columns ``w``, ``b``, ``loss``
        (:func:`rnnsim.cliff.cliff_surface`); drawn by :func:`mesh`.
    wall : DataFrame
        The located wall, shape (m, ...): columns ``w`` and ``b_cliff``
        (:func:`rnnsim.cliff.cliff_line`), drawn as a thin white line.
    theory : DataFrame
        Shape (k, ...): columns ``w``, ``b_basin_boundary`` (drawn dashed red) and
        ``b_saddle_node_lower``, ``b_saddle_node_upper`` (dashed orange, one legend entry), as
        :func:`rnnsim.cliff.cliff_theory` returns them.
    paths : DataFrame
        Gradient-descent paths (:func:`rnnsim.cliff.cliff_trajectories`), rows in step order:
        columns ``start``, ``clipping`` (``"none"`` for unclipped steps), ``w`` and ``b``. Each
        (start, clipping) group is one line, magenta with markers when unclipped, cyan otherwise;
        its legend entry names the start, the clipping and the end point (rounded).
    xlim, ylim : (float, float)
        Limits of the axes (the surface's ranges of w and b).
    colorbar_label, title : str
        Label of the colour bar; title of the axes.

    Returns
    -------
    matplotlib.figure.Figure
        One axes with the map and the curves, the legend below it (off the map), and the colour
        bar.
    """
    require_columns("surface", surface, ["w", "b", "loss"])
    require_columns("wall", wall, ["w", "b_cliff"])
    require_columns("theory", theory, ["w", *_CLIFF_CURVES])
    require_columns("paths", paths, ["start", "clipping", "w", "b"])
    fig = mesh(
        surface,
        "w",
        "b",
        "loss",
        colorbar_label=colorbar_label,
        figsize=figsize,
        xlabel="recurrent weight w",
        ylabel="bias b",
        title=title,
    )
    ax = fig.axes[0]
    ax.plot(wall["w"], wall["b_cliff"], color="white", lw=1, label="cliff (bisection, exact)")
    for column, (color, text) in _CLIFF_CURVES.items():
        ax.plot(theory["w"], theory[column], color=color, ls="--", lw=1.5, label=text)
    for (start, clipping), g in paths.groupby(["start", "clipping"]):
        style = {"color": "magenta", "marker": "o"} if clipping == "none" else {"color": "cyan"}
        end = f", ends at ({g['w'].iloc[-1]:.0f}, {g['b'].iloc[-1]:.0f})"
        ax.plot(g["w"], g["b"], ms=3, lw=1, **style, label=f"GD {start}, clip {clipping}{end}")
    ax.set(xlim=xlim, ylim=ylim)
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(0.0, -0.12), ncol=2)
    return fig


def levels(table: pd.DataFrame, column: str, sep: str = ", ") -> str:
    """Every value of ``column``, sorted and joined, for a title ("0.1, 0.5")."""
    return sep.join(str(v) for v in sorted(table[column].unique()))


def legend_outside(ax, title: str | None = None) -> None:
    """Move the legend of ``ax`` to the right of it (for figures with many hue levels)."""
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1.0), title=title)
