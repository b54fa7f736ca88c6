"""Order-to-chaos phase diagram of deep tanh MLPs (Poole et al. 2016; Schoenholz et al. 2017).

Per (sigma_w2, sigma_b2, seed): ln mean_b ||dL/dh_l||^2 at every layer of a random MLP whose input
is drawn at the mean-field fixed point (x = tanh(sqrt(q*) z): every pre-activation has variance q*
from layer 1 on, no burn-in layers needed). Minus the fitted slope against l is the measured
per-layer growth rate; theory predicts ln chi1, zero on the critical line chi1 = 1.
"""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm

from rnnsim import MLP, plots, theory
from rnnsim.experiment import Experiment, main

RATE = "growth of ln ||dL/dh_l||^2 (nats/layer)"
AXES = ["activation", "width", "depth", "sigma_w2", "sigma_b2"]


def measure(point: dict, seed: int) -> pd.DataFrame:
    sw2, sb2, act, n, L = (
        point[k] for k in ("sigma_w2", "sigma_b2", "activation", "width", "depth")
    )
    mlp = MLP.random(n, L, activation=act, seed=seed, **theory.mlp_scales(sw2, sb2))
    x = theory.fixed_point_input(act, sw2, sb2, 16, n, seed=[seed, 1])
    _, grads = mlp.loss_and_grad(x, np.random.default_rng([seed, 2]).standard_normal((16, n)))
    log_sq = [np.log(np.mean(np.sum(g**2, axis=1))) for g in grads["h"]]
    mf = theory.mean_field(act, sw2, sb2)
    return pd.DataFrame({"layer": np.arange(L + 1), "log_sq_grad": log_sq,
                         "log_chi1_theory": mf["log_chi1"], "q_star": mf["q_star"]})  # fmt: skip


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Measured ln chi1 (minus the least-squares slope in l) per point: mean and sd over seeds."""
    per_seed = table.groupby([*AXES, "seed"]).apply(
        lambda t: pd.Series({"empirical": -np.polyfit(t.layer, t.log_sq_grad, 1)[0],
                             "theory": t.log_chi1_theory.iloc[0]}), include_groups=False)  # fmt: skip
    return per_seed.groupby(AXES).agg(theory=("theory", "first"), empirical=("empirical", "mean"),
                                      sd_over_seeds=("empirical", "std"),
                                      seeds=("empirical", "count")).reset_index()  # fmt: skip


def figures(table: pd.DataFrame) -> dict:
    plots.theme()
    s = summary(table[(table.width == table.width.max()) & (table.depth == table.depth.max())])
    tag = f"{s.activation.iloc[0]} MLP, width {s.width.iloc[0]}, depth {s.depth.iloc[0]}"
    grid = s.pivot_table(index="sigma_b2", columns="sigma_w2", values="empirical")
    fig1, ax = plt.subplots(figsize=(6.5, 4.5), layout="constrained")
    lim = np.nanmax(np.abs(grid.to_numpy()))
    mesh = ax.pcolormesh(grid.columns, grid.index, grid.to_numpy(), shading="nearest",
                         cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -lim, lim))  # fmt: skip
    fig1.colorbar(mesh, ax=ax, label=f"measured {RATE}")
    line = theory.critical_line(s.activation.iloc[0], grid.index[-1] * np.linspace(0, 1, 40) ** 2)
    plots.theory_line(ax, line.sigma_w2, line.sigma_b2, "theory: critical line chi1 = 1")
    ax.set(xlabel="weight variance sigma_w^2 (times fan-in)", ylabel="bias variance sigma_b^2",
           xlim=grid.columns[[0, -1]], title=f"Gradient growth per layer, {tag}")  # fmt: skip
    fig2, ax = plt.subplots(figsize=(6.5, 5.0), layout="constrained")
    for sb2, t in s.groupby("sigma_b2"):
        ax.errorbar(t.theory, t.empirical, yerr=t.sd_over_seeds.fillna(0.0), fmt="o", ms=4,
                    capsize=2, label=f"sigma_b^2 = {sb2:g}")  # fmt: skip
    ends = [s[["theory", "empirical"]].min().min(), s[["theory", "empirical"]].max().max()]
    plots.theory_line(ax, ends, ends, "theory: measured = ln chi1")
    ax.set(xlabel="mean-field ln chi1 (nats/layer)", ylabel=f"measured {RATE}",
           title=f"Measured vs predicted, {tag}\n(error bars: sd over seeds)")  # fmt: skip
    ax.legend(loc="upper left")
    return {"growth_rate_heatmap": fig1, "empirical_vs_theory": fig2}


EXPERIMENT = Experiment(
    name="phase_diagram",
    description="Per-layer growth of squared gradient norms of deep tanh MLPs over "
    "(sigma_w2, sigma_b2), against mean-field ln chi1 and the critical line.",
    grid={
        "activation": ["tanh"],
        "width": [1024, 256],
        "depth": [40],
        "sigma_w2": [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0],
        "sigma_b2": [0.0, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0, 1.5, 2.0],
    },  # fmt: skip
    quick={
        "width": [256],
        "depth": [20],
        "sigma_w2": [0.5, 1.0, 1.5, 2.0, 3.0, 4.0],
        "sigma_b2": [0.0, 0.3, 1.0],
    },  # fmt: skip
    measure=measure,
    figures=figures,
    summary=summary,
    seeds=4,
    quick_seeds=2,
    notes="""Squared gradient norms change by chi1 per layer: they shrink left of the dashed
    critical line (ordered phase) and grow right of it (chaotic phase). Finite width adds
    ~sqrt(2/n) noise per layer, hence the spread over seeds.""",
)

if __name__ == "__main__":
    main(EXPERIMENT)
