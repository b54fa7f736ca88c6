"""Plots of stored runs, and runs side by side: ``rnnsim plot`` and ``rnnsim compare``.

`plot` draws any columns of one stored run's tidy table (`rnnsim.runs.load`) in the project's
seaborn theme (`rnnsim.plots.facets`): ``x`` against ``y``, coloured by ``hue``, in panels by
``col`` and ``row``, with a band over the repeated rows (seeds, samples), and the experiment's
theory dashed where it provides one (``Experiment.theory``). `compare` does the same for several
runs, of one experiment or of several, concatenated with a ``run`` column (``rnn_time:long``)
that is the hue by default, and `compare_text` puts their claims and summaries side by side.
The ``rnnsim`` command calls these same functions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from rnnsim import runs
from rnnsim.experiment import UsageError, find_experiments, load_experiment

__all__ = ["AGGS", "BANDS", "compare", "compare_text", "plot"]

#: The line drawn (``--agg``) and the spread around it (``--band``).
AGGS = ("mean", "median")
BANDS = ("ci", "seeds", "none")
#: Panels a figure may have along one direction before it needs ``--where``.
MAX_PANELS = 12


def _where(table: pd.DataFrame, where: str | None, what: str) -> pd.DataFrame:
    """The rows of ``table`` that ``where`` (a `DataFrame.query` expression) selects."""
    if where is None:
        return table
    try:
        selected = table.query(where)
    except Exception as exc:  # noqa: BLE001 - query raises a dozen kinds; all mean bad input
        raise UsageError(
            f"--where {where!r} does not parse on {what} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); columns: {', '.join(table.columns)}"
        ) from None
    if selected.empty:
        raise UsageError(f"--where {where!r} selects no rows of {what}")
    return selected


def _check(table: pd.DataFrame, columns: dict, what: str) -> None:
    """Each ``{option: column}`` (None = unused) names a column of ``table``."""
    for option, column in columns.items():
        if column is not None and column not in table.columns:
            raise UsageError(
                f"--{option}: no column {column!r} in {what}; columns: {', '.join(table.columns)}"
            )
    for option in ("col", "row"):
        column = columns.get(option)
        if column is not None and table[column].nunique() > MAX_PANELS:
            raise UsageError(
                f"--{option} {column}: {table[column].nunique()} values, more than {MAX_PANELS} "
                f"panels; choose another column or select values with --where"
            )


def _averaged(data: pd.DataFrame, axes, shown, by: str | None = None) -> str:
    """Words for the grid ``axes`` that vary in ``data`` (within a ``by`` group: a run) but that
    no option in ``shown`` draws, so that the line averages over them: "; mean over gain 0.9, 3"
    (empty when there are none)."""
    hidden = [a for a in axes if a in data.columns and a not in shown and a != "seed"]
    groups = [data] if by is None else [part for _, part in data.groupby(by, sort=False)]
    varying = [a for a in hidden if any(part[a].nunique() > 1 for part in groups)]
    if not varying:
        return ""
    return "; mean over " + "; ".join(
        f"{a} {', '.join(map(str, pd.unique(data[a])))}" for a in varying
    )


def _theory(name: str, table: pd.DataFrame, table_name, where, needed, experiments):
    """The experiment's theory curves for ``table`` (``Experiment.theory``), or None when it has
    none, or none with the ``needed`` columns."""
    script = find_experiments(experiments).get(name)
    if script is None:
        return None
    experiment = load_experiment(script)
    if experiment.theory is None:
        return None
    if experiment.tables is None:
        curves = experiment.theory(table)
    else:
        curves = (experiment.theory({table_name: table}) or {}).get(table_name)
    if not isinstance(curves, pd.DataFrame) or not set(needed) <= set(curves.columns):
        return None
    try:
        return curves.query(where) if where else curves
    except Exception:  # noqa: BLE001 - a theory without the --where columns is not drawn
        return None


def _draw(table, x, y, *, hue, col, row, style, logy, agg, band, theory, title):
    """`rnnsim.plots.facets` with the ``--agg``/``--band`` choices: ``seeds`` draws each seed's
    own line (its ``agg`` over the rows it repeats, e.g. samples), ``none`` no band."""
    from rnnsim import plots

    if agg not in AGGS:
        raise UsageError(f"--agg: {agg!r} is not one of {', '.join(AGGS)}")
    if band not in BANDS:
        raise UsageError(f"--band: {band!r} is not one of {', '.join(BANDS)}")
    units = None
    if band == "seeds":
        if "seed" not in table.columns:
            raise UsageError("--band seeds: the table has no 'seed' column; use ci or none")
        by = [row, col, hue, style, "seed"]
        table = plots.summarize(table, x, y, by, log=logy, estimator=agg)
        units = "seed"
    n_cols = table[col].nunique() if col else 1
    return plots.facets(
        table,
        x,
        y,
        hue=hue,
        style=style,
        col=col,
        row=row,
        col_wrap=4 if row is None and n_cols > 4 else None,
        logy=logy,
        band=band == "ci",
        estimator=agg,
        units=units,
        theory=theory,
        title=title,
    )


def plot(
    run: str,
    x: str,
    y: str,
    *,
    hue: str | None = None,
    col: str | None = None,
    row: str | None = None,
    style: str | None = None,
    where: str | None = None,
    logy: bool = False,
    agg: str = "mean",
    band: str = "ci",
    table: str | None = None,
    out: str | os.PathLike = "results",
    experiments: str | os.PathLike | None = None,
    theory: bool = True,
):
    """Draw columns of one stored run's tidy table (what ``rnnsim plot`` draws).

    Parameters
    ----------
    run : str
        ``"NAME"`` (the latest run) or ``"NAME:LABEL"``, e.g. ``"rnn_time:quick"``.
    x, y : str
        Columns on the axes.
    hue, col, row, style : str, optional
        Columns that set the colour, the panel column, the panel row and the line style.
    where : str, optional
        Rows to keep, as a `pandas.DataFrame.query` expression (``"T >= 100 and init == 'gaussian'"``).
    logy : bool
        Log scale on y (the line and band are then geometric means).
    agg : {"mean", "median"}
        The line: the mean or the median of the rows that share (x, hue, col, row, style).
    band : {"ci", "seeds", "none"}
        Around it: the 95 % confidence interval of that mean (median), one thin line per seed
        instead of the band, or nothing.
    table : str, optional
        For an experiment with several tables: which one.
    out : path
        The results root.
    experiments : path, optional
        Folder of experiment scripts, to find ``Experiment.theory`` (default: as ``rnnsim run``).
    theory : bool
        Overlay the experiment's theory curves, dashed, when it provides them for these columns.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    UsageError (a ValueError)
        For an unknown experiment, run, table or column (listing the available ones), a
        ``where`` that does not parse, or an unknown ``agg``/``band``.
    """
    name, label = runs.split_spec(run)
    label, folder = runs.resolve(name, label, out)
    what = f"{name}:{label}" + (f" (table {table})" if table else "")
    data = _where(runs.load(name, label, out, table), where, what)
    _check(data, {"x": x, "y": y, "hue": hue, "col": col, "row": row, "style": style}, what)
    curves = None
    if theory:
        needed = [c for c in (x, y, hue, col, row) if c is not None]
        curves = _theory(name, data, table, where, needed, experiments)
    shown = {x, y, hue, col, row, style}
    grid = runs.manifest(folder).get("grid", {})
    title = what + (f", {where}" if where else "") + _averaged(data, grid, shown)
    return _draw(
        data,
        x,
        y,
        hue=hue,
        col=col,
        row=row,
        style=style,
        logy=logy,
        agg=agg,
        band=band,
        theory=curves,
        title=title,
    )


def _folder(spec: str, out) -> Path:
    return runs.resolve(*runs.split_spec(spec), out)[1]


def _tables(specs: Sequence[str], out, table) -> dict[str, pd.DataFrame]:
    """Each run's table by its full name ``NAME:LABEL`` (``table`` picks one of several)."""
    if len(specs) < 2:
        raise UsageError(f"compare needs at least two runs (NAME:LABEL), got {list(specs)}")
    loaded = {}
    for spec in specs:
        name, label = runs.split_spec(spec)
        label, folder = runs.resolve(name, label, out)
        several = runs.tables_of(folder) is not None
        loaded[f"{name}:{label}"] = runs.load(name, label, out, table if several else None)
    if len(loaded) < len(specs):
        raise UsageError(f"compare: a run is given twice in {list(specs)}")
    return loaded


def compare(
    specs: Sequence[str],
    x: str,
    y: str,
    *,
    hue: str | None = "run",
    col: str | None = None,
    row: str | None = None,
    style: str | None = None,
    where: str | None = None,
    logy: bool = False,
    agg: str = "mean",
    band: str = "ci",
    table: str | None = None,
    out: str | os.PathLike = "results",
):
    """Draw several stored runs together (what ``rnnsim compare`` draws).

    The runs' tables are concatenated on the columns the figure uses, with a ``run`` column
    holding each run's name (``"rnn_time:long"``), which is the hue unless ``hue`` says
    otherwise. The runs may be of different experiments when they share those columns.

    Parameters
    ----------
    specs : sequence of str
        Two or more runs, each ``"NAME:LABEL"`` (or ``"NAME"``, its latest run).
    x, y, hue, col, row, style, where, logy, agg, band : as for `plot`
        ``where`` may also select on ``run``. When ``hue`` is another column, ``run`` goes to
        the first of ``style``, ``row`` and ``col`` left free.
    table : str, optional
        For runs of experiments with several tables: which one (runs with one table ignore it).
    out : path
        The results root.

    Returns
    -------
    matplotlib.figure.Figure
    """
    loaded = _tables(specs, out, table)
    used = {"x": x, "y": y, "hue": hue, "col": col, "row": row, "style": style}
    if "run" not in used.values():  # the runs must stay apart: the first free option shows them
        free = [option for option in ("style", "row", "col") if used[option] is None]
        if not free:
            raise UsageError(
                "compare: --hue, --style, --row and --col are all taken; one of "
                "them must be 'run' to tell the runs apart"
            )
        used[free[0]] = "run"
        hue, col, row, style = (used[o] for o in ("hue", "col", "row", "style"))
    wanted = [c for c in dict.fromkeys(used.values()) if c not in (None, "run")]
    shared = set.intersection(*(set(t.columns) for t in loaded.values()))
    for spec, data in loaded.items():
        missing = {o: c for o, c in used.items() if c not in (None, "run") and c not in data}
        if missing:
            option, column = next(iter(missing.items()))
            raise UsageError(
                f"--{option}: no column {column!r} in {spec}; columns every run has: "
                f"{', '.join(sorted(shared))}"
            )
    axes = {a: None for spec in loaded for a in runs.manifest(_folder(spec, out)).get("grid", {})}
    keep = wanted + (["seed"] if "seed" in shared else [])
    keep += [a for a in axes if a in shared and a not in keep]  # to say what the lines average
    keep += [c for c in shared if c not in keep and where and c in where]
    frames = [t[keep].assign(run=spec) for spec, t in loaded.items()]
    data = _where(pd.concat(frames, ignore_index=True), where, "the runs")
    _check(data, used, "the runs")
    title = " vs ".join(loaded) + (f", {where}" if where else "")
    title += _averaged(data, [a for a in axes if a in data.columns], set(used.values()), "run")
    return _draw(
        data,
        x,
        y,
        hue=hue,
        col=col,
        row=row,
        style=style,
        logy=logy,
        agg=agg,
        band=band,
        theory=None,
        title=title,
    )


def default_path(specs: Sequence[str], x: str, y: str, out: str | os.PathLike) -> Path:
    """Where a plot (one run) or comparison (several) goes without ``--save``: the run's
    ``plots/X_Y.png``, or ``OUT/compare/X_Y__RUN1__RUN2.png``."""
    if len(specs) == 1:
        name, label = runs.split_spec(specs[0])
        _, folder = runs.resolve(name, label, out)
        return folder / "plots" / f"{x}_{y}.png"
    names = []
    for spec in specs:
        name, label = runs.split_spec(spec)
        names.append(f"{name}.{runs.resolve(name, label, out)[0]}")
    return Path(out) / "compare" / ("__".join([f"{x}_{y}", *names])[:200] + ".png")


def _short(specs: Sequence[str]) -> dict[str, str]:
    """Each run's name for a column: its label when all runs are of one experiment."""
    names = {s.partition(":")[0] for s in specs}
    return {s: s.partition(":")[2] if len(names) == 1 else s for s in specs}


def _claims_side_by_side(folders: dict[str, Path]) -> list[str]:
    """One block per claim: its statement, then each run's status and numbers."""
    from rnnsim.claims import MARKS

    claims = {
        spec: pd.read_parquet(folder / "claims.parquet")
        for spec, folder in folders.items()
        if (folder / "claims.parquet").exists()
    }
    statements = list(dict.fromkeys(s for c in claims.values() for s in c["statement"]))
    if not statements:
        return ["claims: none stored"]
    width = max(len(spec) for spec in folders)
    lines = ["claims, run by run:"]
    for i, statement in enumerate(statements, start=1):
        lines.append(f"  {i}. {statement}")
        for spec, table in claims.items():
            row = table[table["statement"] == statement]
            if row.empty:
                lines.append(f"       {spec:<{width}}  (not a claim of this run)")
                continue
            status, detail = row["status"].iloc[0], row["detail"].iloc[0]
            lines.append(f"       {spec:<{width}}  {MARKS[status]} {status}: {detail}")
    return lines


def _summaries_side_by_side(folders: dict[str, Path]) -> tuple[pd.DataFrame | None, str]:
    """The summaries' shared numeric columns side by side, and a heading saying how.

    Rows are matched on the shared parameter columns (grid axes and text) that vary within a
    run; one constant within each run tells the runs apart (``T`` for quick vs ``--set T=1000``)
    or nothing, not the rows. Matched: one row per (quantity, key), one column per
    run and one per difference from the first run. When the keys do not identify the rows of
    every summary (a parameter that varies in one run and is absent from another), the rows do
    not correspond: the summaries are stacked instead, with a ``run`` column.
    """
    summaries, axes = {}, {"seed"}
    for spec, folder in folders.items():
        if (folder / "summary.parquet").exists():
            summaries[spec] = pd.read_parquet(folder / "summary.parquet")
            axes |= set(runs.manifest(folder).get("grid", {}))
    frames = list(summaries.values())
    shared = [c for c in frames[0].columns if all(c in f.columns for f in frames)] if frames else []
    numeric = {
        c
        for c in shared
        if all(
            pd.api.types.is_numeric_dtype(f[c]) and not pd.api.types.is_bool_dtype(f[c])
            for f in frames
        )
    }
    keys = [c for c in shared if c in axes or c not in numeric]
    values = [c for c in shared if c not in keys]
    if len(summaries) < 2 or not values:
        return None, "summaries: no shared numeric columns"
    keys = [k for k in keys if any(f[k].nunique(dropna=False) > 1 for f in frames)]
    short = _short(list(summaries))
    if not keys or any(f.duplicated(keys).any() for f in frames):
        stacked = [f[keys + values].assign(run=short[s]) for s, f in summaries.items()]
        heading = "summaries, one run after another (their rows do not correspond):"
        return pd.concat(stacked, ignore_index=True)[["run", *keys, *values]], heading
    columns = []
    for spec, frame in summaries.items():
        part = frame[keys + values].melt(
            id_vars=keys, value_vars=values, var_name="quantity", value_name="_value"
        )
        columns.append(part.set_index(["quantity", *keys])["_value"].rename(short[spec]))
    wide = pd.concat(columns, axis=1)
    first, *others = [short[s] for s in summaries]
    for name in others:
        wide[f"{name} - {first}"] = wide[name] - wide[first]
    order = {q: i for i, q in enumerate(values)}
    wide = wide.reset_index().sort_values("quantity", key=lambda q: q.map(order), kind="stable")
    return wide, f"summaries, side by side (differences: each run minus {first}):"


def compare_text(
    specs: Sequence[str], out: str | os.PathLike = "results", max_rows: int = 60
) -> str:
    """The claims of several stored runs side by side (status and numbers per run), and their
    summaries' shared numeric columns side by side with the differences from the first run."""
    folders = {}
    for spec in specs:
        name, label = runs.split_spec(spec)
        label, folder = runs.resolve(name, label, out)
        folders[f"{name}:{label}"] = folder
    lines = _claims_side_by_side(folders)
    wide, heading = _summaries_side_by_side(folders)
    lines.append(heading)
    if wide is not None:
        text = wide.to_string(
            index=False, float_format=lambda v: f"{v:.4g}", na_rep="-", max_rows=max_rows
        )
        lines += ["  " + line for line in text.splitlines()]
    return "\n".join(lines)
