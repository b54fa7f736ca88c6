"""Lyapunov spectra of autonomous random tanh RNNs across the transition to chaos at g = 1."""

import numpy as np
import pandas as pd

from rnnsim import RNN, lyapunov_spectrum, plots, theory
from rnnsim.experiment import Experiment, main


def measure(point: dict, seed: int) -> pd.DataFrame:
    n, g = point["n"], point["gain"]
    net = RNN.random(1, n, 1, activation="tanh", init="gaussian", gain=g, seed=seed)
    h0 = np.random.default_rng([seed, 5]).standard_normal(n)  # off the fixed point at 0
    exps = lyapunov_spectrum(net, steps=point["steps"], transient=point["steps"] // 4, h0=h0)
    return pd.DataFrame(
        {
            "index": np.arange(1, n + 1),
            "fraction": np.arange(1, n + 1) / n,
            "exponent": exps,
            "mean_exponent": exps.mean(),
        }
    )


def figures(table: pd.DataFrame) -> dict:
    plots.theme()
    t = table[table.steps == table.steps.max()]
    spectra = plots.facets(
        t,
        x="fraction",
        y="exponent",
        hue="gain",
        col="n",
        palette="coolwarm",
        sharey=False,
        xlabel="i / n (exponent index over network size)",
        ylabel="Lyapunov exponent (per step)",
        title="Lyapunov spectra, h_t = tanh(W h_{t-1}), W ~ N(0, g^2/n)",
    )
    for ax in spectra.axes:
        ax.axhline(0.0, color="grey", lw=0.8)
    top = t[t["index"] == 1].assign(n=lambda d: d.n.map(lambda v: f"n = {v}"))  # categorical
    fig = plots.line_with_band(
        top,
        x="gain",
        y="exponent",
        hue="n",
        markers=True,
        ylabel="largest Lyapunov exponent (per step)",
        title="Transition to chaos (dashed: mean-field (1/2) ln chi1)",
    )
    g = np.linspace(top.gain.min(), top.gain.max(), 60)
    plots.theory_line(
        fig.axes[0], g, [theory.rnn_max_lyapunov("tanh", v * v) for v in g], "mean field, n -> inf"
    )
    fig.axes[0].axhline(0.0, color="grey", lw=0.8)
    fig.axes[0].legend(title="network size")
    return {"spectra": spectra, "max_exponent_vs_gain": fig}


EXPERIMENT = Experiment(
    name="lyapunov",
    description="Full Lyapunov spectra of random autonomous tanh RNNs vs gain g: the transition to chaos at g = 1.",
    grid={
        "gain": [0.5, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 4.0],
        "n": [64, 128],
        "steps": [4000],
    },
    quick={"gain": [0.5, 1.0, 1.5, 3.0], "n": [32], "steps": [1000]},
    measure=measure,
    figures=figures,
    seeds=3,
    quick_seeds=2,
    notes="""Benettin QR re-orthonormalisation every step after a transient of steps/4, started off the fixed
    point. Below g = 1 the origin is stable and every exponent is ln|eigenvalue of W| there (the largest
    ~ ln g); above it the top exponent turns positive and approaches the mean-field value (1/2) ln chi1
    (REFERENCES section 6, derived; finite n and finite time shift it). The sum of the exponents is the
    mean ln|det J_t| (checked in the tests).""",
)

if __name__ == "__main__":
    main(EXPERIMENT)
