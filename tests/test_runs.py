"""Stored runs: labels, runs that accumulate on a shared point cache, `rnnsim runs`, `rnnsim list
NAME`, `rnnsim.load`, and the one-line errors of each (toy fixture: no engine needed)."""

import json
from pathlib import Path

import pandas as pd
import pytest

import rnnsim
from rnnsim import cli
from rnnsim.experiment import (
    UsageError,
    check_label,
    load_experiment,
    run_experiment,
    run_label,
)
from rnnsim.runs import stored_runs

FIXTURES = Path(__file__).parent / "fixtures" / "experiments"


@pytest.fixture(scope="module")
def toy():
    return load_experiment(FIXTURES / "toy.py")


def run(toy, out, **kw):
    return run_experiment(toy, out=out, progress=False, figures=kw.pop("figures", False), **kw)


def manifest(folder):
    return json.loads((Path(folder) / "manifest.json").read_text())


def cmd(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_default_labels():
    assert run_label(True) == "quick"
    assert run_label(False) == "full"
    assert run_label(True, ["T=1000"]) == "quick_T=1000"
    assert run_label(True, ["T = 100, 300"], seeds=5) == "quick_T=100,300_seeds=5"
    assert run_label(False, [], first_seed=3) == "full_first_seed=3"
    assert run_label(True, ["init=a/b"]) == "quick_init=a-b"  # never a path
    long = run_label(True, [f"x{i}=1" for i in range(60)])
    assert len(long) == 120 and check_label(long) == long


@pytest.mark.parametrize("bad", ["", "../up", "a/b", ".hidden", "-x", "a b", "x" * 121, 3])
def test_unsafe_labels_are_refused(bad):
    with pytest.raises(UsageError, match="not a safe run label"):
        check_label(bad)


def test_runs_accumulate_on_the_shared_point_cache(toy, tmp_path):
    root = tmp_path / "toy"
    first = run(toy, tmp_path, quick=True, figures=True)
    assert manifest(root / "runs" / "quick")["n_computed"] == 8
    points = {p: p.stat().st_mtime_ns for p in (root / "points").glob("*.parquet")}
    quick_files = {p: p.stat().st_mtime_ns for p in (root / "runs" / "quick").rglob("*.*")}
    # n = 4 is new, n = 2 is cached: only the new points are computed
    second = run(toy, tmp_path, quick=True, sets=["n=2,4"], name="long")
    assert manifest(root / "runs" / "long")["n_computed"] == 4
    assert manifest(root / "runs" / "long")["n_cached"] == 4
    assert all(p.stat().st_mtime_ns == t for p, t in points.items())  # no point recomputed
    assert all(p.stat().st_mtime_ns == t for p, t in quick_files.items())  # no run overwritten
    pd.testing.assert_frame_equal(pd.read_parquet(root / "runs" / "quick" / "table.parquet"), first)
    pd.testing.assert_frame_equal(pd.read_parquet(root / "runs" / "long" / "table.parquet"), second)
    # the latest run is mirrored at OUT/NAME/: its table, and no figure of the earlier run
    pd.testing.assert_frame_equal(pd.read_parquet(root / "table.parquet"), second)
    assert manifest(root)["label"] == "long"
    assert not list((root / "figures").glob("*"))
    # a third run from the cache alone computes nothing
    run(toy, tmp_path, quick=True, sets=["n=4"])
    assert manifest(root / "runs" / "quick_n=4")["n_computed"] == 0
    assert manifest(root / "runs" / "long")["reproduce"].endswith("--set n=2,4 --name long")
    runs = stored_runs(tmp_path, "toy")
    assert sorted(runs["label"]) == ["long", "quick", "quick_n=4"]
    assert runs.set_index("label")["latest"].to_dict() == {
        "long": False,
        "quick": False,
        "quick_n=4": True,
    }


def test_a_run_of_the_same_label_replaces_only_itself(toy, tmp_path, capsys):
    run(toy, tmp_path, quick=True, name="a")
    run(toy, tmp_path, quick=True, sets=["n=3"], name="b")
    run(toy, tmp_path, quick=True, sets=["n=4"], name="a")
    assert "replacing the stored run 'a'" in capsys.readouterr().out
    assert set(rnnsim.load("toy", run="a", out=tmp_path)["n"]) == {4}
    assert set(rnnsim.load("toy", run="b", out=tmp_path)["n"]) == {3}


def test_load(toy, tmp_path):
    table = run(toy, tmp_path, quick=True)
    pd.testing.assert_frame_equal(rnnsim.load("toy", run="quick", out=tmp_path), table)
    pd.testing.assert_frame_equal(rnnsim.load("toy:quick", out=tmp_path), table)
    pd.testing.assert_frame_equal(rnnsim.load("toy", out=tmp_path), table)  # the latest
    with pytest.raises(UsageError, match="no stored run 'nope'; stored runs: quick"):
        rnnsim.load("toy", run="nope", out=tmp_path)
    with pytest.raises(UsageError, match="no stored runs of experiment 'other'.*with runs: toy"):
        rnnsim.load("other", out=tmp_path)
    with pytest.raises(UsageError, match="has a single table"):
        rnnsim.load("toy", out=tmp_path, table="log")


def test_list_name_shows_every_axis(capsys):
    code, out, _ = cmd(capsys, "list", "toy", "--experiments", str(FIXTURES))
    assert code == 0
    lines = {line.split()[0]: line.split() for line in out.splitlines()[4:]}
    assert lines["n"] == ["n", "int", "2,", "3,", "4", "2,", "3", "[1,", "inf]"]
    assert lines["scale"][1:] == ["float", "0.5,", "1.0", "0.5", "[0.0,", "10.0]"]
    assert lines["mode"][-2:] == ["plain,", "cumsum"] and lines["flag"][1] == "bool"


def test_runs_command_and_name_option(capsys, tmp_path):
    common = ["--experiments", str(FIXTURES), "--out", str(tmp_path), "--no-progress"]
    assert cmd(capsys, "run", "toy", "--quick", *common)[0] == 0
    code, out, _ = cmd(capsys, "run", "toy", "--quick", "--set", "n=4", "--name", "long", *common)
    assert code == 0 and f"{tmp_path}/toy/runs/long/table.parquet" in out
    assert (tmp_path / "index.html").exists()  # the report follows the runs
    code, out, _ = cmd(capsys, "runs", "--out", str(tmp_path))
    assert code == 0
    rows = [line.split() for line in out.splitlines()[1:3]]
    assert rows[0][:4] == ["toy", "quick", "quick", "-"]
    assert rows[1][:6] == ["*", "toy", "long", "quick", "n=4", "2"]
    assert "4 pass, 0 fail" not in out and "2 pass, 0 fail" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "toy", "--name", "../x"], "--name: '../x' is not a safe run label"),
        (["runs", "nope"], "no stored runs of experiment 'nope'"),
        (["list", "nope"], "unknown experiment 'nope'; available: toy"),
        (["run", "toy", "--set", "n=0"], "--set n: 0 is out of range; allowed: [1, inf]"),
        (["run", "toy", "--set", "n=x"], "--set n: 'x' is not an integer"),
    ],
)
def test_errors_are_one_line_with_exit_2(capsys, tmp_path, argv, message):
    extra = ["--out", str(tmp_path)] if argv[0] == "runs" else ["--experiments", str(FIXTURES)]
    if argv[0] == "run":
        extra += ["--out", str(tmp_path), "--quick", "--no-progress"]
    code, _, err = cmd(capsys, *argv, *extra)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_load_plot_and_compare_are_imported_on_first_use():
    import subprocess
    import sys

    code = (
        "import sys, rnnsim\n"
        "assert 'rnnsim.explore' not in sys.modules and 'rnnsim.runs' not in sys.modules\n"
        "assert 'matplotlib' not in sys.modules\n"
        "from rnnsim import load, plot, compare\n"
        "assert plot.__module__ == compare.__module__ == 'rnnsim.explore'\n"
        "assert load.__module__ == 'rnnsim.runs'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)
