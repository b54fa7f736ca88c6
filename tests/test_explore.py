"""`rnnsim plot` and `rnnsim compare` on small stored runs of the toy fixture (no engine needed):
the figures, the theory overlay, the claims and summaries side by side, and the one-line errors."""

import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import rnnsim
from rnnsim import cli, explore, plots
from rnnsim.experiment import UsageError, load_experiment, run_experiment

FIXTURES = Path(__file__).parent / "fixtures" / "experiments"
XY = ("--x", "i", "--y", "value")


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """Stored runs toy:quick, toy:long (n = 4), toy:short (n = 3) and other:quick_scale=1.0 (a
    second experiment)."""
    root = tmp_path_factory.mktemp("explore")
    scripts = root / "experiments"
    scripts.mkdir()
    shutil.copy(FIXTURES / "toy.py", scripts / "toy.py")
    text = (FIXTURES / "toy.py").read_text().replace('name="toy"', 'name="other"')
    (scripts / "other.py").write_text(text)
    toy, other = (load_experiment(scripts / f"{n}.py") for n in ("toy", "other"))
    kw = {"out": root / "results", "progress": False, "figures": False, "quick": True}
    run_experiment(toy, **kw)
    run_experiment(toy, sets=["n=4"], name="long", **kw)
    run_experiment(toy, sets=["n=3"], name="short", **kw)
    run_experiment(other, sets=["scale=1.0"], **kw)
    return root


def cmd(capsys, *argv):
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    stdout, err = capsys.readouterr()
    return code, stdout, err


def dashed(fig):
    return [line for ax in fig.axes for line in ax.get_lines() if line.get_linestyle() == "--"]


def test_plot_draws_panels_and_the_theory(out):
    results = out / "results"
    fig = rnnsim.plot(
        "toy:quick",
        "i",
        "value",
        hue="mode",
        out=results,
        experiments=out / "experiments",
    )
    assert len(dashed(fig)) == 2  # the theory, one line per mode
    fig = rnnsim.plot(
        "toy:quick", "i", "value", hue="flag", col="n", out=results, experiments=out / "experiments"
    )
    assert len(fig.axes) == 2 and not dashed(fig)  # the theory has no flag or n: not drawn
    assert fig.texts[0].get_text() == "toy:quick; mean over mode plain, cumsum"
    plt.close("all")


@pytest.mark.parametrize("agg, band", [("median", "ci"), ("mean", "seeds"), ("mean", "none")])
def test_plot_aggregates_and_bands(out, agg, band):
    fig = explore.plot(
        "toy", "i", "value", hue="mode", agg=agg, band=band, out=out / "results", theory=False
    )
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if len(line.get_xdata())]
    assert len(lines) == (4 if band == "seeds" else 2)  # 2 seeds x 2 modes, or 2 modes
    assert bool(ax.collections) == (band == "ci")  # the shaded bands
    plt.close("all")


def test_median_and_its_interval():
    table = pd.DataFrame({"x": [0] * 20 + [1], "y": [*range(20), 7]})
    got = plots.summarize(table, "x", "y", estimator="median")
    assert got["y"].tolist() == [9.5, 7.0]
    assert got["y_low"].tolist() == [4.0, 7.0] and got["y_high"].tolist() == [15.0, 7.0]
    with pytest.raises(ValueError, match="estimator must be 'mean' or 'median'"):
        plots.summarize(table, "x", "y", estimator="max")


def test_where_selects_rows(out):
    fig = explore.plot(
        "toy:quick", "i", "value", col="n", where="n == 3 and mode == 'cumsum'", out=out / "results"
    )
    assert len(fig.axes) == 1 and "n == 3" in fig.texts[0].get_text()
    plt.close("all")


def test_compare_runs_of_one_experiment(out, capsys):
    results = out / "results"
    fig = rnnsim.compare(["toy:quick", "toy:long"], "i", "value", col="mode", out=results)
    legend = [t.get_text() for t in fig.legends[0].texts]
    assert legend == ["toy:quick", "toy:long"]
    assert fig.texts[0].get_text() == "toy:quick vs toy:long; mean over n 2, 3, 4"
    fig = rnnsim.compare(["toy:short", "toy:long"], "i", "value", col="mode", out=results)
    assert fig.texts[0].get_text() == "toy:short vs toy:long"  # n is the run: nothing averaged
    text = explore.compare_text(["toy:quick", "toy:long"], results)
    assert "1. Mean values are finite." in text and "toy:long   ✓ pass: max |mean|" in text
    assert "one run after another (their rows do not correspond)" in text  # n = 2, 3 vs 4
    text = explore.compare_text(["toy:short", "toy:long"], results)
    assert "differences: each run minus short" in text
    table = [line.split() for line in text.splitlines()]
    header = table.index(["quantity", "mode", "short", "long", "long", "-", "short"])
    summaries = [
        pd.read_parquet(results / "toy" / "runs" / r / "summary.parquet").set_index("mode")
        for r in ("short", "long")
    ]
    plain = table[header + 3]  # i (plain, cumsum), then value
    assert plain[:2] == ["value", "plain"]
    numbers = [s.loc["plain", "value"] for s in summaries]
    expected = [*numbers, numbers[1] - numbers[0]]
    assert [float(v) for v in plain[2:]] == pytest.approx(expected, rel=1e-3)
    plt.close("all")


def test_compare_runs_of_two_experiments_on_shared_columns(out):
    results = out / "results"
    fig = explore.compare(["toy:quick", "other"], "i", "value", out=results, where="seed == 0")
    assert [t.get_text() for t in fig.legends[0].texts] == ["toy:quick", "other:quick_scale=1.0"]
    text = explore.compare_text(["toy:quick", "other"], results)
    assert "other:quick_scale=1.0" in text
    plt.close("all")


def test_cli_plot_and_compare_write_figures(out, capsys, tmp_path):
    results = str(out / "results")
    code, stdout, err = cmd(capsys, "plot", "toy:long", *XY, "--out", results)
    assert code == 0, err
    path = out / "results" / "toy" / "runs" / "long" / "plots" / "i_value.png"
    assert path.exists() and f"figure written to {path}" in stdout
    save = tmp_path / "cmp.svg"
    argv = ["compare", "toy:quick", "toy:long", *XY, "--col", "mode"]
    code, stdout, err = cmd(capsys, *argv, "--save", str(save), "--out", results)
    assert code == 0, err
    assert save.exists() and "claims, run by run:" in stdout
    code, stdout, _ = cmd(capsys, *argv[:5], "--y", "value", "--out", results)
    assert (out / "results" / "compare" / "i_value__toy.quick__toy.long.png").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["plot", "toy:nope", *XY], "no stored run 'nope'; stored runs: long, quick, short"),
        (["plot", "nope", *XY], "no stored runs of experiment 'nope'"),
        (
            ["plot", "toy", "--x", "i", "--y", "vlue"],
            "--y: no column 'vlue' in toy:short; columns: n, mode",
        ),
        (["plot", "toy", *XY, "--hue", "zz"], "--hue: no column 'zz'"),
        (["plot", "toy", *XY, "--where", "n >"], "--where 'n >' does not parse"),
        (["plot", "toy", *XY, "--where", "zz > 1"], "--where 'zz > 1' does not parse"),
        (["plot", "toy", *XY, "--where", "n > 9"], "selects no rows"),
        (["plot", "toy", *XY, "--agg", "max"], "invalid choice: 'max'"),
        (["plot", "toy", *XY, "--save", "f.txt"], "must end in .png, .svg"),
        (["plot", "toy", *XY, "--table", "t"], "has a single table"),
        (["plot", "toy", "--x", "i"], "the following arguments are required: --y"),
        (["plot", "toy:", *XY], "a run is named NAME or NAME:LABEL"),
        (["compare", "toy:quick", *XY], "compare needs at least two runs"),
        (
            ["compare", "toy:quick", "other", *XY, "--col", "label2"],
            "no column 'label2' in toy:quick; columns every run has",
        ),
    ],
)
def test_bad_input_is_one_line_with_exit_2(out, capsys, argv, message):
    code, _, err = cmd(capsys, *argv, "--out", str(out / "results"))
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_too_many_panels_is_refused(out):
    table = rnnsim.load("toy:quick", out=out / "results")
    assert table["i"].nunique() <= explore.MAX_PANELS  # the toy is small; check the rule itself
    big = pd.DataFrame({"x": np.arange(20), "y": 1.0, "c": np.arange(20)})
    with pytest.raises(UsageError, match="--col c: 20 values, more than 12 panels"):
        explore._check(big, {"x": "x", "y": "y", "col": "c"}, "a table")


def test_compare_with_another_hue_keeps_the_runs_apart(out):
    results = out / "results"
    fig = explore.compare(["toy:short", "toy:long"], "i", "value", hue="mode", out=results)
    legend = [t.get_text() for t in fig.legends[0].texts]
    assert legend == ["mode", "plain", "cumsum", "run", "toy:short", "toy:long"]  # run: style
    taken = {"hue": "mode", "style": "seed", "row": "n", "col": "flag"}
    with pytest.raises(UsageError, match="all taken"):
        explore.compare(["toy:short", "toy:long"], "i", "value", **taken, out=results)
    plt.close("all")


TWO = """
import numpy as np
import pandas as pd

from rnnsim.experiment import Experiment


def measure(point, seed):
    steps = np.arange(point["n"])
    log = pd.DataFrame({"step": steps, "loss": 1.0 / (1 + steps)})
    return {"log": log, "final": pd.DataFrame({"loss": [0.5]})}


def theory(tables):
    return {"log": pd.DataFrame({"step": [0, 3], "loss": [1.0, 0.25]})}


EXPERIMENT = Experiment(
    name="two", description="Two tables.", grid={"n": [3, 4]}, quick=None, measure=measure,
    tables=["log", "final"], theory=theory,
)
"""


def test_plot_one_table_of_a_multi_table_experiment_with_its_theory(tmp_path):
    scripts = tmp_path / "experiments"
    scripts.mkdir()
    (scripts / "two.py").write_text(TWO)
    run_experiment(load_experiment(scripts / "two.py"), out=tmp_path, progress=False)
    fig = explore.plot("two", "step", "loss", table="log", out=tmp_path, experiments=scripts)
    assert len(fig.axes) == 1 and len(dashed(fig)) == 1
    assert fig.texts[0].get_text() == "two:full (table log); mean over n 3, 4"
    with pytest.raises(UsageError, match="has several tables; choose one .*: log, final"):
        explore.plot("two", "step", "loss", out=tmp_path)
    with pytest.raises(UsageError, match="has no table 'nope'"):
        rnnsim.load("two", out=tmp_path, table="nope")
    plt.close("all")
