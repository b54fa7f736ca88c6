"""The training loop: one row per update, divergence recorded (never raised), early stopping on
the task's own success criterion.

``train(model, task, optimizer="sgd", lr=..., clip=..., steps=..., seed=...)`` returns the trained
model and a tidy DataFrame with one row per update. Every quantity in a row describes the
parameters *before* that row's update, theta_step: the training loss on the step's batch, the
gradient norm before and after clipping, the parameter norm, and (on evaluation steps) the
held-out loss, error rate and success flag, so that step 0 is the initial network.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from rnnsim import optim as _optim
from rnnsim.jacobians import gradient_contributions
from rnnsim.models import Model
from rnnsim.tasks import Task
from rnnsim.validation import describe, generator, positive_float, positive_int, require_columns

__all__ = ["train", "evaluate", "success_rates", "wilson_interval"]


def evaluate(model, task, n, rng, *, chunk=1000):
    """Score a model on ``n`` fresh sequences, drawn in batches of at most ``chunk``.

    Parameters
    ----------
    model : a `rnnsim.models.Model` (RNN, MLP, ...)
    task : Task (`rnnsim.tasks.make`)
    n : int
        Number of sequences (e.g. ``task.eval_size``: 10,000 for Pascanu et al.'s rule).
    rng : numpy.random.Generator or int
    chunk : int
        Batch size of the evaluation (each batch draws its own length for random-length
        variants, as Pascanu et al.'s code does, in chunks of 1000).

    Returns
    -------
    dict
        ``loss`` (mean over sequences), ``error_rate``, ``accuracy``, ``success`` (the task's
        criterion on all ``n`` sequences), ``n``.

    Notes
    -----
    Pascanu, Mikolov & Bengio 2013 §4: a run succeeds when fewer than 1 % of 10,000 fresh
    sequences are wrong.
    """
    rng = generator("rng", rng)
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    total_loss = total_err = 0.0
    done = 0
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        while done < n:
            b = min(chunk, n - done)
            x, target = task.batch(b, rng)
            r = task.evaluate(model.predict(x), target)
            total_loss += r["loss"] * b
            total_err += r["error_rate"] * b
            done += b
    loss, err = total_loss / n, total_err / n
    return {
        "loss": loss,
        "error_rate": err,
        "accuracy": 1.0 - err,
        "success": task.judge(loss, err) if math.isfinite(loss) else False,
        "n": n,
    }


def _long_lag_norm(model, x, target, loss, long_lag):
    """Sum over steps k with lag T - k >= long_lag of the norm of dL/dW's part from step k,
    and the fraction of the total it is (`rnnsim.jacobians.gradient_contributions`); None when
    that fails."""
    try:
        table = gradient_contributions(model, x, target, loss=loss)
    except Exception:  # noqa: BLE001 - an optional diagnostic must never stop training
        return None
    lag = table["lag"].to_numpy()
    norms = table["grad_W_norm"].to_numpy(dtype=np.float64)
    total = float(np.nansum(norms))
    long = float(np.nansum(norms[lag >= long_lag]))
    return {
        "long_lag_grad_norm": long,
        "long_lag_fraction": long / total if total > 0 else float("nan"),
    }


def train(
    model,
    task,
    *,
    optimizer="sgd",
    lr,
    clip=None,
    steps,
    seed=0,
    batch_size=20,
    schedule="constant",
    optimizer_options=None,
    eval_every=100,
    eval_batch=1000,
    confirm=True,
    early_stop=True,
    max_loss=None,
    long_lag=None,
    lag_every=0,
    callback=None,
    callback_every=1,
    progress=None,
):
    """Train a model on a task with one optimiser; record every update.

    Parameters
    ----------
    model : RNN, MLP or another `rnnsim.models.Model`
        The initial network (not modified; models are immutable).
    task : Task
        From `rnnsim.tasks.make`; its ``loss`` is the training loss.
    optimizer : str or `rnnsim.optim.Optimizer`
        ``sgd``, ``momentum``, ``nesterov``, ``rmsprop`` or ``adam`` (or a ready optimiser, whose
        own lr, clip and schedule are then used).
    lr : float
        Base learning rate.
    clip : None, ("norm", threshold) or ("value", threshold)
        Gradient clipping (Pascanu et al. 2013, Algorithm 1 for "norm").
    steps : int
        Maximum number of updates.
    seed : int
        Seeds the training batches; the held-out batch and the confirmation sequences come from
        independent streams derived from it.
    batch_size : int
        Sequences per update (20 in Pascanu et al. and Arjovsky et al.).
    schedule : str or tuple
        ``"constant"``, ``("step", every, factor)``, ``"cosine"`` (over ``steps``) or
        ``("cosine", total, lr_min)``.
    optimizer_options : dict, optional
        Extra arguments for `rnnsim.optim.Optimizer` (``momentum``, ``decay``, ``beta1``, ...).
    eval_every : int
        Evaluate on the held-out batch at steps 0, eval_every, 2 eval_every, ... (0: never).
    eval_batch : int
        Size of the held-out batch (drawn once).
    confirm : bool
        When the held-out batch meets the success criterion, confirm it on ``task.eval_size``
        fresh sequences (10,000 for Pascanu et al.'s rule) before declaring the run solved.
    early_stop : bool
        Stop at the first solved evaluation.
    max_loss : float, optional
        Also count a training loss above this as divergence (default: only non-finite loss,
        gradient or parameters diverge).
    long_lag, lag_every : int
        Every ``lag_every`` steps (0: never), record ``long_lag_grad_norm`` and
        ``long_lag_fraction`` from `rnnsim.jacobians.gradient_contributions` (when that function
        exists): the summed norms of the per-step parts of dL/dW with lag >= ``long_lag``
        (default T // 2), and their share of all steps' norms (RNNs only).
    callback : callable, optional
        ``callback(step: int, model, x: ndarray, target: ndarray, grad: ndarray flat) -> dict``,
        called every ``callback_every`` steps with the parameters before the update and the
        unclipped gradient; its dict is merged into that step's row.
    callback_every : int
        Period of the callback.
    progress : bool, optional
        Show a tqdm bar (default: when ``steps >= 5000`` and stderr is a terminal).

    Returns
    -------
    model : the same kind as the model given
        The model after the last update (after divergence: the last one with finite
        parameters).
    table : pandas.DataFrame
        One row per update: ``step``, ``loss``, ``grad_norm`` (before clipping),
        ``grad_norm_clipped``, ``clipped``, ``lr_step`` (scheduled), ``param_norm``,
        ``diverged``, ``grad_finite`` (False where the gradient overflowed to inf or nan),
        ``eval_loss``, ``error_rate``, ``accuracy``, ``success`` (held-out batch,
        NaN / NA off evaluation steps), ``solved`` (confirmed success), the optional long-lag and
        callback columns, and the parameters ``task``, ``variant``, ``T``, ``optimizer``,
        ``lr``, ``clip``, ``clip_threshold``, ``batch_size``, ``train_seed``. ``table.attrs``
        holds ``solved``, ``solved_step``, ``diverged``, ``diverged_step``, ``steps_run``.

    Notes
    -----
    Clipping: Pascanu, Mikolov & Bengio 2013, Algorithm 1; success: ibid. §4 (fewer than 1 % of
    10,000 fresh sequences wrong) or the task's own rule (`rnnsim.tasks`).
    """
    plan = _plan(
        model,
        task,
        optimizer=optimizer,
        lr=lr,
        clip=clip,
        schedule=schedule,
        optimizer_options=optimizer_options,
        steps=steps,
        batch_size=batch_size,
        eval_every=eval_every,
        confirm=confirm,
        early_stop=early_stop,
        max_loss=max_loss,
        long_lag=long_lag,
        lag_every=lag_every,
        callback=callback,
        callback_every=callback_every,
    )
    data = _streams(task, seed, positive_int("eval_batch", eval_batch))
    bar = _progress_bar(progress, plan.steps, task)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        model, rows, solved_step, diverged_step = _loop(model, task, plan, data, bar)
    if bar is not None:
        bar.close()
    columns = {
        "task": task.name,
        "variant": task.variant,
        "T": task.T,
        "optimizer": plan.opt.name,
        "lr": plan.opt.lr,
        "clip": "none" if plan.opt.clip is None else plan.opt.clip[0],
        "clip_threshold": float("nan") if plan.opt.clip is None else plan.opt.clip[1],
        "batch_size": plan.batch_size,
        "train_seed": int(seed),
    }
    return model, _table(rows, columns, solved_step, diverged_step)


@dataclass(frozen=True)
class _Plan:
    """The validated options of one `train` run (see `train` for each)."""

    opt: _optim.Optimizer
    steps: int
    batch_size: int
    eval_every: int
    confirm: bool
    early_stop: bool
    max_loss: float | None
    long_lag: int
    lag_every: int
    callback: Callable | None
    callback_every: int


def _plan(model, task, *, optimizer, lr, clip, schedule, optimizer_options, steps, **options):
    """Validate `train`'s options and the pairing of model and task; build the optimiser."""
    steps = positive_int("steps", steps)
    batch_size = positive_int("batch_size", options["batch_size"])
    eval_every = positive_int("eval_every", options["eval_every"], minimum=0)
    lag_every = positive_int("lag_every", options["lag_every"], minimum=0)
    callback_every = positive_int("callback_every", options["callback_every"])
    callback, max_loss = options["callback"], options["max_loss"]
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {callback!r}")
    if max_loss is not None:
        positive_float("max_loss", max_loss)
    if isinstance(optimizer, _optim.Optimizer):
        opt = optimizer
    else:
        opt = _optim.Optimizer(
            optimizer,
            lr,
            clip=clip,
            schedule=schedule,
            total_steps=steps,
            **(optimizer_options or {}),
        )
    if not isinstance(model, Model):
        raise TypeError(f"model must be an rnnsim model (RNN, MLP, ...); got {describe(model)}")
    if not isinstance(task, Task):
        raise TypeError(f"task must be an rnnsim task (rnnsim.tasks.make); got {describe(task)}")
    if not model.sequential and task.T is not None:
        raise ValueError(
            f"task {task.name!r} is a sequence task; model must take sequences (an RNN), "
            f"got {type(model).__name__}"
        )
    if model.sequential and task.T is None:
        raise ValueError(
            f"task {task.name!r} has no time axis; model must take single inputs (an MLP), "
            f"got {type(model).__name__}"
        )
    long_lag = options["long_lag"]
    return _Plan(
        opt=opt,
        steps=steps,
        batch_size=batch_size,
        eval_every=eval_every,
        confirm=options["confirm"],
        early_stop=options["early_stop"],
        max_loss=None if max_loss is None else float(max_loss),
        long_lag=max(1, (task.T or 2) // 2) if long_lag is None else long_lag,
        lag_every=lag_every,
        callback=callback,
        callback_every=callback_every,
    )


class _Streams(NamedTuple):
    """The random streams of a run, all derived from its seed."""

    rng: np.random.Generator  # training batches
    held_x: np.ndarray  # the held-out batch, drawn once
    held_t: np.ndarray
    confirm_rng: np.random.Generator  # the sequences that confirm a success


def _streams(task, seed, eval_batch):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed}")
    rng = np.random.default_rng([int(seed), 0])
    held_x, held_t = task.batch(eval_batch, np.random.default_rng([int(seed), 1]))
    return _Streams(rng, held_x, held_t, np.random.default_rng([int(seed), 2]))


def _progress_bar(progress, steps, task):
    """A tqdm bar, or None (by default: a bar for runs of 5000 steps or more on a terminal)."""
    if progress is None:
        progress = steps >= 5000 and sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=steps, desc=f"train {task.name} T={task.T}", leave=False)


def _loop(model, task, plan, data, bar):
    """Run the updates; return (final model, rows, solved step, diverged step).

    After divergence the final model is the last one with finite loss, gradient and parameters.
    """
    rows, good_model = [], model
    solved_step = diverged_step = None
    for step in range(plan.steps):
        x, target = task.batch(plan.batch_size, data.rng)
        theta = model.params_vector()
        loss, g = model.loss_and_grad_vector(x, target, task.loss)
        grad_finite = bool(np.isfinite(g).all())
        row = {"step": step, "loss": float(loss), "param_norm": float(np.linalg.norm(theta))}
        row["grad_finite"] = grad_finite
        finite = math.isfinite(loss) and grad_finite and np.isfinite(theta).all()
        if finite:
            good_model = model
        if not finite or (plan.max_loss is not None and loss > plan.max_loss):
            rows.append(_diverged(row, g, plan))
            diverged_step = step
            break
        if plan.eval_every and step % plan.eval_every == 0:
            if _evaluation(row, model, task, plan, data) and solved_step is None:
                solved_step = step
        _records(row, step, model, x, target, g, task, plan)
        if solved_step is not None and plan.early_stop:
            rows.append(_stopped(row, g))
            break
        model = _update(row, model, theta, g, plan.opt)
        rows.append(row)
        if bar is not None:
            bar.update(1)
            if step % 100 == 0:
                bar.set_postfix(loss=f"{loss:.4g}", gnorm=f"{row['grad_norm']:.3g}")
    return (model if diverged_step is None else good_model), rows, solved_step, diverged_step


def _evaluation(row, model, task, plan, data):
    """Score the held-out batch into ``row``; True when it meets the task's criterion and the
    confirmation on ``task.eval_size`` fresh sequences (when ``plan.confirm``) agrees."""
    ev = task.evaluate(model.predict(data.held_x), data.held_t)
    row.update(
        eval_loss=ev["loss"],
        error_rate=ev["error_rate"],
        accuracy=ev["accuracy"],
        success=ev["success"],
    )
    if not ev["success"]:
        return False
    ok = not plan.confirm or evaluate(model, task, task.eval_size, data.confirm_rng)["success"]
    row["solved"] = ok
    return ok


def _records(row, step, model, x, target, g, task, plan):
    """The optional records of a step: the callback's dict and the long-lag gradient norms."""
    if plan.callback is not None and step % plan.callback_every == 0:
        row.update(plan.callback(step, model, x, target, g))
    if plan.lag_every and model.sequential and step % plan.lag_every == 0:
        rec = _long_lag_norm(model, x, target, task.loss, plan.long_lag)
        if rec is not None:
            row.update(rec)


def _diverged(row, g, plan):
    """``row`` completed for a step that diverged (no update)."""
    gn = float(np.linalg.norm(g))
    row.update(grad_norm=gn, grad_norm_clipped=gn, clipped=False, diverged=True)
    opt = plan.opt
    row["lr_step"] = _optim.learning_rate(opt.schedule, opt.lr, opt.t, plan.steps)
    return row


def _stopped(row, g):
    """``row`` completed for the solved step that stops the run early (no update)."""
    row.update(
        grad_norm=float(np.linalg.norm(g)),
        grad_norm_clipped=np.nan,
        clipped=False,
        diverged=False,
        lr_step=np.nan,
    )
    return row


def _update(row, model, theta, g, opt):
    """One optimiser step: its records into ``row``, and the updated model."""
    new, info = opt.step(theta, g)
    row.update(info)
    row["lr_step"] = row.pop("lr")
    row["diverged"] = False
    return model.with_params(new)


_FIRST_COLUMNS = [
    "step",
    "loss",
    "grad_norm",
    "grad_norm_clipped",
    "clipped",
    "lr_step",
    "param_norm",
    "diverged",
    "grad_finite",
    "eval_loss",
    "error_rate",
    "accuracy",
    "success",
    "solved",
]


def _table(rows, columns, solved_step, diverged_step):
    """The rows as `train`'s table: fixed columns first, then the optional records, then the
    run's parameter ``columns``; the outcome in ``attrs``."""
    table = pd.DataFrame(rows)
    for col in ("eval_loss", "error_rate", "accuracy"):
        if col not in table:
            table[col] = np.nan
    for col in ("success", "solved"):
        table[col] = (
            table[col].astype("boolean")
            if col in table
            else pd.array([pd.NA] * len(table), "boolean")
        )
    table["clipped"] = table["clipped"].astype(bool)
    table["diverged"] = table["diverged"].astype(bool)
    table = table[_FIRST_COLUMNS + [c for c in table.columns if c not in _FIRST_COLUMNS]]
    for k, v in columns.items():
        table[k] = v
    table.attrs.update(
        solved=solved_step is not None,
        solved_step=solved_step,
        diverged=diverged_step is not None,
        diverged_step=diverged_step,
        steps_run=len(table),
    )
    return table


def wilson_interval(k, n, level=0.95):
    """Wilson score interval of a binomial proportion k / n.

    Parameters
    ----------
    k, n : int or array_like (any shape, broadcast together)
        Successes and trials (n >= 1).
    level : float, default 0.95
        Coverage of the interval, in (0, 1).

    Returns
    -------
    lo, hi : float or array_like
        Bounds, in [0, 1], of the type of ``k / n`` (a pandas Series stays a Series).

    Notes
    -----
    Wilson 1927; unlike the normal-approximation interval it is not empty at k = 0 or k = n.
    """
    level = positive_float("level", level)
    if not level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}")
    if np.any(np.asarray(n) < 1):
        raise ValueError(f"n must be >= 1 everywhere; got {n!r}")
    from scipy.stats import norm

    z = norm.ppf(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def success_rates(table, by, *, run="seed", level=0.95):
    """Success and divergence rates of many training runs, with Wilson intervals.

    Parameters
    ----------
    table : pandas.DataFrame
        Concatenated `run_outcome` tables: one row per update, with the columns ``by``, ``run``,
        ``solved``, ``run_diverged`` and ``step``.
    by : sequence of str
        The parameters that define a condition (e.g. ``["task", "T", "clip"]``).
    run : str, default "seed"
        The column that tells the runs of one condition apart.
    level : float, default 0.95
        Coverage of the success-rate interval.

    Returns
    -------
    pandas.DataFrame
        One row per condition: the ``by`` columns, ``runs``, ``solved``, ``diverged`` (counts),
        ``success_rate``, ``success_lo``, ``success_hi`` (Wilson interval), ``divergence_rate``
        and ``median_steps`` (median over runs of the updates run, i.e. rows).

    Notes
    -----
    Pascanu, Mikolov & Bengio 2013 §4 report such rates over seeds for each task and T.
    """
    by = list(by)
    require_columns("table", table, [*by, run, "solved", "run_diverged", "step"], "run_outcome")
    runs = table.groupby([*by, run]).agg(
        solved=("solved", "first"), diverged=("run_diverged", "first"), steps=("step", "size")
    )
    g = runs.groupby(by)
    out = g.agg(runs=("solved", "size"), solved=("solved", "sum"), diverged=("diverged", "sum"))
    out["success_rate"] = out["solved"] / out["runs"]
    out["success_lo"], out["success_hi"] = wilson_interval(out["solved"], out["runs"], level)
    out["divergence_rate"] = out["diverged"] / out["runs"]
    out["median_steps"] = g["steps"].median()
    return out.reset_index()
