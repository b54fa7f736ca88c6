"""Optimisers, gradient clipping and learning-rate schedules on flat float64 parameter vectors.

Models give ``params_vector()`` and ``with_params(vec)``; the training loop flattens the
gradient in the same order and hands both vectors to an optimiser's ``step``. Each step returns
the new parameters and a record of what happened: the learning rate used, the gradient norm
before and after clipping, and whether clipping acted.

Clipping (``clip``): ``None``; ``("norm", threshold)``, Pascanu, Mikolov & Bengio 2013,
Algorithm 1: ``if ||g|| >= threshold: g <- threshold g / ||g||`` with one norm over all
parameters (the direction is kept); ``("value", threshold)``: every component clipped to
``[-threshold, threshold]`` (what Arjovsky et al. 2016's code applies to its RNN baselines; it
changes the direction).
"""

from __future__ import annotations

import math

import numpy as np

from rnnsim.validation import describe, finite_float, positive_int

OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam")
CLIP_KINDS = ("norm", "value")
SCHEDULES = ("constant", "step", "cosine")


# ----------------------------------------------------------------------------------------------
# clipping
# ----------------------------------------------------------------------------------------------


def check_clip(clip):
    """Validate a clipping spec; return ``None`` or ``(kind, threshold)``.

    Raises
    ------
    ValueError
        If ``clip`` is not ``None``, ``("norm", t)`` or ``("value", t)`` with ``t > 0``.
    """
    if clip is None:
        return None
    if (
        not isinstance(clip, (tuple, list))
        or len(clip) != 2
        or not isinstance(clip[0], str)
        or clip[0] not in CLIP_KINDS
        or isinstance(clip[1], (bool, np.bool_))
        or not isinstance(clip[1], (int, float, np.integer, np.floating))
        or not (0.0 < float(clip[1]) < math.inf)
    ):
        raise ValueError(
            "clip must be None, ('norm', threshold) or ('value', threshold) with a finite "
            f"threshold > 0, got {describe(clip)}"
        )
    return (clip[0], float(clip[1]))


def clip_gradient(grad, clip):
    """Clip a flat gradient.

    Parameters
    ----------
    grad : ndarray, float64, (P,)
        Gradient (not modified).
    clip : None or (str, float)
        ``None``, ``("norm", threshold)`` or ``("value", threshold)``.

    Returns
    -------
    g : ndarray, float64, (P,)
        The clipped gradient (a new array).
    norm_before : float
        ``||grad||_2``.
    norm_after : float
        ``||g||_2``.
    clipped : bool
        Whether clipping changed the gradient.

    Notes
    -----
    Norm clipping is Pascanu et al. 2013, Algorithm 1 (``>=`` as written there); value clipping
    clips each component to ``[-threshold, threshold]``.
    """
    clip = check_clip(clip)
    g = np.array(grad, dtype=np.float64, copy=True)
    norm_before = float(np.linalg.norm(g))
    clipped = False
    if clip is not None:
        kind, thr = clip
        if kind == "norm":
            if norm_before >= thr:
                g *= thr / norm_before
                clipped = True
        else:
            over = np.abs(g) > thr
            if over.any():
                np.clip(g, -thr, thr, out=g)
                clipped = True
    norm_after = float(np.linalg.norm(g)) if clipped else norm_before
    return g, norm_before, norm_after, clipped


# ----------------------------------------------------------------------------------------------
# schedules
# ----------------------------------------------------------------------------------------------


def check_schedule(schedule):
    """Validate a schedule spec; return it as a tuple.

    ``"constant"`` (or ``None``); ``("step", every, factor)``: multiply by ``factor`` every
    ``every`` steps; ``"cosine"`` or ``("cosine", total_steps)`` or
    ``("cosine", total_steps, lr_min)``: cosine annealing from ``lr`` to ``lr_min`` (default 0)
    over ``total_steps`` (``"cosine"`` alone needs ``total_steps`` from the caller).
    """
    if schedule is None or (isinstance(schedule, str) and schedule == "constant"):
        return ("constant",)
    if isinstance(schedule, str) and schedule == "cosine":
        return ("cosine", None, 0.0)
    if (
        isinstance(schedule, (tuple, list))
        and schedule
        and isinstance(schedule[0], str)
        and schedule[0] in SCHEDULES
    ):
        kind = schedule[0]
        if kind == "constant" and len(schedule) == 1:
            return ("constant",)
        if kind == "step" and len(schedule) == 3:
            every, factor = schedule[1], _real(schedule[2])
            if _count(every) and factor is not None and factor > 0:
                return ("step", int(every), factor)
        if kind == "cosine" and len(schedule) in (2, 3):
            total = schedule[1]
            lr_min = _real(schedule[2]) if len(schedule) == 3 else 0.0
            if (total is None or _count(total)) and lr_min is not None and lr_min >= 0:
                return ("cosine", None if total is None else int(total), lr_min)
    raise ValueError(
        "schedule must be 'constant', ('step', every >= 1, factor > 0), 'cosine', "
        f"('cosine', total_steps >= 1) or ('cosine', total_steps, lr_min >= 0), "
        f"got {describe(schedule)}"
    )


def _count(value):
    """True for an integer >= 1 (not a bool)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def _real(value):
    """``value`` as a finite float, or None when it is no finite real number (or a bool)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return None
    try:
        value = float(value)
    except (OverflowError, TypeError):  # an int beyond float64; a complex number
        return None
    return value if math.isfinite(value) else None


def learning_rate(schedule, lr, step, total_steps=None):
    """Learning rate at ``step`` (0-based) under ``schedule``.

    Parameters
    ----------
    schedule : str or tuple
        See ``check_schedule``.
    lr : float
        Base learning rate.
    step : int
        Update index, starting at 0.
    total_steps : int, optional
        Used by ``"cosine"`` when the schedule does not give its own length.

    Returns
    -------
    float

    Notes
    -----
    step: ``lr factor^floor(step / every)``; cosine (Loshchilov & Hutter 2017, SGDR eq. 5,
    without restarts): ``lr_min + (lr - lr_min)(1 + cos(pi min(step, N) / N)) / 2``.
    """
    s = check_schedule(schedule)
    if s[0] == "constant":
        return float(lr)
    if s[0] == "step":
        return float(lr) * s[2] ** (step // s[1])
    total = s[1] if s[1] is not None else total_steps
    if total is None:
        raise ValueError("schedule 'cosine' needs total_steps (give ('cosine', total_steps))")
    frac = min(step, total) / total
    return s[2] + (float(lr) - s[2]) * 0.5 * (1.0 + math.cos(math.pi * frac))


# ----------------------------------------------------------------------------------------------
# optimisers
# ----------------------------------------------------------------------------------------------


class Optimizer:
    """A first-order optimiser with clipping and a learning-rate schedule.

    Parameters
    ----------
    name : str
        ``sgd``, ``momentum``, ``nesterov``, ``rmsprop`` or ``adam``.
    lr : float
        Base learning rate (> 0).
    clip : None or (str, float)
        Clipping spec (see the module docstring).
    schedule : str or tuple
        Learning-rate schedule (see ``check_schedule``).
    total_steps : int, optional
        Length of a ``"cosine"`` schedule given without its own length.
    momentum : float
        mu for ``momentum`` and ``nesterov`` (default 0.9).
    decay : float
        rho for ``rmsprop`` (default 0.9).
    beta1, beta2 : float
        Adam's moment decays (0.9, 0.999).
    eps : float
        Added to the root of the second moment (rmsprop, adam; default 1e-8).
    accumulator_init : float
        Initial value of rmsprop's mean square (0; Arjovsky et al.'s code uses 1e-3).

    Notes
    -----
    With ``eta`` the scheduled learning rate and ``g`` the clipped gradient:

    - sgd: ``theta <- theta - eta g``;
    - momentum (Sutskever et al. 2013, eq. 1-2): ``v <- mu v - eta g``, ``theta <- theta + v``;
    - nesterov (Bengio, Boulanger-Lewandowski & Pascanu 2013, eq. 7, the form that needs the
      gradient at ``theta`` only): ``v' = mu v - eta g``, ``theta <- theta + mu v' - eta g``;
    - rmsprop (Tieleman & Hinton 2012): ``r <- rho r + (1 - rho) g^2``,
      ``theta <- theta - eta g / (sqrt(r) + eps)``;
    - adam (Kingma & Ba 2015, Algorithm 1): ``m <- b1 m + (1 - b1) g``,
      ``v <- b2 v + (1 - b2) g^2``, ``theta <- theta - eta m_hat / (sqrt(v_hat) + eps)`` with
      ``m_hat = m / (1 - b1^t)``, ``v_hat = v / (1 - b2^t)``, ``t = 1, 2, ...``.
    """

    def __init__(
        self,
        name="sgd",
        lr=0.01,
        *,
        clip=None,
        schedule="constant",
        total_steps=None,
        momentum=0.9,
        decay=0.9,
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        accumulator_init=0.0,
    ):
        if not isinstance(name, str) or name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {describe(name)}")
        lr_f = finite_float("lr", lr)
        if not lr_f > 0.0:
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        for arg, val in (("momentum", momentum), ("decay", decay), ("beta1", beta1)):
            if not 0.0 <= finite_float(arg, val) < 1.0:
                raise ValueError(f"{arg} must be in [0, 1), got {val!r}")
        if not 0.0 <= finite_float("beta2", beta2) < 1.0:
            raise ValueError(f"beta2 must be in [0, 1), got {beta2!r}")
        finite_float("eps", eps, minimum=0.0)
        finite_float("accumulator_init", accumulator_init, minimum=0.0)
        if total_steps is not None:
            positive_int("total_steps", total_steps)
        self.name, self.lr = name, lr_f
        self.clip = check_clip(clip)
        self.schedule = check_schedule(schedule)
        if self.schedule[0] == "cosine" and self.schedule[1] is None and total_steps is None:
            raise ValueError("schedule 'cosine' needs total_steps (or ('cosine', total_steps))")
        self.total_steps = total_steps
        self.momentum, self.decay = float(momentum), float(decay)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.accumulator_init = float(accumulator_init)
        self.t = 0
        self.state = {}

    def step(self, params, grad):
        """One update.

        Parameters
        ----------
        params : ndarray, float64, (P,)
            Current parameters (not modified).
        grad : ndarray, float64, (P,)
            Gradient of the loss at ``params`` (not modified).

        Returns
        -------
        new_params : ndarray, float64, (P,)
        info : dict
            ``lr`` (scheduled), ``grad_norm`` (before clipping), ``grad_norm_clipped``,
            ``clipped`` (bool).
        """
        params = np.asarray(params, dtype=np.float64)
        if np.shape(grad) != params.shape:
            raise ValueError(
                f"grad must have the shape of params {params.shape}, got {np.shape(grad)}"
            )
        g, n0, n1, clipped = clip_gradient(grad, self.clip)
        eta = learning_rate(self.schedule, self.lr, self.t, self.total_steps)
        self.t += 1
        st = self.state
        if self.name == "sgd":
            new = params - eta * g
        elif self.name == "momentum":
            v = self.momentum * st.get("v", 0.0) - eta * g
            st["v"] = v
            new = params + v
        elif self.name == "nesterov":
            v = self.momentum * st.get("v", 0.0) - eta * g
            st["v"] = v
            new = params + self.momentum * v - eta * g
        elif self.name == "rmsprop":
            r0 = st.get("r", np.full_like(params, self.accumulator_init))
            r = self.decay * r0 + (1.0 - self.decay) * g * g
            st["r"] = r
            new = params - eta * g / (np.sqrt(r) + self.eps)
        else:
            m = self.beta1 * st.get("m", 0.0) + (1.0 - self.beta1) * g
            v = self.beta2 * st.get("v", 0.0) + (1.0 - self.beta2) * g * g
            st["m"], st["v"] = m, v
            m_hat = m / (1.0 - self.beta1**self.t)
            v_hat = v / (1.0 - self.beta2**self.t)
            new = params - eta * m_hat / (np.sqrt(v_hat) + self.eps)
        info = {"lr": eta, "grad_norm": n0, "grad_norm_clipped": n1, "clipped": clipped}
        return new, info

    def __repr__(self):
        return f"Optimizer({self.name!r}, lr={self.lr}, clip={self.clip}, schedule={self.schedule})"


def make(name="sgd", lr=0.01, **options):
    """Build an ``Optimizer`` (see its docstring for ``options``)."""
    return Optimizer(name, lr, **options)
