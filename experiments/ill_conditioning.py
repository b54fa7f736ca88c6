"""Ill-conditioning during training (Goodfellow, Bengio & Courville 2016, section 8.2.1, Fig. 8.1).

A tanh RNN learns a long-term dependency task (adding, Pascanu et al. 2013, by default) with a
first-order optimiser; `curvature.curvature_callback` records, every 10th step, the gain eps g^T g
and the penalty 1/2 eps^2 g^T H g of the plain gradient step w -> w - eps g on the training batch,
whether that step raised the loss, and the top Hessian eigenvalue (12 Lanczos steps).
"""

from functools import partial

import numpy as np
import pandas as pd

from rnnsim import RNN, curvature, plots, tasks, train
from rnnsim.claims import Claim, NotApplicable, Verdict
from rnnsim.experiment import Experiment, main
from rnnsim.optim import OPTIMIZERS
from rnnsim.train import wilson_interval

EVERY, SMOOTH, LANCZOS, WINDOW = 10, 50, 12, 200  # WINDOW: steps per geometric mean
KEEP = """step loss grad_norm gTg gTHg eps_star first_order second_order predicted_change
actual_change predicts_increase raised_loss lambda_max lambda_min kappa""".split()
AXES = ["task", "T", "hidden", "lr", "batch_size", "optimizer", "steps"]  # a run's condition
MIN_STEPS = 10  # analysed steps a rate needs before a claim judges it
PENALTY = "penalty > gain"  # steps where 1/2 eps^2 g^T H g > eps g^T g (DL book eq. 8.10)


def measure(point: dict, seed: int) -> pd.DataFrame:
    task = tasks.make(point["task"], point["T"])
    model = RNN.random(task.d_in, point["hidden"], task.d_out, seed=seed)
    cb = curvature.curvature_callback(point["lr"], loss=task.loss, seed=seed, lanczos_steps=LANCZOS)
    _, table = train(
        model,
        task,
        optimizer=point["optimizer"],
        lr=point["lr"],
        steps=point["steps"],
        batch_size=point["batch_size"],
        seed=seed,
        callback=cb,
        callback_every=EVERY,
        eval_every=0,
        early_stop=False,
    )
    smooth = table[["loss", "grad_norm"]].rolling(SMOOTH, min_periods=1).mean()
    rec = curvature.smoothed_records(table, ["lambda_max", "eps_star"], WINDOW // EVERY)
    return table[KEEP].join([smooth.add_suffix("_smooth"), rec]).assign(baseline=task.baseline)


def _setting(table: pd.DataFrame) -> str:
    """The run's setting for a title: task, T, n, batch, optimiser (every value of each)."""
    values = partial(plots.levels, table)

    return (
        f"{values('task')} task, T = {values('T')}, n = {values('hidden')}, "
        f"batch {values('batch_size')}, {values('optimizer')}"
    )


def _change(name: str, ratios: pd.Series) -> str:
    """'the loss falls 9.1x' (or 'rises', or a range over runs) from end/start ratios."""
    lo, hi = ratios.min(), ratios.max()
    if hi < 1:
        word, a, b = "falls", 1 / hi, 1 / lo
    elif lo > 1:
        word, a, b = "rises", lo, hi
    else:
        return f"{name} changes {lo:.2g}x to {hi:.2g}x"
    return f"{name} {word} {a:.2g}x" if b / a < 1.05 else f"{name} {word} {a:.2g}x to {b:.2g}x"


def figures(table: pd.DataFrame) -> dict:
    plots.theme()
    runs = summary(table)
    setting = f"{_setting(table)}, {table['seed'].nunique()} seeds"
    names = {"loss_smooth": "training loss", "grad_norm_smooth": "gradient norm ||g||"}
    loss_and_gradient = plots.facets(
        table,
        x="step",
        y=names,
        hue="lr",
        style="T",
        sharey=False,
        logy=True,
        units="seed",
        xlabel="SGD step",
        ylabel=f"running mean over {SMOOTH} steps, one line per seed",
        title=f"{setting}:\n{_change('the loss', runs['loss end / start'])}, "
        f"{_change('||g||', runs['||g|| end / start'])} (median over seeds, end vs step {SMOOTH})",
    )
    ends = table[["T", "lr"]].drop_duplicates()  # dashed: the step eps and 2/eps per run
    ends = ends.assign(eps_star_smooth=ends.lr, lambda_max_smooth=2 / ends.lr)
    ends = pd.concat([ends.assign(step=0), ends.assign(step=table["step"].max())])
    common = {"x": "step", "hue": "lr", "col": "T", "logy": True, "units": "seed"}
    common["xlabel"] = "SGD step (one line per seed)"
    safe_step = plots.facets(
        table,
        y="eps_star_smooth",
        theory=ends,
        ylabel=f"eps* = 2 g^T g / g^T H g\n{WINDOW}-step geometric mean",
        title=f"Largest safe step eps* (dashed: the step eps taken), {setting}",
        **common,
    )
    edge = ", ".join(f"{r:.2f}" for r in runs["lambda_max eps / 2"])
    sharpness = plots.facets(
        table,
        y="lambda_max_smooth",
        theory=ends,
        ylabel=f"top Hessian eigenvalue\n{WINDOW}-step geometric mean",
        title=f"Sharpness along training (dashed: 2/eps), {setting}:\n"
        f"median lambda_max over the second half = {edge} x 2/eps",
        **common,
    )
    return {
        "loss_and_gradient": loss_and_gradient,
        "first_vs_second_order": terms_figure(table),
        "safe_step": safe_step,
        "sharpness": sharpness,
    }


def terms_figure(table: pd.DataFrame):
    """Penalty over gain, 1/2 eps g^T H g / g^T g = eps / eps*, of every analysed step of the
    run's first seed (steps with g^T H g <= 0 left out of the log axis); above the dashed line at
    1 the quadratic model predicts a rise; red crosses where the loss rose. The title counts both."""
    first = table["seed"].min()
    cb = table[table["seed"] == first].dropna(subset=["gTHg"])
    cb = cb.assign(ratio=cb["second_order"] / -cb["first_order"])
    drawn = cb[cb["ratio"] > 0]
    penalty, raised = (int(cb[c].astype(bool).sum()) for c in ("predicts_increase", "raised_loss"))
    return plots.facets(
        drawn,
        x="step",
        y="ratio",
        col="lr",
        row="T",
        logy=True,
        aspect=1.8,
        xlabel="SGD step",
        ylabel="penalty / gain\n= 1/2 eps g^T H g / g^T g",
        hlines=[(1.0, "--", "black")],
        events=drawn[drawn["raised_loss"].astype(bool)],
        title=f"Penalty 1/2 eps^2 g^T H g over gain eps g^T g, seed {first} (first of "
        f"{table['seed'].nunique()}; {_setting(table)}):\npenalty > gain (above the dashed "
        f"line) on {penalty} of {len(cb)} analysed steps; the loss rose on {raised} (red x)",
    )


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per condition (the axes but the seed), pooled over its seeds.

    The counts of `unlearning`; ``seeds`` and ``seeds with penalty > gain``; ``steps with the
    sign right``; the rates, with 95 % Wilson intervals (``_lo``, ``_hi``), that the loss rose on
    the steps where the penalty exceeded the gain (``raised | penalty > gain``) and that the
    quadratic model's sign was right (``sign agreement``); and medians over seeds of the final loss over the task's baseline, of
    ``||g||`` at the end over ``||g||`` at step SMOOTH, and of ``lambda_max eps / 2`` over the
    second half of training (1 at the edge of stability).
    """
    keys = [k for k in AXES if k in table]
    per_seed = unlearning(table, [*keys, "seed"])
    out = unlearning(table, keys)
    out["seeds"] = per_seed.groupby(level=keys).size()
    has = per_seed["predicted raises"] > 0
    out[f"seeds with {PENALTY}"] = has.groupby(level=keys).sum()
    out = out.rename(columns={"predicted raises": f"{PENALTY} steps"})
    n, pen, raised, both = (
        out[c]
        for c in (
            "analysed steps",
            f"{PENALTY} steps",
            "steps that raised the loss",
            "of them predicted",
        )
    )
    out["steps with the sign right"] = n - raised - pen + 2 * both
    rates = {
        f"raised | {PENALTY}": (both, pen),
        "sign agreement": (out["steps with the sign right"], n),
    }
    for name, (k, m) in rates.items():
        out[name] = k / m.where(m > 0)
        out[f"{name}_lo"], out[f"{name}_hi"] = wilson_interval(k, m)
    runs = table.groupby([*keys, "seed"])
    half = table[table["step"] >= table["steps"] / 2].groupby([*keys, "seed"])
    medians = pd.DataFrame(
        {
            "final loss / baseline": runs["loss_smooth"].last() / runs["baseline"].first(),
            "loss end / start": runs["loss_smooth"].agg(_end_over_start),
            "||g|| end / start": runs["grad_norm_smooth"].agg(_end_over_start),
            "lambda_max eps / 2": half["lambda_max"].median() * half["lr"].first() / 2,
        }
    )
    return out.join(medians.groupby(level=keys).median()).reset_index()


def _end_over_start(series: pd.Series) -> float:
    """The last value over the value at step SMOOTH (the first full running mean)."""
    return series.iloc[-1] / series.iloc[min(SMOOTH, len(series) - 1)]


def unlearning(records: pd.DataFrame, by: list) -> pd.DataFrame:
    """How often gradient steps raised the loss, and how often the quadratic model foresaw it.

    One row per group of ``by`` (indexed by it), over the steps the callback analysed (``gTHg``
    not NaN): their number, the steps whose loss rose, those of them the quadratic model
    predicted (``predicts_increase``), all the steps it predicted to raise the loss, and the
    median condition number. DL book eq. 8.10: the prediction is exact on a quadratic loss, so
    "of them predicted" < "steps that raised the loss" measures the higher-order terms.
    """
    cb = records.dropna(subset=["gTHg"])
    raised, predicted = cb["raised_loss"].astype(bool), cb["predicts_increase"].astype(bool)
    keys = [cb[c] for c in by]
    return pd.DataFrame(
        {
            "analysed steps": cb.groupby(keys).size(),
            "steps that raised the loss": raised.groupby(keys).sum(),
            "of them predicted": (raised & predicted).groupby(keys).sum(),
            "predicted raises": predicted.groupby(keys).sum(),
            "median condition number": cb.groupby(keys)["kappa"].median(),
        }
    )


def _condition(row) -> str:
    return f"T {int(row['T'])}, lr {float(row['lr']):g}"


def penalty_steps_occur(summary: pd.DataFrame) -> Verdict:
    """Some condition has steps with penalty > gain in every one of its seeds (the condition
    reported: the largest share of such seeds, then the most such steps)."""
    share = summary[f"seeds with {PENALTY}"] / summary["seeds"]  # then the most such steps
    best = summary.assign(share=share).sort_values(["share", f"{PENALTY} steps"]).iloc[-1]
    numbers = {
        "condition": _condition(best),
        f"{PENALTY} steps": int(best[f"{PENALTY} steps"]),
        "analysed steps": int(best["analysed steps"]),
        f"seeds with {PENALTY}": int(best[f"seeds with {PENALTY}"]),
        "seeds": int(best["seeds"]),
    }
    return Verdict(
        passed=bool(best[f"seeds with {PENALTY}"] == best["seeds"] and best["seeds"] > 0),
        numbers=numbers,
        detail=f"{numbers['condition']}: {numbers[f'{PENALTY} steps']} of "
        f"{numbers['analysed steps']} analysed steps, in {numbers[f'seeds with {PENALTY}']} of "
        f"{numbers['seeds']} seeds",
    )


def _rate_claim(summary: pd.DataFrame, rate: str, hits: str, count: str) -> Verdict:
    """The rate ``sum(hits) / sum(count)``, pooled over the run's conditions, has its 95 % Wilson
    lower bound above 1/2 (at least MIN_STEPS steps in ``count``); the lowest condition's rate is
    reported beside it."""
    k, m = int(summary[hits].sum()), int(summary[count].sum())
    if m < MIN_STEPS:
        raise NotApplicable(f"the run has {m} {count}, fewer than {MIN_STEPS}")
    lo, hi = (float(v[0]) for v in wilson_interval(np.array([k]), np.array([m])))
    rates = summary[hits] / summary[count].where(summary[count] > 0)
    worst = summary.iloc[int(np.nanargmin(rates.to_numpy(dtype=float)))]
    numbers = {
        rate: round(k / m, 3),
        "95% CI": [round(lo, 3), round(hi, 3)],
        "n": m,
        "lowest condition": _condition(worst),
        "its rate": round(float(worst[rate]), 3),
        "its n": int(worst[count]),
    }
    return Verdict(
        passed=lo > 0.5,
        numbers=numbers,
        detail=f"{rate} {k / m:.2f} (95% CI {lo:.2f}-{hi:.2f}, n = {m}; needed CI above 0.5); "
        f"lowest condition {numbers['lowest condition']}: {numbers['its rate']:.2f} "
        f"(n = {numbers['its n']})",
    )


def penalty_steps_raise_the_loss(summary: pd.DataFrame) -> Verdict:
    return _rate_claim(summary, f"raised | {PENALTY}", "of them predicted", f"{PENALTY} steps")


def quadratic_model_predicts_the_sign(summary: pd.DataFrame) -> Verdict:
    return _rate_claim(summary, "sign agreement", "steps with the sign right", "analysed steps")


SOURCE = "Goodfellow, Bengio & Courville 2016, sec. 8.2.1, eq. 8.10"
EXPERIMENT = Experiment(
    name="ill_conditioning",
    description="Gradient norm, g^T H g and unlearning steps while an RNN learns adding.",
    grid={
        "task": ["adding"],
        "T": [10, 20],
        "hidden": [32],
        "lr": [0.15, 0.05],
        "batch_size": [20],
        "optimizer": ["sgd"],
        "steps": [8000],
    },
    quick={"T": [10], "lr": [0.15], "steps": [1500]},
    measure=measure,
    figures=figures,
    summary=summary,
    seeds=3,
    quick_seeds=3,
    version="4",
    choices={"task": ["adding", "temporal_order"], "optimizer": list(OPTIMIZERS)},
    limits={"T": (10, None), "hidden": (1, None), "lr": (0.0, None), "batch_size": (1, None)},
    claims=[
        Claim(
            "Steps occur where 1/2 eps^2 g^T H g > eps g^T g: the quadratic model's penalty "
            "exceeds its gain.",
            penalty_steps_occur,
            source=SOURCE,
            figure="first_vs_second_order",
        ),
        Claim(
            "On those steps the loss rises: the step 'unlearns' although it follows the gradient.",
            penalty_steps_raise_the_loss,
            source=SOURCE,
            figure="first_vs_second_order",
        ),
        Claim(
            "The quadratic model -eps g^T g + 1/2 eps^2 g^T H g predicts the sign of the loss "
            "change on most steps.",
            quadratic_model_predicts_the_sign,
            source=SOURCE,
            figure="first_vs_second_order",
        ),
    ],
    captions={
        "loss_and_gradient": "Training loss and gradient norm (running means, one line per "
        "seed): the title gives how much each changed; the DL book's Fig. 8.1 saw the gradient "
        "norm rise while the error fell.",
        "first_vs_second_order": "The quadratic model's penalty over its gain for each analysed "
        "step of one seed: above the dashed line at 1 it predicts that the step raises the loss; "
        "red crosses mark the steps on which the loss rose.",
        "safe_step": "The largest step that still lowers a quadratic along g, eps* = 2 g^T g / "
        "g^T H g, against the step taken (dashed): below the dashed line, steps unlearn.",
        "sharpness": "The top Hessian eigenvalue against 2/eps (dashed): plain gradient descent "
        "on a quadratic is unstable above it; training hovers near it (edge of stability).",
    },
    notes="""DL book eq. 8.10: a step raises the loss when 1/2 eps^2 g^T H g > eps g^T g. The
    analysed step is the plain gradient step w -> w - eps g on the training batch, whatever the
    optimiser does. What to look for (T = 10, lr = 0.15, seeds 0-2 when written): lambda_max (12
    Lanczos steps) settles at about 2/eps, where plain gradient descent on a quadratic turns
    unstable (cf. Cohen et al. 2021, "edge of stability"); there about one analysed step in ten
    has penalty > gain, and most of those raise the loss; the quadratic model predicts the sign
    of the loss change on more than 90 % of the steps (it is exact only on a quadratic: see
    tests/test_curvature.py). With lr = 0.05 (T = 10, 1500 steps, seeds 0-2) lambda_max reaches
    0.86 x 2/eps; penalty > gain on 24 of 450 steps, but the loss rose on only 11 of them:
    there the quadratic model's predicted increase was right about half of the time. The claims
    pool the steps of every condition of the run; the summary gives each condition's rates. The
    gradient norm falls here, unlike the DL book's Fig. 8.1 (a convolutional network, where it
    rose): the titles report what the run shows.""",
)

if __name__ == "__main__":
    main(EXPERIMENT)
