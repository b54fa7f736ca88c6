"""Stored runs: what ``rnnsim run`` left in a results folder, listed and read back.

Every run of an experiment is stored under ``OUT/NAME/runs/LABEL/`` (see `rnnsim.experiment`),
and the latest one is mirrored into ``OUT/NAME/``. A run is named ``NAME:LABEL`` on the command
line (``rnn_time:quick``, ``rnn_time:long``); ``NAME`` alone is the latest run. This module reads
them: `stored_runs` lists them with their overrides, points, seeds, date and claims, `load`
returns a run's tidy table, `resolve` turns ``NAME[:LABEL]`` into its folder. Nothing here
computes or writes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from rnnsim.experiment import RUNS, SINGLE, UsageError

__all__ = [
    "load",
    "manifest",
    "resolve",
    "split_spec",
    "stored_experiments",
    "stored_runs",
    "tables_of",
]

#: The columns of `stored_runs`.
COLUMNS = [
    "experiment",
    "label",
    "latest",
    "quick",
    "overrides",
    "points",
    "seeds",
    "date",
    "pass",
    "fail",
    "not_checked",
    "folder",
]


def stored_experiments(out: str | os.PathLike = "results") -> list[str]:
    """The experiments with at least one stored run under ``out``, sorted."""
    return sorted(p.parent.name for p in Path(out).glob("*/manifest.json"))


def manifest(folder: Path) -> dict:
    """The manifest.json of a run folder (or of OUT/NAME, the latest run)."""
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def _latest_label(out: Path, name: str) -> str | None:
    """The label of the latest run of ``name`` (None for results written before runs had one)."""
    return manifest(out / name).get("label")


def split_spec(spec: str) -> tuple[str, str | None]:
    """``"NAME:LABEL"`` -> ``("NAME", "LABEL")``; ``"NAME"`` -> ``("NAME", None)``."""
    name, sep, label = str(spec).partition(":")
    if not name or (sep and not label):
        raise UsageError(f"a run is named NAME or NAME:LABEL (e.g. rnn_time:quick), got {spec!r}")
    return name, label or None


def resolve(
    name: str, run: str | None = None, out: str | os.PathLike = "results"
) -> tuple[str, Path]:
    """The label and folder of a stored run; ``run=None`` is the latest run.

    Raises
    ------
    UsageError
        For an experiment without stored runs (listing those that have some) or an unknown
        run (listing the stored ones).
    """
    out = Path(out)
    if not (out / name / "manifest.json").exists():
        stored = ", ".join(stored_experiments(out)) or "(none)"
        raise UsageError(
            f"no stored runs of experiment {name!r} in {str(out)!r} (run `rnnsim run {name} "
            f"--quick` first); experiments with runs: {stored}"
        )
    if run is None:
        label = _latest_label(out, name)
        return (label, out / name / RUNS / label) if label else ("latest", out / name)
    folder = out / name / RUNS / run
    if not (folder / "manifest.json").exists():
        labels = sorted(p.parent.name for p in (out / name / RUNS).glob("*/manifest.json"))
        raise UsageError(
            f"experiment {name!r} has no stored run {run!r}; stored runs: "
            f"{', '.join(labels) or '(none)'}"
        )
    return run, folder


def tables_of(folder: Path) -> list[str] | None:
    """The table names of the run stored in ``folder`` (None for a single-table experiment)."""
    tables = manifest(folder).get("tables")
    return list(tables) if tables else None


def load(
    name: str,
    run: str | None = None,
    out: str | os.PathLike = "results",
    table: str | None = None,
) -> pd.DataFrame:
    """A stored run's tidy table, as ``rnnsim run`` wrote it.

    Parameters
    ----------
    name : str
        The experiment, e.g. ``"rnn_time"``; ``"NAME:LABEL"`` is accepted too.
    run : str, optional
        The run's label (``"quick"``, ``"full"``, a ``--name``, a derived ``"quick_T=1000"``).
        Default: the latest run.
    out : path
        The results root (``rnnsim run --out``).
    table : str, optional
        For an experiment whose ``measure`` returns several tables (``Experiment.tables``): the
        one to load. Must be None for a single-table experiment.

    Returns
    -------
    pandas.DataFrame
        One observation a row, with the parameters and ``seed`` that produced it as columns.

    Raises
    ------
    UsageError (a ValueError)
        For an unknown experiment, run or table; the message lists what is stored.

    Examples
    --------
    >>> quick = rnnsim.load("rnn_time", run="quick")  # doctest: +SKIP
    >>> long = rnnsim.load("rnn_time:long")  # doctest: +SKIP
    """
    if run is None:
        name, run = split_spec(name)
    label, folder = resolve(name, run, out)
    names = tables_of(folder)
    if names is None:
        if table is not None and table != SINGLE:
            raise UsageError(f"{name}:{label} has a single table; leave --table (table=) out")
        return pd.read_parquet(folder / "table.parquet")
    if table not in names:
        what = "has several tables; choose one" if table is None else f"has no table {table!r}"
        raise UsageError(f"{name}:{label} {what} with --table (table=): {', '.join(names)}")
    return pd.read_parquet(folder / f"table_{table}.parquet")


def _row(name: str, folder: Path, latest: str | None) -> dict:
    stored = manifest(folder)
    statuses = [c.get("status") for c in stored.get("claims") or []]
    label = stored.get("label", "latest")
    return {
        "experiment": name,
        "label": label,
        "latest": label == latest,
        "quick": bool(stored.get("quick")),
        "overrides": " ".join(stored.get("set") or []),
        "points": stored.get("n_points"),
        "seeds": len(stored.get("seeds") or []),
        "date": stored.get("timings", {}).get("started", ""),
        "pass": statuses.count("pass"),
        "fail": statuses.count("fail"),
        "not_checked": statuses.count("not checked"),
        "folder": str(folder),
    }


def stored_runs(out: str | os.PathLike = "results", name: str | None = None) -> pd.DataFrame:
    """Every stored run under ``out`` (of ``name`` only, when given), one row each.

    Returns
    -------
    pandas.DataFrame
        Columns `COLUMNS`: ``experiment``, ``label``, ``latest`` (the run shown at
        ``OUT/NAME/``), ``quick``, ``overrides`` (the ``--set`` options), ``points``, ``seeds``
        (how many), ``date`` (when it started), ``pass``/``fail``/``not_checked`` (claims) and
        ``folder``; sorted by experiment, then date (runs of the same second in the order they
        were written).
    """
    out = Path(out)
    if name is not None:
        resolve(name, None, out)  # an error listing the stored experiments if it has no runs
    rows = []
    for experiment in stored_experiments(out) if name is None else [name]:
        latest = _latest_label(out, experiment)
        folders = sorted(p.parent for p in (out / experiment / RUNS).glob("*/manifest.json"))
        if latest is None:  # results written before runs had labels: the one run there
            latest = "latest"
            folders.append(out / experiment)
        rows += [_row(experiment, folder, latest) for folder in folders]
    table = pd.DataFrame(rows, columns=COLUMNS)
    # "date" has whole seconds: runs started within one second keep the order they were written in
    written = [(Path(f) / "manifest.json").stat().st_mtime_ns for f in table["folder"]]
    table = table.assign(_written=written)
    order = ["experiment", "date", "_written", "label"]
    return table.sort_values(order, ignore_index=True).drop(columns="_written")
