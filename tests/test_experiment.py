"""The experiment framework: grids, --set parsing, the cache, kill-and-resume, executors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnsim.experiment import (
    Experiment,
    UsageError,
    expand_grid,
    load_experiment,
    parse_set,
    point_hash,
    run_experiment,
)

FIXTURES = Path(__file__).parent / "fixtures" / "experiments"
TOY = FIXTURES / "toy.py"
CALLS = []


def counting_measure(point, seed):
    CALLS.append((dict(point), seed))
    return pd.DataFrame({"k": [0, 1], "y": [point["a"] * 10.0 + seed, float(len(point["b"]))]})


def make(**kw):
    args = dict(
        name="count",
        description="counts calls",
        grid={"a": [1, 2], "b": ["x", "yy"], "c": [0.5, 1.0], "d": [True, False]},
        quick={"a": [1]},
        measure=counting_measure,
        seeds=2,
        quick_seeds=1,
    )
    args.update(kw)
    return Experiment(**args)


@pytest.fixture(scope="module")
def toy():
    return load_experiment(TOY)


# ------------------------------------------------------------------------------ grids


def test_expand_grid_is_the_product_last_axis_fastest():
    pts = expand_grid({"a": [1, 2], "b": ["x", "y", "z"]})
    assert len(pts) == 6
    assert pts[0] == {"a": 1, "b": "x"} and pts[1] == {"a": 1, "b": "y"}
    assert pts[3] == {"a": 2, "b": "x"}
    assert list(pts[0]) == ["a", "b"]


def test_quick_grid_completes_missing_axes_with_first_values():
    exp = make()
    assert exp.grid_for(True) == {"a": [1], "b": ["x"], "c": [0.5], "d": [True]}
    assert exp.grid_for(False)["b"] == ["x", "yy"]


def test_keep_filters_points():
    exp = make(keep=lambda p: p["b"] == "x" or p["c"] == 0.5)
    pts = exp.points(exp.grid_for(False))
    assert len(pts) == 12
    assert all(p["b"] == "x" or p["c"] == 0.5 for p in pts)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"name": "bad name"}, "identifier"),
        ({"quick": {"zz": [1]}}, "quick has axes"),
        ({"grid": {"a": []}}, "non-empty list"),
        ({"grid": {"a": [1, "x"]}}, "mixes value types"),
        ({"grid": {"a": [None]}}, "int, float, str or bool"),
        ({"grid": {"seed": [1]}}, "seed"),
        ({"seeds": 0}, "seeds must be an integer"),
        ({"measure": 3}, "measure must be callable"),
        ({"tables": "log"}, "non-empty list of names"),
        ({"tables": ["log", "log"]}, "unique"),
        ({"tables": ["a b"]}, "identifiers"),
    ],
)
def test_experiment_validation(kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make(**kw)


# ------------------------------------------------------------------------------ --set


def test_parse_set_types():
    exp = make()
    grid = parse_set(exp, ["a=3,1", "c=2,1e-3", "b=yy", "d=false,TRUE"])
    assert grid["a"] == [3, 1] and all(type(v) is int for v in grid["a"])
    assert grid["c"] == [2.0, 0.001] and all(type(v) is float for v in grid["c"])
    assert grid["b"] == ["yy"]
    assert grid["d"] == [False, True]
    assert parse_set(exp, ["a=1,1"])["a"] == [1]  # duplicates dropped


def test_parse_set_applies_on_the_given_grid():
    exp = make()
    grid = parse_set(exp, ["b=yy"], exp.grid_for(True))
    assert grid == {"a": [1], "b": ["yy"], "c": [0.5], "d": [True]}


@pytest.mark.parametrize(
    "spec, match",
    [
        ("zz=1", "unknown key 'zz'.*valid keys: a, b, c, d"),
        ("a=1.5", "'1.5' is not an integer.*grid values: 1, 2"),
        ("c=big", "'big' is not a number"),
        ("b=q", "'q' is not a valid value; valid values: x, yy"),
        ("d=maybe", "not a boolean"),
        ("a", "KEY=V1,V2"),
        ("a=", "KEY=V1,V2"),
    ],
)
def test_parse_set_errors(spec, match):
    with pytest.raises(UsageError, match=match):
        parse_set(make(), [spec])


def test_parse_set_rejects_a_key_given_twice():
    with pytest.raises(UsageError, match="given twice"):
        parse_set(make(), ["a=1", "a=2"])


def test_choices_extend_string_axes():
    exp = make(choices={"b": ["x", "yy", "zzz"]})
    assert parse_set(exp, ["b=zzz"])["b"] == ["zzz"]


# ------------------------------------------------------------------------------ cache


def test_point_hash_is_stable_and_discriminating():
    h = point_hash("e", {"a": 1, "b": "x"}, 0)
    assert h == point_hash("e", {"b": "x", "a": 1}, 0)  # parameter order is irrelevant
    assert (
        len(
            {
                h,
                point_hash("e", {"a": 1, "b": "x"}, 1),
                point_hash("f", {"a": 1, "b": "x"}, 0),
                point_hash("e", {"a": 2, "b": "x"}, 0),
                point_hash("e", {"a": 1, "b": "x"}, 0, "2"),
            }
        )
        == 5
    )


def test_run_writes_table_manifest_and_hits_the_cache(tmp_path):
    exp = make()
    CALLS.clear()
    table = run_experiment(exp, out=tmp_path, figures=False, progress=False)
    assert len(CALLS) == 32  # 16 points x 2 seeds
    assert list(table.columns[:5]) == ["a", "b", "c", "d", "seed"]
    assert len(table) == 64
    # rows: grid order, then seed
    firsts = table.iloc[::2]
    assert firsts[["a", "b", "c", "d", "seed"]].to_dict("records")[:3] == [
        {"a": 1, "b": "x", "c": 0.5, "d": True, "seed": 0},
        {"a": 1, "b": "x", "c": 0.5, "d": True, "seed": 1},
        {"a": 1, "b": "x", "c": 0.5, "d": False, "seed": 0},
    ]
    root = tmp_path / "count"
    assert len(list((root / "points").glob("*.parquet"))) == 32
    assert not list((root / "points").glob(".*"))  # no temporary files left
    pd.testing.assert_frame_equal(pd.read_parquet(root / "table.parquet"), table)
    assert pd.read_csv(root / "table.csv").shape == table.shape
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["n_computed"] == 32 and manifest["n_cached"] == 0
    assert set(manifest["versions"]) >= {"rnnsim", "numpy", "numba", "python"}
    assert manifest["grid"]["b"] == ["x", "yy"] and manifest["seeds"] == [0, 1]
    assert manifest["reproduce"] == "rnnsim run count"

    CALLS.clear()
    again = run_experiment(exp, out=tmp_path, figures=False, progress=False)
    assert CALLS == []  # every point came from the cache
    pd.testing.assert_frame_equal(again, table, check_exact=True)
    assert json.loads((root / "manifest.json").read_text())["n_cached"] == 32

    # a sub-grid reuses the cached points; --force recomputes them
    CALLS.clear()
    run_experiment(exp, quick=True, out=tmp_path, figures=False, progress=False)
    assert CALLS == []
    run_experiment(exp, quick=True, out=tmp_path, figures=False, progress=False, force=True)
    assert len(CALLS) == 1


def test_seeds_option_and_new_points(tmp_path):
    exp = make()
    CALLS.clear()
    t = run_experiment(
        exp, quick=True, seeds=3, sets=["a=1,2"], out=tmp_path, figures=False, progress=False
    )
    assert sorted(set(t.seed)) == [0, 1, 2] and sorted(set(t.a)) == [1, 2]
    assert len(CALLS) == 6


def test_failing_points_are_reported_and_finished_ones_kept(tmp_path):
    def measure(point, seed):
        if point["a"] == 2:
            raise FloatingPointError("boom")
        return pd.DataFrame({"y": [1.0]})

    exp = make(measure=measure, seeds=1)
    with pytest.raises(RuntimeError, match="8 of 16 points failed") as info:
        run_experiment(exp, out=tmp_path, figures=False, progress=False)
    assert isinstance(info.value.__cause__, FloatingPointError)
    assert len(list((tmp_path / "count" / "points").glob("*.parquet"))) == 8

    exp2 = make(measure=lambda p, s: np.arange(3), seeds=1, name="nodf")
    with pytest.raises(RuntimeError) as info:
        run_experiment(exp2, out=tmp_path, figures=False, progress=False)
    assert "must return a pandas DataFrame" in str(info.value.__cause__)


def test_measure_column_conflicting_with_a_parameter_is_an_error(tmp_path):
    exp = make(measure=lambda p, s: pd.DataFrame({"a": [99]}), seeds=1, name="clash")
    with pytest.raises(RuntimeError) as info:
        run_experiment(exp, quick=True, out=tmp_path, figures=False, progress=False)
    assert "disagrees" in str(info.value.__cause__)


def _two_tables(point, seed):
    """A log with an int step and a spectrum with no rows for a == 2: tables sharing no column."""
    log = pd.DataFrame({"step": np.arange(3), "loss": np.arange(3) + 0.5 * seed})
    n = 0 if point["a"] == 2 else 2
    spectrum = pd.DataFrame({"rank": np.arange(n), "value": np.full(n, float(point["a"]))})
    return {"log": log, "spectrum": spectrum}


def test_several_tables_are_cached_assembled_and_summarised_by_name(tmp_path):
    seen = []
    exp = make(
        measure=_two_tables,
        tables=["log", "spectrum"],
        name="two",
        figures=lambda tables: seen.append(sorted(tables)) or {},
    )
    tables = run_experiment(exp, quick=True, sets=["a=1,2"], seeds=2, out=tmp_path, progress=False)
    root = tmp_path / "two"
    assert sorted(tables) == ["log", "spectrum"] and seen == [["log", "spectrum"]]
    log, spectrum = tables["log"], tables["spectrum"]
    assert list(log.columns) == ["a", "b", "c", "d", "seed", "step", "loss"]
    assert len(log) == 2 * 2 * 3 and log["step"].dtype == np.int64
    assert len(spectrum) == 2 * 2 and set(spectrum.a) == {1}  # a == 2 has no rows
    assert spectrum["rank"].dtype == np.int64
    for name, t in tables.items():
        pd.testing.assert_frame_equal(pd.read_parquet(root / f"table_{name}.parquet"), t)
        assert (root / f"table_{name}.csv").exists()
    assert not (root / "table.parquet").exists()
    assert len(list((root / "points").glob("*.log.parquet"))) == 4
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["tables"] == {"log": 12, "spectrum": 4} and manifest["rows"] == 16
    summary = pd.read_parquet(root / "summary.parquet")
    assert summary.columns[0] == "table" and set(summary["table"]) == {"log", "spectrum"}

    # a point missing one of its tables is computed again
    first = point_hash("two", {"a": 1, "b": "x", "c": 0.5, "d": True}, 0)
    (root / "points" / f"{first}.spectrum.parquet").unlink()
    run_experiment(exp, quick=True, sets=["a=1,2"], seeds=2, out=tmp_path, progress=False)
    assert json.loads((root / "manifest.json").read_text())["n_computed"] == 1

    # a table without rows at every point still has its parameter columns, of their types
    empty = run_experiment(exp, quick=True, sets=["a=2"], out=tmp_path / "e", progress=False)
    assert len(empty["spectrum"]) == 0 and empty["spectrum"]["a"].dtype == np.int64

    bad = make(measure=lambda p, s: {"log": pd.DataFrame()}, tables=["log", "x"], name="bad")
    with pytest.raises(RuntimeError) as info:
        run_experiment(bad, quick=True, out=tmp_path, figures=False, progress=False)
    assert "must return a dict with the keys ['log', 'x']" in str(info.value.__cause__)


# ------------------------------------------------------------------------------ resume


def _uninterrupted(toy, out, **kw):
    return run_experiment(
        toy, quick=True, sets=["n=2,3,4"], out=out, figures=False, progress=False, **kw
    )


def test_killed_run_resumes_to_the_identical_table(toy, tmp_path):
    killed = tmp_path / "killed"
    points = killed / "toy" / "points"
    env = dict(os.environ, RNNSIM_TOY_SLEEP="0.4")
    cmd = [
        sys.executable,
        str(TOY),
        "--quick",
        "--set",
        "n=2,3,4",
        "--out",
        str(killed),
        "--no-figures",
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 90
    try:
        while time.time() < deadline and proc.poll() is None:
            if points.is_dir() and len(list(points.glob("*.parquet"))) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    written = len(list(points.glob("*.parquet")))
    assert 3 <= written < 12
    assert not (killed / "toy" / "table.parquet").exists()

    resumed = _uninterrupted(toy, killed)
    manifest = json.loads((killed / "toy" / "manifest.json").read_text())
    assert manifest["n_cached"] == written and manifest["n_computed"] == 12 - written

    straight = _uninterrupted(toy, tmp_path / "straight")
    pd.testing.assert_frame_equal(resumed, straight, check_exact=True)
    assert (killed / "toy" / "table.csv").read_bytes() == (
        tmp_path / "straight" / "toy" / "table.csv"
    ).read_bytes()


# ------------------------------------------------------------------------------ executors


def test_local_processes_equal_serial(toy, tmp_path):
    serial = _uninterrupted(toy, tmp_path / "serial")
    procs = _uninterrupted(toy, tmp_path / "procs", workers=2)
    pd.testing.assert_frame_equal(procs, serial, check_exact=True)
    manifest = json.loads((tmp_path / "procs" / "toy" / "manifest.json").read_text())
    assert manifest["executor"] == "processes"


def test_dask_local_cluster_equals_serial(toy, tmp_path):
    pytest.importorskip("distributed")
    serial = _uninterrupted(toy, tmp_path / "serial")
    dask = _uninterrupted(toy, tmp_path / "dask", scheduler="local", workers=1)
    pd.testing.assert_frame_equal(dask, serial, check_exact=True)
    assert (tmp_path / "dask" / "toy" / "table.parquet").exists()
    manifest = json.loads((tmp_path / "dask" / "toy" / "manifest.json").read_text())
    assert manifest["executor"] == "dask:local"


def test_figures_are_saved_as_png_and_svg(toy, tmp_path):
    run_experiment(toy, quick=True, out=tmp_path, progress=False)
    figs = tmp_path / "toy" / "figures"
    assert sorted(p.name for p in figs.iterdir()) == ["value_by_i.png", "value_by_i.svg"]
    assert (figs / "value_by_i.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (figs / "value_by_i.svg").read_bytes()[:2000]


# ------------------------------------------------------------------------------ mlp_depth


@pytest.fixture(scope="module")
def mlp_depth():
    return load_experiment(Path(__file__).resolve().parent.parent / "experiments" / "mlp_depth.py")


def _point(**kw):
    return {"activation": "tanh", "init": "uniform", "sigma_w": 1.0, "depth": 20, "width": 32,
            "batch": 64, "input_scale": 1.0, "sigma_b": 0.0, **kw}  # fmt: skip


def test_mlp_depth_linear_orthogonal_preserves_gradient_norms_exactly(mlp_depth):
    t = mlp_depth.measure(_point(activation="linear", init="orthogonal"), 0)
    assert list(t.layer) == list(range(21))
    np.testing.assert_allclose(t.grad_h_norm, t.grad_h_norm.iloc[-1], rtol=1e-10)
    assert t.frac_saturated.iloc[1:].eq(0).all() and np.isnan(t.grad_W_norm.iloc[0])


def test_mlp_depth_standard_init_vanishes_normalised_does_not(mlp_depth):
    def ratio(**kw):
        t = mlp_depth.measure(_point(**kw), 0)
        return t.grad_h_norm.iloc[0] / t.grad_h_norm.iloc[-1]

    # standard init, tanh: n Var W = 1/3, so each layer shrinks the norm by about sqrt(1/3)
    assert ratio() < 3.0 ** (-20 / 2) * 30
    assert ratio(activation="sigmoid") < 1e-10
    assert 0.1 < ratio(init="glorot_uniform") < 10
    assert 0.1 < ratio(activation="relu", init="he") < 10


def test_mlp_depth_quick_figures_and_summary(mlp_depth, tmp_path):
    t = run_experiment(
        mlp_depth,
        quick=True,
        sets=["activation=tanh,linear", "init=uniform,he", "depth=10", "input_scale=1.0"],
        seeds=2,
        out=tmp_path,
        progress=False,
    )
    names = sorted(p.name for p in (tmp_path / "mlp_depth" / "figures").glob("*.png"))
    assert names == ["activation_stats.png", "grad_W_by_layer.png", "grad_h_by_layer.png"]
    s = pd.read_parquet(tmp_path / "mlp_depth" / "summary.parquet")
    assert len(s) == 4 and set(t.activation) == {"tanh", "linear"}


def test_inner_progress_is_transparent():
    from rnnsim.experiment import progress

    assert list(progress(range(3), "steps")) == [0, 1, 2]


def test_float_axes_hold_floats():
    exp = make(grid={"a": [1, 2], "b": ["x"], "c": [1, 0.5], "d": [True]}, quick={"c": [2]})
    assert exp.grid_for(False)["c"] == [1.0, 0.5] and type(exp.grid_for(False)["c"][0]) is float
    assert type(exp.grid_for(True)["c"][0]) is float and type(exp.grid_for(True)["a"][0]) is int


def test_failing_figures_keep_table_and_manifest(tmp_path):
    def figures(table):
        raise KeyError("no such column")

    exp = make(figures=figures, seeds=1)
    with pytest.raises(RuntimeError, match="figures failed") as info:
        run_experiment(exp, quick=True, out=tmp_path, progress=False)
    assert isinstance(info.value.__cause__, KeyError)
    manifest = json.loads((tmp_path / "count" / "manifest.json").read_text())
    assert "no such column" in manifest["errors"]["figures"]
    assert (tmp_path / "count" / "table.parquet").exists()


def test_mlp_depth_norms_do_not_underflow(mlp_depth):
    t = mlp_depth.measure(_point(activation="sigmoid", depth=200, width=16), 0)
    assert (t.grad_h_norm > 0).all() and t.grad_h_norm.iloc[0] < 1e-150  # squares would be 0
    assert (t.grad_W_norm.iloc[1:] > 0).all()
