"""Helpers that live in one experiment script, tested through the script (`load_script`)."""

import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from rnnsim.experiment import load_script

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def script(name):
    return load_script(EXPERIMENTS / f"{name}.py")


def test_cliff_steepness_draws_exact_peaks_of_resolved_walls_sampled_maxima_and_theory():
    wall = pd.DataFrame(
        {
            "T": [5, 5, 5],
            "w": [1.0, 2.0, 3.0],
            "peak_abs_dE_db": [2.0, 8.0, 1e9],
            "grid_max_abs_dE_db": [1.5, 4.0, 3.0],
            "resolved": [True, True, False],
        }
    )
    theory = pd.DataFrame(
        {"T": [5, 5, 9, 9], "w": [1.0, 3.0, 1.0, 3.0], "boundary_abs_dE_db": [1.0, 10.0, 2.0, 20.0]}
    )
    ax = script("cliff").steepness_figure(wall, theory).axes[0]
    data = {ln.get_label(): ln for ln in ax.get_lines()}
    drawn = [ln.get_xydata() for ln in ax.get_lines() if len(ln.get_xydata())]

    def was_drawn(xy):  # y is the geometric mean of one row: exp(log(y)) up to rounding
        return any(d.shape == np.shape(xy) and np.allclose(d, xy, rtol=1e-14) for d in drawn)

    assert was_drawn([[1.0, 2.0], [2.0, 8.0]])  # exact peaks: resolved walls only
    assert was_drawn([[1.0, 1.5], [2.0, 4.0], [3.0, 3.0]])  # the grid's maxima: every wall
    _, labels = ax.get_legend_handles_labels()
    assert {"exact peak (walls wider than 1 ulp)", "max over the grid's b samples"} <= set(labels)
    for T, grey in ((5, "0.0"), (9, "0.35")):
        line = data[f"|dE/db| on the basin boundary (exact), T={T}"]
        np.testing.assert_array_equal(line.get_ydata(), theory[theory["T"] == T].iloc[:, 2])
        assert line.get_linestyle() == "--" and line.get_color() == grey
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "max |dE/db| across the cliff"
    matplotlib.pyplot.close("all")


def _layer_rows():
    return pd.DataFrame(
        [
            {
                "activation": a,
                "init": i,
                "sigma_w": 1.0,
                "depth": 3,
                "width": 8,
                "batch": 4,
                "input_scale": 1.0,
                "sigma_b": 0.0,
                "layer": l,
                "seed": s,
                "grad_h_norm": (s + 1) * k**l,
                "grad_W_norm": 2.0 * l,
                "act_mean": 0.0,
                "act_std": 1.0,
                "frac_saturated": 0.1 * l,
            }
            for a, k in (("tanh", 2.0), ("relu", 0.5))
            for i in ("he", "uniform")
            for l in range(4)
            for s in range(2)
        ]
    )


def test_mlp_depth_summary_compares_the_input_end_with_the_top():
    s = script("mlp_depth").summary(_layer_rows())
    assert list(s["activation"]) == ["tanh", "tanh", "relu", "relu"]
    # seeds 0 and 1 scale the profile by 1 and 2: the ratio is each seed's, 1/8 and 8
    np.testing.assert_allclose(s["||dL/dh_0|| / ||dL/dh_L||"], [1 / 8] * 2 + [8.0] * 2)
    np.testing.assert_allclose(s["log_slope"], [-np.log(2)] * 2 + [np.log(2)] * 2)
    np.testing.assert_allclose(s["||dL/dW_1|| / ||dL/dW_L||"], [2.0 / 6.0] * 4)
    np.testing.assert_allclose(s["saturated, top layer"], [0.3] * 4)


def test_mlp_depth_activation_panels_of_exploding_units_get_symlog_and_no_bands():
    mlp_depth = script("mlp_depth")
    table = _layer_rows()
    # exploding activations (relu, std 1e30 at the top layer): that panel alone gets symlog
    boom = table.assign(act_std=np.where(table["activation"] == "relu", 1e10 ** table["layer"], 1))
    fig = mlp_depth.activation_stats(boom, None, ", depth 3")
    assert "phi' < 5% of its max), depth 3" in fig.texts[0].get_text()
    stats = fig.axes
    assert [ax.get_yscale() for ax in stats] == ["linear"] * 3 + ["symlog"] + ["linear"] * 2
    assert not stats[3].collections and stats[2].collections  # no bands in the symlog panel
    matplotlib.pyplot.close("all")


def test_landscape_figures_draw_every_table_and_one_slice_panel_per_condition():
    rows = []
    for model in ("rnn", "mlp"):
        for seed in (0, 1):
            base = {"model": model, "task": {"rnn": "adding", "mlp": "teacher"}[model], "T": 10}
            base |= {"hidden": 4, "lr": 0.1, "batch_size": 10, "optimizer": "sgd", "steps": 8}
            base |= {"seed": seed}
            rows += [
                {**base, "kind": "interpolation", "alpha": a, "loss": 1 + a**2}
                for a in (-0.5, 0.0, 1.0)
            ]
            rows += [{**base, "kind": "ravine", "step": s, "ravine_ratio": 2.0 + s} for s in (0, 5)]
            rows += [{**base, "kind": "minimum", "sharpness": 3.0 + seed, "loss": 1.0 - seed / 4}]
            rows += [
                {**base, "kind": "density", "eigenvalue": e, "density": d}
                for e, d in ((0.0, 0.0), (1.0, 0.5))
            ]
            rows += [
                {**base, "kind": "slice", "a": a, "b": b, "loss": 10.0 ** (a + 2 * b + seed)}
                for a in (-1.0, 0.0, 1.0)
                for b in (-1.0, 0.0, 1.0)
            ]
    landscape = script("landscape")
    stacked = pd.DataFrame(rows)
    tables = {k: landscape.part(stacked, k) for k in stacked["kind"].unique()}
    assert list(tables["minimum"].columns) == [*landscape.AXES, "seed", "loss", "sharpness"]
    figs = landscape.figures(tables)
    assert list(figs) == ["interpolation", "ravine_ratio", "minima", "hessian_density", "slices"]
    minima = figs["minima"].axes[0]  # one marker per minimum, against its held-out loss
    assert minima.get_xlabel() == "sharpness lambda_max(H) at the solution"
    assert sorted(map(tuple, minima.collections[0].get_offsets())) == [(3.0, 1.0), (4.0, 0.75)]
    assert "rnn: rho undefined, n = 2" in figs["minima"].texts[0].get_text()  # n < 3
    assert "monotone on [0, 1] in 0 of 4 runs" in figs["interpolation"].texts[0].get_text()
    dens = figs["hessian_density"].axes[0]
    assert dens.get_yscale() == "log" and dens.get_ylim()[0] == 1e-6  # zero density floored
    assert min(ln.get_ydata().min() for ln in dens.get_lines() if len(ln.get_ydata())) == 1e-6
    fig = figs["slices"]
    maps = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in maps] == ["mlp, batch 10", "rnn, batch 10"]
    (star,) = maps[0].get_lines()
    assert star.get_marker() == "*" and list(star.get_xydata()[0]) == [0.0, 0.0]
    (contours,) = maps[0].collections  # log10 of seed 0's losses: a + 2 b over [-1, 1]^2
    assert (contours.zmin, contours.zmax) == (-3.0, 3.0)
    assert "seed 0" in fig.texts[0].get_text()
    matplotlib.pyplot.close("all")


def test_ill_conditioning_unlearning_counts_by_group():
    # two runs; rows with NaN gTHg are steps the callback skipped and must not count
    rows = [  # run, gTHg, raised, predicted, kappa
        ("a", 1.0, True, True, 10.0),
        ("a", np.nan, None, None, np.nan),
        ("a", 2.0, True, False, 30.0),
        ("a", 3.0, False, True, 20.0),
        ("a", 4.0, False, False, 40.0),
        ("b", 5.0, True, True, 5.0),
        ("b", np.nan, None, None, np.nan),
    ]
    records = pd.DataFrame(
        rows, columns=["run", "gTHg", "raised_loss", "predicts_increase", "kappa"]
    )
    out = script("ill_conditioning").unlearning(records, ["run"])
    expected = {}
    for run, gthg, raised, pred, kappa in rows:  # an independent count, row by row
        if math.isnan(gthg):
            continue
        e = expected.setdefault(run, [0, 0, 0, 0, []])
        e[0] += 1
        e[1] += raised
        e[2] += raised and pred
        e[3] += pred
        e[4].append(kappa)
    assert list(out.index) == ["a", "b"]
    for run, (n, raised, both, pred, kappas) in expected.items():
        got = out.loc[run].tolist()
        assert got == [n, raised, both, pred, float(np.median(kappas))]
    assert list(out.columns) == [
        "analysed steps",
        "steps that raised the loss",
        "of them predicted",
        "predicted raises",
        "median condition number",
    ]
    with pytest.raises(KeyError):
        script("ill_conditioning").unlearning(records.drop(columns="raised_loss"), ["run"])
