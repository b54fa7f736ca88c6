"""Loss landscapes of trained RNNs and MLPs: lines, slices, ravines, plateaus, minima across seeds.

Each point trains one network by SGD (`rnnsim.train`; RNN on the adding problem, MLP on a
teacher network) and measures, on a fixed held-out batch: the loss on the line from the
initialisation to the solution (Goodfellow, Vinyals & Saxe 2015), a 2-D slice around the solution
along random filter-normalised directions (Li et al. 2018), the ravine ratio (top Hessian eigenvalue
over the RMS eigenvalue) along the training path, plateaus of training, and the solution's
sharpness (top Hessian eigenvalue, Lanczos on exact Hessian-vector products) and Hessian spectral
density (stochastic Lanczos quadrature, as in PyHessian). Each measurement is its own tidy table.
"""

from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from scipy import stats

from rnnsim import MLP, RNN, plots, tasks
from rnnsim import landscape as L
from rnnsim.claims import Claim, NotApplicable, Verdict
from rnnsim.experiment import Experiment, main
from rnnsim.optim import OPTIMIZERS
from rnnsim.train import train

#: The parts of `landscape.survey`, one table each (see its docstring for their columns).
TABLES = ("train", "interpolation", "slice", "ravine", "density", "minimum", "plateau", "params")
AXES = ["model", "task", "T", "hidden", "lr", "batch_size", "optimizer", "steps"]
RISE = 0.05  # a line is monotone when it never rises by more than this fraction of its fall
MIN_MINIMA = 6  # minima per model that a sharpness-loss correlation needs


def measure(point: dict, seed: int) -> dict:
    kind, steps = point["model"], point["steps"]
    if kind == "rnn":
        task = tasks.make(point["task"], point["T"])
        model = RNN.random(task.d_in, point["hidden"], task.d_out, seed=seed)
    else:
        task = tasks.make("teacher")
        model = MLP.random(point["hidden"], 3, n_in=task.d_in, n_out=task.d_out, seed=seed)
    path = []  # (step, parameters) every steps // 8 steps, before the update
    final, log = train(
        model,
        task,
        optimizer=point["optimizer"],
        lr=point["lr"],
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


def line_rises(interpolation: pd.DataFrame, by: list) -> pd.DataFrame:
    """How far the loss on the line from initialisation (alpha 0) to solution (alpha 1) rises.

    One row per group of ``by`` (a run): ``fall``, the drop from alpha 0 to the lowest loss on
    [0, 1]; ``rise``, the largest increase ``L(alpha') - min_{alpha <= alpha'} L(alpha)`` over
    [0, 1]; ``rise / fall`` (inf without a fall); ``monotone``, ``rise <= RISE fall``.
    """
    on = interpolation[interpolation["alpha"].between(-1e-9, 1 + 1e-9)].sort_values("alpha")
    rows = []
    for key, g in on.groupby(by, sort=True):
        loss = g["loss"].to_numpy()
        rise = float(np.max(loss - np.minimum.accumulate(loss)))
        fall = float(loss[0] - loss.min())
        rows.append((*key, fall, rise, rise / fall if fall > 0 else np.inf))
    out = pd.DataFrame(rows, columns=[*by, "fall", "rise", "rise / fall"])
    return out.assign(monotone=out["rise / fall"] <= RISE)


def sharpness_relation(minimum: pd.DataFrame) -> pd.DataFrame:
    """Spearman's rho between the sharpness and the held-out loss of the minima of each model.

    One row per model: ``model``, ``minima`` (n), ``rho(sharpness, held-out loss)``.
    """
    rows = []
    for model, g in minimum.groupby("model", sort=True):
        rho = stats.spearmanr(g["sharpness"], g["loss"]).statistic if len(g) > 2 else np.nan
        rows.append((model, len(g), float(rho)))
    return pd.DataFrame(rows, columns=["model", "minima", "rho(sharpness, held-out loss)"])


def summary(tables: dict) -> pd.DataFrame:
    """One row per condition: `landscape.survey_summary` (minima, distances across seeds,
    plateaus), the line from initialisation to solution (``seeds``, ``monotone seeds``, the
    largest ``rise / fall`` of `line_rises`), and the model's sharpness-loss relation over all its
    minima of the run (`sharpness_relation`, the same on every row of one model)."""
    keys = [k for k in AXES if k in tables["minimum"]]
    used = ("minimum", "params", "plateau")
    stacked = pd.concat([tables[k].assign(kind=k) for k in used], ignore_index=True)
    out = L.survey_summary(stacked, keys)
    rises = line_rises(tables["interpolation"], [*keys, "seed"]).groupby(keys)
    lines = pd.DataFrame(
        {
            "seeds": rises.size(),
            "monotone seeds": rises["monotone"].sum(),
            "largest rise / fall": rises["rise / fall"].max(),
        }
    )
    out = out.join(lines, on=keys)
    relation = sharpness_relation(tables["minimum"]).rename(
        columns=lambda c: c if c == "model" else f"model's {c}"
    )
    return out.merge(relation, on="model", how="left")


def _setting(table: pd.DataFrame) -> str:
    """Networks, tasks and the training setting for a title (every value of each)."""
    values = partial(plots.levels, table)

    nets = "; ".join(
        f"{m.upper()} on {t}" + (f" T = {values('T')}" if m == "rnn" else "")
        for m, t in table[["model", "task"]].drop_duplicates().itertuples(index=False)
    )
    return (
        f"{nets}; n = {values('hidden')}, lr {values('lr')}, {values('optimizer')}, "
        f"{values('steps')} steps, {table['seed'].nunique()} seeds"
    )


def figures(tables: dict) -> dict:
    plots.theme()
    setting = _setting(tables["minimum"])
    lines = dict(hue="batch_size", col="model", logy=True, units="seed")
    keys = [k for k in AXES if k in tables["interpolation"]]
    rises = line_rises(tables["interpolation"], [*keys, "seed"])
    interpolation = plots.facets(
        _categorical(tables["interpolation"]),
        x="alpha",
        y="loss",
        xlabel="alpha (0 = initialisation, 1 = trained)",
        ylabel="held-out loss (one line per seed)",
        title=f"Loss on the line from initialisation to solution ({setting}):\n"
        f"monotone on [0, 1] in {int(rises['monotone'].sum())} of {len(rises)} runs "
        f"(rises <= {RISE:.0%} of the fall)",
        **lines,
    )
    ravine = plots.facets(
        _categorical(tables["ravine"]),
        x="step",
        y="ravine_ratio",
        xlabel="SGD step (one line per seed)",
        ylabel="lambda_max / RMS eigenvalue of H",
        title=f"Ravines along the training path: top vs typical curvature\n({setting})",
        **lines,
    )
    return {
        "interpolation": interpolation,
        "ravine_ratio": ravine,
        "minima": minima_figure(tables["minimum"], setting),
        "hessian_density": density_figure(tables["density"], setting),
        "slices": slices_figure(tables["slice"], setting),
    }


def _categorical(table: pd.DataFrame) -> pd.DataFrame:
    """The batch size as text, so that every figure gives its levels the same colours."""
    return table.assign(batch_size=table["batch_size"].astype(str))


def minima_figure(minimum: pd.DataFrame, setting: str):
    """Sharpness against held-out loss, one marker per minimum (run), a panel per model; the
    title gives Spearman's rho and n per model."""
    relation = sharpness_relation(minimum)
    rho = "; ".join(
        f"{r.model}: rho = {r[2]:+.2f}, n = {r.minima}"
        if np.isfinite(r[2])
        else f"{r.model}: rho undefined, n = {r.minima}"
        for r in relation.itertuples(index=False)
    )
    g = sns.relplot(
        _categorical(minimum),
        x="sharpness",
        y="loss",
        hue="batch_size",
        style="batch_size",
        col="model",
        kind="scatter",
        s=60,
        height=3,
        aspect=1.3,
        facet_kws={"sharex": False, "sharey": False},
    )
    g.set_axis_labels("sharpness lambda_max(H) at the solution", "held-out loss at the solution")
    g.set_titles(col_template="{col_var} = {col_name}")
    g.figure.suptitle(
        f"Sharpness vs held-out loss across minima ({setting}):\nSpearman {rho}",
        y=1.0,
        va="bottom",
    )
    return g.figure


def density_figure(density: pd.DataFrame, setting: str):
    """One line per seed, the density floored at 1e-6 for its log scale."""
    floored = _categorical(density).assign(density=density["density"].clip(lower=1e-6))
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
    g.figure.suptitle(
        f"Hessian spectral density (stochastic Lanczos quadrature, 5 x 40 steps)\n{setting}",
        y=1.0,
        va="bottom",
    )
    return g.figure


def slices_figure(slices: pd.DataFrame, setting: str):
    """Filled contours of log10 loss, one panel per (model, batch size), the solution starred;
    the run's first seed."""
    first = slices["seed"].min()
    panels = list(slices[slices["seed"] == first].groupby(["model", "batch_size"]))
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
        "2-D slices around the solution (Li et al. 2018 filter normalisation), "
        f"seed {first} of {slices['seed'].nunique()}\n{setting}"
    )
    return fig


def _condition(row) -> str:
    return f"{row['model']}, batch {int(row['batch_size'])}"


def interpolation_is_monotone(summary: pd.DataFrame) -> Verdict:
    """Every condition has the line monotone (`line_rises`) in more than half of its seeds."""
    fraction = summary["monotone seeds"] / summary["seeds"]
    worst = summary.iloc[int(np.argmin(fraction))]
    numbers = {
        "monotone runs": int(summary["monotone seeds"].sum()),
        "runs": int(summary["seeds"].sum()),
        "worst condition": _condition(worst),
        "its monotone seeds": int(worst["monotone seeds"]),
        "its seeds": int(worst["seeds"]),
        "largest rise / fall": round(float(summary["largest rise / fall"].max()), 4),
        "allowed rise / fall": RISE,
    }
    return Verdict(
        passed=bool(fraction.min() > 0.5),
        numbers=numbers,
        detail=f"monotone in {numbers['monotone runs']} of {numbers['runs']} runs; fewest: "
        f"{numbers['its monotone seeds']} of {numbers['its seeds']} ({numbers['worst condition']});"
        f" largest rise {numbers['largest rise / fall']:.3g} of the fall (allowed {RISE})",
    )


def _strength(rho: float) -> str:
    size = abs(rho)
    word = "weak" if size < 0.3 else "moderate" if size < 0.7 else "strong"
    if rho > 0:
        return f"{word}, positive: sharper minima, higher held-out loss"
    return f"{word}, negative: sharper minima, lower held-out loss"


def sharpness_relation_reported(summary: pd.DataFrame) -> Verdict:
    """A reported statistic: each model's Spearman rho over its minima is a number (its sign and
    strength are reported, not asserted). Not checked with fewer than MIN_MINIMA minima for a
    model; fails when a rho is undefined (e.g. every sharpness equal)."""
    col = "model's rho(sharpness, held-out loss)"
    models = summary.drop_duplicates("model")
    few = models[models["model's minima"] < MIN_MINIMA]
    if models.empty or not few.empty:
        pairs = zip(few["model"], few["model's minima"], strict=True)
        counts = ", ".join(f"{m} {n}" for m, n in pairs)
        raise NotApplicable(f"fewer than {MIN_MINIMA} minima per model: {counts or 'none'}")
    numbers, parts = {}, []
    for row in models.to_dict("records"):
        model, n, rho = row["model"], int(row["model's minima"]), float(row[col])
        numbers[f"{model} rho"], numbers[f"{model} n"] = round(rho, 3), n
        value = f"rho = {rho:+.2f} ({_strength(rho)})" if np.isfinite(rho) else "rho undefined"
        parts.append(f"{model}: {value}, n = {n}")
    return Verdict(
        passed=bool(np.isfinite(models[col]).all()),
        numbers={**numbers, "minima needed per model": MIN_MINIMA},
        detail="; ".join(parts) + " (Spearman)",
    )


EXPERIMENT = Experiment(
    name="landscape",
    description="Interpolation lines, filter-normalised 2-D slices, ravines, plateaus and minima "
    "of trained RNNs and MLPs.",
    grid={
        "model": ["rnn", "mlp"],
        "task": ["adding", "teacher"],
        "T": [10],
        "hidden": [16],
        "lr": [0.1],
        "batch_size": [10, 100],
        "optimizer": ["sgd"],
        "steps": [3000],
    },
    quick={
        "model": ["rnn", "mlp"],
        "task": ["adding", "teacher"],
        "batch_size": [10, 100],
        "steps": [600],
    },
    keep=lambda p: (p["model"] == "mlp") == (p["task"] == "teacher"),  # the MLP learns a teacher
    measure=measure,
    tables=TABLES,
    figures=figures,
    summary=summary,
    seeds=5,
    quick_seeds=3,
    version="3",
    choices={
        "model": ["rnn", "mlp"],
        "task": ["adding", "temporal_order", "teacher"],
        "optimizer": list(OPTIMIZERS),
    },
    limits={
        "T": (10, None),
        "hidden": (1, None),
        "lr": (0.0, None),
        "batch_size": (1, None),
        "steps": (8, None),
    },
    claims=[
        Claim(
            "The loss falls monotonically along the straight line from the initialisation to the "
            f"solution in most seeds (no rise above {RISE:.0%} of the fall on alpha in [0, 1]).",
            interpolation_is_monotone,
            source="Goodfellow, Vinyals & Saxe 2015",
            figure="interpolation",
        ),
        Claim(
            "Across minima, sharpness (lambda_max of the Hessian) relates to the held-out loss "
            "with the sign and strength reported here (Keskar et al. 2017 found sharp minima "
            "generalise worse; Dinh et al. 2017 that sharpness alone cannot decide it).",
            sharpness_relation_reported,
            source="Keskar et al. 2017; Dinh et al. 2017; Li et al. 2018",
            figure="minima",
        ),
    ],
    captions={
        "interpolation": "Held-out loss on the line (1 - alpha) theta_0 + alpha theta_trained, one "
        "line per seed: a monotone fall from alpha 0 to 1 is Goodfellow et al.'s observation.",
        "ravine_ratio": "Top Hessian eigenvalue over the RMS eigenvalue along the training path, "
        "one line per seed: large ratios mean a ravine, one direction far steeper than the rest.",
        "minima": "One marker per trained network: its sharpness against its held-out loss; the "
        "title gives Spearman's rho and n per model, whatever its sign.",
        "hessian_density": "The Hessian's eigenvalue density at each solution (one line per "
        "seed): a bulk near zero and a few outliers is the usual shape.",
        "slices": "The held-out loss on a random 2-D plane through the solution (filter-"
        "normalised directions), one seed: a wide basin is flat, a narrow one sharp.",
    },
    notes="""Sharpness is lambda_max of the exact Hessian on a held-out batch of 200 (Lanczos, 30
    steps); the tasks draw fresh batches at every step, so the held-out loss is the test loss
    and there is no fixed training set to overfit. A line is monotone when the loss on alpha in
    [0, 1] never rises by more than 5 % of its fall (Goodfellow et al. report exactly monotone
    lines for converged networks; SGD's last iterate can sit slightly past the line's minimum).
    Relative distance = ||theta_i - theta_j|| / mean norm over pairs of seeds (permutation
    symmetry makes distinct-looking solutions equivalent). Plateaus: at least 100 steps with the
    50-step running mean of ||g|| below half its initial value and of the loss changing by less
    than 1e-5 per step. When written (quick grid, seeds 0-2), every line was monotone and sharper
    minima had the lower held-out loss in both models: better-trained networks were sharper.
    The RNN (hidden = n units) learns its task at T; the MLP (3 layers of width n) learns a
    teacher network, whatever T says.""",
)

if __name__ == "__main__":
    main(EXPERIMENT)
