"""The training loop of RNNs in compiled code: E stacked members, a chunk of updates per call.

Each update of a member is the same arithmetic as `rnnsim.train`'s update of one model, step by
step, so that a member's records and parameters equal a single-model run bit for bit:

1. gradient (`gradient_step`): loss and gradient of the step's batch by `rnn_loss_grad`, the
   parameter norm, the divergence check (non-finite loss, gradient or parameters, or a loss above
   ``max_loss``); a diverged member stops here and is not updated again;
2. update (`update_step`): clipping (`rnnsim.optim.clip_gradient`: the norm ``||g||`` and, when
   clipping acted, ``||g_clipped||``) and the optimiser step (`rnnsim.optim.Optimizer.step`, whose
   NumPy arithmetic it repeats operation by operation).

Python draws the batches (the task's generator, as a single run does), evaluates held-out data and
calls callbacks between chunks: a chunk may end after the gradient of its last step (``hold``) and
the next one start with that step's update (``resume``).

Parameters live in one flat vector per member, ``theta`` (E, P), in `rnnsim.RNN.params_vector`
order (W, U, b, V, c, each raveled in C order). The records of step k of member m are
``records[m, k, :]``, one column per name in `RECORDS`. The learning rate and Adam's bias
corrections of every step are computed in Python (`rnnsim.optim.learning_rate`, ``1 - beta**t``)
and passed in as arrays, so that no power or cosine is evaluated twice in two ways.

The NumPy twin of these kernels is `rnnsim.train`'s loop for any model (one member at a time,
`rnnsim.optim.Optimizer.step`); the tests compare the two tables bit for bit.
"""

import math
from collections import namedtuple

import numpy as np
from numba import njit, prange

from rnnsim.kernels.blas import PARALLEL_MIN_FLOPS, THREADS
from rnnsim.kernels.jit import JIT
from rnnsim.kernels.rnn import batch_chunks, rnn_loss_grad

#: the columns of ``records``, in order
RECORDS = (
    "loss",
    "grad_norm",
    "grad_norm_clipped",
    "clipped",
    "lr_step",
    "param_norm",
    "diverged",
    "grad_finite",
)
LOSS, GRAD_NORM, GRAD_NORM_CLIPPED, CLIPPED, LR_STEP, PARAM_NORM, DIVERGED, GRAD_FINITE = range(8)

#: member status codes
RUNNING, STOPPED_DIVERGED, STOPPED_EARLY = 0, 1, 2
#: optimiser codes, in the order of `rnnsim.optim.OPTIMIZERS`
SGD, MOMENTUM, NESTEROV, RMSPROP, ADAM = range(5)
#: clipping codes: none, ("norm", t), ("value", t)
CLIP_NONE, CLIP_NORM, CLIP_VALUE = range(3)

#: What stays fixed during a run. ``n``, ``d_in``, ``d_out``: the RNN's sizes; ``act``, ``loss``:
#: activation and loss codes; ``opt``, ``clip``: the codes above; ``threshold``: of the clipping;
#: ``momentum``, ``decay``, ``beta1``, ``beta2``, ``eps``: the optimiser's constants;
#: ``max_loss``: divergence above it (inf: none); ``lr`` (S,): the scheduled learning rate of
#: step k; ``bc1``, ``bc2`` (S,): Adam's ``1 - beta1**t`` and ``1 - beta2**t`` of step k.
Setup = namedtuple(
    "Setup",
    "n d_in d_out act loss opt clip threshold momentum decay beta1 beta2 eps max_loss lr bc1 bc2",
)

#: What a run changes, for E members of P parameters and S steps. ``theta`` (E, P): parameters;
#: ``good`` (E, P): the last parameters at which loss, gradient and parameters were all finite;
#: ``s1``, ``s2`` (E, P): optimiser state (momentum's and Nesterov's v, RMSProp's r, Adam's m and
#: v); ``grad`` (E, P): the gradient of the last step computed; ``status`` (E,) int64: the codes
#: above; ``records`` (E, S, 8): `RECORDS` of every step (NaN where not written).
State = namedtuple("State", "theta good s1 s2 grad status records")

#: The batches of a chunk, each member's steps one after another along the time axis. ``x``
#: (R, B, d_in); ``target`` (Rt, B, d_out) float targets (mse losses) and ``labels`` (Rt, B)
#: int64 class labels (xent losses), the unused one of shape (1, 1, 1) or (1, 1); ``xoff``,
#: ``toff`` (E, K + 1) int64: step j of the chunk of member m is ``x[xoff[m, j]:xoff[m, j + 1]]``
#: (and likewise its targets, one row for the ``*_last`` losses); ``h0`` (B, n): zeros.
Batches = namedtuple("Batches", "x target labels xoff toff h0")


@njit(**JIT)
def norm(v):
    """``||v||_2`` as `numpy.linalg.norm` computes it: the square root of the BLAS dot product."""
    return math.sqrt(np.dot(v, v))


@njit(**JIT)
def all_finite(v):
    """True when every element of the 1-D array ``v`` is finite."""
    for i in range(v.size):
        if not math.isfinite(v[i]):
            return False
    return True


@njit(**JIT)
def gradient_step(m, k, j, setup, state, batches):
    """Loss and gradient of member ``m`` at step ``k`` (the chunk's ``j``-th batch) into
    ``state.grad[m]`` and the step's records; the divergence check. Returns False when the
    member diverged (then its records are complete, ``lr_step`` excepted, and it stops)."""
    n, d_in, d_out = setup.n, setup.d_in, setup.d_out
    theta = state.theta[m]
    i1 = n * n
    i2 = i1 + n * d_in
    i3 = i2 + n
    i4 = i3 + d_out * n
    W = theta[:i1].reshape((n, n))
    U = theta[i1:i2].reshape((n, d_in))
    V = theta[i3:i4].reshape((d_out, n))
    x = batches.x[batches.xoff[m, j] : batches.xoff[m, j + 1]]
    t0, t1 = batches.toff[m, j], batches.toff[m, j + 1]
    target, labels = batches.target, batches.labels
    if setup.loss < 2:
        target = target[t0:t1]
    else:
        labels = labels[t0:t1]
    loss, gW, gU, gb, gV, gc, _, _ = rnn_loss_grad(
        W, U, theta[i2:i3], V, theta[i4:], x, batches.h0, setup.act, target, labels, setup.loss
    )
    g = state.grad[m]
    g[:i1] = gW.ravel()
    g[i1:i2] = gU.ravel()
    g[i2:i3] = gb
    g[i3:i4] = gV.ravel()
    g[i4:] = gc
    rec = state.records[m, k]
    rec[LOSS] = loss
    rec[PARAM_NORM] = norm(theta)
    grad_finite = all_finite(g)
    rec[GRAD_FINITE] = grad_finite
    finite = math.isfinite(loss) and grad_finite and all_finite(theta)
    if finite:
        state.good[m] = theta
    if finite and not loss > setup.max_loss:
        return True
    gn = norm(g)
    rec[GRAD_NORM] = gn
    rec[GRAD_NORM_CLIPPED] = gn
    rec[CLIPPED] = 0.0
    rec[DIVERGED] = 1.0
    state.status[m] = STOPPED_DIVERGED
    return False


@njit(**JIT)
def clip_in_place(g, clip, threshold):
    """Clip ``g`` (P,) in place as `rnnsim.optim.clip_gradient` does; return
    ``(norm before, norm after, clipped)``."""
    before = norm(g)
    clipped = False
    if clip == CLIP_NORM:
        if before >= threshold:
            scale = threshold / before
            for i in range(g.size):
                g[i] *= scale
            clipped = True
    elif clip == CLIP_VALUE:
        for i in range(g.size):
            if g[i] > threshold:
                g[i] = threshold
                clipped = True
            elif g[i] < -threshold:
                g[i] = -threshold
                clipped = True
    return before, (norm(g) if clipped else before), clipped


@njit(**JIT)
def update_step(m, k, setup, state):
    """Clip member ``m``'s gradient and apply the optimiser's step ``k`` to its parameters;
    the clipping and learning-rate records of step ``k``.

    The arithmetic of `rnnsim.optim.Optimizer.step`, operation by operation (same order, no fused
    multiply-add), so that the parameters stay equal to a NumPy run bit for bit.
    """
    g, theta, s1, s2 = state.grad[m], state.theta[m], state.s1[m], state.s2[m]
    before, after, clipped = clip_in_place(g, setup.clip, setup.threshold)
    eta = setup.lr[k]
    opt = setup.opt
    if opt == SGD:
        for i in range(g.size):
            theta[i] = theta[i] - eta * g[i]
    elif opt == MOMENTUM or opt == NESTEROV:
        mu = setup.momentum
        for i in range(g.size):
            v = mu * s1[i] - eta * g[i]
            s1[i] = v
            if opt == MOMENTUM:
                theta[i] = theta[i] + v
            else:
                theta[i] = theta[i] + mu * v - eta * g[i]
    elif opt == RMSPROP:
        rho, eps = setup.decay, setup.eps
        for i in range(g.size):
            r = rho * s1[i] + (1.0 - rho) * g[i] * g[i]
            s1[i] = r
            theta[i] = theta[i] - eta * g[i] / (math.sqrt(r) + eps)
    else:
        b1, b2, eps = setup.beta1, setup.beta2, setup.eps
        c1, c2 = setup.bc1[k], setup.bc2[k]
        for i in range(g.size):
            mi = b1 * s1[i] + (1.0 - b1) * g[i]
            vi = b2 * s2[i] + (1.0 - b2) * g[i] * g[i]
            s1[i] = mi
            s2[i] = vi
            theta[i] = theta[i] - eta * (mi / c1) / (math.sqrt(vi / c2) + eps)
    rec = state.records[m, k]
    rec[GRAD_NORM] = before
    rec[GRAD_NORM_CLIPPED] = after
    rec[CLIPPED] = 1.0 if clipped else 0.0
    rec[LR_STEP] = eta
    rec[DIVERGED] = 0.0


@njit(**JIT)
def advance_member(m, setup, state, batches, k0, k1, resume, hold):
    """Steps ``k0 .. k1 - 1`` of member ``m`` (nothing once it has stopped).

    With ``resume`` the gradient of step ``k0`` is already in ``state.grad`` (computed by the
    previous call) and only its update is made; with ``hold`` the last step stops after its
    gradient, for Python to evaluate or call back, and its update is left to the next call.
    """
    first = k0 + 1 if resume else k0
    for k in range(k0, k1):
        if state.status[m] != RUNNING:
            return
        if k >= first and not gradient_step(m, k, k - first, setup, state, batches):
            return
        if hold and k == k1 - 1:
            return
        update_step(m, k, setup, state)


@njit(**JIT, parallel=True)
def advance_parallel(setup, state, batches, k0, k1, resume, hold):
    """`advance_member` for every member, the members split over threads."""
    for m in prange(state.theta.shape[0]):
        advance_member(m, setup, state, batches, k0, k1, resume, hold)


@njit(**JIT)
def advance(setup, state, batches, k0, k1, resume, hold, parallel):
    """Steps ``k0 .. k1 - 1`` of every running member (see `advance_member`).

    Parameters
    ----------
    setup : Setup
    state : State
        Updated in place: ``theta``, ``good``, ``s1``, ``s2``, ``grad``, ``status``, ``records``.
    batches : Batches
        The batch of each step whose gradient is computed: ``k0 + 1 .. k1 - 1`` with ``resume``,
        ``k0 .. k1 - 1`` without.
    k0, k1 : int
        The chunk's steps.
    resume, hold : bool
        See `advance_member`.
    parallel : bool
        Members in parallel threads (`members_in_parallel`), or one after another, each
        gradient then splitting its batch over threads as a single model's does.
    """
    if parallel:
        advance_parallel(setup, state, batches, k0, k1, resume, hold)
        return
    for m in range(state.theta.shape[0]):
        advance_member(m, setup, state, batches, k0, k1, resume, hold)


def members_in_parallel(E, T, B, n, d_in, d_out):
    """Whether to run E members in parallel threads: when there are several and one member's
    gradient (longest sequence T) would start no parallel region of its own (batch chunks of
    `rnnsim.kernels.rnn`, partial products of `rnnsim.kernels.blas.at_b`), so that threads never
    nest."""
    if E < 2 or THREADS < 2:
        return False
    widest = max(n * n, n * d_in, d_out * n)
    return batch_chunks(B, n) == 1 and T * B * widest // PARALLEL_MIN_FLOPS < 2
