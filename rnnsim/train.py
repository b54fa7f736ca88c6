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

import numpy as np
import pandas as pd

from rnnsim import optim as _optim
from rnnsim.models import RNN
from rnnsim.validation import generator, positive_float, positive_int, require_columns

__all__ = ["train", "evaluate", "run_outcome", "success_rates", "wilson_interval"]


def _loss_grad(model, task, x, target):
    if isinstance(model, RNN):
        return model.loss_and_grad_vector(x, target, task.loss)
    return model.loss_and_grad_vector(x, target)


def _predict(model, x):
    if isinstance(model, RNN):
        return model.forward(x)[1]
    return model.output(x)


def evaluate(model, task, n, rng, *, chunk=1000):
    """Score a model on ``n`` fresh sequences, drawn in batches of at most ``chunk``.

    Parameters
    ----------
    model : RNN or MLP
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
            r = task.evaluate(_predict(model, x), target)
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
    and the fraction of the total it is; None when `rnnsim.jacobians.gradient_contributions` is
    absent or its table cannot be read."""
    try:
        from rnnsim.jacobians import gradient_contributions
    except ImportError:
        return None
    try:
        try:
            table = gradient_contributions(model, x, target, loss=loss)
        except TypeError:
            table = gradient_contributions(model, x, target)
    except Exception:  # noqa: BLE001 - an optional diagnostic must never stop training
        return None
    if not isinstance(table, pd.DataFrame) or "lag" not in table.columns:
        return None
    if "grad_W_norm" not in table.columns:
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
    model : RNN or MLP
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
    model : RNN or MLP
        The model after the last update (after divergence: the last one with finite
        parameters).
    table : pandas.DataFrame
        One row per update: ``step``, ``loss``, ``grad_norm`` (before clipping),
        ``grad_norm_clipped``, ``clipped``, ``lr_step`` (scheduled), ``param_norm``,
        ``diverged``, ``eval_loss``, ``error_rate``, ``accuracy``, ``success`` (held-out batch,
        NaN / NA off evaluation steps), ``solved`` (confirmed success), the optional long-lag and
        callback columns, and the parameters ``task``, ``variant``, ``T``, ``optimizer``,
        ``lr``, ``clip``, ``clip_threshold``, ``batch_size``, ``train_seed``. ``table.attrs``
        holds ``solved``, ``solved_step``, ``diverged``, ``diverged_step``, ``steps_run``.

    Notes
    -----
    Clipping: Pascanu, Mikolov & Bengio 2013, Algorithm 1; success: ibid. §4 (fewer than 1 % of
    10,000 fresh sequences wrong) or the task's own rule (`rnnsim.tasks`).
    """
    steps = positive_int("steps", steps)
    batch_size = positive_int("batch_size", batch_size)
    eval_every = positive_int("eval_every", eval_every, minimum=0)
    eval_batch = positive_int("eval_batch", eval_batch)
    lag_every = positive_int("lag_every", lag_every, minimum=0)
    callback_every = positive_int("callback_every", callback_every)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {callback!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if max_loss is not None and not float(max_loss) > 0:
        raise ValueError(f"max_loss must be > 0 or None, got {max_loss!r}")
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
    is_rnn = isinstance(model, RNN)
    if not is_rnn and task.T is not None:
        raise ValueError(f"task {task.name!r} is a sequence task; model must be an RNN")
    if is_rnn and task.T is None:
        raise ValueError(f"task {task.name!r} has no time axis; model must be an MLP")
    if long_lag is None:
        long_lag = max(1, (task.T or 2) // 2)

    rng = np.random.default_rng([int(seed), 0])
    held_x, held_t = task.batch(eval_batch, np.random.default_rng([int(seed), 1]))
    confirm_rng = np.random.default_rng([int(seed), 2])

    params_cols = {
        "task": task.name,
        "variant": task.variant,
        "T": task.T,
        "optimizer": opt.name,
        "lr": opt.lr,
        "clip": "none" if opt.clip is None else opt.clip[0],
        "clip_threshold": float("nan") if opt.clip is None else opt.clip[1],
        "batch_size": batch_size,
        "train_seed": int(seed),
    }
    if progress is None:
        progress = steps >= 5000 and sys.stderr.isatty()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=f"train {task.name} T={task.T}", leave=False)

    rows = []
    good_model = model
    solved_step = diverged_step = None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        for step in range(steps):
            x, target = task.batch(batch_size, rng)
            theta = model.params_vector()
            loss, g = _loss_grad(model, task, x, target)
            row = {"step": step, "loss": float(loss), "param_norm": float(np.linalg.norm(theta))}
            finite = math.isfinite(loss) and np.isfinite(g).all() and np.isfinite(theta).all()
            if finite:
                good_model = model
            diverged = not finite or (max_loss is not None and loss > float(max_loss))
            if diverged:
                gn = float(np.linalg.norm(g))
                row.update(grad_norm=gn, grad_norm_clipped=gn, clipped=False, diverged=True)
                row["lr_step"] = _optim.learning_rate(opt.schedule, opt.lr, opt.t, steps)
                rows.append(row)
                diverged_step = step
                break
            if eval_every and step % eval_every == 0:
                ev = task.evaluate(_predict(model, held_x), held_t)
                row.update(
                    eval_loss=ev["loss"],
                    error_rate=ev["error_rate"],
                    accuracy=ev["accuracy"],
                    success=ev["success"],
                )
                if ev["success"]:
                    ok = (
                        evaluate(model, task, task.eval_size, confirm_rng)["success"]
                        if confirm
                        else True
                    )
                    row["solved"] = ok
                    if ok and solved_step is None:
                        solved_step = step
            if callback is not None and step % callback_every == 0:
                row.update(callback(step, model, x, target, g))
            if lag_every and is_rnn and step % lag_every == 0:
                rec = _long_lag_norm(model, x, target, task.loss, long_lag)
                if rec is not None:
                    row.update(rec)
            if solved_step is not None and early_stop:
                row.update(
                    grad_norm=float(np.linalg.norm(g)),
                    grad_norm_clipped=np.nan,
                    clipped=False,
                    diverged=False,
                    lr_step=np.nan,
                )
                rows.append(row)
                break
            new, info = opt.step(theta, g)
            row.update(info)
            row["lr_step"] = row.pop("lr")
            row["diverged"] = False
            rows.append(row)
            model = model.with_params(new)
            if bar is not None:
                bar.update(1)
                if step % 100 == 0:
                    bar.set_postfix(loss=f"{loss:.4g}", gnorm=f"{info['grad_norm']:.3g}")
    if bar is not None:
        bar.close()
    if diverged_step is not None:
        model = good_model

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
    first = [
        "step",
        "loss",
        "grad_norm",
        "grad_norm_clipped",
        "clipped",
        "lr_step",
        "param_norm",
        "diverged",
        "eval_loss",
        "error_rate",
        "accuracy",
        "success",
        "solved",
    ]
    table = table[first + [c for c in table.columns if c not in first]]
    for k, v in params_cols.items():
        table[k] = v
    table.attrs.update(
        solved=solved_step is not None,
        solved_step=solved_step,
        diverged=diverged_step is not None,
        diverged_step=diverged_step,
        steps_run=len(table),
    )
    return model, table


def run_outcome(table, columns=None):
    """A `train` table with the run's outcome written on every row, ready to concatenate.

    Parameters
    ----------
    table : pandas.DataFrame
        The table returned by `train` (its ``attrs`` hold ``solved`` and ``diverged``).
    columns : sequence of str, optional
        The per-step columns to keep, in this order (default: all).

    Returns
    -------
    pandas.DataFrame
        A copy of those columns plus ``solved`` (the run was solved: confirmed success) and
        ``run_diverged`` (the run diverged), both bool and constant over the rows. ``solved``
        replaces `train`'s per-step column of that name.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a DataFrame from rnnsim.train, got {type(table).__name__}")
    for key in ("solved", "diverged"):
        if key not in table.attrs:
            raise ValueError(f"table.attrs must hold {key!r} (a table from rnnsim.train)")
    out = (table if columns is None else table[list(columns)]).copy()
    out["solved"] = bool(table.attrs["solved"])
    out["run_diverged"] = bool(table.attrs["diverged"])
    return out


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
