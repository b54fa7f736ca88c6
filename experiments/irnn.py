"""IRNN vs tanh RNNs on the adding problem (Le, Jaitly & Hinton 2015, §4.1).

The adding problem in Le et al.'s / Arjovsky et al.'s form (`rnnsim.tasks`, variant "le2015":
exactly T steps, one marker in each half, target the sum; chance = predicting 1, plain MSE 1/6,
rnnsim mse_last 1/12). Three 32-unit RNNs: relu with W = I (the IRNN), tanh with W ~ N(0, 1/n) and
tanh with a random orthogonal W (``gain`` scales all three); biases 0, input weights
N(0, 1/d_in). All trained by SGD (lr 0.1) with norm clipping at 1, as Le et al. train theirs
(their exact rates and thresholds: reported, unconfirmed), on the same batches for a given seed.
Held-out MSE every 100 updates on 500 sequences; success (an rnnsim convention) when it is below
0.1 x chance. Every knob is an axis: ``lr``, ``clip_norm``, ``gain``, ``n_hidden``,
``batch_size``, ``updates``, ``optimizer`` and ``T``.
"""

from functools import partial

import numpy as np
import pandas as pd

from rnnsim import Ensemble, optim, plots, tasks, train
from rnnsim.claims import Claim, NotApplicable, Verdict, rows
from rnnsim.experiment import Experiment, main
from rnnsim.train import split_members, wilson_interval

MODELS = {
    "irnn": ("relu", "identity"),
    "tanh_gaussian": ("tanh", "gaussian"),
    "tanh_orthogonal": ("tanh", "orthogonal"),
}
#: the axes that define one training setting (besides T and model)
KNOBS = ["lr", "clip_norm", "gain", "n_hidden", "batch_size", "updates", "optimizer"]


def measure(point: dict, seed: int) -> pd.DataFrame:
    return measure_seeds(point, [seed])[0]


def measure_seeds(point: dict, seeds: list) -> list:
    """The runs of ``seeds`` at one grid point, trained at once as one ensemble (each member's
    table is the single run's with its seed, bit for bit)."""
    task = tasks.make("adding", point["T"], variant="le2015")
    activation, init = MODELS[point["model"]]
    ensemble = Ensemble.random(
        len(seeds),
        task.d_in,
        point["n_hidden"],
        task.d_out,
        activation=activation,
        init=init,
        gains=point["gain"],
        seeds=seeds,
    )
    _, log = train(
        ensemble,
        task,
        optimizer=point["optimizer"],
        lr=point["lr"],
        clip=("norm", point["clip_norm"]),
        steps=point["updates"],
        seed=list(seeds),
        batch_size=point["batch_size"],
        eval_every=100,
        eval_batch=500,
        progress=False,
    )
    return [
        df[["step", "loss", "grad_norm", "clipped", "diverged", "eval_loss"]].assign(
            loss_over_chance=df.loss / task.baseline,
            eval_over_chance=df.eval_loss / task.baseline,
            solved=df.attrs["solved"],
            run_diverged=df.attrs["diverged"],
        )
        for df in split_members(log)
    ]


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (T, model, knobs): runs; the last held-out MSE / chance of each run, as median,
    quartiles, min and max over runs; success and divergence counts and rates with 95 % Wilson
    intervals."""
    by = ["T", "model", *KNOBS]
    last = table.dropna(subset=["eval_over_chance"]).groupby([*by, "seed"]).last()
    g = last.groupby(by)["eval_over_chance"]
    out = pd.DataFrame(
        {
            "runs": g.size(),
            "final_eval_over_chance": g.median(),
            "final_eval_q25": g.quantile(0.25),
            "final_eval_q75": g.quantile(0.75),
            "final_eval_min": g.min(),
            "final_eval_max": g.max(),
            "solved": last.groupby(by)["solved"].sum(),
            "diverged": last.groupby(by)["run_diverged"].sum(),
        }
    ).reset_index()
    out["success_rate"] = out["solved"] / out["runs"]
    out["success_lo"], out["success_hi"] = wilson_interval(out["solved"], out["runs"])
    out["divergence_rate"] = out["diverged"] / out["runs"]
    out["divergence_lo"], out["divergence_hi"] = wilson_interval(out["diverged"], out["runs"])
    return out


def irnn_beats_tanh(s: pd.DataFrame) -> Verdict:
    """At the longest T, the IRNN's median final held-out MSE is below each tanh RNN's."""
    for knob in KNOBS:
        if knob in s and s[knob].nunique() > 1:
            raise NotApplicable(f"the run varies {knob}; the claim compares one setting")
    T = int(s["T"].max())
    at = rows(s, T=T)
    irnn = rows(at, model="irnn").iloc[0]
    others = [rows(at, model=m).iloc[0] for m in MODELS if m != "irnn"]

    def text(r):
        return (
            f"{r['model']} {r['final_eval_over_chance']:.3f} "
            f"[{r['final_eval_min']:.3f}, {r['final_eval_max']:.3f}]"
        )

    return Verdict(
        all(irnn["final_eval_over_chance"] < r["final_eval_over_chance"] for r in others),
        {
            f"median_eval_over_chance_{r['model']}_T{T}": r["final_eval_over_chance"]
            for r in [irnn, *others]
        },
        f"T = {T}, median final held-out MSE / chance [min, max] over {int(irnn['runs'])} "
        "seeds: " + "; ".join(text(r) for r in [irnn, *others]),
    )


CLAIMS = [
    Claim(
        "At the longest T, the IRNN reaches a lower held-out error than the tanh RNNs.",
        irnn_beats_tanh,
        source="Le, Jaitly & Hinton 2015, sec. 4.1, fig. 2",
        figure="learning_curves",
    )
]


def _setting(table: pd.DataFrame) -> str:
    """The knobs of a table as a title fragment."""
    values = partial(plots.levels, table, sep=",")

    return (
        f"n = {values('n_hidden')}, {values('optimizer')} lr = {values('lr')}, norm clip "
        f"{values('clip_norm')}, gain {values('gain')}, batch {values('batch_size')}, "
        f"{table['seed'].nunique()} seeds"
    )


def figures(table: pd.DataFrame) -> dict:
    plots.theme()
    # from the second evaluation on: untrained IRNNs start up to 1e4 x chance, which would
    # squash the curves
    ev = table[table["step"] > 0].dropna(subset=["eval_over_chance"])
    # one line per model (colour and style), one panel per T, log axes, geometric means
    per_model = {"hue": "model", "style": "model", "col": "T", "logy": True, "band": False}
    per_model |= {"height": 3.5, "aspect": 1.6, "xlabel": "update"}
    f1 = plots.facets(
        ev,
        x="step",
        y="eval_over_chance",
        **per_model,
        ylabel="held-out MSE / chance (predict 1)",
        hlines=[(1.0, "--", "black"), (0.1, ":", "grey")],
        title=f"Adding (Le et al. 2015), geometric mean over seeds, from update 100;\n"
        f"{_setting(table)}; chance dashed, success dotted",
    )
    tr = (
        table.assign(window=table["step"] // 50 * 50)
        .groupby(["T", "model", "seed", "window"], as_index=False)["grad_norm"]
        .median()
    )
    tr = tr[np.isfinite(tr["grad_norm"])]
    f2 = plots.facets(
        tr,
        x="window",
        y="grad_norm",
        **per_model,
        ylabel="gradient norm",
        hlines=[(t, ":", "black") for t in sorted(table["clip_norm"].unique())],
        title="Gradient norm before clipping (median of 50 updates, geometric mean over seeds);\n"
        f"{_setting(table)}; threshold dotted",
    )
    return {"learning_curves": f1, "grad_norms": f2}


EXPERIMENT = Experiment(
    name="irnn",
    description="Identity-initialised relu RNN vs tanh RNNs (gaussian, orthogonal) on the adding "
    "problem (Le et al. 2015); quick ~50 s, full grid (60 runs) ~1.5 min of compute",
    grid={
        "T": [10, 25, 50, 100],
        "model": list(MODELS),
        "lr": [0.1],
        "clip_norm": [1.0],
        "gain": [1.0],
        "n_hidden": [32],
        "batch_size": [20],
        "updates": [2000],
        "optimizer": ["sgd"],
    },
    quick={"T": [100], "model": list(MODELS)},
    measure=measure,
    measure_seeds=measure_seeds,
    figures=figures,
    summary=summary,
    seeds=5,
    quick_seeds=5,
    version="2",
    choices={"model": list(MODELS), "optimizer": list(optim.OPTIMIZERS)},
    limits={
        "T": (2, 100_000),
        "lr": (1e-9, 100.0),
        "clip_norm": (1e-9, None),
        "gain": (0.0, 100.0),
        "n_hidden": (1, 4096),
        "batch_size": (1, 100_000),
        "updates": (1, 10_000_000),
    },
    claims=CLAIMS,
    captions={
        "learning_curves": "Held-out MSE over chance against updates, geometric mean over "
        "seeds, one panel per T: at long T only the IRNN falls clearly below chance.",
        "grad_norms": "Gradient norm before clipping (medians of 50 updates, geometric mean "
        "over seeds): the IRNN's gradient neither vanishes nor explodes at the start.",
    },
    notes="With W = I and relu, every non-negative state is a fixed point and the Jacobian on the "
    "active units is the identity, so gradients neither vanish nor explode at the start "
    "(REFERENCES §3). Budget 2000 updates: Le et al. trained far longer.",
)

if __name__ == "__main__":
    main(EXPERIMENT)
