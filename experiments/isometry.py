"""Dynamical isometry: singular values of deep MLPs' input-output Jacobians (Saxe 2014; Pennington 2017)."""

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import same_color

from rnnsim import MLP, jacobian_spectrum, plots, theory
from rnnsim.claims import Claim, NotApplicable, Verdict, rows
from rnnsim.experiment import Experiment, main

AXES = ["activation", "weights", "depth", "width", "sigma_b2"]
EDGE_DEPTH, EDGE_TOL = 2, 0.15  # depths <= EDGE_DEPTH: largest s^2 within EDGE_TOL of the edge
WELL, ILL = 1e3, 1e4  # condition numbers: orthogonal tanh below WELL, Gaussian tanh above ILL
WELL_DEPTH, ILL_DEPTH = 16, 4  # ... up to WELL_DEPTH, resp. from ILL_DEPTH on
LARGEST, MEAN = "largest s²", "mean s²"  # the rows of edge_vs_depth


def measure(point: dict, seed: int) -> pd.DataFrame:
    act, L, n, sb2 = point["activation"], point["depth"], point["width"], point["sigma_b2"]
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
    except ValueError:  # linear, relu: no finite non-zero fixed point
        x = np.random.default_rng([seed, 3]).standard_normal((1, n))
    spec = jacobian_spectrum(net, x, direction="forward", steps=[L])
    return pd.DataFrame(
        {"rank": spec["rank"], "log_sv2": 2 * spec["log_singular_value"], "sigma_w2": sw2}
    )


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """The spectrum's edge, mean and spread per condition, over seeds.

    One row per (activation, weights, depth, width, sigma_b2): ``sigma_w2`` (critical),
    ``seeds``, ``top_sv2`` (largest squared singular value, mean over seeds) and ``top_sv2_se``
    (its standard error), ``fc_edge`` (the Fuss-Catalan edge (L+1)^(L+1)/L^L, for linear
    Gaussian products only), ``mean_sv2`` (mean squared singular value, mean over seeds; 1 at
    criticality in mean field) and ``log10_cond`` (log10 of the condition number s_max / s_min
    of dh_L/dh_0, mean over seeds).
    """
    t = table[np.isfinite(table.log_sv2)]
    per = t.groupby([*AXES, "sigma_w2", "seed"], sort=False).log_sv2.agg(
        top=lambda v: np.exp(v.max()),
        mean_sv2=lambda v: np.exp(v).mean(),
        log10_cond=lambda v: (v.max() - v.min()) / (2 * np.log(10)),
    )
    g = per.groupby(level=[*AXES, "sigma_w2"], sort=False)
    out = g.agg(
        seeds=("top", "count"),
        top_sv2=("top", "mean"),
        top_sv2_sd=("top", "std"),
        mean_sv2=("mean_sv2", "mean"),
        log10_cond=("log10_cond", "mean"),
    ).reset_index()
    gaussian_linear = (out.activation == "linear") & (out.weights == "gaussian")
    edge = [theory.fuss_catalan_edge(int(d)) for d in out.depth]
    out.insert(
        out.columns.get_loc("top_sv2_sd"), "fc_edge", np.where(gaussian_linear, edge, np.nan)
    )
    se = out.pop("top_sv2_sd") / np.sqrt(out.seeds)
    out.insert(out.columns.get_loc("fc_edge"), "top_sv2_se", se)
    return out


def edge_is_fuss_catalan(summary: pd.DataFrame) -> Verdict:
    """Gaussian linear: top s^2 within EDGE_TOL of the edge at depth <= EDGE_DEPTH, and never
    above it by more than 3 standard errors."""
    r = rows(summary, activation="linear", weights="gaussian")
    near = r[r.depth <= EDGE_DEPTH]
    if near.empty:
        raise NotApplicable(f"the run has no Gaussian linear product of depth <= {EDGE_DEPTH}")
    rel = near.top_sv2 / near.fc_edge - 1
    over = (r.top_sv2 - r.fc_edge) / r.top_sv2_se.where(r.top_sv2_se > 0)
    per_depth = ", ".join(
        f"L={d}: {top:.2f} vs {e:.2f}"
        for d, top, e in zip(r.depth, r.top_sv2, r.fc_edge, strict=True)
    )
    numbers = {f"largest s^2 at depth {d}": v for d, v in zip(r.depth, r.top_sv2, strict=True)}
    numbers |= {"largest relative gap (depth <= 2)": rel.abs().max(), "tolerance": EDGE_TOL}
    numbers |= {"largest excess over the edge (standard errors)": over.max()}
    passed = bool((rel.abs() <= EDGE_TOL).all() and not (over > 3).any())
    detail = (
        f"largest s^2 vs Fuss-Catalan edge: {per_depth}; at depth <= {EDGE_DEPTH} off by at most "
        f"{rel.abs().max():.1%} (allowed {EDGE_TOL:.0%}); never above the edge by > 3 SE"
    )
    return Verdict(passed, numbers, detail)


def orthogonal_tanh_well_conditioned(summary: pd.DataFrame) -> Verdict:
    """tanh at criticality: orthogonal kappa <= WELL up to WELL_DEPTH, Gaussian >= ILL from ILL_DEPTH."""
    orth = rows(summary, activation="tanh", weights="orthogonal")
    gauss = rows(summary, activation="tanh", weights="gaussian")
    orth, gauss = orth[orth.depth <= WELL_DEPTH], gauss[gauss.depth >= ILL_DEPTH]
    if orth.empty or gauss.empty:
        raise NotApplicable("the run lacks orthogonal or Gaussian tanh at the depths compared")
    numbers = dict(
        zip("orthogonal log10 cond, depth " + orth.depth.astype(str), orth.log10_cond, strict=True)
    )
    numbers |= dict(
        zip("Gaussian log10 cond, depth " + gauss.depth.astype(str), gauss.log10_cond, strict=True)
    )
    worst_o, best_g = orth.log10_cond.max(), gauss.log10_cond.min()
    passed = bool(worst_o <= np.log10(WELL) and best_g >= np.log10(ILL))
    detail = (
        f"condition number of dh_L/dh_0: orthogonal at most 10^{worst_o:.2f} (depth <= "
        f"{orth.depth.max()}; allowed {WELL:g}), Gaussian at least 10^{best_g:.2f} (depth >= "
        f"{gauss.depth.min()}; required {ILL:g})"
    )
    return Verdict(passed, numbers, detail)


CLAIMS = [
    Claim(
        "For products of Gaussian matrices (linear network at criticality) the largest squared "
        "singular value sits at the Fuss-Catalan edge (L+1)^(L+1)/L^L: within "
        f"{EDGE_TOL:.0%} of it at depth ≤ {EDGE_DEPTH}, and at no depth above it by more than 3 "
        "standard errors (finite width keeps it inside).",
        edge_is_fuss_catalan,
        source="Pennington et al. 2017, sec. 3; Saxe et al. 2014, Fig. 6",
        figure="edge_vs_depth",
    ),
    Claim(
        "At criticality, orthogonal tanh networks stay well conditioned with depth "
        f"(condition number ≤ {WELL:g} up to depth {WELL_DEPTH}), and Gaussian tanh networks do "
        f"not (condition number ≥ {ILL:g} from depth {ILL_DEPTH} on).",
        orthogonal_tanh_well_conditioned,
        source="Pennington, Schoenholz & Ganguli 2017, sec. 4; Saxe et al. 2014, App. G",
        figure="condition_vs_depth",
    ),
]


def _tag(t):
    """Title words: width, bias variance, input and seeds of the networks of ``t``."""
    return (
        f"width {t.width.max()}, sigma_b^2 {t.sigma_b2.iloc[0]:g}, one input at q*, "
        f"{t.seed.nunique()} seeds"
    )


def edge_vs_depth(per_seed: pd.DataFrame, tag: str):
    """The largest and the mean squared singular value against depth, one row of panels each
    (so that orthogonal linear networks, whose every singular value is 1, show both), one
    column per activation; colour and marker by weights, geometric mean over seeds and its
    band (log y; linear for a mean panel that stays within a decade); dashed: the
    Fuss-Catalan edge, in the Gaussian colour, for linear networks.

    In the mean row, where both weights give 1 at criticality, the Gaussian line is drawn
    wider beneath the orthogonal one, so that neither hides the other where they coincide.
    """
    depth = np.arange(1, per_seed.depth.max() + 1)
    fuss_catalan = pd.DataFrame(
        {"depth": depth, "value": [theory.fuss_catalan_edge(int(d)) for d in depth]}
    ).assign(variable=LARGEST, activation="linear", weights="gaussian")
    palette = plots.hue_palette(per_seed, "weights")
    fig = plots.facets(
        per_seed,
        x="depth",
        y={"largest": LARGEST, "mean": MEAN},
        hue="weights",
        style="weights",
        markers=True,
        col="activation",
        logy=True,
        logx=True,
        sharey=False,
        palette=palette,
        theory=fuss_catalan,  # drawn in the linear panel only
        ylabel="squared singular value of dh_L/dh_0",
        title="Largest and mean squared singular value (geometric mean over seeds, 95% band)\n"
        f"{tag}\ndashed: Fuss-Catalan edge (L+1)^(L+1)/L^L of Gaussian linear products",
    )
    n_cols = per_seed.activation.nunique()
    for ax in fig.axes[n_cols:]:  # the mean row
        low, high = ax.get_ylim()
        if high < 10 * low:  # lines and bands within a decade: plain ticks read better
            ax.set_yscale("linear")
        for line in ax.get_lines():
            if line.get_linestyle() == "-" and same_color(line.get_color(), palette["gaussian"]):
                line.set_linewidth(3 * line.get_linewidth())
                line.set_markersize(1.6 * line.get_markersize())
    return fig


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
    grid.figure.suptitle(f"Jacobian spectra at criticality, {_tag(t)}", y=1.0, va="bottom")
    per_seed = (
        t.groupby(["activation", "weights", "depth", "seed"])
        .log_sv2.agg(
            largest=lambda v: np.exp(v.max()),
            mean=lambda v: np.exp(v).mean(),
            log10_cond=lambda v: (v.max() - v.min()) / (2 * np.log(10)),
        )
        .reset_index()
    )
    edge = edge_vs_depth(per_seed, _tag(t))
    cond = plots.facets(
        per_seed,
        x="depth",
        y="log10_cond",
        hue="weights",
        style="weights",
        markers=True,
        col="activation",
        logx=True,
        ylabel="log10 (s_max / s_min)",
        title=f"Condition number of dh_L/dh_0 at criticality\n{_tag(t)}",
    )
    return {"spectra": grid.figure, "edge_vs_depth": edge, "condition_vs_depth": cond}


EXPERIMENT = Experiment(
    name="isometry",
    description="Singular values of dh_L/dh_0 of deep MLPs at criticality: Gaussian vs orthogonal, "
    "linear/tanh/relu.",
    grid={
        "activation": ["linear", "tanh", "relu"],
        "weights": ["gaussian", "orthogonal"],
        "depth": [1, 2, 4, 8, 16, 32, 64, 128],
        "width": [128, 256],
        "sigma_b2": [1e-3],
    },
    quick={
        "activation": ["linear", "tanh"],
        "weights": ["gaussian", "orthogonal"],
        "depth": [1, 2, 4, 16],
        "width": [128],
    },
    measure=measure,
    figures=figures,
    summary=summary,
    claims=CLAIMS,
    limits={"depth": (1, None), "width": (1, None), "sigma_b2": (0.0, None)},
    captions={
        "spectra": "Histograms of the squared singular values of the input-output Jacobian: "
        "orthogonal linear networks sit at 1, orthogonal tanh stays within a decade or two, "
        "Gaussian spectra spread over many decades as depth grows.",
        "edge_vs_depth": "The largest (top row) and the mean (bottom row) squared singular "
        "value against depth: the Gaussian linear maximum follows the Fuss-Catalan edge "
        "(dashed) while the mean stays near 1 for both weights. Orthogonal linear networks have "
        "all singular values 1, so their largest and mean are both exactly 1. In the bottom row "
        "the Gaussian line is drawn wider, beneath the orthogonal one.",
        "condition_vs_depth": "log10 of the condition number against depth (mean over seeds and "
        "its 95% band): orthogonal tanh stays low, Gaussian grows by decades with depth.",
    },
    seeds=3,
    quick_seeds=3,
    version="2",  # 2: sigma_b2 an axis (default 1e-3) for every activation
    notes="""Every singular value of the input-output Jacobian (QR-accumulated, so tiny ones are
    exact), at the critical weight variance (chi1 = 1) for the bias variance sigma_b2 (tanh:
    sigma_w2 just above 1, so that q* is small). Linear Gaussian products follow the
    Fuss-Catalan law (edge (L+1)^(L+1)/L^L, REFERENCES section 5; finite width keeps the
    largest value a little inside) with mean squared singular value 1; orthogonal linear
    products are exact isometries; orthogonal tanh approaches isometry as q* -> 0, ReLU never
    does (Pennington et al. 2017). Condition numbers rest on the smallest singular value, good
    to ~1e-8 relative: far finer than the decades compared here.""",
)

if __name__ == "__main__":
    main(EXPERIMENT)
