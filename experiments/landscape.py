"""Loss landscapes of trained RNNs and MLPs: lines, slices, ravines, plateaus, minima across seeds.

Each point trains one network by SGD (`rnnsim.train`; RNN on the adding problem, MLP on a
teacher network) and measures, on a fixed held-out batch: the loss on the line from the
initialisation to the solution (Goodfellow, Vinyals & Saxe 2015), a 2-D slice around the solution
along random filter-normalised directions (Li et al. 2018), the ravine ratio (top Hessian eigenvalue
over the RMS eigenvalue) along the training path, plateaus of training, and the solution's
sharpness (top Hessian eigenvalue, Lanczos on exact Hessian-vector products) and Hessian spectral
density (stochastic Lanczos quadrature, as in PyHessian).
"""

from functools import partial

import numpy as np
import pandas as pd

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
    path.append((steps, final.params_vector()))
    x, t = task.batch(200, np.random.default_rng([seed, 99]))
    loss = task.loss if kind == "rnn" else None
    return L.survey(model, final, path, log, x, t, loss=loss, seed=seed)


def figures(table: pd.DataFrame) -> dict:
    return plots.survey_figures(table, col="model", hue="batch_size", hue_name="batch")


summary = partial(L.survey_summary, by=["model", "batch_size"])  # minima, distances, plateaus


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
