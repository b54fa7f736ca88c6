"""The figures of mlp_depth and isometry show every series their legends name (lines that
coincide are nested, not stacked), and mlp_depth's theory overlay for `rnnsim plot`."""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import rnnsim
from rnnsim import layers
from rnnsim.experiment import load_experiment, load_script, run_experiment

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
MLP = load_script(EXPERIMENTS / "mlp_depth.py")
ISO = load_script(EXPERIMENTS / "isometry.py")
INITS = ["uniform", "glorot_uniform", "he", "orthogonal"]


def hidden(fig, tol=1.0):
    """The solid lines of ``fig`` that a later one, at least as wide, covers: the same x values
    and within ``tol`` points on screen at every one of them."""
    found = []
    for ax in fig.axes:
        ax.get_xlim(), ax.get_ylim()  # settle the lazy autoscaling
        lines = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-" and len(ln.get_xdata())]
        pts = [
            ax.transData.transform(np.column_stack([ln.get_xdata(), ln.get_ydata()])) * 72 / fig.dpi
            for ln in lines
        ]
        for i, below in enumerate(lines):
            for j in range(i + 1, len(lines)):
                same = pts[i].shape == pts[j].shape and (abs(pts[i] - pts[j]) < tol).all()
                if same and lines[j].get_linewidth() >= below.get_linewidth():
                    found.append(below)
    return found


def _mlp_table(depths=(3, 6), activation="tanh", seeds=(0, 1)):
    point = {"activation": activation, "sigma_w": 1.0, "width": 16, "batch": 8}
    point |= {"input_scale": 0.1, "sigma_b": 0.0}
    parts = [
        MLP.measure(p := {**point, "init": init, "depth": d}, s).assign(**p, seed=s)
        for init in INITS
        for d in depths
        for s in seeds
    ]
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def mlp_table():
    table = _mlp_table()
    glorot, orth = table.init == "glorot_uniform", table.init == "orthogonal"
    for column in ("grad_h_norm", "grad_W_norm", "act_mean", "act_std", "frac_saturated"):
        table.loc[orth, column] = table.loc[glorot, column].to_numpy()  # coincide exactly
    return table


def test_nest_widens_the_lines_beneath_only():
    fig, ax = plt.subplots()
    x = np.arange(5.0)
    below, middle, top = (ax.plot(x, np.exp(-x), "-")[0] for _ in range(3))
    apart = ax.plot(x, np.exp(x), "-")[0]
    theory = ax.plot(x, np.exp(-x), "--")[0]
    MLP.nest(ax)
    widths = [ln.get_linewidth() for ln in (below, middle, top, apart, theory)]
    assert widths[0] > widths[1] > widths[2] == widths[3] == widths[4]
    assert below.get_markersize() > middle.get_markersize() > top.get_markersize()
    assert not hidden(fig)
    plt.close("all")


def test_mlp_depth_figures_show_coinciding_inits(mlp_table):
    figs = MLP.figures(mlp_table)
    assert "input_over_top_by_depth" in figs
    for name, fig in figs.items():
        assert not hidden(fig), name
    ax = figs["input_over_top_by_depth"].axes[0]
    widths = {ln.get_linewidth() for ln in ax.get_lines()}
    assert len(widths) == 2  # the Glorot line beneath the orthogonal one, the rest as drawn
    plt.close("all")


def test_isometry_edge_figure_shows_every_statistic_and_weights():
    rows = []
    for act in ("linear", "tanh"):
        for weights in ("gaussian", "orthogonal"):
            for depth in (1, 2, 4):
                for seed in (0, 1):
                    point = {"activation": act, "weights": weights, "depth": depth}
                    point |= {"width": 16, "sigma_b2": 1e-3}
                    rows.append(ISO.measure(point, seed).assign(**point, seed=seed))
    figs = ISO.figures(pd.concat(rows, ignore_index=True))
    edge = figs["edge_vs_depth"]
    assert len(edge.axes) == 4  # (largest, mean) x (linear, tanh)
    for name in ("edge_vs_depth", "condition_vs_depth"):
        assert not hidden(figs[name]), name
    linear_largest = edge.axes[0]
    dashed = [ln for ln in linear_largest.get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == 1  # the Fuss-Catalan edge
    np.testing.assert_allclose(dashed[0].get_ydata()[:2], [4.0, 6.75])
    assert not any(ln.get_linestyle() == "--" for ax in edge.axes[1:] for ln in ax.get_lines())
    plt.close("all")


def test_mlp_depth_theory_is_the_mean_field_profile_of_every_condition():
    table = _mlp_table()
    curves = MLP.theory_curves(table)
    assert MLP.EXPERIMENT.theory is MLP.theory_curves
    assert set(MLP.AXES) | {"layer", "grad_h_norm"} == set(curves.columns)
    for depth in (3, 6):
        want = layers.gradient_theory(table[table.depth == depth], by=MLP.AXES)
        got = curves[curves.depth == depth].reset_index(drop=True)
        pd.testing.assert_frame_equal(got[want.columns], want)
        for init in INITS:  # one line per init, layers 0..depth, anchored at the measured top
            line = got[got.init == init]
            assert list(line.layer) == list(range(depth + 1))
            rows = table[(table.depth == depth) & (table.init == init)]
            top = np.exp(np.log(rows.grad_h_norm[rows.layer == depth]).mean())
            assert line.grad_h_norm.iloc[-1] == pytest.approx(top, rel=1e-12)


def test_rnnsim_plot_draws_the_mlp_depth_theory_dashed(tmp_path):
    experiment = load_experiment(EXPERIMENTS / "mlp_depth.py")
    sets = ["activation=tanh", "init=" + ",".join(INITS), "depth=4", "width=16", "batch=8"]
    sets += ["input_scale=0.1"]
    out = tmp_path / "results"
    run_experiment(experiment, sets=sets, seeds=2, out=out, figures=False, progress=False)
    kw = {"hue": "init", "logy": True, "out": out, "experiments": EXPERIMENTS}
    fig = rnnsim.plot("mlp_depth", "layer", "grad_h_norm", **kw)  # the brief's command
    dashed = [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == len(INITS)  # one mean-field line per init
    assert all(list(ln.get_xdata()) == list(range(5)) for ln in dashed)
    plt.close("all")
