"""The ``rnnsim`` command: list, run, compare and report experiments, and run the benchmarks.

::

    rnnsim list [NAME] [--experiments DIR]
    rnnsim run NAME|all [--quick] [--set KEY=V1,V2 ...] [--seeds N] [--name LABEL] [--out DIR]
                        [--workers N] [--scheduler ADDRESS|local] [--force] [--experiments DIR]
    rnnsim runs [NAME] [--out DIR]
    rnnsim plot NAME[:LABEL] --x COL --y COL [--hue/--col/--row/--style COL] [--where EXPR] ...
    rnnsim compare NAME:A NAME:B [...] --x COL --y COL [...]
    rnnsim report [--out DIR] [--embed]
    rnnsim bench ...            (forwarded to rnnsim.bench.main)

Usage errors (unknown experiment, run, axis or column, bad value) print one line and exit with
status 2; failed points one line per kind of failure and status 1; a run stopped by Ctrl-C or
SIGTERM one line (points done, the command that resumes) and status 130 or 143.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from rnnsim import executors
from rnnsim.experiment import (
    RunFailed,
    UsageError,
    _axis_type,
    add_run_arguments,
    failed_claims,
    find_experiments,
    load_experiment,
    parse_set,
    run_from_args,
    stopped_status,
)

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``rnnsim: error: ...``) and exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``rnnsim`` (without ``bench``, which is forwarded as is)."""
    parser = _Parser(
        prog="rnnsim",
        description="A laboratory for the gradient dynamics of deep and recurrent networks.",
    )
    sub = parser.add_subparsers(
        dest="command", metavar="{list,run,runs,plot,compare,report,bench}", parser_class=_Parser
    )
    sub.required = True

    p_list = sub.add_parser(
        "list", help="show every experiment with its grids; with NAME, every axis of it"
    )
    p_list.add_argument("name", nargs="?", metavar="NAME", help="one experiment: its axes")
    p_list.add_argument("--experiments", metavar="DIR", help="folder of experiment scripts")

    p_run = sub.add_parser("run", help="run (or resume) an experiment, or all of them")
    p_run.add_argument("name", metavar="NAME|all", help="experiment name, or 'all'")
    add_run_arguments(p_run)
    p_run.add_argument("--experiments", metavar="DIR", help="folder of experiment scripts")

    p_runs = sub.add_parser("runs", help="list the stored runs (of NAME, or of every experiment)")
    p_runs.add_argument("name", nargs="?", metavar="NAME", help="one experiment")
    p_runs.add_argument(
        "--out", default="results", metavar="DIR", help="results root (default: results/)"
    )

    p_plot = sub.add_parser("plot", help="draw any columns of a stored run's table")
    p_plot.add_argument("run", metavar="NAME[:LABEL]", help="a stored run (NAME: the latest)")
    _add_plot_arguments(p_plot, hue=None)
    p_plot.add_argument(
        "--experiments", metavar="DIR", help="folder of experiment scripts (for their theory)"
    )
    p_compare = sub.add_parser("compare", help="draw several stored runs together")
    p_compare.add_argument("runs", nargs="+", metavar="NAME:LABEL", help="two or more runs")
    _add_plot_arguments(p_compare, hue="run")

    p_report = sub.add_parser("report", help="write OUT/index.html over every result")
    p_report.add_argument(
        "--out", default="results", metavar="DIR", help="results root (default: results/)"
    )
    p_report.add_argument(
        "--embed", action="store_true", help="inline the figures (one portable HTML file)"
    )

    sub.add_parser("bench", help="benchmarks (see rnnsim bench --help)", add_help=False)
    return parser


def _add_plot_arguments(parser: argparse.ArgumentParser, hue: str | None) -> None:
    """The options of ``rnnsim plot`` and ``rnnsim compare`` (``hue``: its default)."""
    from rnnsim.explore import AGGS, BANDS

    parser.add_argument("--x", required=True, metavar="COL", help="column on the x axis")
    parser.add_argument("--y", required=True, metavar="COL", help="column on the y axis")
    parser.add_argument("--hue", default=hue, metavar="COL", help=f"colour by (default: {hue})")
    parser.add_argument("--col", metavar="COL", help="one panel column per value")
    parser.add_argument("--row", metavar="COL", help="one panel row per value")
    parser.add_argument("--style", metavar="COL", help="line style by")
    parser.add_argument("--where", metavar="EXPR", help="rows to keep, e.g. 'T >= 100'")
    parser.add_argument("--logy", action="store_true", help="log scale on y")
    parser.add_argument("--agg", default="mean", choices=AGGS, help="the line (default: mean)")
    parser.add_argument(
        "--band",
        default="ci",
        choices=BANDS,
        help="around it: 95%% interval, one line per seed, or nothing (default: ci)",
    )
    parser.add_argument("--table", metavar="NAME", help="for an experiment with several tables")
    parser.add_argument("--save", metavar="FILE", help="write here (.png, .svg or .pdf)")
    parser.add_argument(
        "--out", default="results", metavar="DIR", help="results root (default: results/)"
    )


def _save(fig, path) -> None:
    from rnnsim import plots

    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UsageError(f"--save: {str(path)!r} must end in .png, .svg or .pdf")
    plots.save(fig, path.with_suffix(""), formats=(path.suffix.lower()[1:],))
    print(f"figure written to {path}")


def _plot_options(args) -> dict:
    names = ("hue", "col", "row", "style", "where", "logy", "agg", "band", "table", "out")
    return {name: getattr(args, name) for name in names}


def _cmd_plot(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from rnnsim import explore

    fig = explore.plot(
        args.run, args.x, args.y, experiments=args.experiments, **_plot_options(args)
    )
    _save(fig, args.save or explore.default_path([args.run], args.x, args.y, args.out))
    return 0


def _cmd_compare(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from rnnsim import explore

    fig = explore.compare(args.runs, args.x, args.y, **_plot_options(args))
    print(explore.compare_text(args.runs, args.out))
    _save(fig, args.save or explore.default_path(args.runs, args.x, args.y, args.out))
    return 0


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def _format_grid(grid) -> str:
    return "; ".join(f"{k} = {', '.join(map(str, v))}" for k, v in grid.items())


def _allowed(exp, axis: str, kind: type) -> str:
    """What ``--set`` accepts on ``axis``: its values, or its type and range."""
    if kind is bool:
        return "true, false"
    if kind is str:
        return ", ".join(map(str, exp.valid_values(axis)))
    low, high = (exp.limits or {}).get(axis, (None, None))
    if low is None and high is None:
        return "any integer" if kind is int else "any finite number"
    return f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"


def _cmd_list_one(exp) -> int:
    """Every axis of one experiment: type, full-grid values, quick values, what is allowed."""
    full, quick = exp.grid_for(False), exp.grid_for(True)
    print(f"{exp.name}: {exp.description}")
    print(f"  full grid: {len(exp.points(full))} points x {_seeds(exp.seeds)}")
    print(f"  quick grid (--quick): {len(exp.points(quick))} points x {_seeds(exp.quick_seeds)}")
    rows = [("axis", "type", "default (full grid)", "quick", "allowed (--set)")]
    for axis in exp.grid:
        kind = _axis_type(list(exp.grid[axis]) + list((exp.quick or {}).get(axis, [])), axis)
        values = [", ".join(map(str, g[axis])) for g in (full, quick)]
        rows.append((axis, kind.__name__, *values, _allowed(exp, axis, kind)))
    _print_columns(rows, indent="  ")
    return 0


def _print_columns(rows, indent: str = "") -> None:
    """Print rows of strings (the first one the header) as left-aligned columns."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print(indent + "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _cmd_list(args) -> int:
    if args.name is not None:
        return _cmd_list_one(_find(args.name, args.experiments))
    scripts = find_experiments(args.experiments)
    if not scripts:
        print("no experiments found (looked for experiments/*.py)")
        return 0
    for stem, path in scripts.items():
        try:
            exp = load_experiment(path)
        except Exception as exc:  # noqa: BLE001 - one broken script must not hide the others
            print(f"{stem}\n    (cannot load {path}: {type(exc).__name__}: {exc})\n")
            continue
        n_full = len(exp.points(exp.grid_for(False)))
        n_quick = len(exp.points(exp.grid_for(True)))
        print(f"{exp.name}\n    {exp.description}")
        print(f"    grid ({n_full} points x {_seeds(exp.seeds)}): {_format_grid(exp.grid)}")
        if exp.quick is not None:
            seeds = _seeds(exp.quick_seeds)
            print(f"    quick ({n_quick} points x {seeds}): {_format_grid(exp.quick)}")
        print()
    return 0


def _cmd_run(args) -> int:
    scripts = find_experiments(args.experiments)
    if args.name == "all":
        if not scripts:
            raise UsageError("no experiments found (looked for experiments/*.py)")
        experiments = [load_experiment(p) for p in scripts.values()]
        # With 'all', each --set key must name an axis of at least one experiment; it applies to
        # the experiments that have that axis.
        keys = [s.partition("=")[0].strip() for s in args.set]
        for key in keys:
            if not any(key in e.grid for e in experiments):
                valid = sorted({k for e in experiments for k in e.grid})
                raise UsageError(
                    f"--set: no experiment has an axis {key!r}; axes: {', '.join(valid)}"
                )
        plans = []
        for exp in experiments:
            own = [s for s, k in zip(args.set, keys, strict=True) if k in exp.grid]
            parse_set(exp, own)  # validate every experiment's overrides before running any
            plans.append((exp, own))
        failed = []
        for exp, own in plans:
            ns = argparse.Namespace(**{**vars(args), "set": own})
            try:
                run_from_args(exp, ns)
            except UsageError:
                raise
            except RunFailed as exc:
                stopped_status(exc)
                failed.append(exp.name)
            except Exception:  # noqa: BLE001 - run the others, fail at the end
                traceback.print_exc()
                failed.append(exp.name)
        from rnnsim.report import write_report

        print(f"report written to {write_report(args.out)}")
        if failed:
            print(
                f"rnnsim: {len(failed)} experiment(s) failed: {', '.join(failed)}", file=sys.stderr
            )
            return 1
        return _claims_status([exp for exp, _ in plans if exp.name not in failed], args)
    experiment = _find(args.name, args.experiments, "or 'all'")
    run_from_args(experiment, args)
    from rnnsim.report import write_report  # the page follows the runs

    print(f"report written to {write_report(args.out)}")
    return _claims_status([experiment], args)


def _find(name: str, directory=None, more: str = ""):
    """The experiment ``name`` (file stem, or an ``EXPERIMENT.name`` that differs from it)."""
    scripts = find_experiments(directory)
    if name in scripts:
        return load_experiment(scripts[name])
    matches = [p for p in scripts.values() if _name_of(p) == name]
    if not matches:
        raise UsageError(
            f"unknown experiment {name!r}; available: {', '.join(scripts) or '(none found)'}"
            + (f", {more}" if more else "")
        )
    return load_experiment(matches[0])


def _claims_status(experiments, args) -> int:
    """With ``--check``: 1, and one line naming them, when checked claims failed; else 0."""
    if not args.check:
        return 0
    failures = {e.name: failed_claims(e, args.out) for e in experiments}
    failures = {name: n for name, n in failures.items() if n}
    if failures:
        listed = ", ".join(f"{name} ({n})" for name, n in failures.items())
        print(f"rnnsim: --check: claims failed in {listed}", file=sys.stderr)
        return 1
    return 0


def _name_of(path) -> str | None:
    try:
        return load_experiment(path).name
    except Exception:  # noqa: BLE001
        return None


def _cmd_runs(args) -> int:
    from rnnsim.runs import stored_runs

    table = stored_runs(args.out, args.name)
    if table.empty:
        print(f"no stored runs in {args.out}/ (run `rnnsim run NAME --quick` first)")
        return 0
    rows = [("", "experiment", "label", "grid", "overrides", "points", "seeds", "date", "claims")]
    for r in table.to_dict("records"):
        rows.append(
            (
                "*" if r["latest"] else "",
                r["experiment"],
                r["label"],
                "quick" if r["quick"] else "full",
                r["overrides"] or "-",
                r["points"],
                r["seeds"],
                r["date"],
                f"{r['pass']} pass, {r['fail']} fail",
            )
        )
    _print_columns(rows)
    print("(* the latest run, also at OUT/NAME/; plot one with `rnnsim plot NAME:LABEL ...`)")
    return 0


def _cmd_report(args) -> int:
    from rnnsim.report import write_report

    try:
        path = write_report(args.out, embed=args.embed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"report written to {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rnnsim`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from rnnsim import bench  # imported lazily: only this subcommand needs it

        return bench.main(argv[1:]) or 0
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            return _cmd_list(args)
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "runs":
            return _cmd_runs(args)
        if args.command == "plot":
            return _cmd_plot(args)
        if args.command == "compare":
            return _cmd_compare(args)
        if args.command == "report":
            return _cmd_report(args)
    except UsageError as exc:
        print(f"rnnsim: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, RunFailed) as exc:  # one line, no traceback
        status = stopped_status(exc)
        executors.exit_if_abandoned(status)
        return status
    except BrokenPipeError:  # e.g. `rnnsim list | head`: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
