"""How ||dh_T/dh_k|| vanishes or explodes with the lag T - k in plain RNNs (Pascanu et al. 2013)."""

import numpy as np
import pandas as pd

from rnnsim import RNN, gradient_contributions, jacobian_norms, lyapunov_spectrum, plots, theory
from rnnsim.experiment import Experiment, main

N, B = 64, 4


def measure(point: dict, seed: int) -> pd.DataFrame:
    act, T = point["activation"], point["T"]
    net = RNN.random(1, N, 1, activation=act, init=point["init"], gain=point["gain"], seed=seed)
    rng = np.random.default_rng([seed, 11])
    x, target = rng.standard_normal((T, B, 1)), rng.standard_normal((B, 1))
    jac = jacobian_norms(net, x, direction="backward")[["sample", "lag", "log_spectral"]]
    grad = gradient_contributions(net, x, target).iloc[1:]
    with np.errstate(divide="ignore"):
        grad = pd.DataFrame(
            {
                "sample": -1,
                "lag": grad.lag,
                "log_spectral": np.nan,
                "log_grad_W": np.log(grad.grad_W_norm.to_numpy()),
            }
        )
    lyap = lyapunov_spectrum(net, x[:, 0], transient=T // 10, k=1)[0]
    bound = theory.pascanu_criteria(net)["log_bound_per_step"]  # ln(gamma ||W||_2)
    return pd.concat([jac, grad], ignore_index=True).assign(bound_slope=bound, lyapunov_max=lyap)


def figures(table: pd.DataFrame) -> dict:
    plots.theme()
    t = table[table["T"] == table["T"].max()]
    jac, grad = t[t["sample"] >= 0], t[t["sample"] < 0]
    kw = dict(x="lag", hue="gain", col="init", row="activation", palette="viridis", height=2.6)
    slopes = t.groupby(["activation", "init", "gain"])[["lyapunov_max", "bound_slope"]].mean()
    slopes = slopes.melt(var_name="line", value_name="slope", ignore_index=False).reset_index()
    lines = pd.concat(
        [slopes.assign(lag=k, log_spectral=slopes.slope * k) for k in (0, t["T"].max())]
    )
    return {
        "jacobian_vs_lag": plots.facets(
            jac,
            y="log_spectral",
            ylabel="ln ||dh_T/dh_k||_2",
            theory=lines,
            theory_style="line",
            title="dashed: Lyapunov slope, dotted: Pascanu bound",
            **kw,
        ),
        "gradient_contributions": plots.facets(
            grad[np.isfinite(grad.log_grad_W)],
            y="log_grad_W",
            band=False,
            ylabel="ln ||dL/dW from step k||_F",
            title="Where dL/dW comes from (mse_last)",
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
        "gain": [1.0, 0.5, 0.9, 1.1, 1.5, 2.0],
        "T": [1000, 100],
    },
    quick={
        "activation": ["tanh"],
        "init": ["gaussian", "orthogonal"],
        "gain": [0.9, 1.5],
        "T": [200],
    },
    keep=lambda p: (
        (p["init"] != "identity" or p["gain"] == 1.0)
        and (p["activation"] == "tanh" or p["gain"] <= 1.1)
    ),  # unbounded units would overflow h
    measure=measure,
    figures=figures,
    seeds=3,
    quick_seeds=1,
    notes="""Backward Jacobian norms of n = 64 RNNs driven by N(0, 1) inputs, 4 samples per seed.
    Pascanu et al. 2013 eqs. 6-7: ln ||dh_T/dh_k|| <= (T - k) ln(gamma ||W||_2) (dotted); the
    measured top Lyapunov exponent of the driven trajectory gives the actual slope at long lags
    (dashed). Gradient view: the norm of the part of dL/dW entering at step k (loss on y_T).""",
)

if __name__ == "__main__":
    main(EXPERIMENT)
