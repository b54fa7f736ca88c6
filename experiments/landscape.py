"""Loss landscapes of trained RNNs and MLPs: lines, slices, ravines, plateaus, minima across seeds.

Each point trains one network by SGD (`rnnsim.train`; RNN on the adding problem, MLP on a
teacher network) and measures, on a fixed held-out batch: the loss on the line from the
initialisation to the solution (Goodfellow, Vinyals & Saxe 2015), a 2-D slice around the solution
along random filter-normalised directions (Li et al. 2018), the ravine ratio (top Hessian eigenvalue
over the RMS eigenvalue) along the training path, plateaus of training, and the solution's
sharpness (top Hessian eigenvalue, Lanczos on exact Hessian-vector products) and Hessian spectral
density (stochastic Lanczos quadrature, as in PyHessian). Each measurement is its own tidy table.
"""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from rnnsim import MLP, RNN, plots, tasks
from rnnsim import landscape as L
from rnnsim.experiment import Experiment, main
from rnnsim.train import train

LR = {"rnn": 0.1, "mlp": 0.05}
#: The parts of `landscape.survey`, one table each (see its docstring for their columns).
TABLES = ("train", "interpolation", "slice", "ravine", "density", "minimum", "plateau", "params")
SLICE_SEED = 0  # the run whose 2-D slices are drawn


def measure(point: dict, seed: int) -> dict:
    kind, steps = point["model"], point["steps"]
    if kind == "rnn":
        task = tasks.make("adding", 10, variant="pascanu2013")
        model = RNN.random(task.d_in, 16, task.d_out, seed=seed)
    else:
        task = tasks.make("teacher")
        model = MLP.random(32, 3, n_in=task.d_in, n_out=task.d_out, seed=seed)
    path = []  # (step, parameters) every steps // 8 steps, before the update
    final, log = train(
        model,
        task,
        lr=LR[kind],
        steps=steps,
        batch_size=point["batch_size"],
        seed=seed,
        eval_every=0,
        early_stop=False,
        callback=L.path_callback(path),
        callback_every=max(1, steps // 8),
    )
    path.append((steps, final.params_vector()))
    x, t = task.batch(200, np.random.default_rng([seed, 99]))
    loss = task.loss if kind == "rnn" else None
    survey = L.survey(model, final, path, log, x, t, loss=loss, seed=seed)
    return {name: part(survey, name) for name in TABLES}


def part(survey: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The rows of one kind of a stacked survey table, without the columns only other kinds fill."""
    rows = survey[survey["kind"] == kind].drop(columns="kind")
    return rows.dropna(axis=1, how="all").reset_index(drop=True)


def summary(tables: dict) -> pd.DataFrame:  # minima, distances across seeds, plateaus
    used = ("minimum", "params", "plateau")
    stacked = pd.concat([tables[k].assign(kind=k) for k in used], ignore_index=True)
    return L.survey_summary(stacked, ["model", "batch_size"])


def figures(tables: dict) -> dict:
    plots.theme()
    lines = dict(hue="batch_size", col="model", logy=True)
    interpolation = plots.facets(
        tables["interpolation"],
        x="alpha",
        y="loss",
        sharey=False,
        xlabel="alpha (0 = initialisation, 1 = trained)",
        ylabel="held-out loss",
        title="Loss on the line from initialisation to solution",
        **lines,
    )
    ravine = plots.facets(
        tables["ravine"],
        x="step",
        y="ravine_ratio",
        xlabel="SGD step",
        ylabel="lambda_max / RMS eigenvalue of H",
        title="Ravines along the training path: top vs typical curvature",
        **lines,
    )
    minima = plots.facets(
        tables["minimum"],
        x="batch_size",
        y="sharpness",
        col="model",
        logy=True,
        logx=True,
        sharey=False,
        xlabel=plots.label("batch_size"),
        ylabel="sharpness lambda_max(H) at the solution",
        title="Flat vs sharp minima across seeds (mean and 95% band)",
    )
    return {
        "interpolation": interpolation,
        "ravine_ratio": ravine,
        "minima": minima,
        "hessian_density": density_figure(tables["density"]),
        "slices": slices_figure(tables["slice"]),
    }


def density_figure(density: pd.DataFrame):
    """One line per seed, the density floored at 1e-6 for its log scale."""
    floored = density.assign(
        density=density["density"].clip(lower=1e-6),
        batch_size=density["batch_size"].astype(str),
    )
    g = sns.relplot(
        floored,
        x="eigenvalue",
        y="density",
        hue="batch_size",
        units="seed",
        estimator=None,
        col="model",
        kind="line",
        height=3,
        aspect=1.3,
        facet_kws={"sharex": False},
    )
    g.set(yscale="log", ylim=(1e-6, None))
    g.set_axis_labels("Hessian eigenvalue at the solution", "spectral density (one line per seed)")
    g.figure.suptitle("Hessian spectral density (stochastic Lanczos quadrature, 5 x 40 steps)")
    return g.figure


def slices_figure(slices: pd.DataFrame):
    """Filled contours of log10 loss, one panel per (model, batch size), the solution starred."""
    panels = list(slices[slices["seed"] == SLICE_SEED].groupby(["model", "batch_size"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), layout="constrained")
    for ax, ((model, batch), g) in zip(np.atleast_1d(axes), panels, strict=True):
        z = g.pivot_table(index="b", columns="a", values="loss")
        cs = ax.contourf(z.columns, z.index, np.log10(z.to_numpy()), levels=20, cmap="viridis")
        fig.colorbar(cs, ax=ax, label="log10 held-out loss")
        ax.plot(0, 0, "r*", label="trained solution")
        ax.set(
            title=f"{model}, batch {batch}",
            xlabel="direction 1 (filter-normalised)",
            ylabel="direction 2 (filter-normalised)",
        )
    fig.suptitle(
        f"2-D slices around the solution (Li et al. 2018 filter normalisation), seed {SLICE_SEED}"
    )
    return fig


EXPERIMENT = Experiment(
    name="landscape",
    description="Interpolation lines, filter-normalised 2-D slices, ravines, plateaus and minima "
    "of trained RNNs and MLPs.",
    grid={"model": ["rnn", "mlp"], "batch_size": [10, 100], "steps": [3000]},
    quick={"model": ["rnn", "mlp"], "batch_size": [10], "steps": [600]},
    measure=measure,
    tables=TABLES,
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
