"""Gradient clipping on long-term dependency tasks (Pascanu, Mikolov & Bengio 2013, §3.2 and §4).

A vanilla tanh RNN (32 units, W ~ N(0, 1/n): spectral radius ~1) trained by plain SGD at lr 0.5,
a rate at which gradients explode, on the adding and 2-symbol temporal-order problems in Pascanu
et al.'s own definitions (`rnnsim.tasks`, variant "pascanu2013"). Per run: solved (fewer than 1 %
of 10,000 fresh sequences wrong, checked when a 500-sequence held-out batch passes, every 100
updates) and diverged (non-finite loss, or loss > 100 x chance). Full grid (300 runs): 10-25 min
on 2 shared cores.
"""

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from scipy.stats import norm

from rnnsim import RNN, plots, tasks, train
from rnnsim.experiment import Experiment, main

N_HIDDEN, LR, BATCH, STEPS = 32, 0.5, 20, 1500
CLIPS = {"none": None, "norm": ("norm", 1.0), "value": ("value", 0.1)}
KEEP = ["step", "loss", "grad_norm", "grad_norm_clipped", "clipped", "diverged", "error_rate"]


def measure(point: dict, seed: int) -> pd.DataFrame:
    task = tasks.make(point["task"], point["T"], variant="pascanu2013")
    model = RNN.random(task.d_in, N_HIDDEN, task.d_out, init="gaussian", gain=1.0, seed=seed)
    _, df = train(model, task, lr=LR, clip=CLIPS[point["clip"]], steps=STEPS, seed=seed,
                  batch_size=BATCH, eval_every=100, eval_batch=500, max_loss=100 * task.baseline,
                  progress=False)  # fmt: skip
    out = df[KEEP].copy()
    out["solved"] = df.attrs["solved"]
    out["run_diverged"] = df.attrs["diverged"]
    return out


def wilson(k, n, level=0.95):
    """Wilson score interval of a binomial proportion k/n (Wilson 1927)."""
    z = norm.ppf(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def summary(table: pd.DataFrame) -> pd.DataFrame:
    runs = table.groupby(["task", "T", "clip", "seed"]).agg(
        solved=("solved", "first"), diverged=("run_diverged", "first"), steps=("step", "size")
    )
    g = runs.groupby(["task", "T", "clip"])
    out = g.agg(runs=("solved", "size"), solved=("solved", "sum"), diverged=("diverged", "sum"))
    out["success_rate"] = out["solved"] / out["runs"]
    out["success_lo"], out["success_hi"] = wilson(out["solved"], out["runs"])
    out["divergence_rate"] = out["diverged"] / out["runs"]
    out["median_steps"] = g["steps"].median()
    return out.reset_index()


def figures(table: pd.DataFrame) -> dict:
    plots.theme()
    s = summary(table)
    task_names = list(dict.fromkeys(s["task"]))
    fig, axes = plt.subplots(2, len(task_names), figsize=(5 * len(task_names), 6.5),
                             layout="constrained", squeeze=False)  # fmt: skip
    for j, name in enumerate(task_names):
        for i, clip in enumerate(CLIPS):
            d = s[(s["task"] == name) & (s["clip"] == clip)]
            x = d["T"] * (1 + 0.04 * (i - 1))
            err = np.clip([d["success_rate"] - d["success_lo"], d["success_hi"] - d["success_rate"]],
                          0, None)  # fmt: skip
            axes[0, j].errorbar(x, d["success_rate"], yerr=err, marker="o", capsize=3,
                                label=f"{clip} {CLIPS[clip][1] if CLIPS[clip] else ''}")  # fmt: skip
            lo, hi = wilson(d["diverged"], d["runs"])
            err = np.clip([d["divergence_rate"] - lo, hi - d["divergence_rate"]], 0, None)
            axes[1, j].errorbar(x, d["divergence_rate"], yerr=err, marker="s", capsize=3)
        axes[0, j].set(title=f"{name} (Pascanu 2013), seeds per point: {int(d['runs'].max())}",
                       ylabel="success rate (95 % Wilson CI)")  # fmt: skip
        axes[1, j].set(xlabel="sequence length T [steps]", ylabel="divergence rate (95 % CI)")
        axes[0, j].legend(title="clipping, threshold")
        for ax in axes[:, j]:
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(s["T"].unique()), [str(t) for t in sorted(s["T"].unique())])
            ax.minorticks_off()
    figs = {"success_rate": fig}
    seed0 = table[(table["seed"] == table["seed"].min()) & (table["T"] == table["T"].max())]
    long = seed0.melt(id_vars=["task", "clip", "step"], value_vars=["grad_norm", "grad_norm_clipped"],
                      var_name="gradient", value_name="norm")  # fmt: skip
    long["gradient"] = long["gradient"].map({"grad_norm": "before clipping",
                                             "grad_norm_clipped": "after clipping"})  # fmt: skip
    f2 = plots.facets(long, x="step", y="norm", hue="clip", col="task", row="gradient", logy=True,
                      band=False, aspect=2.0, xlabel="update", ylabel="gradient norm (all parameters)",
                      title=f"Gradient-norm traces, seed {seed0['seed'].min()}, "
                      f"T = {seed0['T'].max()}; norm threshold dashed")  # fmt: skip
    for ax in f2.axes:
        ax.axhline(CLIPS["norm"][1], ls="--", color="black", lw=1)
    f2.subplots_adjust(top=0.86)
    figs["grad_norm_traces"] = f2
    return figs


EXPERIMENT = Experiment(
    name="clipping",
    description="Success and divergence rates vs T of SGD with no / norm / value clipping on "
    "adding and temporal order (Pascanu 2013); full grid 10-25 min on 2 cores",
    grid={"task": ["temporal_order", "adding"], "T": [10, 15, 20, 30, 40], "clip": list(CLIPS)},
    quick={"task": ["temporal_order", "adding"], "T": [10], "clip": list(CLIPS)},
    measure=measure, figures=figures, summary=summary, seeds=10, quick_seeds=1,
    notes="Norm clipping (Pascanu et al. Algorithm 1) keeps the step bounded while keeping its "
    "direction; without it the linear read-out of the adding task overflows. Value clipping "
    "bounds each component and turns the step. Budget: 1500 updates per run (Pascanu et al. "
    "allowed 5 million), so absolute success rates are far below the paper's.",
)  # fmt: skip

if __name__ == "__main__":
    main(EXPERIMENT)
