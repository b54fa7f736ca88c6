"""Output losses and their gradients with respect to the outputs.

``mse``: ``0.5 * ||y - target||^2`` averaged over the batch (and over steps for ``*_all``).
``xent``: softmax cross-entropy in nats with integer class targets, averaged the same way.
Each kernel returns the loss and writes dL/dY into a zeroed array shaped like Y. Their NumPy twin,
`rnnsim.reference.output_loss`, is also what `rnnsim.tasks` scores outputs with.
"""

import math

from numba import njit

from rnnsim.kernels.jit import JIT


@njit(**JIT)
def mse(Y, target, last_only, dY):
    """Squared-error loss of outputs ``Y`` (T, B, d) against ``target``.

    ``target`` is (1, B, d) when ``last_only`` (only y_T counts) and (T, B, d) otherwise.
    ``dY`` (T, B, d) must be zero on entry; its rows are written in place.
    """
    T, B, d = Y.shape
    t0 = T - 1 if last_only else 0
    scale = 1.0 / (B * (T - t0))
    total = 0.0
    for t in range(t0, T):
        for bb in range(B):
            for o in range(d):
                r = Y[t, bb, o] - target[t - t0, bb, o]
                total += r * r
                dY[t, bb, o] = r * scale
    return 0.5 * total * scale


@njit(**JIT)
def xent(Y, labels, last_only, dY):
    """Softmax cross-entropy (nats) of logits ``Y`` (T, B, K) against integer ``labels``.

    ``labels`` is int64 (1, B) when ``last_only`` and (T, B) otherwise. ``dY`` (T, B, K) must be zero
    on entry; its rows are written in place (softmax minus one-hot, scaled by the averaging).
    """
    T, B, K = Y.shape
    t0 = T - 1 if last_only else 0
    scale = 1.0 / (B * (T - t0))
    total = 0.0
    for t in range(t0, T):
        for bb in range(B):
            m = Y[t, bb, 0]
            for k in range(1, K):
                m = max(m, Y[t, bb, k])
            s = 0.0
            for k in range(K):
                s += math.exp(Y[t, bb, k] - m)
            lse = m + math.log(s)
            lab = labels[t - t0, bb]
            total += lse - Y[t, bb, lab]
            for k in range(K):
                dY[t, bb, k] = math.exp(Y[t, bb, k] - lse) * scale
            dY[t, bb, lab] -= scale
    return total * scale
