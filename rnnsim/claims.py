"""Claims: the statements of a paper that an experiment reproduces, checked on every run.

An experiment declares its claims (`Claim`): a short sentence, the paper it comes from, and a
function of the experiment's summary table that returns a `Verdict`, pass or fail together with
the numbers behind it. Every run evaluates them (`evaluate`), prints them (`format_claims`), and
keeps them as a tidy table (``claims.parquet``) and in the manifest.

A claim whose effect only shows on the full grid says so (``scope="full"``): on a quick run it is
reported as "not checked (full grid)", never as passed. A check that cannot judge the run it is
given (a ``--set`` that removed the values it compares) raises `NotApplicable` with the reason.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

#: The statuses of a claim on one run.
PASS, FAIL, NOT_CHECKED = "pass", "fail", "not checked"
SCOPES = ("quick", "full")
MARKS = {PASS: "✓", FAIL: "✗", NOT_CHECKED: "–"}
COLUMNS = [
    "claim",
    "statement",
    "source",
    "scope",
    "figure",
    "status",
    "passed",
    "detail",
    "numbers",
]


class NotApplicable(Exception):
    """Raised by a claim's check when the run lacks what the claim compares (say which)."""


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of one claim on one run.

    Parameters
    ----------
    passed : bool
    numbers : dict of str -> number or str
        The measured numbers (and thresholds) the verdict rests on, by name.
    detail : str
        One line that states the numbers in words, e.g. ``"lambda_max -0.21 at g 0.8, 0.19 at g 1.4"``.
    """

    passed: bool
    numbers: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class Claim:
    """One statement of a paper and the check that reproduces it.

    Parameters
    ----------
    statement : str
        The paper's statement, as a sentence a reader can check against the figure.
    check : callable ``(summary: DataFrame) -> Verdict``
        Judges the experiment's summary table; raises `NotApplicable` when it cannot.
    source : str
        Where the statement comes from, e.g. ``"Pascanu et al. 2013, sec. 3"``.
    scope : {"quick", "full"}
        ``"full"``: the effect needs the full grid, so quick runs do not check it.
    figure : str, optional
        The name of the figure that shows it (the report puts the claim's badge beside it).
    """

    statement: str
    check: Callable[[pd.DataFrame], Verdict]
    source: str = ""
    scope: str = "quick"
    figure: str | None = None

    def __post_init__(self):
        if not isinstance(self.statement, str) or not self.statement.strip():
            raise ValueError(f"statement must be a non-empty str, got {self.statement!r}")
        if not callable(self.check):
            raise TypeError(f"check must be callable, got {self.check!r}")
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {self.scope!r}")


def rows(summary: pd.DataFrame, **where) -> pd.DataFrame:
    """The rows of ``summary`` whose columns equal the given values (``rows(s, init="orthogonal")``).

    Raises `NotApplicable`, naming the condition, when the column is missing or no row matches:
    the run does not hold what the claim compares.
    """
    selected = summary
    for column, value in where.items():
        if column not in selected.columns:
            raise NotApplicable(f"the summary has no column {column!r}")
        selected = selected[selected[column] == value]
    if selected.empty:
        asked = ", ".join(f"{k} = {v!r}" for k, v in where.items())
        raise NotApplicable(f"the run has no rows with {asked}")
    return selected


def one(summary: pd.DataFrame, column: str, **where) -> float:
    """The single value of ``column`` in the row selected by ``where`` (see `rows`)."""
    selected = rows(summary, **where)
    if len(selected) != 1:
        raise ValueError(f"expected one row with {where}, found {len(selected)}")
    return float(selected[column].iloc[0])


def _plain(value):
    """A JSON-ready number: NumPy scalars as Python ones, non-finite floats as strings."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def evaluate(claims: Sequence[Claim], summary: pd.DataFrame | None, *, quick: bool) -> pd.DataFrame:
    """Check each claim on one run's summary.

    Parameters
    ----------
    claims : sequence of Claim
    summary : pandas.DataFrame or None
        The run's summary table (None when the summary failed: every claim then fails).
    quick : bool
        Whether the run used the quick grid (claims of scope ``"full"`` are then not checked).

    Returns
    -------
    pandas.DataFrame
        One row per claim, columns `COLUMNS`: ``claim`` (its number, from 1), ``statement``,
        ``source``, ``scope``, ``figure``, ``status`` (pass, fail or not checked), ``passed``
        (True, False, or NA when not checked), ``detail`` and ``numbers`` (JSON text).
    """
    rows = []
    for i, claim in enumerate(claims, start=1):
        numbers: Mapping[str, Any] = {}
        if quick and claim.scope == "full":
            status, detail = NOT_CHECKED, "not checked (full grid)"
        elif summary is None:
            status, detail = FAIL, "no summary: the summary step failed"
        else:
            try:
                verdict = claim.check(summary)
            except NotApplicable as exc:
                status, detail = NOT_CHECKED, f"not checked ({exc})"
            except Exception as exc:  # noqa: BLE001 - a broken check is a failed claim, reported
                status, detail = FAIL, f"check failed: {type(exc).__name__}: {exc}"
            else:
                if not isinstance(verdict, Verdict):
                    raise TypeError(
                        f"claim {i}'s check must return a Verdict, got {type(verdict).__name__}"
                    )
                status = PASS if verdict.passed else FAIL
                numbers, detail = verdict.numbers, verdict.detail
        rows.append(
            {
                "claim": i,
                "statement": claim.statement,
                "source": claim.source,
                "scope": claim.scope,
                "figure": claim.figure or "",
                "status": status,
                "passed": {PASS: True, FAIL: False}.get(status, pd.NA),
                "detail": detail,
                "numbers": json.dumps({k: _plain(v) for k, v in numbers.items()}),
            }
        )
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.astype({"claim": "int64", "passed": "boolean"})


def format_claims(table: pd.DataFrame, title: str) -> str:
    """The claims of one run as lines for the terminal: a mark (✓ pass, ✗ fail, – not checked),
    the statement, and the numbers in words."""
    lines = [title]
    for row in table.itertuples():
        lines.append(f"  {MARKS[row.status]} {row.statement}")
        if row.detail:
            lines.append(f"      {row.detail}")
    return "\n".join(lines)


def failed(table: pd.DataFrame) -> int:
    """How many checked claims failed."""
    return int((table["status"] == FAIL).sum())


def counts(table: pd.DataFrame) -> dict[str, int]:
    """``{"pass": .., "fail": .., "not checked": ..}`` for one run's claims table."""
    return {status: int((table["status"] == status).sum()) for status in (PASS, FAIL, NOT_CHECKED)}
