"""Dynamical isometry: singular values of deep MLPs' input-output Jacobians (Saxe 2014; Pennington 2017)."""

import numpy as np
import pandas as pd
import seaborn as sns

from rnnsim import MLP, jacobian_spectrum, plots, theory
from rnnsim.experiment import Experiment, main

SIGMA_B2 = {"linear": 0.0, "relu": 0.0, "tanh": 0.05}  # critical point: chi1 = 1 at this bias


def measure(point: dict, seed: int) -> pd.DataFrame:
    act, L, n = point["activation"], point["depth"], point["width"]
    sb2 = SIGMA_B2[act]
    sw2 = theory.critical_sigma_w2(act, sb2)
    net = MLP.random(
        n,
        L,
        activation=act,
        init=point["weights"],
        sigma_w=np.sqrt(sw2),
        sigma_b=np.sqrt(sb2),
        seed=seed,
    )
    try:  # inputs at the mean-field fixed point q*
        x = theory.fixed_point_input(act, sw2, sb2, 1, n, seed=[seed, 3])
    except ValueError:  # linear: every q is a fixed point
        x = np.random.default_rng([seed, 3]).standard_normal((1, n))
    spec = jacobian_spectrum(net, x, direction="forward", steps=[L])
    return pd.DataFrame(
        {
            "rank": spec["rank"],
            "log_sv2": 2 * spec["log_singular_value"],
            "sigma_w2": sw2,
            "sigma_b2": sb2,
        }
    )


def figures(table: pd.DataFrame) -> dict:
    plots.theme()
    t = table[(table.width == table.width.max()) & np.isfinite(table.log_sv2)]
    t = t.assign(log10_sv2=t.log_sv2 / np.log(10))
    grid = sns.displot(
        t,
        x="log10_sv2",
        hue="depth",
        col="weights",
        row="activation",
        kind="hist",
        element="step",
        fill=False,
        stat="density",
        common_norm=False,
        palette="viridis",
        height=2.6,
        aspect=1.6,
        facet_kws={"sharey": False},
    )
    grid.set_titles("{row_name}, {col_name} weights")
    grid.set_axis_labels("log10 of squared singular value of dh_L/dh_0", "density")
    grid.figure.suptitle(
        f"Jacobian spectra at criticality, width {t.width.max()}", y=1.0, va="bottom"
    )
    stats = (
        t.groupby(["activation", "weights", "depth", "seed"])
        .log_sv2.agg(top=lambda v: np.exp(v.max()), mean_sv2=lambda v: np.exp(v).mean())
        .reset_index()
        .melt(["activation", "weights", "depth", "seed"], var_name="statistic")
    )
    edge = plots.facets(
        stats,
        x="depth",
        y="value",
        hue="statistic",
        style="weights",
        col="activation",
        logy=True,
        logx=True,
        ylabel="squared singular value",
        title="Largest and mean squared singular value (dashed: Fuss-Catalan edge)",
    )
    depths = np.array(sorted(t.depth.unique()))
    for ax in edge.axes:
        if ax.get_title().endswith("linear"):
            edge_l = [theory.fuss_catalan_edge(int(d)) for d in depths]
            plots.theory_line(ax, depths, edge_l, "Fuss-Catalan edge (L+1)^(L+1)/L^L")
    return {"spectra": grid.figure, "edge_vs_depth": edge}


EXPERIMENT = Experiment(
    name="isometry",
    description="Singular values of dh_L/dh_0 of deep MLPs at criticality: Gaussian vs orthogonal, linear/tanh/relu.",
    grid={
        "activation": ["linear", "tanh", "relu"],
        "weights": ["gaussian", "orthogonal"],
        "depth": [1, 2, 4, 8, 16, 32, 64, 128],
        "width": [128, 256],
    },
    quick={
        "activation": ["linear", "tanh"],
        "weights": ["gaussian", "orthogonal"],
        "depth": [1, 4, 16],
        "width": [64],
    },
    measure=measure,
    figures=figures,
    seeds=3,
    quick_seeds=1,
    notes="""Every singular value of the input-output Jacobian (QR-accumulated, so tiny ones are exact), at the
    critical weight variance (chi1 = 1; tanh with sigma_b^2 = 0.05). Linear Gaussian products follow the
    Fuss-Catalan law (edge (L+1)^(L+1)/L^L, REFERENCES section 5) with mean squared singular value 1;
    orthogonal linear products are exact isometries; orthogonal tanh approaches isometry, ReLU never does
    (Pennington et al. 2017).""",
)

if __name__ == "__main__":
    main(EXPERIMENT)
