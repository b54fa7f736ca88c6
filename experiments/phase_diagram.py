"""Order-to-chaos phase diagram of deep tanh MLPs (Poole et al. 2016; Schoenholz et al. 2017).

Per (sigma_w2, sigma_b2, seed): ln mean_b ||dL/dh_l||^2 at every layer of a random MLP whose input
is drawn at the mean-field fixed point (x = tanh(sqrt(q*) z): every pre-activation has variance q*
from layer 1 on, no burn-in layers needed). Minus the fitted slope against l is the measured
per-layer growth rate; theory predicts ln chi1, zero on the critical line chi1 = 1.
"""

import numpy as np
import pandas as pd

from rnnsim import MLP, plots, theory
from rnnsim.claims import Claim, NotApplicable, Verdict
from rnnsim.experiment import Experiment, main
from rnnsim.jacobians import growth_rate

RATE = "growth of ln ||dL/dh_l||^2 (nats/layer)"
AXES = ["activation", "width", "depth", "batch", "sigma_w2", "sigma_b2"]
NETS = ["activation", "width", "depth", "batch", "sigma_b2"]  # a sweep of sigma_w2 within them
CRITICAL_TOL = 0.1  # |measured - theory| critical sigma_w2
SIGN_MARGIN = 0.02  # |ln chi1| (nats/layer) beyond which the measured sign must agree


def measure(point: dict, seed: int) -> pd.DataFrame:
    sw2, sb2 = point["sigma_w2"], point["sigma_b2"]
    act, n, L = point["activation"], point["width"], point["depth"]
    mlp = MLP.random(n, L, activation=act, seed=seed, **theory.mlp_scales(sw2, sb2))
    batch = point["batch"]
    x = theory.fixed_point_input(act, sw2, sb2, batch, n, seed=[seed, 1])
    _, grads = mlp.loss_and_grad(x, np.random.default_rng([seed, 2]).standard_normal((batch, n)))
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
    """Measured ln chi1 per point, and the critical sigma_w2 of each sweep.

    One row per point: the axes, ``theory`` (mean-field ln chi1), ``empirical`` (minus the
    least-squares slope of ln ||dL/dh_l||^2 in l; mean over seeds), ``sd_over_seeds``, ``seeds``,
    and for the sweep over sigma_w2 the point belongs to (the other axes fixed)
    ``critical_measured`` (where the measured growth first turns from negative to positive,
    linearly interpolated between grid points; NaN without a sign change) and
    ``critical_theory`` (:func:`rnnsim.theory.critical_sigma_w2`).
    """
    fits = growth_rate(table, "layer", "log_sq_grad", by=[*AXES, "log_chi1_theory", "seed"])
    fits = fits.assign(empirical=-fits["slope"]).rename(columns={"log_chi1_theory": "theory"})
    stats = fits.groupby([*AXES, "theory"])["empirical"].agg(["mean", "std", "count"])
    out = stats.set_axis(["empirical", "sd_over_seeds", "seeds"], axis=1).reset_index()
    crossings = [
        {**dict(zip(NETS, key, strict=True)), **_crossing(sweep, key[0], key[-1])}
        for key, sweep in out.groupby(NETS, sort=False)
    ]
    return out.merge(pd.DataFrame(crossings), on=NETS)


def _crossing(sweep: pd.DataFrame, activation: str, sigma_b2: float) -> dict:
    """The first sign change (negative to positive) of the measured growth along sigma_w2."""
    sweep = sweep.sort_values("sigma_w2")
    w, g = sweep.sigma_w2.to_numpy(), sweep.empirical.to_numpy()
    up = np.flatnonzero((g[:-1] < 0) & (g[1:] >= 0))
    measured = np.nan
    if up.size:
        i = up[0]
        measured = w[i] + (w[i + 1] - w[i]) * (-g[i]) / (g[i + 1] - g[i])
    crit = theory.critical_sigma_w2(activation, sigma_b2)
    return {"critical_measured": measured, "critical_theory": crit}


def critical_line_located(summary: pd.DataFrame) -> Verdict:
    """Every sweep whose sigma_w2 range brackets the critical point: measured within the tol."""
    sweeps = summary.groupby(NETS, sort=False).agg(
        low=("sigma_w2", "min"),
        high=("sigma_w2", "max"),
        measured=("critical_measured", "first"),
        theory=("critical_theory", "first"),
    )
    sweeps = sweeps[(sweeps.low < sweeps.theory) & (sweeps.theory < sweeps.high)]
    if sweeps.empty:
        raise NotApplicable("no sweep of sigma_w2 brackets the critical line")
    gap = (sweeps.measured - sweeps.theory).abs().fillna(np.inf)
    pairs = ", ".join(
        f"{m:.3f} vs {t:.3f} at sigma_b2 {k[NETS.index('sigma_b2')]:g}"
        for k, m, t in zip(sweeps.index, sweeps.measured, sweeps.theory, strict=True)
    )
    numbers = {"largest gap": gap.max(), "sweeps": len(sweeps), "tolerance": CRITICAL_TOL}
    numbers |= {
        f"critical sigma_w2 at sigma_b2 {k[NETS.index('sigma_b2')]:g}": m
        for k, m in zip(sweeps.index, sweeps.measured, strict=True)
    }
    detail = f"measured vs theory critical sigma_w2: {pairs}; allowed gap {CRITICAL_TOL}"
    return Verdict(bool(gap.max() <= CRITICAL_TOL), numbers, detail)


def growth_sign_follows_phase(summary: pd.DataFrame) -> Verdict:
    """Where |ln chi1| >= margin: measured growth has the sign of ln chi1 (shrink below, grow above)."""
    clear = summary[summary.theory.abs() >= SIGN_MARGIN]
    if clear.empty:
        raise NotApplicable(f"no point has |ln chi1| >= {SIGN_MARGIN}")
    below, above = clear[clear.theory < 0], clear[clear.theory > 0]
    wrong = (np.sign(clear.empirical) != np.sign(clear.theory)).sum()
    numbers = {
        "largest growth below the line": below.empirical.max() if len(below) else np.nan,
        "smallest growth above the line": above.empirical.min() if len(above) else np.nan,
        "points with the wrong sign": int(wrong),
        "points": len(clear),
    }
    detail = (
        f"{len(below)} points below the line, growth at most {numbers[list(numbers)[0]]:.4f}; "
        f"{len(above)} above, growth at least {numbers[list(numbers)[1]]:.4f}; "
        f"{wrong} of {len(clear)} with the wrong sign (points with |ln chi1| >= {SIGN_MARGIN})"
    )
    return Verdict(bool(wrong == 0 and len(below) and len(above)), numbers, detail)


CLAIMS = [
    Claim(
        f"The measured critical sigma_w^2 (where gradients stop shrinking and start growing "
        f"with depth) lies within {CRITICAL_TOL} of the mean-field critical line chi1 = 1 at "
        f"every sigma_b^2 of the grid.",
        critical_line_located,
        source="Schoenholz et al. 2017, sec. 3 and Fig. 1; Poole et al. 2016",
        figure="growth_rate_heatmap",
    ),
    Claim(
        "Gradients shrink with depth below the critical line (ordered phase) and grow above it "
        f"(chaotic phase): the measured growth has the sign of ln chi1 wherever |ln chi1| >= "
        f"{SIGN_MARGIN} nats/layer.",
        growth_sign_follows_phase,
        source="Schoenholz et al. 2017, sec. 5",
        figure="growth_rate_heatmap",
    ),
]


def figures(table: pd.DataFrame) -> dict:
    plots.theme()
    s = summary(table[(table.width == table.width.max()) & (table.depth == table.depth.max())])
    tag = (
        f"{s.activation.iloc[0]} MLP, width {s.width.iloc[0]}, depth {s.depth.iloc[0]}, "
        f"batch {s.batch.iloc[0]} at q*, {table.seed.nunique()} seeds"
    )
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
        title=f"Gradient growth per layer\n{tag}",
        theory=line,
        theory_label="theory: critical line chi1 = 1",
    )
    ax = heat.axes[0]
    crit = s.drop_duplicates("sigma_b2").dropna(subset=["critical_measured"])
    marks = dict(color="black", mfc="none", ms=8, label="measured: growth changes sign")
    ax.plot(crit.critical_measured, crit.sigma_b2, "o", **marks)
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.15), fontsize="small", frameon=False)
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
        title=f"Measured vs predicted\n{tag}\n(error bars: sd over seeds)",
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
        "batch": [16],
        "sigma_w2": [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0],
        "sigma_b2": [0.0, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0, 1.5, 2.0],
    },
    quick={
        "width": [256],
        "depth": [40],
        "sigma_w2": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0],
        "sigma_b2": [0.0, 0.3, 1.0],
    },
    measure=measure,
    figures=figures,
    summary=summary,
    claims=CLAIMS,
    limits={
        "width": (1, None),
        "depth": (2, None),
        "batch": (1, None),
        "sigma_w2": (0.0, None),
        "sigma_b2": (0.0, None),
    },
    captions={
        "growth_rate_heatmap": "Measured per-layer growth of squared gradient norms over the "
        "(sigma_w^2, sigma_b^2) plane: blue (shrinking) left of the dashed critical line, red "
        "(growing) right of it; circles mark where the measured growth changes sign.",
        "empirical_vs_theory": "Measured growth per layer against mean-field ln chi1, one point "
        "per grid point: the points lie on the identity line.",
    },
    seeds=4,
    quick_seeds=3,
    notes="""Squared gradient norms change by chi1 per layer: they shrink left of the dashed
    critical line (ordered phase) and grow right of it (chaotic phase). Finite width adds
    ~sqrt(2/n) noise per layer, hence the spread over seeds. The measured critical sigma_w^2 of
    each sigma_b^2 is where the measured growth turns from negative to positive along sigma_w^2
    (linear interpolation between grid points).""",
)

if __name__ == "__main__":
    main(EXPERIMENT)
