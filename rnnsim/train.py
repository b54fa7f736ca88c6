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
from rnnsim.ensemble import Ensemble
from rnnsim.jacobians import gradient_contributions
from rnnsim.kernels import train as _kt
from rnnsim.kernels.blas import single_threaded_blas
from rnnsim.models import LOSSES, RNN, Model
from rnnsim.tasks import Task
from rnnsim.validation import describe, generator, positive_float, positive_int, require_columns

__all__ = ["train", "evaluate", "split_members", "success_rates", "wilson_interval"]


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
    model : RNN, MLP, `rnnsim.Ensemble` or another `rnnsim.models.Model`
        The initial network (not modified; models are immutable). An ensemble's members train
        at once, each exactly as a single RNN with its seed would, a diverged or solved member
        stopping while the others go on.
    task : Task
        From `rnnsim.tasks.make`; its ``loss`` is the training loss.
    optimizer : str or `rnnsim.optim.Optimizer`
        ``sgd``, ``momentum``, ``nesterov``, ``rmsprop`` or ``adam`` (or a ready optimiser, whose
        own lr, clip and schedule are then used, and whose state a single model's run advances;
        an ensemble's members each start from a copy of that state).
    lr : float
        Base learning rate.
    clip : None, ("norm", threshold) or ("value", threshold)
        Gradient clipping (Pascanu et al. 2013, Algorithm 1 for "norm").
    steps : int
        Maximum number of updates.
    seed : int, or for an ensemble a sequence of one int per member
        Seeds the training batches; the held-out batch and the confirmation sequences come from
        independent streams derived from it. One int for an ensemble: every member sees the
        same batches.
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
        parameters); for an ensemble, an `rnnsim.Ensemble` of its members' (with the same
        member parameters).
    table : pandas.DataFrame
        One row per update: ``step``, ``loss``, ``grad_norm`` (before clipping),
        ``grad_norm_clipped``, ``clipped``, ``lr_step`` (scheduled), ``param_norm``,
        ``diverged``, ``grad_finite`` (False where the gradient overflowed to inf or nan),
        ``eval_loss``, ``error_rate``, ``accuracy``, ``success`` (held-out batch,
        NaN / NA off evaluation steps), ``solved`` (confirmed success), the optional long-lag and
        callback columns, and the parameters ``task``, ``variant``, ``T``, ``optimizer``,
        ``lr``, ``clip``, ``clip_threshold``, ``batch_size``, ``train_seed``. ``table.attrs``
        holds ``solved``, ``solved_step``, ``diverged``, ``diverged_step``, ``steps_run``.
        For an ensemble: the members' tables, one after another, with a first column
        ``member`` (0..E-1); each ``attrs`` entry is then a list, one value per member.

    Notes
    -----
    Clipping: Pascanu, Mikolov & Bengio 2013, Algorithm 1; success: ibid. §4 (fewer than 1 % of
    10,000 fresh sequences wrong) or the task's own rule (`rnnsim.tasks`).

    An RNN's updates run in compiled code (`rnnsim.kernels.train`) in chunks between the steps
    where Python has work (evaluations, callbacks, long-lag records); any other model runs the
    same loop in Python (`_ModelSteps`). Both give the same table, bit for bit.
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
    ensemble = isinstance(model, Ensemble)
    seeds = _seeds(seed, len(model) if ensemble else None)
    data = [_streams(task, s, positive_int("eval_batch", eval_batch)) for s in seeds]
    bar = _progress_bar(progress, plan.steps, task)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        if ensemble:
            stepper = _KernelSteps([model[e] for e in range(len(model))], task, plan)
        elif _compiled(model):
            stepper = _KernelSteps([model], task, plan)
        else:
            stepper = _ModelSteps(model, task, plan)
        rows, solved = _drive(stepper, task, plan, data, bar)
        stepper.finish()
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
    }
    tables = [
        _table(stepper, m, rows[m], solved[m], plan, {**columns, "train_seed": d.seed})
        for m, d in enumerate(data)
    ]
    if not ensemble:
        return stepper.final(0), tables[0]
    finals = [stepper.final(m) for m in range(len(data))]
    return Ensemble(finals, params=model.member_params().drop(columns="member")), _members(tables)


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
        lag_every=lag_every if model.sequential else 0,
        callback=callback,
        callback_every=callback_every,
    )


class _Streams(NamedTuple):
    """The random streams of a run, all derived from its seed."""

    rng: np.random.Generator  # training batches
    held_x: np.ndarray  # the held-out batch, drawn once
    held_t: np.ndarray
    confirm_rng: np.random.Generator  # the sequences that confirm a success
    seed: int


def _seeds(seed, E):
    """The seeds of a run's members: ``[seed]`` for a single model (E None); for E members one
    int repeated, or a sequence of E ints."""
    if E is None or isinstance(seed, (int, np.integer)):
        return [seed] * (E or 1)
    if not isinstance(seed, (list, tuple, range, np.ndarray)) or len(seed) != E:
        raise ValueError(
            f"seed must be an int or a sequence of {E} ints (one per member); got {describe(seed)}"
        )
    return list(seed)


def _streams(task, seed, eval_batch):
    """The streams of a run with integer ``seed`` (checked)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed}")
    seed = int(seed)
    rng = np.random.default_rng([seed, 0])
    held_x, held_t = task.batch(eval_batch, np.random.default_rng([seed, 1]))
    return _Streams(rng, held_x, held_t, np.random.default_rng([seed, 2]), seed)


def _progress_bar(progress, steps, task):
    """A tqdm bar, or None (by default: a bar for runs of 5000 steps or more on a terminal)."""
    if progress is None:
        progress = steps >= 5000 and sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=steps, desc=f"train {task.name} T={task.T}", leave=False)


# ----------------------------------------------------------------------------------------------
# the update loop: chunks of compiled (or Python) updates between the steps where Python works
# ----------------------------------------------------------------------------------------------


def _compiled(model):
    """Whether ``model``'s updates run in compiled code (`rnnsim.kernels.train`): RNNs."""
    return isinstance(model, RNN)


def _next_stop(first, plan):
    """The first step >= ``first`` at which Python has work between the gradient and the update
    (an evaluation, the callback, a long-lag record), or None when there is none left."""
    periods = [plan.eval_every, plan.lag_every, plan.callback_every if plan.callback else 0]
    stops = [-(-first // p) * p for p in periods if p]
    stop = min(stops, default=plan.steps)
    return stop if stop < plan.steps else None


def _drive(steps, task, plan, data, bar):
    """Run the updates of every member; return, per member, the Python-side entries of its rows
    (``{step: dict}``: evaluations, callbacks, long-lag records) and its solved step (or None).

    The batches of a chunk are drawn before it runs, each member's from its own stream as a
    single run draws them; the chunk ends with the gradient of the next step where Python has work.
    """
    E = len(data)
    rows, solved = [{} for _ in range(E)], [None] * E
    k, resume = 0, False
    while k < plan.steps and (steps.status == _kt.RUNNING).any():
        first = k + resume
        stop = _next_stop(first, plan)
        end = plan.steps if stop is None else stop + 1
        batches = [
            [task.batch(plan.batch_size, data[m].rng) for _ in range(first, end)]
            if steps.status[m] == _kt.RUNNING
            else None
            for m in range(E)
        ]
        steps.advance(k, end, resume, stop is not None, batches)
        if bar is not None:
            bar.update(end - k - (stop is not None))
            bar.set_postfix(loss=f"{steps.records[0, end - 1 - resume, _kt.LOSS]:.4g}")
        if stop is None:
            break
        for m in np.flatnonzero(steps.status == _kt.RUNNING):
            row = _at_stop(steps, m, stop, batches[m][-1], task, plan, data[m])
            if row.get("solved") and solved[m] is None:
                solved[m] = stop
            if row:
                rows[m][stop] = row
            if solved[m] is not None and plan.early_stop:
                steps.stop(m, stop)
        k, resume = stop, True
    return rows, solved


def _at_stop(steps, m, step, batch, task, plan, data):
    """Python's work at ``step`` of member ``m``, after its gradient: the evaluation, the
    callback and the long-lag record, as the entries of that step's row."""
    model, row = steps.model(m), {}
    if plan.eval_every and step % plan.eval_every == 0:
        _evaluation(row, model, task, plan, data)
    x, target = batch
    if plan.callback is not None and step % plan.callback_every == 0:
        row.update(plan.callback(step, model, x, target, steps.grad(m)))
    if plan.lag_every and step % plan.lag_every == 0:
        rec = _long_lag_norm(model, x, target, task.loss, plan.long_lag)
        if rec is not None:
            row.update(rec)
    return row


def _evaluation(row, model, task, plan, data):
    """Score the held-out batch into ``row``; when it meets the task's criterion, ``solved``:
    whether the confirmation on ``task.eval_size`` fresh sequences (when ``plan.confirm``)
    agrees."""
    ev = task.evaluate(model.predict(data.held_x), data.held_t)
    row.update(
        eval_loss=ev["loss"],
        error_rate=ev["error_rate"],
        accuracy=ev["accuracy"],
        success=ev["success"],
    )
    if ev["success"]:
        ok = not plan.confirm or evaluate(model, task, task.eval_size, data.confirm_rng)["success"]
        row["solved"] = ok


class _ModelSteps:
    """The update loop of one model of any kind, in Python: the twin of `rnnsim.kernels.train`
    (same records, same divergence and stopping rules), on `Model.loss_and_grad_vector` and
    `rnnsim.optim.Optimizer.step`. Its attributes and methods are those of `_KernelSteps`."""

    def __init__(self, model, task, plan):
        self.model_, self.good, self.loss, self.opt, self.steps = (
            model,
            model,
            task.loss,
            plan.opt,
            plan.steps,
        )
        self.max_loss = math.inf if plan.max_loss is None else plan.max_loss
        self.records = np.full((1, plan.steps, len(_kt.RECORDS)), np.nan)
        self.status = np.zeros(1, dtype=np.int64)
        self.t0 = plan.opt.t

    def advance(self, k0, k1, resume, hold, batches):
        """Steps ``k0 .. k1 - 1`` (see `rnnsim.kernels.train.advance_member`)."""
        first = k0 + 1 if resume else k0
        for k in range(k0, k1):
            if self.status[0] != _kt.RUNNING:
                return
            if k >= first and not self._gradient(k, *batches[0][k - first]):
                return
            if hold and k == k1 - 1:
                return
            self._update(k)

    def _gradient(self, k, x, target):
        theta = self.model_.params_vector()
        loss, g = self.model_.loss_and_grad_vector(x, target, self.loss)
        self.theta, self.g = theta, g
        rec = self.records[0, k]
        grad_finite = bool(np.isfinite(g).all())
        rec[_kt.LOSS], rec[_kt.PARAM_NORM] = loss, np.linalg.norm(theta)
        rec[_kt.GRAD_FINITE] = grad_finite
        finite = math.isfinite(loss) and grad_finite and np.isfinite(theta).all()
        if finite:
            self.good = self.model_
        if finite and not loss > self.max_loss:
            return True
        rec[_kt.GRAD_NORM] = rec[_kt.GRAD_NORM_CLIPPED] = np.linalg.norm(g)
        rec[_kt.CLIPPED], rec[_kt.DIVERGED] = 0.0, 1.0
        self.status[0] = _kt.STOPPED_DIVERGED
        return False

    def _update(self, k):
        new, info = self.opt.step(self.theta, self.g)
        rec = self.records[0, k]
        rec[_kt.GRAD_NORM], rec[_kt.GRAD_NORM_CLIPPED] = (
            info["grad_norm"],
            info["grad_norm_clipped"],
        )
        rec[_kt.CLIPPED], rec[_kt.LR_STEP], rec[_kt.DIVERGED] = info["clipped"], info["lr"], 0.0
        self.model_ = self.model_.with_params(new)

    def model(self, m):
        """The model of member ``m`` at its current parameters."""
        return self.model_

    def grad(self, m):
        """The gradient last computed for member ``m`` (unclipped when read between chunks)."""
        return self.g.copy()

    def stop(self, m, step):
        """Stop member ``m`` at ``step`` before its update (solved): its row says so."""
        _stopped(self.records[m, step], self.g)
        self.status[m] = _kt.STOPPED_EARLY

    def finish(self):
        """Nothing to do: `rnnsim.optim.Optimizer.step` has advanced the optimiser."""

    def final(self, m):
        """The model after the last update (after divergence: the last finite one)."""
        return self.good if self.status[m] == _kt.STOPPED_DIVERGED else self.model_


class _KernelSteps:
    """The update loop of E RNNs of one shape in compiled code (`rnnsim.kernels.train`).

    ``records`` (E, steps, 8) and ``status`` (E,) are the kernel's (`rnnsim.kernels.train.State`);
    ``model(m)``, ``grad(m)``, ``stop(m, step)`` and ``final(m)`` give Python the members."""

    def __init__(self, models, task, plan):
        self.template, opt = models[0], plan.opt
        x, target = task.batch(1, np.random.default_rng(0))  # a mismatched task fails here
        x, _ = self.template.check_input(x)
        self.template.check_target(target, task.loss, x.shape[0], 1)
        self.setup = _kt.Setup(
            *(self.template.n_hidden, self.template.n_in, self.template.n_out),
            self.template.act_code,
            LOSSES[task.loss],
            _optim.OPTIMIZERS.index(opt.name),
            0 if opt.clip is None else _optim.CLIP_KINDS.index(opt.clip[0]) + 1,
            0.0 if opt.clip is None else opt.clip[1],
            *(opt.momentum, opt.decay, opt.beta1, opt.beta2, opt.eps),
            math.inf if plan.max_loss is None else plan.max_loss,
            *_schedule(opt, plan.steps),
        )
        theta = np.stack([m.params_vector() for m in models])
        E, P = theta.shape
        s1, s2 = _optimizer_state(opt, P)
        self.state = _kt.State(
            theta,
            theta.copy(),
            np.repeat(s1[None], E, axis=0),
            np.repeat(s2[None], E, axis=0),
            np.zeros((E, P)),
            np.zeros(E, dtype=np.int64),
            np.full((E, plan.steps, len(_kt.RECORDS)), np.nan),
        )
        self.records, self.status, self.t0 = self.state.records, self.state.status, opt.t
        self.opt, self.batch_size = opt, plan.batch_size

    def advance(self, k0, k1, resume, hold, batches):
        """Steps ``k0 .. k1 - 1`` of every running member (`rnnsim.kernels.train.advance`)."""
        s = self.setup
        packed, T = _pack(batches, s, self.batch_size)
        parallel = _kt.members_in_parallel(len(batches), T, self.batch_size, s.n, s.d_in, s.d_out)
        with single_threaded_blas():
            _kt.advance(s, self.state, packed, k0, k1, resume, hold, parallel)

    def finish(self):
        """Leave a ready `rnnsim.optim.Optimizer` of a single model as a loop of its own
        ``step`` would: its step count and state advanced by the updates made."""
        updates = int(np.count_nonzero(~np.isnan(self.records[0, :, _kt.LR_STEP])))
        if self.status.shape[0] != 1 or updates == 0:
            return
        self.opt.t = self.t0 + updates
        names = {"momentum": ("v",), "nesterov": ("v",), "rmsprop": ("r",), "adam": ("m", "v")}
        for name, arr in zip(names.get(self.opt.name, ()), self.state[2:4], strict=False):
            self.opt.state[name] = arr[0].copy()

    def model(self, m):
        return self.template.with_params(self.state.theta[m])

    def grad(self, m):
        return self.state.grad[m].copy()

    def stop(self, m, step):
        _stopped(self.records[m, step], self.state.grad[m])
        self.status[m] = _kt.STOPPED_EARLY

    def final(self, m):
        diverged = self.status[m] == _kt.STOPPED_DIVERGED
        return self.template.with_params((self.state.good if diverged else self.state.theta)[m])


def _schedule(opt, steps):
    """The learning rate and Adam's bias corrections ``1 - beta**t`` of the next ``steps``
    updates of ``opt``, as `rnnsim.optim.Optimizer.step` computes them: three arrays (steps,)."""
    t = range(opt.t, opt.t + steps)
    lr = [_optim.learning_rate(opt.schedule, opt.lr, i, opt.total_steps) for i in t]
    bc1 = [1.0 - opt.beta1 ** (i + 1) for i in t]
    bc2 = [1.0 - opt.beta2 ** (i + 1) for i in t]
    return np.array(lr), np.array(bc1), np.array(bc2)


def _optimizer_state(opt, P):
    """The state arrays (P,) of ``opt`` as the kernels take them: v, r or m, and Adam's v."""
    first = {"rmsprop": "r", "adam": "m"}.get(opt.name, "v")
    fill = opt.accumulator_init if opt.name == "rmsprop" else 0.0
    s1 = np.array(np.broadcast_to(opt.state.get(first, fill), (P,)), dtype=np.float64)
    s2 = opt.state.get("v", 0.0) if opt.name == "adam" else 0.0
    return s1, np.array(np.broadcast_to(s2, (P,)), dtype=np.float64)


def _pack(batches, setup, B):
    """A chunk's batches (per member: a list of ``(x, target)`` or None) as the kernel takes them
    (`rnnsim.kernels.train.Batches`), and the longest sequence among them."""
    E = len(batches)
    K = max((len(b) for b in batches if b is not None), default=0)
    xoff = np.zeros((E, K + 1), dtype=np.int64)
    toff = np.zeros((E, K + 1), dtype=np.int64)
    xs, ts, nx, nt = [], [], 0, 0
    last = setup.loss in (LOSSES["mse_last"], LOSSES["xent_last"])
    for m, member in enumerate(batches):
        xoff[m, 0], toff[m, 0] = nx, nt
        for j, (x, target) in enumerate(member or ()):
            xs.append(x)
            ts.append(target[None] if last else target)
            nx, nt = nx + x.shape[0], nt + ts[-1].shape[0]
            xoff[m, j + 1], toff[m, j + 1] = nx, nt
    x = np.concatenate(xs) if xs else np.zeros((0, B, setup.d_in))
    mse = setup.loss < LOSSES["xent_last"]
    if mse:
        target = np.concatenate(ts).astype(np.float64) if ts else np.zeros((0, B, setup.d_out))
        labels = np.zeros((1, 1), dtype=np.int64)
    else:
        target = np.zeros((1, 1, 1))
        labels = np.concatenate(ts).astype(np.int64) if ts else np.zeros((0, B), np.int64)
    T = max((x.shape[0] for x in xs), default=1)
    return _kt.Batches(x, target, labels, xoff, toff, np.zeros((B, setup.n))), T


def _stopped(rec, g):
    """The records ``rec`` (8,) of the solved step that stops a run early (no update)."""
    rec[_kt.GRAD_NORM] = np.linalg.norm(g)
    rec[_kt.GRAD_NORM_CLIPPED] = rec[_kt.LR_STEP] = np.nan
    rec[_kt.CLIPPED] = rec[_kt.DIVERGED] = 0.0


_FIRST_COLUMNS = [
    "step",
    *_kt.RECORDS,
    "eval_loss",
    "error_rate",
    "accuracy",
    "success",
    "solved",
]


#: the records of a step written after its callback is called (by the update)
_AFTER_CALLBACK = ("grad_norm", "grad_norm_clipped", "clipped", "lr_step", "diverged")


def _table(steps, m, rows, solved_step, plan, columns):
    """Member ``m``'s records as `train`'s table: fixed columns first, then the optional
    records (``rows``: the Python-side entries by step), then the run's parameter ``columns``;
    the outcome in ``attrs``."""
    rec = steps.records[m]
    diverged = np.flatnonzero(rec[:, _kt.DIVERGED] == 1.0)
    diverged_step = int(diverged[0]) if diverged.size else None
    stopped = steps.status[m] == _kt.STOPPED_EARLY
    last = diverged_step if diverged.size else (solved_step if stopped else plan.steps - 1)
    rec = rec[: last + 1].copy()
    if diverged_step is not None:  # the learning rate the update would have had
        opt = plan.opt
        t = steps.t0 + diverged_step
        rec[diverged_step, _kt.LR_STEP] = _optim.learning_rate(opt.schedule, opt.lr, t, plan.steps)
    table = pd.DataFrame({name: rec[:, i] for i, name in enumerate(_kt.RECORDS)})
    table.insert(0, "step", np.arange(len(rec)))
    for col in ("clipped", "diverged", "grad_finite"):
        table[col] = table[col] == 1.0
    extra = pd.DataFrame([rows.get(s, {}) for s in range(len(rec))])
    # a callback's entry for a record that the update writes after it is overwritten; for one
    # written before, it wins (as a row dict updated in that order would have it)
    extra = extra.drop(columns=[c for c in _AFTER_CALLBACK if c in extra])
    for col in [c for c in extra.columns if c in table.columns]:
        table[col] = extra.pop(col).combine_first(table[col])
    table = pd.concat([table, extra], axis=1)
    for col in ("eval_loss", "error_rate", "accuracy"):
        if col not in table:
            table[col] = np.nan
    for col in ("success", "solved"):
        table[col] = (
            table[col].astype("boolean")
            if col in table
            else pd.array([pd.NA] * len(table), "boolean")
        )
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


def _members(tables):
    """The members' tables as one, a first column ``member``; ``attrs`` as lists by member."""
    for m, table in enumerate(tables):
        table.insert(0, "member", m)
    out = pd.concat(tables, ignore_index=True)
    out.attrs = {key: [t.attrs[key] for t in tables] for key in tables[0].attrs}
    return out


def split_members(table):
    """An ensemble's `train` table as one table per member, each as a single-model run returns
    it (no ``member`` column, its own ``attrs``).

    Parameters
    ----------
    table : pandas.DataFrame
        `train`'s table of an `rnnsim.Ensemble` (a ``member`` column, ``attrs`` by member).

    Returns
    -------
    list of pandas.DataFrame, member 0 first.
    """
    require_columns("table", table, ["member"], "train(ensemble, ...)")
    out = []
    for m, rows in table.groupby("member", sort=True):
        rows = rows.drop(columns="member").reset_index(drop=True)
        rows.attrs = {key: values[m] for key, values in table.attrs.items()}
        out.append(rows)
    return out


def warmup():
    """Compile (or load from Numba's on-disk cache) the update loop's kernels: one model (members
    one after another) and an ensemble (members in parallel threads), two updates each on a tiny
    task; returns the seconds it took (`rnnsim.warmup` calls it)."""
    import time

    from rnnsim.tasks import make

    t0 = time.perf_counter()
    task = make("adding", 2, variant="le2015")
    ensemble = Ensemble.random(2, 2, 2, 1)
    for model in (ensemble[0], ensemble):
        train(model, task, lr=0.1, steps=2, batch_size=1, eval_every=0, eval_batch=1)
    return time.perf_counter() - t0


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
