"""How ||dh_T/dh_k|| vanishes or explodes with the lag T - k in plain RNNs (Pascanu et al. 2013)."""

import numpy as np
import pandas as pd

from rnnsim import RNN, gradient_contributions, jacobian_norms, lyapunov_spectrum, plots, theory
from rnnsim.claims import Claim, Verdict, rows
from rnnsim.experiment import Experiment, main
from rnnsim.jacobians import growth_rate

CONFIG = ["activation", "init", "gain", "T", "n", "input_scale", "samples"]
PANELS = ["activation", "T", "n", "input_scale", "samples"]  # a row of panels per combination
EXPLODE = np.log(1e3)  # ||dh_T/dh_0|| > 1e3 explodes, < 1e-3 vanishes
SLOPE_TOL = 0.05  # nats per step between the fitted slope and the Lyapunov exponent
ROUNDING = 1e-9  # the bound is exact; ln-norms carry rounding


def measure(point: dict, seed: int) -> pd.DataFrame:
    act, T, B = point["activation"], point["T"], point["samples"]
    net = RNN.random(
        1, point["n"], 1, activation=act, init=point["init"], gain=point["gain"], seed=seed
    )
    rng = np.random.default_rng([seed, 11])
    x = point["input_scale"] * rng.standard_normal((T, B, 1))
    target = rng.standard_normal((B, 1))
    jac = jacobian_norms(net, x, direction="backward")[["sample", "lag", "log_spectral"]]
    # the top Lyapunov exponent of each sample's driven trajectory, after a transient of T/10
    lyap = [lyapunov_spectrum(net, x[:, s], transient=T // 10, k=1)[0] for s in range(B)]
    jac["lyapunov_max"] = np.asarray(lyap)[jac["sample"].to_numpy()]
    grad = gradient_contributions(net, x, target).iloc[1:]
    with np.errstate(divide="ignore"):
        grad = pd.DataFrame(
            {"sample": -1, "lag": grad.lag, "log_grad_W": np.log(grad.grad_W_norm.to_numpy())}
        )
    bound = theory.pascanu_criteria(net)["log_bound_per_step"]  # ln(gamma ||W||_2)
    return pd.concat([jac, grad], ignore_index=True).assign(bound_slope=bound)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: the claims' numbers, means over seeds and samples.

    ``ln_norm_T``: ln ||dh_T/dh_0||; ``slope``: least-squares slope of ln ||dh_T/dh_k|| against
    the lag over lags >= T/10 (the Lyapunov exponent's transient); ``lyapunov_max``: the top
    exponent of the same driven trajectories; ``bound_slope``: ln(gamma ||W||_2);
    ``bound_margin``: the smallest ``lag * bound_slope - ln ||dh_T/dh_k||`` over every seed,
    sample and lag >= 1 (negative = the bound is violated).
    """
    jac = table[table["sample"] >= 0]
    fit = jac[jac["lag"] >= jac["T"] // 10]
    slopes = growth_rate(fit, "lag", "log_spectral", by=[*CONFIG, "seed", "sample"])
    per_sample = jac[jac["lag"] == jac["T"]].merge(slopes, on=[*CONFIG, "seed", "sample"])
    margin = jac[jac["lag"] >= 1].assign(m=lambda d: d.lag * d.bound_slope - d.log_spectral)
    out = per_sample.groupby(CONFIG, sort=True).agg(
        seeds=("seed", "nunique"),
        ln_norm_T=("log_spectral", "mean"),
        slope=("slope", "mean"),
        lyapunov_max=("lyapunov_max", "mean"),
        bound_slope=("bound_slope", "mean"),
    )
    out["bound_margin"] = margin.groupby(CONFIG, sort=True)["m"].min()
    return out.reset_index()


def explodes_and_vanishes(s: pd.DataFrame) -> Verdict:
    top, low = s.loc[s["ln_norm_T"].idxmax()], s.loc[s["ln_norm_T"].idxmin()]

    def name(r):
        return f"{r.init} g = {r.gain:g}, T = {r['T']}"

    numbers = {"max_ln_norm_T": top.ln_norm_T, "min_ln_norm_T": low.ln_norm_T, "threshold": EXPLODE}
    return Verdict(
        bool(top.ln_norm_T > EXPLODE and low.ln_norm_T < -EXPLODE),
        numbers,
        f"ln ||dh_T/dh_0|| = {top.ln_norm_T:+.1f} ({name(top)}), {low.ln_norm_T:+.1f} "
        f"({name(low)}); explodes above +{EXPLODE:.1f}, vanishes below -{EXPLODE:.1f}",
    )


def slope_is_lyapunov(s: pd.DataFrame) -> Verdict:
    finite = np.isfinite(s["slope"]) & np.isfinite(s["lyapunov_max"])
    singular = int((~finite).sum())  # an exactly zero product (dead ReLUs): no exponent to fit
    s = rows(s[finite])
    gap = (s["slope"] - s["lyapunov_max"]).abs()
    worst = s.loc[gap.idxmax()]
    return Verdict(
        bool(gap.max() <= SLOPE_TOL),
        {"max_gap": gap.max(), "tolerance": SLOPE_TOL, "configs": len(s), "singular": singular},
        f"max |slope - lambda_max| = {gap.max():.3f} per step over {len(s)} configurations "
        f"(at {worst.activation} {worst.init} g = {worst.gain:g}: slope {worst.slope:+.3f}, "
        f"lambda_max {worst.lyapunov_max:+.3f}); tolerance {SLOPE_TOL}"
        + (f"; {singular} with an exactly singular product left out" if singular else ""),
    )


def bound_holds(s: pd.DataFrame) -> Verdict:
    worst = s["bound_margin"].min()
    return Verdict(
        bool(worst >= -ROUNDING),
        {"min_margin": worst, "configs": len(s)},
        f"smallest margin lag * ln(gamma ||W||_2) - ln ||dh_T/dh_k|| = {worst:.3g} over "
        f"{len(s)} configurations, every seed, sample and lag (>= -{ROUNDING:g} holds)",
    )


def _panels(table: pd.DataFrame):
    """(table, row): one row of panels per combination of the varying `PANELS` axes."""
    varying = [c for c in PANELS if table[c].nunique() > 1]
    if len(varying) <= 1:
        return table, (varying[0] if varying else None)
    row = ", ".join(varying)
    return table.assign(**{row: table[varying].astype(str).agg(", ".join, axis=1)}), row


def _title(table: pd.DataFrame, what: str) -> str:
    """``what`` with the run's activation, n, T, input drive and seeds; 'rows' for varying ones."""

    def value(column, text):
        levels = table[column].unique()
        return text.format(levels[0]) if len(levels) == 1 else f"{column}: rows"

    parts = [
        value("activation", "{} RNN"),
        value("n", "n = {}"),
        value("T", "T = {}"),
        value("input_scale", "x ~ N(0, {:g}^2)"),
        f"{table['seed'].nunique()} seeds x {value('samples', '{}')} sequences",
    ]
    return f"{what}\n" + ", ".join(parts)


def figures(table: pd.DataFrame) -> dict:
    plots.theme()
    table, row = _panels(table)
    jac, grad = table[table["sample"] >= 0], table[table["sample"] < 0]
    jac = jac.assign(rate=jac["log_spectral"] / jac["lag"].where(jac["lag"] > 0))
    kw = dict(x="lag", hue="gain", col="init", row=row, palette="viridis", height=2.6)
    keys = [k for k in dict.fromkeys(["init", "gain", "T", row]) if k is not None]
    slopes = jac.groupby(keys)[["lyapunov_max", "bound_slope"]].mean().reset_index()
    ends = pd.concat([slopes.assign(lag=1), slopes.assign(lag=slopes["T"])])
    lyap = ends.assign(log_spectral=ends["lyapunov_max"] * ends["lag"])
    rates = ends.melt(id_vars=[*keys, "lag"], var_name="line", value_name="rate")
    rates["line"] = rates["line"].map(
        {"lyapunov_max": "top Lyapunov exponent", "bound_slope": "Pascanu bound"}
    )
    rate = plots.facets(
        jac[jac["lag"] > 0],
        y="rate",
        ylabel="ln ||dh_T/dh_k||_2 / (T - k)",
        theory=rates,
        theory_style="line",
        title=_title(jac, "Growth per step: dashed top Lyapunov exponent, dotted Pascanu bound"),
        **kw,
    )
    lo, hi = (
        min(jac["rate"].min(), rates["rate"].min()),
        max(jac["rate"].max(), rates["rate"].max()),
    )
    for ax in rate.axes:  # the bound sits above the data: show it whole
        ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    return {
        "jacobian_vs_lag": plots.facets(
            jac,
            y="log_spectral",
            ylabel="ln ||dh_T/dh_k||_2",
            theory=lyap,
            title=_title(jac, "Jacobian norm vs lag (dashed: slope = top Lyapunov exponent)"),
            **kw,
        ),
        "rate_vs_lag": rate,
        "gradient_contributions": plots.facets(
            grad[np.isfinite(grad.log_grad_W)],
            y="log_grad_W",
            units="seed",  # one gradient per seed: thin lines, not a t-band decades wide
            ylabel="ln ||dL/dW from step k||_F",
            title=_title(grad, "Where dL/dW comes from (mse_last)"),
            **kw,
        ),
    }


EXPERIMENT = Experiment(
    name="rnn_time",
    description="ln ||dh_T/dh_k|| vs lag for tanh/relu/linear RNNs by init and gain, with the "
    "Pascanu bound and the top Lyapunov exponent.",
    grid={
        "activation": ["tanh", "relu", "linear"],
        "init": ["gaussian", "orthogonal", "identity", "spectral"],
        "gain": [1.0, 0.5, 0.9, 1.1, 1.5, 2.0, 3.0],
        "T": [1000, 100],
        "n": [64],
        "input_scale": [1.0],
        "samples": [4],
    },
    quick={
        "activation": ["tanh"],
        "init": ["gaussian", "orthogonal"],
        "gain": [0.9, 3.0],
        "T": [200],
    },
    keep=lambda p: (
        (p["init"] != "identity" or p["gain"] == 1.0)
        and (p["activation"] == "tanh" or p["gain"] <= 1.1)
    ),  # unbounded units would overflow h
    limits={
        "gain": (0.0, None),
        "T": (2, None),
        "n": (1, None),
        "input_scale": (0.0, None),
        "samples": (1, None),
    },
    measure=measure,
    figures=figures,
    summary=summary,
    seeds=3,
    quick_seeds=3,
    version="2",
    claims=[
        Claim(
            "Depending on the recurrent weights, ||dh_T/dh_0|| explodes in one configuration "
            "and vanishes in another (here: beyond 1e3 and below 1e-3).",
            explodes_and_vanishes,
            source="Bengio et al. 1994; Pascanu et al. 2013, sec. 2",
            figure="jacobian_vs_lag",
        ),
        Claim(
            "The slope of ln ||dh_T/dh_k|| against the lag is the top Lyapunov exponent of the "
            f"driven trajectory (within {SLOPE_TOL} per step).",
            slope_is_lyapunov,
            source="Pascanu et al. 2013, sec. 2.2 (dynamical systems view)",
            figure="rate_vs_lag",
        ),
        Claim(
            "ln ||dh_T/dh_k|| never exceeds (T - k) ln(gamma ||W||_2): Pascanu's bound is never "
            "violated.",
            bound_holds,
            source="Pascanu et al. 2013, sec. 3.2, eqs. 6-7",
            figure="rate_vs_lag",
        ),
    ],
    captions={
        "jacobian_vs_lag": "ln ||dh_T/dh_k|| against the lag, mean and 95% band over seeds and "
        "sequences; a straight line whose slope (dashed) is the top Lyapunov exponent: "
        "falling lines vanish, rising ones explode.",
        "rate_vs_lag": "The same norm per step of lag: it settles on the top Lyapunov exponent "
        "(dashed) and stays below Pascanu's bound ln(gamma ||W||_2) (dotted) at every lag.",
        "gradient_contributions": "The part of dL/dW that enters at step k, against the lag "
        "T - k: it falls or grows with the same slope as the Jacobian norm.",
    },
    notes="""Backward Jacobian norms of RNNs driven by N(0, input_scale^2) inputs (one input unit,
    U ~ N(0, 1)), `samples` sequences per seed. Pascanu et al. 2013 eqs. 6-7: ln ||dh_T/dh_k|| <=
    (T - k) ln(gamma ||W||_2) (dotted, per step in rate_vs_lag); the measured top Lyapunov
    exponent of each driven trajectory (after a transient of T/10 steps) gives the actual slope at
    long lags (dashed). A strong input saturates tanh units and suppresses chaos: at input_scale 1
    only large gains explode. Gradient view: the norm of the part of dL/dW entering at step k
    (loss on y_T).""",
)

if __name__ == "__main__":
    main(EXPERIMENT)
