"""Loss landscapes of trained RNNs and MLPs: lines, slices, ravines, plateaus, minima across seeds.

Each point trains one network by SGD (`rnnsim.train`; RNN on the adding problem, MLP on a
teacher network) and measures, on a fixed held-out batch: the loss on the line from the
initialisation to the solution (Goodfellow, Vinyals & Saxe 2015), a 2-D slice around the solution
along random filter-normalised directions (Li et al. 2018), the ravine ratio (top Hessian eigenvalue
over the RMS eigenvalue) along the training path, plateaus of training, and the solution's
sharpness (top Hessian eigenvalue, Lanczos on exact Hessian-vector products) and Hessian spectral
density (stochastic Lanczos quadrature, as in PyHessian).
"""

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt

from rnnsim import MLP, RNN, plots, tasks
from rnnsim import landscape as L
from rnnsim.experiment import Experiment, main
from rnnsim.train import train

LR = {"rnn": 0.1, "mlp": 0.05}


def measure(point: dict, seed: int) -> pd.DataFrame:
    kind, steps = point["model"], point["steps"]
    if kind == "rnn":
        task = tasks.make("adding", 10, variant="pascanu2013")
        model = RNN.random(task.d_in, 16, task.d_out, seed=seed)
    else:
        task = tasks.make("teacher")
        model = MLP.random(32, 3, n_in=task.d_in, n_out=task.d_out, seed=seed)
    path = []  # (step, parameters) every steps // 8 steps, before the update
    final, log = train(
        model, task, lr=LR[kind], steps=steps, batch_size=point["batch_size"], seed=seed,
        eval_every=0, early_stop=False, callback=L.path_callback(path),
        callback_every=max(1, steps // 8),
    )  # fmt: skip
    theta = final.params_vector()
    path.append((steps, theta))
    x, t = task.batch(200, np.random.default_rng([seed, 99]))
    kw = {"loss": task.loss} if kind == "rnn" else {}
    ravine = L.ravine_metrics(model, [p for _, p in path], x, t, lanczos_steps=20, n_probe=10, **kw)
    g0 = log["grad_norm"].iloc[:50].mean()
    parts = {
        "train": log[["step", "loss", "grad_norm"]].iloc[::10],
        "interpolation": L.interpolate(model, final, x, t, alphas=np.linspace(-0.5, 1.5, 41), **kw),
        "slice": L.slice_2d(final, x, t, span=1.0, n=15, seed=seed, **kw).drop(columns="seed"),
        "ravine": ravine.assign(step=[s for s, _ in path]),
        "density": L.hessian_density(final, x, t, n_vectors=5, n_steps=40, **kw),
        "minimum": L.minima_summary([final], x, t, lanczos_steps=30, **kw).drop(columns="model"),
        "plateau": L.detect_plateaus(log, grad_tol=g0 / 2, loss_tol=1e-5, window=50, min_length=100),
        "params": pd.DataFrame({"index": np.arange(theta.size), "value": theta}),
    }  # fmt: skip
    return pd.concat([p.assign(kind=k) for k, p in parts.items()], ignore_index=True)


def figures(table: pd.DataFrame) -> dict:
    plots.theme()
    part = {k: g.dropna(axis=1, how="all") for k, g in table.groupby("kind")}
    figs = {
        "interpolation": plots.facets(
            part["interpolation"], x="alpha", y="loss", hue="batch_size", col="model", logy=True,
            sharey=False, xlabel="alpha (0 = initialisation, 1 = trained)",
            ylabel="held-out loss", title="Loss on the line from initialisation to solution",
        ),
        "ravine_ratio": plots.facets(
            part["ravine"], x="step", y="ravine_ratio", hue="batch_size", col="model", logy=True,
            xlabel="SGD step", ylabel="lambda_max / RMS eigenvalue of H",
            title="Ravines along the training path: top vs typical curvature",
        ),
        "minima": plots.facets(
            part["minimum"], x="batch_size", y="sharpness", col="model", logy=True, logx=True,
            sharey=False, xlabel="batch size", ylabel="sharpness lambda_max(H) at the solution",
            title="Flat vs sharp minima across seeds (mean and 95% band)",
        ),
    }  # fmt: skip
    dens = part["density"].assign(
        density=lambda d: d["density"].clip(lower=1e-6),
        batch_size=lambda d: d["batch_size"].astype(str),
    )
    g = sns.relplot(
        dens, x="eigenvalue", y="density", hue="batch_size", units="seed", estimator=None,
        col="model", kind="line", height=3, aspect=1.3, facet_kws={"sharex": False},
    )  # fmt: skip
    g.set(yscale="log", ylim=(1e-6, None))
    g.set_axis_labels("Hessian eigenvalue at the solution", "spectral density (one line per seed)")
    g.figure.suptitle("Hessian spectral density (stochastic Lanczos quadrature, 5 x 40 steps)")
    figs["hessian_density"] = g.figure
    sl = part["slice"][part["slice"]["seed"] == 0]
    panels = list(sl.groupby(["model", "batch_size"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), layout="constrained")
    for ax, ((m, bs), g) in zip(np.atleast_1d(axes), panels, strict=True):
        z = g.pivot_table(index="b", columns="a", values="loss")
        cs = ax.contourf(z.columns, z.index, np.log10(z.to_numpy()), levels=20, cmap="viridis")
        fig.colorbar(cs, ax=ax, label="log10 held-out loss")
        ax.plot(0, 0, "r*", label="trained solution")
        ax.set(title=f"{m}, batch {bs}", xlabel="direction 1 (filter-normalised)",
               ylabel="direction 2 (filter-normalised)")  # fmt: skip
    fig.suptitle("2-D slices around the solution (Li et al. 2018 filter normalisation), seed 0")
    figs["slices"] = fig
    return figs


def summary(table: pd.DataFrame) -> pd.DataFrame:
    keys = ["model", "batch_size"]
    mins = table[table["kind"] == "minimum"].groupby(keys)[["loss", "sharpness", "param_norm"]]
    out = mins.mean().add_prefix("mean ")
    dist = []
    for key, g in table[table["kind"] == "params"].groupby(keys):
        vecs = [s["value"].to_numpy() for _, s in g.sort_values("index").groupby("seed")]
        if len(vecs) > 1:
            dist.append((*key, L.pairwise_distances(vecs)["relative_distance"].mean()))
    if dist:
        out = out.join(
            pd.DataFrame(dist, columns=[*keys, "mean relative distance"]).set_index(keys)
        )
    plateaus = table[table["kind"] == "plateau"].groupby(keys)["length"]
    return out.join(plateaus.agg(["count", "max"]).add_prefix("plateau steps: ")).reset_index()


EXPERIMENT = Experiment(
    name="landscape",
    description="Interpolation lines, filter-normalised 2-D slices, ravines, plateaus and minima "
    "of trained RNNs and MLPs.",
    grid={"model": ["rnn", "mlp"], "batch_size": [10, 100], "steps": [3000]},
    quick={"model": ["rnn", "mlp"], "batch_size": [10], "steps": [600]},
    measure=measure,
    figures=figures,
    summary=summary,
    seeds=5,
    quick_seeds=2,
    version="2",
    notes="""Sharpness is lambda_max of the exact Hessian on a held-out batch of 200 (Lanczos, 30
    steps). Relative distance = ||theta_i - theta_j|| / mean norm over pairs of seeds (permutation
    symmetry makes distinct-looking solutions equivalent). Plateaus: at least 100 steps with the
    50-step running mean of ||g|| below half its initial value and of the loss changing by less
    than 1e-5 per step.""",
)

if __name__ == "__main__":
    main(EXPERIMENT)
