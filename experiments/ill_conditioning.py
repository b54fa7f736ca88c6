"""Ill-conditioning during training (Goodfellow, Bengio & Courville 2016, section 8.2.1, Fig. 8.1).

A tanh RNN learns adding (Pascanu et al. 2013 variant) by plain SGD. Every few steps
`rnnsim.curvature.curvature_callback` records the gain eps g^T g and the curvature penalty
1/2 eps^2 g^T H g of the step w -> w - eps g (one exact Hessian-vector product), and whether the
quadratic model predicts the step to raise the loss and whether it does (on the same batch).
"""

import pandas as pd

from rnnsim import RNN, plots, tasks
from rnnsim.curvature import curvature_callback, unlearning_summary
from rnnsim.experiment import Experiment, main
from rnnsim.train import train

HIDDEN, EVERY, SMOOTH, LANCZOS = 32, 10, 50, 12
KEEP = ["step", "loss", "grad_norm", "gTg", "gTHg", "eps_star", "first_order", "second_order"]
KEEP += ["predicted_change", "actual_change", "predicts_increase", "raised_loss", "lambda_max"]
KEEP += ["lambda_min", "kappa"]
COUNTS = {"analysed_steps": "analysed steps", "raised_loss": "steps that raised the loss",
          "raised_and_predicted": "of them predicted", "predicted_increase": "predicted raises",
          "median_kappa": "median condition number"}  # fmt: skip


def measure(point: dict, seed: int) -> pd.DataFrame:
    task = tasks.make("adding", point["T"], variant="pascanu2013")
    model = RNN.random(task.d_in, HIDDEN, task.d_out, seed=seed)
    cb = curvature_callback(point["lr"], loss=task.loss, seed=seed, lanczos_steps=LANCZOS)
    _, table = train(model, task, lr=point["lr"], steps=point["steps"], seed=seed, callback=cb,
                     callback_every=EVERY, eval_every=0, early_stop=False)  # fmt: skip
    out = table[KEEP].copy()
    for col in ("loss", "grad_norm"):
        out[f"{col}_smooth"] = out[col].rolling(SMOOTH, min_periods=1).mean()
    out["baseline"] = task.baseline
    return out


def figures(table: pd.DataFrame) -> dict:
    plots.theme()
    ids, cb = ["T", "lr", "seed", "step"], table.dropna(subset=["gTHg"]).copy()
    long = table.melt(id_vars=ids, value_vars=["loss_smooth", "grad_norm_smooth"]).replace(
        {"loss_smooth": "training loss", "grad_norm_smooth": "gradient norm ||g||"})  # fmt: skip
    f1 = plots.facets(
        long, x="step", y="value", hue="lr", style="T", row="variable", sharey=False, logy=True,
        xlabel="SGD step", ylabel=f"running mean over {SMOOTH} steps",
        title="Adding problem: the loss falls while the gradient norm does not",
    )  # fmt: skip
    cb["eps g^T g"] = -cb["first_order"]
    cb["1/2 eps^2 g^T H g"] = cb["second_order"].where(cb["second_order"] > 0)
    terms = cb.melt(id_vars=ids, value_vars=["eps g^T g", "1/2 eps^2 g^T H g"], var_name="term")
    f2 = plots.facets(
        terms, x="step", y="value", hue="term", col="lr", row="T", logy=True, aspect=1.8,
        xlabel="SGD step", ylabel="term of the loss change (loss units)",
    )  # fmt: skip
    f2.suptitle("Gain eps g^T g vs penalty 1/2 eps^2 g^T H g (red x: loss rose)", y=1.06)
    for (_, panel), ax in zip(cb.groupby(["T", "lr"]), f2.axes, strict=False):  # seaborn's order
        ev = panel[panel["raised_loss"].astype(bool)]
        ax.scatter(ev["step"], ev["eps g^T g"], marker="x", color="red", zorder=5)
    cb["lr_over_eps_star"], ends = cb["lr"] / cb["eps_star"], [0, cb["step"].max()]
    f3 = plots.line_with_band(cb, x="step", y="lr_over_eps_star", hue="lr", style="T", logy=True,
                              xlabel="SGD step", ylabel="eps / eps*  (eps* = 2 g^T g / g^T H g)",
                              title="Step size relative to the largest safe step")  # fmt: skip
    plots.theory_line(f3.axes[0], ends, [1, 1], "eps = eps*: quadratic model raises the loss")
    f4 = plots.line_with_band(cb, x="step", y="lambda_max", hue="lr", style="T", logy=True,
                              xlabel="SGD step", ylabel="top Hessian eigenvalue (Lanczos)",
                              title="Sharpness along training vs 2/eps")  # fmt: skip
    for lr in sorted(cb["lr"].unique()):
        plots.theory_line(f4.axes[0], ends, [2 / lr, 2 / lr], f"2/eps, eps={lr}")
    return {"loss_and_gradient": f1, "first_vs_second_order": f2, "step_over_safe_step": f3,
            "sharpness": f4}  # fmt: skip


def summary(table: pd.DataFrame) -> pd.DataFrame:
    runs = table.groupby(["T", "lr", "seed"])
    out = unlearning_summary(table, ["T", "lr", "seed"]).rename(columns=COUNTS)
    out["final loss / baseline"] = runs["loss_smooth"].last() / runs["baseline"].first()
    out["||g|| end / start"] = runs["grad_norm_smooth"].agg(lambda g: g.iloc[-1] / g.iloc[SMOOTH])
    return out.reset_index()


EXPERIMENT = Experiment(
    name="ill_conditioning",
    description="Gradient norm, g^T H g and unlearning steps while an RNN learns adding.",
    grid={"T": [20, 10], "lr": [0.1, 0.05], "steps": [8000]},
    quick={"T": [10], "lr": [0.1], "steps": [1500]},
    measure=measure, figures=figures, summary=summary, seeds=3, quick_seeds=1, version="2",
    notes="""DL book eq. 8.10: a step raises the loss when 1/2 eps^2 g^T H g > eps g^T g. What to
    look for (T = 20, lr = 0.1, seed 0 when this was written): the loss sits at the baseline for
    ~4000 steps, then falls several-fold while ||g|| doubles (Fig. 8.1's pattern); lambda_max (12
    Lanczos steps) climbs to about 2/eps, where plain gradient descent on a quadratic turns
    unstable (cf. Cohen et al. 2021, "edge of stability"), and from then on a fraction of the steps
    raise the loss; the quadratic model predicts most, not all, of them (it is exact only on a
    quadratic: see tests/test_curvature.py).""",
)  # fmt: skip

if __name__ == "__main__":
    main(EXPERIMENT)
