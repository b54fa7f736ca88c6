"""Order-to-chaos phase diagram of deep tanh MLPs (Poole et al. 2016; Schoenholz et al. 2017).

Per (sigma_w2, sigma_b2, seed): ln mean_b ||dL/dh_l||^2 at every layer of a random MLP whose input
is drawn at the mean-field fixed point (x = tanh(sqrt(q*) z): every pre-activation has variance q*
from layer 1 on, no burn-in layers needed). Minus the fitted slope against l is the measured
per-layer growth rate; theory predicts ln chi1, zero on the critical line chi1 = 1.
"""

import numpy as np
import pandas as pd

from rnnsim import MLP, plots, theory
from rnnsim.experiment import Experiment, main
from rnnsim.jacobians import growth_rate

RATE = "growth of ln ||dL/dh_l||^2 (nats/layer)"
AXES = ["activation", "width", "depth", "sigma_w2", "sigma_b2"]


def measure(point: dict, seed: int) -> pd.DataFrame:
    sw2, sb2 = point["sigma_w2"], point["sigma_b2"]
    act, n, L = point["activation"], point["width"], point["depth"]
    mlp = MLP.random(n, L, activation=act, seed=seed, **theory.mlp_scales(sw2, sb2))
    x = theory.fixed_point_input(act, sw2, sb2, 16, n, seed=[seed, 1])
    _, grads = mlp.loss_and_grad(x, np.random.default_rng([seed, 2]).standard_normal((16, n)))
    log_sq = [np.log(np.mean(np.sum(g**2, axis=1))) for g in grads["h"]]
    mf = theory.mean_field(act, sw2, sb2)
    return pd.DataFrame(
        {
            "layer": np.arange(L + 1),
            "log_sq_grad": log_sq,
            "log_chi1_theory": mf["log_chi1"],
            "q_star": mf["q_star"],
        }
    )


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Measured ln chi1 (minus the least-squares slope in l) per point: mean and sd over seeds."""
    fits = growth_rate(table, "layer", "log_sq_grad", by=[*AXES, "log_chi1_theory", "seed"])
    fits = fits.assign(empirical=-fits["slope"]).rename(columns={"log_chi1_theory": "theory"})
    stats = fits.groupby([*AXES, "theory"])["empirical"].agg(["mean", "std", "count"])
    return stats.set_axis(["empirical", "sd_over_seeds", "seeds"], axis=1).reset_index()


def figures(table: pd.DataFrame) -> dict:
    plots.theme()
    s = summary(table[(table.width == table.width.max()) & (table.depth == table.depth.max())])
    tag = f"{s.activation.iloc[0]} MLP, width {s.width.iloc[0]}, depth {s.depth.iloc[0]}"
    line = theory.critical_line(s.activation.iloc[0], s.sigma_b2.max() * np.linspace(0, 1, 40) ** 2)
    heat = plots.mesh(
        s,
        "sigma_w2",
        "sigma_b2",
        "empirical",
        center=0.0,
        cmap="RdBu_r",
        figsize=(6.5, 4.5),
        colorbar_label=f"measured {RATE}",
        title=f"Gradient growth per layer, {tag}",
        theory=line,
        theory_label="theory: critical line chi1 = 1",
    )
    scatter = plots.measured_vs_theory(
        s,
        "theory",
        "empirical",
        hue="sigma_b2",
        yerr="sd_over_seeds",
        hue_label="sigma_b^2",
        identity_label="theory: measured = ln chi1",
        ylabel=f"measured {RATE}",
        xlabel="mean-field ln chi1 (nats/layer)",
        title=f"Measured vs predicted, {tag}\n(error bars: sd over seeds)",
    )
    return {"growth_rate_heatmap": heat, "empirical_vs_theory": scatter}


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
    },
    quick={
        "width": [256],
        "depth": [20],
        "sigma_w2": [0.5, 1.0, 1.5, 2.0, 3.0, 4.0],
        "sigma_b2": [0.0, 0.3, 1.0],
    },
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
