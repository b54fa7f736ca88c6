"""Experiments: parameter grids, a cache that makes every sweep resumable, and the run's steps.

An experiment is one short script in ``experiments/`` that builds an :class:`Experiment` and ends
with ``if __name__ == "__main__": main(EXPERIMENT)``. The framework expands the grid, runs
``measure(point, seed)`` for every point and seed (serially, in local processes or on a Dask
cluster: `rnnsim.executors`), writes each finished point to ``results/NAME/points/<hash>.parquet``
at once, and then assembles ``table.parquet``/``table.csv``, ``manifest.json``, ``summary.parquet`` and the figures.
An experiment whose ``measure`` returns several tidy tables by name (``Experiment.tables``) gets
one file per table instead: ``points/<hash>.NAME.parquet`` and ``table_NAME.parquet``/``.csv``.

Layout of ``OUT/NAME/`` after runs::

    points/<hash>.parquet   one file per (grid point, seed): the cache every run shares, so a
                            point computed once is never computed again; each is checked when
                            read (`rnnsim.store`), and one that fails goes to points/corrupt/
    run.lock                while a run writes the folder (`rnnsim.store.run_lock`)
    runs/LABEL/             one folder per stored run (``--name LABEL``, default `run_label`):
        table.parquet table.csv the run's tidy table: its points, rows in grid order then seed order
        table_NAME.parquet .csv each named table instead, for an experiment with ``tables``
        summary.parquet         the experiment's summary table (shown by ``rnnsim report``)
        claims.parquet          one row per claim: pass, fail or not checked, with the numbers
        manifest.json           label, grid, seeds, versions, timings, command line
        figures/NAME.png .svg   every figure, PNG and SVG
        plots/X_Y.png           figures drawn later by ``rnnsim plot NAME:LABEL``
    table.parquet ... figures/  the latest run's files again, so that ``OUT/NAME/table.parquet``
                                is always the last run's table

Reproducibility rule: the final table is always rebuilt from the point files read back from disk,
in grid order, so a sweep that was killed and resumed gives the same table, bit for bit, as one
that ran straight through (given a ``measure`` that is deterministic in ``(point, seed)``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import itertools
import json
import math
import os
import platform
import re
import shlex
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rnnsim import executors, runtime, store
from rnnsim.claims import Claim
from rnnsim.executors import UsageError, progress
from rnnsim.validation import positive_int

__all__ = [
    "Experiment",
    "UsageError",
    "expand_grid",
    "parse_set",
    "point_hash",
    "run_experiment",
    "main",
    "add_run_arguments",
    "find_experiments",
    "load_experiment",
    "load_script",
    "progress",
    "RunFailed",
    "stopped_status",
]

#: The name under which the framework carries the one table of a single-table experiment.
SINGLE = "table"
#: The folder of ``OUT/NAME/`` that holds one folder per stored run.
RUNS = "runs"
#: What a run label may be: a file name of letters, digits and ``_ . = , + -``.
LABEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=,+-]{0,119}")
#: A run's files, relative to its folder; the latest run's are mirrored into ``OUT/NAME/``.
PRODUCTS = (
    "table.parquet",
    "table.csv",
    "table_*.parquet",
    "table_*.csv",
    "summary.parquet",
    "claims.parquet",
    "manifest.json",
    "figures/*.png",
    "figures/*.svg",
)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


# --------------------------------------------------------------------------------------------
# The experiment declaration
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One experiment: a grid of parameters, a measurement per point, figures from the table.

    Parameters
    ----------
    name : str
        Identifier (letters, digits, ``_``); the results go to ``OUT/name/``.
    description : str
        One line, shown by ``rnnsim list`` and in the report.
    grid : dict of str -> list
        The full grid; its points are the product of the axes (last axis fastest). Values are
        int, float, str or bool (one type per axis; ints may appear on a float axis).
    quick : dict of str -> list, optional
        A small grid for ``--quick``. Axes it leaves out take the *first* value of ``grid``'s axis,
        so quick points are ordinary grid points and share the cache. ``None`` = use ``grid``.
    measure : callable ``(point: dict, seed: int) -> pandas.DataFrame``
        Measures one grid point; must be deterministic in ``(point, seed)``. The framework adds the
        point's parameters and ``seed`` as the first columns. An experiment with ``tables``
        returns a dict of them instead, table name -> DataFrame, each getting those columns.
    measure_seeds : callable ``(point: dict, seeds: list[int]) -> list``, optional
        Measures one grid point for several seeds in one call (say an ensemble of networks, one
        per seed): one result per seed, in order, each what ``measure(point, seed)`` returns, and
        equal to it. When given, every executor hands a grid point's pending seeds to one call
        (Dask and the local processes still distribute the points), and each seed is still
        cached as a point file of its own, so that a resumed run computes only the seeds it
        lacks. ``measure`` stays the definition of one seed (``run_point`` calls it).
    figures : callable ``(table) -> dict[str, matplotlib.figure.Figure]``, optional
        Draws the figures from the whole tidy table (the dict of tables, by name, for an
        experiment with ``tables``).
    seeds, quick_seeds : int
        Number of seeds (``0 .. seeds - 1``) for a full and a quick run.
    summary : callable ``(table) -> DataFrame``, optional
        A compact table for the report, from the whole table (or dict of tables). Default: means
        of the numeric measurements grouped by the axes that vary (at most 40 rows; for several
        tables each one's, stacked, with a ``table`` column first).
    notes : str, optional
        A paragraph for the report (what to look for, which theory applies).
    keep : callable ``(point) -> bool``, optional
        Drops grid points for which it returns False (e.g. ``sigma_w`` only varies for the
        ``gaussian`` init).
    choices : dict of str -> list, optional
        The values ``--set`` accepts on a string axis; default: the values in ``grid`` and
        ``quick``. (Numeric axes accept any number of the axis' type.)
    version : str
        Part of every point's cache key: bump it when ``measure`` changes meaning.
    tables : sequence of str, optional
        For a ``measure`` that returns several tidy tables (say a training log and a Hessian
        density, which share no columns): their names (identifiers). Each is cached per point
        as ``points/<hash>.NAME.parquet`` and assembled into ``table_NAME.parquet`` and
        ``table_NAME.csv``. ``None`` (default): one table, ``table.parquet``.
    claims : sequence of rnnsim.claims.Claim
        The paper's statements that the experiment reproduces, each checked on the summary of
        every run (``claims.parquet``, the manifest, the terminal and the report).
    limits : dict of str -> (low, high), optional
        The range ``--set`` accepts on a numeric axis, both ends included; ``None`` leaves an
        end open (``{"depth": (1, None), "lr": (0, None)}``). Checked before any point runs.
    captions : dict of str -> str, optional
        One sentence per figure, by figure name: what it shows and what to look for (the report
        prints it under the figure).
    theory : callable ``(table) -> DataFrame``, optional
        Theory curves for ``rnnsim plot`` and ``rnnsim compare`` to overlay, dashed, on any plot
        of the experiment's table: called with the table being drawn (after ``--where``), it
        returns rows with the same column names as the table (say ``lag``, ``log_spectral`` and
        the parameter columns ``init``, ``gain``, ``T``), each (hue, col, row) group a line in
        the colour of its hue level. A plot draws the overlay when the theory has its ``x``,
        ``y`` and panel columns, and skips it otherwise. For an experiment with ``tables`` it
        is called with the dict of tables (only the drawn one filled in) and returns a dict,
        table name -> DataFrame, leaving out the tables it has no theory for.
    """

    name: str
    description: str
    grid: Mapping[str, Sequence[Any]]
    quick: Mapping[str, Sequence[Any]] | None
    measure: Callable[[dict, int], pd.DataFrame | dict[str, pd.DataFrame]]
    figures: Callable[[Any], dict] | None = None
    seeds: int = 1
    quick_seeds: int = 1
    summary: Callable[[Any], pd.DataFrame] | None = None
    notes: str = ""
    keep: Callable[[dict], bool] | None = None
    choices: Mapping[str, Sequence[Any]] | None = None
    version: str = "1"
    tables: Sequence[str] | None = None
    claims: Sequence[Claim] = ()
    limits: Mapping[str, tuple] | None = None
    captions: Mapping[str, str] | None = None
    theory: Callable[[Any], Any] | None = None
    measure_seeds: Callable[[dict, list[int]], Sequence] | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(
                f"Experiment name must be an identifier (letters, digits, _), got {self.name!r}"
            )
        if not isinstance(self.description, str):
            raise TypeError(f"description must be a str, got {type(self.description).__name__}")
        if not callable(self.measure):
            raise TypeError(f"measure must be callable, got {self.measure!r}")
        if self.measure_seeds is not None and not callable(self.measure_seeds):
            raise TypeError(f"measure_seeds must be callable or None, got {self.measure_seeds!r}")
        if self.theory is not None and not callable(self.theory):
            raise TypeError(f"theory must be callable or None, got {self.theory!r}")
        _check_grid(self.grid, "grid")
        if self.quick is not None:
            _check_grid(self.quick, "quick")
            extra = sorted(set(self.quick) - set(self.grid))
            if extra:
                raise ValueError(
                    f"quick has axes {extra} that grid lacks; grid axes are {list(self.grid)}"
                )
        for field in ("seeds", "quick_seeds"):  # stored as a plain int (JSON, cache keys)
            object.__setattr__(self, field, positive_int(field, getattr(self, field)))
        if self.tables is not None:
            names = self.tables
            if isinstance(names, str) or not isinstance(names, Sequence) or not names:
                raise ValueError(f"tables must be a non-empty list of names, got {names!r}")
            for n in names:
                if not isinstance(n, str) or not n.isidentifier():
                    raise ValueError(f"tables names must be identifiers, got {n!r}")
            if len(set(names)) != len(names):
                raise ValueError(f"tables names must be unique, got {list(names)}")
            object.__setattr__(self, "tables", tuple(names))
        for axis, values in (self.choices or {}).items():
            if axis not in self.grid:
                raise ValueError(f"choices names axis {axis!r} that grid lacks")
            _axis_type(values, f"choices[{axis!r}]")
        for axis, bounds in (self.limits or {}).items():
            if axis not in self.grid:
                raise ValueError(f"limits names axis {axis!r} that grid lacks")
            if not isinstance(bounds, tuple) or len(bounds) != 2:
                raise ValueError(f"limits[{axis!r}] must be a (low, high) tuple, got {bounds!r}")

    def grid_for(self, quick: bool = False) -> dict:
        """The grid a run uses: ``grid``, or ``quick`` completed with each axis' first value.

        Values on a float axis are made floats, so that ``1`` and ``1.0`` share a cache entry.
        """
        if not quick or self.quick is None:
            grid = {k: list(v) for k, v in self.grid.items()}
        else:
            grid = {k: list(self.quick.get(k, [v[0]])) for k, v in self.grid.items()}
        for k, values in grid.items():
            if _axis_type(list(self.grid[k]) + list((self.quick or {}).get(k, [])), k) is float:
                grid[k] = [float(v) for v in values]
        return grid

    def points(self, grid: Mapping[str, Sequence[Any]]) -> list[dict]:
        """The points of ``grid`` (product of axes, last axis fastest) that ``keep`` keeps."""
        pts = expand_grid(grid)
        return [p for p in pts if self.keep is None or self.keep(p)]

    def valid_values(self, axis: str) -> list:
        """The values ``--set`` accepts for a string/bool axis (see ``choices``)."""
        if self.choices and axis in self.choices:
            return list(self.choices[axis])
        seen = list(self.grid[axis]) + list((self.quick or {}).get(axis, []))
        return list(dict.fromkeys(seen))


def _check_grid(grid, what):
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError(f"{what} must be a non-empty dict of axis -> list of values, got {grid!r}")
    for axis, values in grid.items():
        if not isinstance(axis, str) or not axis.isidentifier():
            raise ValueError(f"{what} axis names must be identifiers, got {axis!r}")
        if axis == "seed":
            raise ValueError(f"{what} may not have an axis named 'seed' (seeds are separate)")
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"{what}[{axis!r}] must be a non-empty list, got {values!r}")
        _axis_type(values, f"{what}[{axis!r}]")


def _axis_type(values, what) -> type:
    """The type of an axis: bool, int, float or str (ints on a float axis are allowed)."""
    kinds = set()
    for v in values:
        if isinstance(v, bool):
            kinds.add(bool)
        elif isinstance(v, int):
            kinds.add(int)
        elif isinstance(v, float):
            kinds.add(float)
        elif isinstance(v, str):
            kinds.add(str)
        else:
            raise TypeError(
                f"{what} values must be int, float, str or bool, got {v!r} ({type(v).__name__})"
            )
    if kinds <= {int}:
        return int
    if kinds <= {int, float}:
        return float
    if len(kinds) == 1:
        return kinds.pop()
    raise TypeError(f"{what} mixes value types {sorted(k.__name__ for k in kinds)}: {values!r}")


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict]:
    """All points of a grid: the product of its axes, in axis order, the last axis fastest.

    Parameters
    ----------
    grid : dict of str -> list
        Axis name -> values.

    Returns
    -------
    list of dict
        One dict per point, keys in the grid's axis order.

    Examples
    --------
    >>> expand_grid({"a": [1, 2], "b": ["x", "y"]})
    [{'a': 1, 'b': 'x'}, {'a': 1, 'b': 'y'}, {'a': 2, 'b': 'x'}, {'a': 2, 'b': 'y'}]
    """
    axes = list(grid)
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*grid.values())]


def parse_set(experiment: Experiment, specs: Sequence[str], grid: Mapping | None = None) -> dict:
    """Apply ``--set KEY=V1,V2,...`` overrides to a grid, parsing values to each axis' type.

    Parameters
    ----------
    experiment : Experiment
        Supplies the axes, their types and the valid values of string axes.
    specs : list of str
        Each ``"KEY=V1,V2,..."``; a key may appear once.
    grid : dict, optional
        The grid to override (default: the experiment's full grid).

    Returns
    -------
    dict
        A new grid with the named axes replaced.

    Raises
    ------
    UsageError
        For a malformed spec, an unknown key (the message lists the valid keys) or a value that
        does not parse to the axis' type or is not allowed (the message lists what is).
    """
    grid = {k: list(v) for k, v in (grid or experiment.grid_for(False)).items()}
    done = set()
    for spec in specs:
        key, sep, raw = spec.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise UsageError(f"--set expects KEY=V1,V2,..., got {spec!r}")
        if key not in experiment.grid:
            raise UsageError(
                f"--set: unknown key {key!r} for experiment {experiment.name!r}; "
                f"valid keys: {', '.join(experiment.grid)}"
            )
        if key in done:
            raise UsageError(f"--set: key {key!r} given twice")
        done.add(key)
        kind = _axis_type(
            list(experiment.grid[key]) + list((experiment.quick or {}).get(key, [])), key
        )
        values = [_parse_value(experiment, key, kind, tok.strip()) for tok in raw.split(",")]
        grid[key] = list(dict.fromkeys(values))
    return grid


def _parse_value(experiment, key, kind, token):
    shown = ", ".join(map(str, experiment.valid_values(key)))
    if kind is bool:
        low = token.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise UsageError(f"--set {key}: {token!r} is not a boolean; use true or false")
    if kind is int:
        try:
            value = int(token)
        except ValueError:
            raise UsageError(
                f"--set {key}: {token!r} is not an integer (grid values: {shown})"
            ) from None
        return _within_limits(experiment, key, value)
    if kind is float:
        try:
            value = float(token)
        except ValueError:
            raise UsageError(
                f"--set {key}: {token!r} is not a number (grid values: {shown})"
            ) from None
        if not math.isfinite(value):
            raise UsageError(f"--set {key}: {token!r} is not a finite number")
        return _within_limits(experiment, key, value)
    valid = experiment.valid_values(key)
    if token not in valid:
        raise UsageError(
            f"--set {key}: {token!r} is not a valid value; valid values: {', '.join(valid)}"
        )
    return token


def _within_limits(experiment: Experiment, key: str, value):
    """``value`` when it lies in ``experiment.limits[key]``; else a UsageError naming the range."""
    low, high = (experiment.limits or {}).get(key, (None, None))
    if (low is not None and value < low) or (high is not None and value > high):
        shown = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise UsageError(f"--set {key}: {value} is out of range; allowed: {shown}")
    return value


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------


def _version() -> str:
    from rnnsim import __version__

    return __version__


def point_hash(name: str, point: Mapping[str, Any], seed: int, version: str = "1") -> str:
    """Cache key of one (point, seed): a hash of the experiment name, the sorted parameters,
    the seed, the experiment's ``version`` and the rnnsim version (20 hex digits)."""
    payload = {
        "experiment": name,
        "params": sorted((k, v) for k, v in point.items()),
        "seed": int(seed),
        "experiment_version": version,
        "rnnsim": _version(),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    store.atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def _write_text(text: str, path: Path) -> None:
    store.atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# Running one point (in this process or in a worker)
# --------------------------------------------------------------------------------------------


def _with_params(df: Any, point: Mapping, seed: int, what: str) -> pd.DataFrame:
    """``df`` with the point's parameters and ``seed`` as its first columns; ``what`` names
    the function that returned ``df``, for errors."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"{what} must return a pandas DataFrame, got {type(df).__name__} "
            f"for point {dict(point)} seed {seed}"
        )
    df = df.reset_index(drop=True)
    for col, value in list(point.items()) + [("seed", seed)]:
        if col in df.columns:
            if not (df[col] == value).all():
                raise ValueError(
                    f"{what} returned a column {col!r} that disagrees with the point's value {value!r}"
                )
            df = df.drop(columns=col)
    # one row repeated, so that a table without rows still gets each parameter's dtype
    params = pd.DataFrame({k: [v] for k, v in point.items()}).loc[[0] * len(df)]
    params = params.reset_index(drop=True)
    params["seed"] = pd.Series([int(seed)] * len(df), dtype="int64")
    return pd.concat([params, df], axis=1)


def _point_tables(experiment: Experiment, point: Mapping, seed: int) -> dict[str, pd.DataFrame]:
    """Measure one point: its tables by name (`SINGLE` for a single-table experiment), each
    with the point's parameters and ``seed`` as its first columns."""
    result = experiment.measure(dict(point), int(seed))
    return _tables_of(experiment, result, point, seed, f"{experiment.name}.measure")


def _seeds_tables(experiment: Experiment, point: Mapping, seeds: Sequence[int]) -> list[dict]:
    """Measure one grid point for several seeds in one call of ``experiment.measure_seeds``:
    for each seed, in order, its tables as `_point_tables` gives them."""
    seeds = [int(s) for s in seeds]
    what = f"{experiment.name}.measure_seeds"
    results = experiment.measure_seeds(dict(point), list(seeds))
    if (
        isinstance(results, str | bytes | Mapping | pd.DataFrame)
        or not isinstance(results, Sequence)
        or len(results) != len(seeds)
    ):
        got = f"{len(results)} results" if isinstance(results, Sequence) else type(results).__name__
        raise TypeError(
            f"{what} must return a list with one result per seed ({len(seeds)} for the seeds "
            f"{seeds}), got {got} for point {dict(point)}"
        )
    return [_tables_of(experiment, r, point, s, what) for r, s in zip(results, seeds, strict=True)]


def _tables_of(experiment: Experiment, result, point: Mapping, seed: int, what: str) -> dict:
    """The tables by name of what ``what`` (the measuring function's name) returned for one
    point and seed, checked, with the parameters and ``seed`` as their first columns."""
    if experiment.tables is None:
        return {SINGLE: _with_params(result, point, seed, what)}
    names = list(experiment.tables)
    if not isinstance(result, Mapping) or sorted(result) != sorted(names):
        got = sorted(result) if isinstance(result, Mapping) else type(result).__name__
        raise TypeError(
            f"{what} must return a dict with the keys {names} (the experiment's tables), got {got} "
            f"for point {dict(point)} seed {seed}"
        )
    return {n: _with_params(result[n], point, seed, f"{what} (table {n!r})") for n in names}


def run_point(experiment: Experiment, point: Mapping, seed: int):
    """Measure one point and prepend its parameters and ``seed`` as columns.

    Returns
    -------
    pandas.DataFrame, or dict of str -> pandas.DataFrame for an experiment with ``tables``
    """
    tables = _point_tables(experiment, point, seed)
    return tables[SINGLE] if experiment.tables is None else tables


_SCRIPT_CACHE: dict[str, Experiment] = {}


def _experiment_from_source(source: str, filename: str, name: str) -> Experiment:
    """Execute an experiment script's source as a module (once per process) and find ``name``.

    Workers receive the script's text rather than a pickled function, so local processes and
    remote Dask workers need nothing but rnnsim installed.
    """
    key = hashlib.sha256((filename + "\0" + source).encode()).hexdigest()[:16]
    if key not in _SCRIPT_CACHE:
        module = _exec_module(source, filename, f"rnnsim_experiments._w{key}")
        _SCRIPT_CACHE[key] = _find_in_module(module, filename, name)
    return _SCRIPT_CACHE[key]


def _exec_module(source: str, filename: str, modname: str):
    import types

    module = types.ModuleType(modname)
    module.__file__ = filename
    sys.modules[modname] = module  # dataclasses and pickle look the module up by name
    try:
        exec(compile(source, filename, "exec"), module.__dict__)
    except BaseException:
        sys.modules.pop(modname, None)
        raise
    return module


def _find_in_module(module, filename, name=None) -> Experiment:
    exp = getattr(module, "EXPERIMENT", None)
    if isinstance(exp, Experiment) and (name is None or exp.name == name):
        return exp
    for value in vars(module).values():
        if isinstance(value, Experiment) and (name is None or value.name == name):
            return value
    raise UsageError(f"{filename} defines no Experiment" + (f" named {name!r}" if name else ""))


# --------------------------------------------------------------------------------------------
# A whole run
# --------------------------------------------------------------------------------------------


def _script_of(experiment: Experiment) -> tuple[str, str]:
    """Source text and file name of the script that defines ``experiment``.

    Workers execute this text to rebuild the experiment: the path recorded by
    :func:`load_experiment`, else the ``__main__`` script that holds it (``python NAME.py``), else
    the file that defines ``measure``.
    """
    import inspect

    filename = getattr(experiment, "_script_path", None)
    main_module = sys.modules.get("__main__")
    if filename is None and any(v is experiment for v in vars(main_module).values()):
        filename = getattr(main_module, "__file__", None)
    if filename is None:
        filename = inspect.getsourcefile(experiment.measure) or inspect.getfile(experiment.measure)
    return Path(filename).read_text(encoding="utf-8"), str(Path(filename).resolve())


def _versions() -> dict:
    import numpy

    versions = {
        "rnnsim": _version(),
        "numpy": numpy.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
    }
    try:
        import numba

        versions["numba"] = numba.__version__
    except ImportError:  # pragma: no cover
        versions["numba"] = None
    return versions


def reproduce_command(
    experiment: Experiment,
    quick: bool,
    sets: Sequence[str],
    seeds,
    first_seed: int = 0,
    label: str | None = None,
) -> str:
    """The canonical ``rnnsim run`` command line for a run (``--name`` only when ``label`` is
    not the default `run_label`)."""
    parts = ["rnnsim", "run", experiment.name]
    if quick:
        parts.append("--quick")
    for spec in sets:
        parts += ["--set", spec]
    if seeds is not None:
        parts += ["--seeds", str(seeds)]
    if first_seed:
        parts += ["--first-seed", str(first_seed)]
    if label is not None and label != run_label(quick, sets, seeds, first_seed):
        parts += ["--name", label]
    return shlex.join(parts)


def run_label(
    quick: bool, sets: Sequence[str] = (), seeds: int | None = None, first_seed: int = 0
) -> str:
    """The label of a run without ``--name``: ``quick`` or ``full``, then each ``--set`` as given
    (spaces dropped) and any ``--seeds``/``--first-seed``, joined by ``_``.

    Characters that do not belong in a file name become ``-``; a label longer than 120
    characters is cut and ends in a hash of the whole.

    Examples
    --------
    >>> run_label(True)
    'quick'
    >>> run_label(True, ["T=1000"])
    'quick_T=1000'
    >>> run_label(False, ["T=100, 300", "init=orthogonal"], seeds=5, first_seed=10)
    'full_T=100,300_init=orthogonal_seeds=5_first_seed=10'
    """
    parts = ["quick" if quick else "full", *("".join(spec.split()) for spec in sets)]
    if seeds is not None:
        parts.append(f"seeds={seeds}")
    if first_seed:
        parts.append(f"first_seed={first_seed}")
    label = re.sub(r"[^A-Za-z0-9_.=,+-]", "-", "_".join(parts))
    if len(label) > 120:
        label = label[:111] + "_" + hashlib.sha256(label.encode()).hexdigest()[:8]
    return label


def check_label(label: Any) -> str:
    """``label`` when it is a safe run label (`LABEL_PATTERN`); else a UsageError saying why."""
    if not isinstance(label, str) or not LABEL_PATTERN.fullmatch(label):
        raise UsageError(
            f"--name: {label!r} is not a safe run label; use 1-120 letters, digits and "
            "_ . = , + - starting with a letter or digit"
        )
    return label


def run_folder(out: str | os.PathLike, name: str, label: str) -> Path:
    """Where the run ``label`` of the experiment ``name`` is stored: ``out/name/runs/label``."""
    return Path(out) / name / RUNS / check_label(label)


def _products(folder: Path) -> list[Path]:
    """The run files (`PRODUCTS`) present in ``folder``."""
    return sorted(p for pattern in PRODUCTS for p in folder.glob(pattern) if p.is_file())


def _publish(run: _Run) -> None:
    """Step 7: the run's files mirrored into ``OUT/NAME/`` (hard links where the file system
    allows, else copies), and files of an earlier run that this one lacks removed there."""
    import shutil

    fresh = {p.relative_to(run.folder) for p in _products(run.folder)}
    for stale in _products(run.root):
        if stale.relative_to(run.root) not in fresh:
            stale.unlink()
    for rel in sorted(fresh):

        def link(tmp, source=run.folder / rel):
            try:
                os.link(source, tmp)
            except OSError:
                shutil.copyfile(source, tmp)

        store.atomic_write(run.root / rel, link)


def _default_summary(table: pd.DataFrame, grid: Mapping) -> pd.DataFrame:
    varying = [k for k, v in grid.items() if len(v) > 1 and k in table.columns]
    params = set(grid) | {"seed"}
    numeric = [
        c
        for c in table.columns
        if c not in params
        and pd.api.types.is_numeric_dtype(table[c])
        and not pd.api.types.is_bool_dtype(table[c])
    ]
    if not numeric:
        return table.head(40)
    if varying:
        out = table.groupby(varying, sort=False)[numeric].mean().reset_index()
    else:
        out = table[numeric].mean().to_frame().T
    return out.head(40)


def _default_summaries(tables: Mapping[str, pd.DataFrame], grid: Mapping) -> pd.DataFrame:
    """The default summary of a multi-table experiment: each table's, stacked, named by ``table``."""
    parts = [_default_summary(t, grid).assign(table=name) for name, t in tables.items()]
    out = pd.concat(parts, ignore_index=True)
    return out[["table", *(c for c in out.columns if c != "table")]].head(40)


@dataclasses.dataclass
class _Run:
    """One run of an experiment, as its steps fill it in (see `run_experiment`).

    ``jobs`` holds one dict per (point, seed) in grid order, then seed order: ``index``, ``point``,
    ``seed``, ``hash``, ``paths`` (table name -> its point file) and ``seconds`` (None until
    computed in this run); ``todo`` the jobs the cache does not hold. ``root`` is ``OUT/NAME``
    (the shared point cache and the latest run's files), ``folder`` the run's own.
    """

    experiment: Experiment
    quick: bool
    sets: list[str]
    seeds: int | None  # as asked, for the reproduce command; n_seeds is what runs
    n_seeds: int
    grid: dict
    points: list[dict]
    root: Path
    jobs: list[dict]
    started: float
    todo: list[dict] = dataclasses.field(default_factory=list)
    timings: dict = dataclasses.field(default_factory=dict)
    figures: list[str] = dataclasses.field(default_factory=list)
    errors: dict = dataclasses.field(default_factory=dict)  # step -> exception
    first_seed: int = 0  # the seeds are first_seed .. first_seed + n_seeds - 1
    summary: pd.DataFrame | None = None
    claims: pd.DataFrame | None = None
    label: str = "full"  # the run's folder is root / RUNS / label

    @property
    def folder(self) -> Path:
        """Where this run's table, summary, claims, figures and manifest go."""
        return self.root / RUNS / self.label


def _table_files(experiment: Experiment, folder: Path, stem: str, sep: str) -> dict[str, Path]:
    """Where each table of ``experiment`` goes in ``folder``: ``stem.parquet`` for the one table
    of a single-table experiment (named `SINGLE`), ``stem{sep}NAME.parquet`` for each named one."""
    if experiment.tables is None:
        return {SINGLE: folder / f"{stem}.parquet"}
    return {name: folder / f"{stem}{sep}{name}.parquet" for name in experiment.tables}


def _plan(
    experiment: Experiment,
    quick: bool,
    sets: Sequence[str],
    seeds,
    root: Path,
    first_seed: int,
    label: str | None = None,
) -> _Run:
    """Step 1: the grid (with ``--set``), its points, the seeds, one job per (point, seed), and
    the run's label (``label``, else `run_label`)."""
    started = time.time()
    grid = parse_set(experiment, sets, experiment.grid_for(quick))
    n_seeds = (
        seeds if seeds is not None else (experiment.quick_seeds if quick else experiment.seeds)
    )
    points = experiment.points(grid)
    if not points:
        raise UsageError(f"{experiment.name}: the grid {grid} has no points left after keep()")
    point_dir = root / "points"
    point_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for index, point in enumerate(points):
        for seed in range(first_seed, first_seed + n_seeds):
            h = point_hash(experiment.name, point, seed, experiment.version)
            paths = _table_files(experiment, point_dir, h, ".")
            job = {"index": index, "point": point, "seed": seed, "hash": h, "paths": paths}
            jobs.append(job | {"seconds": None})
    run = _Run(experiment, quick, list(sets), seeds, n_seeds, grid, points, root, jobs, started)
    run.first_seed = first_seed
    run.label = check_label(
        label if label is not None else run_label(quick, sets, seeds, first_seed)
    )
    previous = run.folder / "manifest.json"
    if previous.exists():
        was = json.loads(previous.read_text(encoding="utf-8")).get("reproduce")
        if was != _reproduce(run):
            print(f"{experiment.name}: replacing the stored run {run.label!r} (was: {was})")
    return run


def _reproduce(run: _Run) -> str:
    return reproduce_command(
        run.experiment, run.quick, run.sets, run.seeds, run.first_seed, run.label
    )


def _pending(run: _Run, force: bool) -> list[dict]:
    """Step 2, the cache: the jobs to compute (all with ``force``).

    Every point file present is read and checked (`rnnsim.store.load_point`); a point whose
    files are all sound keeps its tables in ``job["tables"]`` for `_assemble`. A file that fails
    a check is moved to ``points/corrupt/`` and its point computed again; the failures are
    reported in one line per reason.
    """
    if force:
        return list(run.jobs)
    todo, problems = [], {}
    for job in run.jobs:
        tables, bad = store.load_point(
            job["paths"], hash_=job["hash"], point=job["point"], seed=job["seed"]
        )
        for path, reason in bad:
            problems.setdefault(reason, []).append(path)
        if tables is None:
            todo.append(job)
        else:
            job["tables"] = tables
    for reason, paths in problems.items():
        first = f"points/{paths[0].name}"
        what = f"point file {first} failed its check ({reason})"
        if len(paths) > 1:
            what = f"{len(paths)} point files failed their check ({reason}; first: {first})"
        print(
            f"{run.experiment.name}: {what}; moved to points/{store.CORRUPT}/, recomputing",
            file=sys.stderr,
        )
    return todo


def _measure_script(source: str, filename: str, name: str, point: dict, seed):
    """What a worker computes for one job: the experiment ``name`` rebuilt from its script's
    ``source`` (once per process), then its point's tables (`_point_tables`), or with a list of
    seeds, each seed's (`_seeds_tables`)."""
    experiment = _experiment_from_source(source, filename, name)
    if isinstance(seed, list):
        return _seeds_tables(experiment, point, seed)
    return _point_tables(experiment, point, seed)


def _executor(experiment: Experiment, todo: list[dict], workers, scheduler):
    """The generator of ``(job, tables, seconds, exception)``, in completion order, that runs
    ``todo`` serially, in local processes or on Dask (`rnnsim.executors.executor`).

    For an experiment with ``measure_seeds``, the jobs of one grid point become one call of it
    (`_seed_groups`), and each seed's tables come back as a job of its own, with an equal share
    of the call's time.
    """
    script = []  # the script's source and file name, read once, when a worker needs them

    def remote(job):
        if not script:
            script.extend(_script_of(experiment))
        return _measure_script, (*script, experiment.name, job["point"], job["seed"])

    def local(job):
        if isinstance(job["seed"], list):
            return _seeds_tables(experiment, job["point"], job["seed"])
        return _point_tables(experiment, job["point"], job["seed"])

    name = experiment.name
    if experiment.measure_seeds is None:
        return executors.executor(todo, local, remote, workers, scheduler, name)
    groups = _seed_groups(todo)
    return _per_seed(executors.executor(groups, local, remote, workers, scheduler, name))


def _seed_groups(todo: list[dict]) -> list[dict]:
    """The jobs of ``todo`` grouped by grid point, in order: one job per point whose ``seed``
    is the list of its pending seeds and ``jobs`` the jobs it stands for."""
    groups: dict[int, dict] = {}
    for job in todo:
        group = groups.setdefault(job["index"], {**job, "seed": [], "jobs": []})
        group["seed"].append(job["seed"])
        group["jobs"].append(job)
    return list(groups.values())


def _per_seed(results):
    """The results of grouped jobs (`_seed_groups`) as one result per seed's job."""
    try:
        for group, tables, seconds, exc in results:
            n = len(group["jobs"])
            for i, job in enumerate(group["jobs"]):
                if exc is not None:
                    yield job, None, None, exc
                else:
                    yield job, tables[i], seconds / n, None
    finally:
        results.close()


class RunFailed(RuntimeError):
    """A run that could not compute every point: points failed (the message has one line per
    kind of failure, ``__cause__`` is the first one), or the Dask scheduler was lost. The
    command prints the message without a traceback."""


class _Failures:
    """The failed points of a run: each one's traceback written to ``path`` as it fails (the
    traceback once per kind: the same exception type and message), one line on the terminal per
    kind, and the kinds grouped for `message`."""

    def __init__(self, path: Path, name: str):
        self.path, self.name = path, name
        self.kinds: dict[str, list[tuple[dict, BaseException]]] = {}
        path.unlink(missing_ok=True)  # the failures of an earlier run

    def __len__(self) -> int:
        return sum(len(failed) for failed in self.kinds.values())

    def add(self, job: dict, exc: BaseException) -> None:
        from tqdm.auto import tqdm

        text = str(exc).strip().splitlines()
        kind = f"{type(exc).__name__}: {text[0] if text else ''}"[:200]
        failed = self.kinds.setdefault(kind, [])
        failed.append((job, exc))
        where = f"point {job['point']} seed {job['seed']}"
        with self.path.open("a", encoding="utf-8") as log:
            if len(failed) == 1:
                log.write(f"{where} failed:\n{''.join(traceback.format_exception(exc))}\n")
                tqdm.write(f"{self.name}: {where} failed with {kind}", file=sys.stderr)
            else:
                log.write(f"{where} failed with {kind} (traceback above)\n\n")

    def message(self, n_todo: int) -> str:
        """The grouped report: how many failed of ``n_todo``, then one line per kind."""
        lines = [
            f"{self.name}: {len(self)} of {n_todo} points failed (finished points are cached; "
            "rerun to retry the rest)"
        ]
        for kind, failed in self.kinds.items():
            job = failed[0][0]
            points = "point" if len(failed) == 1 else "points"
            lines.append(
                f"{len(failed)} {points} failed with {kind} (first: point {job['point']} "
                f"seed {job['seed']}); tracebacks in {self.path}"
            )
        return "\n".join(lines)

    def first(self) -> BaseException:
        return next(iter(self.kinds.values()))[0][1]


def _execute(run: _Run, workers, scheduler, progress: bool) -> None:
    """Step 3: compute ``run.todo``, writing each finished point's tables to the cache at once.

    A failed point's traceback goes to ``OUT/NAME/errors.log`` and one line per kind of failure
    to the terminal; after the last point, `RunFailed` groups them (the finished points stay
    cached). A SIGINT or SIGTERM (see `rnnsim.executors.stop_on_signals`) stops the run at once
    with `rnnsim.executors.Interrupted`, whose message says how many points are done and the
    command that resumes the run.
    """
    from tqdm.auto import tqdm

    name, todo = run.experiment.name, run.todo
    bar = tqdm(
        total=len(run.jobs),
        initial=len(run.jobs) - len(todo),
        desc=name,
        unit="point",
        disable=not progress or None,
        leave=True,
        dynamic_ncols=True,
    )
    failures = _Failures(run.root / "errors.log", name)
    start = time.perf_counter()
    with executors.stop_on_signals():
        _compute(run, _executor(run.experiment, todo, workers, scheduler), failures, bar)
    run.timings["compute_seconds"] = time.perf_counter() - start
    if failures:
        raise RunFailed(failures.message(len(todo))) from failures.first()


def _compute(run: _Run, results, failures: _Failures, bar) -> None:
    """The loop of `_execute`: each result of the executor ``results`` cached or recorded as a
    failure; an interruption becomes the run's one-line `~rnnsim.executors.Interrupted`, a lost
    Dask scheduler a one-line `RunFailed`."""
    done = len(run.jobs) - len(run.todo)
    try:
        for job, tables, seconds, exc in results:
            if exc is not None:
                failures.add(job, exc)
            else:
                for table, path in job["paths"].items():
                    who = {"hash_": job["hash"], "point": job["point"], "seed": job["seed"]}
                    store.write_point(tables[table], path, table=table, **who)
                job["seconds"] = seconds
                done += 1
            bar.update(1)
    except KeyboardInterrupt as exc:
        raise _interrupted(run, exc, done) from None
    except executors.SchedulerLost as exc:
        what = f"{run.experiment.name}: {exc}; {done} of {len(run.jobs)} points done (cached)"
        raise RunFailed(f"{what}; resume with: {_resume_command(run)}") from None
    finally:
        if hasattr(results, "close"):  # shut pools and clusters down at once, even on Ctrl-C
            results.close()
        bar.close()


def _interrupted(run: _Run, exc: KeyboardInterrupt, done: int) -> executors.Interrupted:
    """The one-line `~rnnsim.executors.Interrupted` of a run stopped by ``exc``: which signal,
    how many points are done and the command that resumes the run."""
    signum = getattr(exc, "signum", signal.SIGINT)
    what = f"{run.experiment.name}: stopped by {signal.Signals(signum).name}"
    done = f"{done} of {len(run.jobs)} points done (cached)"
    return executors.Interrupted(signum, f"{what}; {done}; resume with: {_resume_command(run)}")


def _resume_command(run: _Run) -> str:
    """The command that resumes ``run`` from its cache: `reproduce_command`, with the
    ``--experiments`` folder and the ``--out`` root when they are not the defaults."""
    command = _reproduce(run)
    script = getattr(run.experiment, "_script_path", None)
    if script is not None and Path(script).parent != experiments_dir().resolve():
        command += " --experiments " + shlex.quote(str(Path(script).parent))
    if run.root.parent != Path("results"):
        command += " --out " + shlex.quote(str(run.root.parent))
    return command


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Stack point tables; points without rows add none and do not widen the dtypes."""
    rows = [f for f in frames if len(f)] or frames[:1]
    return pd.concat(rows, ignore_index=True)


def _assemble(run: _Run) -> dict[str, pd.DataFrame]:
    """Step 4: each table rebuilt from the point files read back from disk (by `_pending`, or
    here for the points computed in this run) and checked, in grid order then seed order, and
    written as ``table[_NAME].parquet`` and ``.csv``."""
    for old in _products(run.folder):  # the files of an earlier run of the same label
        old.unlink()
    files = _table_files(run.experiment, run.folder, "table", "_")
    for job in run.jobs:
        if "tables" not in job:
            who = {"hash_": job["hash"], "point": job["point"], "seed": job["seed"]}
            try:
                job["tables"] = {
                    t: store.read_point(p, table=t, **who) for t, p in job["paths"].items()
                }
            except (OSError, store.CorruptPoint) as exc:
                raise RuntimeError(
                    f"{run.experiment.name}: the point file just written for point "
                    f"{job['point']} seed {job['seed']} does not read back: {exc}"
                ) from None
    tables = {}
    for table, path in files.items():
        tables[table] = _concat([j["tables"].pop(table) for j in run.jobs])  # freed as it goes
        _write_parquet(tables[table], path)
        csv = path.with_suffix(".csv")
        store.atomic_write(csv, lambda tmp, t=tables[table]: t.to_csv(tmp, index=False))
    return tables


def _summarise(run: _Run, tables: dict[str, pd.DataFrame]) -> None:
    """Step 5a: ``summary.parquet`` from the experiment's ``summary`` (or the default).

    A failing summary must not lose the table or the manifest: its error goes to ``run.errors``.
    """
    experiment = run.experiment
    single = experiment.tables is None
    try:
        if experiment.summary is not None:
            summary = experiment.summary(tables[SINGLE] if single else tables)
        elif single:
            summary = _default_summary(tables[SINGLE], run.grid)
        else:
            summary = _default_summaries(tables, run.grid)
        if isinstance(summary, pd.DataFrame):
            if not isinstance(summary.index, pd.RangeIndex):
                summary = summary.reset_index()
            summary.columns = [str(c) for c in summary.columns]
            _write_parquet(summary, run.folder / "summary.parquet")
            run.summary = summary
    except Exception as exc:  # noqa: BLE001
        run.errors["summary"] = exc


def _check_claims(run: _Run) -> None:
    """Step 5b: each claim judged on the summary, written to ``claims.parquet`` and printed."""
    from rnnsim import claims

    experiment = run.experiment
    run.claims = claims.evaluate(experiment.claims, run.summary, quick=run.quick)
    _write_parquet(run.claims, run.folder / "claims.parquet")
    if len(run.claims):
        grid = "quick grid" if run.quick else "full grid"
        title = f"{experiment.name}: claims ({grid}, {run.n_seeds} seed(s) per point)"
        print(claims.format_claims(run.claims, title))


def _draw(run: _Run, tables: dict[str, pd.DataFrame]) -> None:
    """Step 5c: the figures, PNG and SVG; an error goes to ``run.errors`` as in `_summarise`."""
    start = time.perf_counter()
    data = tables[SINGLE] if run.experiment.tables is None else tables
    try:
        run.figures = _save_figures(run.experiment, data, run.folder / "figures")
    except Exception as exc:  # noqa: BLE001
        run.errors["figures"] = exc
    run.timings["figure_seconds"] = time.perf_counter() - start


def _write_manifest(run: _Run, tables: dict[str, pd.DataFrame], options: dict) -> None:
    """Step 6: ``manifest.json``: what ran (grid, seeds, points), how, how long, and any errors.

    ``options`` holds ``workers``, ``scheduler`` and ``command`` as given to `run_experiment`.
    """
    experiment, jobs = run.experiment, run.jobs
    workers, scheduler = options["workers"], options["scheduler"]
    if scheduler:
        executor = "dask:" + scheduler
    else:
        executor = "processes" if (workers or 1) > 1 else "serial"
    command = options["command"]
    manifest = {
        "experiment": experiment.name,
        "label": run.label,
        "description": experiment.description,
        "notes": experiment.notes,
        "captions": dict(experiment.captions or {}),
        "quick": bool(run.quick),
        "set": run.sets,
        "grid": run.grid,
        "seeds": list(range(run.first_seed, run.first_seed + run.n_seeds)),
        "n_points": len(run.points),
        "n_runs": len(jobs),
        "n_computed": len(run.todo),
        "n_cached": len(jobs) - len(run.todo),
        "rows": sum(len(t) for t in tables.values()),
        "figures": run.figures,
        "versions": _versions(),
        "timings": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(run.started)),
            "wall_seconds": round(time.time() - run.started, 3),
            "compute_seconds": round(run.timings.get("compute_seconds", 0.0), 3),
            "figure_seconds": round(run.timings.get("figure_seconds", 0.0), 3),
            "point_seconds_sum": round(sum(j["seconds"] or 0.0 for j in jobs), 3),
        },
        "executor": executor,
        "workers": workers,
        "command": command if command is not None else shlex.join(sys.argv),
        "reproduce": _reproduce(run),
        "points": [
            {
                "hash": j["hash"],
                "seed": j["seed"],
                "params": j["point"],
                "seconds": None if j["seconds"] is None else round(j["seconds"], 4),
            }
            for j in jobs
        ],
    }
    if run.claims is not None:
        manifest["claims"] = json.loads(run.claims.to_json(orient="records"))
    if experiment.tables is not None:
        manifest["tables"] = {name: len(t) for name, t in tables.items()}
    if run.errors:
        manifest["errors"] = {what: f"{type(e).__name__}: {e}" for what, e in run.errors.items()}
    _write_text(json.dumps(manifest, indent=2, default=str) + "\n", run.folder / "manifest.json")


def run_experiment(
    experiment: Experiment,
    *,
    quick: bool = False,
    sets: Sequence[str] = (),
    seeds: int | None = None,
    out: str | os.PathLike = "results",
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    figures: bool = True,
    progress: bool = True,
    command: str | None = None,
    first_seed: int = 0,
    name: str | None = None,
    wait: bool = False,
) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Run (or resume) an experiment and write its tables, manifest, summary and figures.

    The steps: plan the grid and its jobs (`_plan`), read the cache (`_pending`), compute the
    rest (`_execute`), assemble the tables (`_assemble`), summarise, check the claims and draw
    (`_summarise`, `_check_claims`, `_draw`), write the manifest (`_write_manifest`), all into
    the run's folder ``out/NAME/runs/LABEL/``, and mirror that folder into ``out/NAME/``
    (`_publish`): the latest run. The run holds ``out/NAME/run.lock`` throughout
    (`rnnsim.store.run_lock`), so that no other run writes the folder meanwhile.

    Parameters
    ----------
    experiment : Experiment
    quick : bool
        Use the quick grid and ``quick_seeds``.
    sets : list of str
        ``--set KEY=V1,V2`` overrides (see :func:`parse_set`).
    seeds : int, optional
        Number of seeds, overriding the experiment's.
    first_seed : int
        The first seed: a run uses seeds ``first_seed .. first_seed + seeds - 1`` (default 0), so
        that an effect can be checked on draws other than the default ones.
    out : path
        Results root; the experiment writes to ``out/NAME/``.
    workers : int, optional
        None or 1 = serial in this process; N > 1 = N local processes (without ``scheduler``).
        With ``scheduler="local"``: the number of Dask workers (default: one per core).
    scheduler : str, optional
        ``"local"`` (start a Dask LocalCluster) or a Dask scheduler address.
    force : bool
        Recompute every point, ignoring (and overwriting) the cache.
    figures : bool
        Draw and save the figures.
    progress : bool
        Show a tqdm bar over points.
    command : str, optional
        The command line to record in the manifest (default: ``sys.argv``).
    name : str, optional
        The run's label (``--name``; letters, digits and ``_ . = , + -``). Default: `run_label`,
        ``quick`` or ``full`` followed by the overrides (``quick_T=1000``). A run of the same
        label replaces that run; other runs stay.
    wait : bool
        When another run holds ``out/NAME`` (``--wait``): wait for it to finish, instead of
        failing at once with a UsageError naming it.

    Returns
    -------
    pandas.DataFrame or dict of str -> pandas.DataFrame
        The whole tidy table, rows in grid order then seed order; for an experiment with
        ``tables``, each of them by name.
    """
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise UsageError(f"--workers must be an integer >= 1, got {workers!r}")
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise UsageError(f"--seeds must be an integer >= 1, got {seeds!r}")
    if isinstance(first_seed, bool) or not isinstance(first_seed, int) or first_seed < 0:
        raise UsageError(f"--first-seed must be an integer >= 0, got {first_seed!r}")
    root = Path(out) / experiment.name
    holder = command if command is not None else shlex.join(sys.argv)
    try:
        with store.run_lock(root, command=holder, wait=wait):  # the run owns OUT/NAME
            run = _plan(experiment, quick, sets, seeds, root, first_seed, name)
            run.todo = _pending(run, force)
            _execute(run, workers, scheduler, progress)
            tables = _assemble(run)
            _summarise(run, tables)
            _check_claims(run)
            if figures and experiment.figures is not None:
                _draw(run, tables)
            options = {"workers": workers, "scheduler": scheduler, "command": command}
            _write_manifest(run, tables, options)
            _publish(run)
    except store.FolderBusy as exc:  # raised on entry only: nothing was written
        raise UsageError(str(exc)) from None
    if run.errors:
        what, exc = next(iter(run.errors.items()))
        raise RuntimeError(
            f"{experiment.name}: {what} failed (the table and manifest are written)"
        ) from exc
    return tables[SINGLE] if experiment.tables is None else tables


def _save_figures(experiment: Experiment, data, fig_dir: Path) -> list[str]:
    from rnnsim import plots

    plots.theme()
    import matplotlib.pyplot as plt

    figs = experiment.figures(data)
    if not isinstance(figs, Mapping):
        raise TypeError(
            f"{experiment.name}.figures must return a dict name -> Figure, got "
            f"{type(figs).__name__}"
        )
    names = []
    try:
        for name, fig in figs.items():
            if not isinstance(name, str) or not name or "/" in name:
                raise ValueError(f"{experiment.name}.figures: bad figure name {name!r}")
            plots.save(fig, fig_dir / name)
            names.append(name)
    finally:
        for fig in figs.values():
            plt.close(fig)
    # Drop figures an earlier version of the script drew but this one no longer does.
    for stale in fig_dir.glob("*"):
        if stale.suffix in (".png", ".svg") and stale.stem not in names:
            stale.unlink()
    return names


# --------------------------------------------------------------------------------------------
# Discovery and the command line
# --------------------------------------------------------------------------------------------


def experiments_dir(override: str | os.PathLike | None = None) -> Path:
    """Where experiment scripts live: ``override``, else ``./experiments`` if it exists, else
    the ``experiments/`` folder beside the rnnsim source tree (the repository root)."""
    if override is not None:
        path = Path(override)
        if not path.is_dir():
            raise UsageError(f"--experiments: {str(path)!r} is not a directory")
        return path
    local = Path.cwd() / "experiments"
    if local.is_dir() and any(local.glob("*.py")):
        return local
    return Path(__file__).resolve().parent.parent / "experiments"


def find_experiments(directory: str | os.PathLike | None = None) -> dict[str, Path]:
    """Experiment scripts by name (file stem), sorted; files starting with ``_`` are skipped."""
    path = experiments_dir(directory)
    if not path.is_dir():
        return {}
    return {p.stem: p for p in sorted(path.glob("*.py")) if not p.name.startswith("_")}


def load_script(path: str | os.PathLike):
    """Import an experiment script as the module ``rnnsim_experiments.STEM`` and return it
    (e.g. to test the helpers that live in the script)."""
    path = Path(path).resolve()
    modname = f"rnnsim_experiments.{path.stem}"
    spec = importlib.util.spec_from_file_location(modname, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(modname, None)
        raise
    return module


def load_experiment(path: str | os.PathLike) -> Experiment:
    """Import an experiment script and return its ``EXPERIMENT``."""
    path = Path(path).resolve()
    module = load_script(path)
    experiment = _find_in_module(module, str(path))
    object.__setattr__(experiment, "_script_path", str(path))  # for the workers (_script_of)
    return experiment


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every experiment accepts (shared by ``rnnsim run`` and the scripts)."""
    parser.add_argument("--quick", action="store_true", help="use the small quick grid")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="override a grid axis (repeatable); values are parsed to the axis' type",
    )
    parser.add_argument(
        "--seeds",
        type=_positive_int,
        default=None,
        metavar="N",
        help="number of seeds (0..N-1), overriding the experiment's",
    )
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        metavar="K",
        help="start the seeds at K (K..K+N-1): the same run on other random draws",
    )
    parser.add_argument(
        "--name",
        dest="label",
        default=None,
        metavar="LABEL",
        help="store the run under OUT/NAME/runs/LABEL/ (default: quick or full, then the "
        "overrides, e.g. quick_T=1000); the latest run is also at OUT/NAME/",
    )
    parser.add_argument(
        "--out", default="results", metavar="DIR", help="results root (default: results/)"
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        metavar="N",
        help="local worker processes (default: serial in this process); with --scheduler local, "
        "the number of Dask workers (default: one per core)",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS|local",
        help="run the points on a Dask cluster ('local' starts a LocalCluster of --workers)",
    )
    parser.add_argument("--force", action="store_true", help="ignore the cache; recompute all")
    parser.add_argument(
        "--wait",
        action="store_true",
        help="when another run is writing OUT/NAME, wait for it to finish (default: fail, "
        "naming it)",
    )
    parser.add_argument("--no-figures", action="store_true", help="skip drawing figures")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit with status 1 when a checked claim fails (claims are checked on every run)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def run_from_args(experiment: Experiment, args: argparse.Namespace):
    """Run an experiment with parsed command-line options and print where the results went.

    The command's process is configured for the kernels (`rnnsim.runtime.configure`), and figures
    are drawn with matplotlib's Agg backend: they are files. Returns what `run_experiment`
    returns.
    """
    import matplotlib

    runtime.configure()
    matplotlib.use("Agg")
    table = run_experiment(
        experiment,
        quick=args.quick,
        sets=args.set,
        seeds=args.seeds,
        first_seed=args.first_seed,
        out=args.out,
        workers=args.workers,
        scheduler=args.scheduler,
        force=args.force,
        figures=not args.no_figures,
        progress=not args.no_progress,
        name=getattr(args, "label", None),
        wait=getattr(args, "wait", False),
    )
    label = getattr(args, "label", None) or run_label(
        args.quick, args.set, args.seeds, args.first_seed
    )
    root = run_folder(args.out, experiment.name, label)
    figs = "" if args.no_figures or experiment.figures is None else f", figures in {root}/figures/"
    latest = f"; the latest run, also at {Path(args.out) / experiment.name}/"
    if experiment.tables is None:
        print(f"{experiment.name}: {len(table)} rows -> {root}/table.parquet{figs}{latest}")
    else:
        rows = ", ".join(f"{name} {len(t)}" for name, t in table.items())
        print(f"{experiment.name}: rows {rows} -> {root}/table_NAME.parquet{figs}{latest}")
    return table


def failed_claims(experiment: Experiment, out: str | os.PathLike) -> int:
    """How many checked claims failed in the last run of ``experiment`` under ``out``."""
    from rnnsim import claims

    path = Path(out) / experiment.name / "claims.parquet"
    return claims.failed(pd.read_parquet(path)) if path.exists() else 0


def stopped_status(exc: KeyboardInterrupt | RunFailed) -> int:
    """Print the message of a run stopped by a signal or by failed points on stderr, without a
    traceback, and return the exit status: 128 + the signal (130 for a bare Ctrl-C), or 1."""
    if isinstance(exc, RunFailed):
        print(exc, file=sys.stderr)
        return 1
    print(str(exc) or "interrupted", file=sys.stderr)
    return getattr(exc, "status", 128 + signal.SIGINT)


def main(experiment: Experiment, argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python experiments/NAME.py [options]`` (same options as ``rnnsim run``).

    Runs the experiment, then rewrites ``OUT/index.html`` as ``rnnsim run`` does. Exits with
    status 2 and a one-line message on a usage error, with status 1 when points failed (one
    line per kind of failure, see `stopped_status`) or when ``--check`` is given and a checked
    claim failed, and with 130 or 143 when SIGINT or SIGTERM stopped the run.
    """
    parser = argparse.ArgumentParser(
        prog=f"python {Path(sys.argv[0]).name}" if argv is None else experiment.name,
        description=experiment.description,
    )
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    try:
        run_from_args(experiment, args)
    except UsageError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    except (KeyboardInterrupt, RunFailed) as exc:
        status = stopped_status(exc)
        executors.exit_if_abandoned(status)
        parser.exit(status)
    from rnnsim.report import write_report  # the page follows the runs, as after `rnnsim run`

    print(f"report written to {write_report(args.out)}")
    n_failed = failed_claims(experiment, args.out) if args.check else 0
    if n_failed:
        parser.exit(1, f"{parser.prog}: --check: {n_failed} claim(s) failed\n")
    return 0
