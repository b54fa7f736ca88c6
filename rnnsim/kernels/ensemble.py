"""Ensemble kernels: E vanilla RNNs of one shape, their parameters stacked on a first axis.

Arrays: W (E, n, n), U (E, n, d_in), b (E, n), V (E, d_out, n), c (E, d_out). Each member's data
carries a leading member axis of length E, or of length 1 when every member gets the same data:
x (1 or E, T, B, d_in), h0 (1 or E, B, n), targets (1 or E, ...). `member_index` picks the slot.

Each member runs the single-model kernels of `rnnsim.kernels.rnn` unchanged, so that member e of
an ensemble gives the same numbers, bit for bit, as the RNN made of its parameters. What changes
is where the threads go: with at least one member per core (`blas.THREADS`) and members small
enough that the single-model kernels would run them in one thread, the members are split over
threads (``prange``), each member's recurrence running in one thread; otherwise the members run
one after another, each splitting its batch over threads as a single model does. Members never
share a buffer, so a NaN or an overflow in one cannot reach another.
"""

import numpy as np
from numba import njit, prange

from rnnsim.kernels.blas import PARALLEL_MIN_FLOPS, THREADS
from rnnsim.kernels.jit import JIT
from rnnsim.kernels.rnn import batch_chunks, rnn_forward, rnn_loss_grad


@njit(**JIT)
def member_index(data, e):
    """The slot of member ``e`` in ``data``, whose first axis is E (one per member) or 1 (shared).

    As an int64 (prange's index is unsigned, and Numba would unify it with the 0 as a float)."""
    return np.int64(e) if data.shape[0] > 1 else np.int64(0)


@njit(**JIT)
def split_members(E, T, B, n, d_in, d_out):
    """True when the members should be split over threads: at least one member per core, and
    each member's pass small enough that `rnnsim.kernels.rnn` runs it in one thread (one batch
    chunk, weight gradients by one product; see `rnn.batch_chunks` and `blas.at_b`), so that
    no parallel region is ever started inside another and the arithmetic stays the single
    model's."""
    one_chunk = batch_chunks(B, n) == 1
    one_product = T * B * n * max(n, d_in, d_out) < 2 * PARALLEL_MIN_FLOPS
    return THREADS > 1 and E >= THREADS and one_chunk and one_product


@njit(**JIT)
def member_forward(e, W, U, b, V, c, x, h0, code, H, Y):
    """`rnn_forward` of member ``e`` into ``H[e]`` (T+1, B, n) and ``Y[e]`` (T, B, d_out)."""
    He, Ye = rnn_forward(
        W[e], U[e], b[e], V[e], c[e], x[member_index(x, e)], h0[member_index(h0, e)], code
    )
    H[e] = He
    Y[e] = Ye


@njit(**JIT, parallel=True)
def forward_members(W, U, b, V, c, x, h0, code, H, Y):
    """`member_forward` of every member, members split over threads."""
    for e in prange(W.shape[0]):
        member_forward(e, W, U, b, V, c, x, h0, code, H, Y)


@njit(**JIT)
def ensemble_forward(W, U, b, V, c, x, h0, code):
    """Run every member over its batch.

    Parameters
    ----------
    W, U, b, V, c : float64 arrays (E, n, n), (E, n, d_in), (E, n), (E, d_out, n), (E, d_out)
    x : float64 array (1 or E, T, B, d_in), shared by every member or one per member.
    h0 : float64 array (1 or E, B, n), initial states.
    code : int, activation code (`rnnsim.kernels.activations`).

    Returns
    -------
    H : float64 array (E, T+1, B, n), states with ``H[e, 0]`` = member e's h0.
    Y : float64 array (E, T, B, d_out), outputs.
    """
    E, n, d_in = U.shape
    _, T, B, _ = x.shape
    d_out = V.shape[1]
    H = np.empty((E, T + 1, B, n))
    Y = np.empty((E, T, B, d_out))
    if split_members(E, T, B, n, d_in, d_out):
        forward_members(W, U, b, V, c, x, h0, code, H, Y)
    else:
        for e in range(E):
            member_forward(e, W, U, b, V, c, x, h0, code, H, Y)
    return H, Y


@njit(**JIT)
def member_loss_grad(e, W, U, b, V, c, x, h0, code, target, labels, loss_code, out):
    """`rnn_loss_grad` of member ``e``; its loss and gradients go to slot e of the arrays of
    ``out`` = (losses (E,), gW, gU, gb, gV, gc stacked like the parameters)."""
    loss, gW, gU, gb, gV, gc, _, _ = rnn_loss_grad(
        W[e], U[e], b[e], V[e], c[e], x[member_index(x, e)], h0[member_index(h0, e)], code,
        target[member_index(target, e)], labels[member_index(labels, e)], loss_code,
    )  # fmt: skip
    losses, oW, oU, ob, oV, oc = out
    losses[e] = loss
    oW[e] = gW
    oU[e] = gU
    ob[e] = gb
    oV[e] = gV
    oc[e] = gc


@njit(**JIT, parallel=True)
def loss_grad_members(W, U, b, V, c, x, h0, code, target, labels, loss_code, out):
    """`member_loss_grad` of every member, members split over threads."""
    for e in prange(W.shape[0]):
        member_loss_grad(e, W, U, b, V, c, x, h0, code, target, labels, loss_code, out)


@njit(**JIT)
def ensemble_loss_grad(W, U, b, V, c, x, h0, code, target, labels, loss_code):
    """Every member's loss and exact gradient (backpropagation through time).

    Parameters
    ----------
    W, U, b, V, c, x, h0, code : as for `ensemble_forward`.
    target : float64 array (1 or E, T or 1, B, d_out), float targets per member (or shared), with
        a time axis of length 1 for the ``*_last`` losses.
    labels : int64 array (1 or E, T or 1, B), integer targets likewise.
    loss_code : int, 0 mse_last, 1 mse_all, 2 xent_last, 3 xent_all (the unused one of
        ``target`` and ``labels`` may be any array of the right dtype and rank).

    Returns
    -------
    losses : float64 array (E,)
    gW, gU, gb, gV, gc : float64 arrays shaped like W, U, b, V, c: member e's dL_e/dtheta_e.

    Notes
    -----
    Member e's numbers are those of `rnnsim.kernels.rnn.rnn_loss_grad` on its parameters, bit for
    bit (the same kernel runs it).
    """
    E, n, d_in = U.shape
    _, T, B, _ = x.shape
    d_out = V.shape[1]
    out = (
        np.empty(E), np.empty((E, n, n)), np.empty((E, n, d_in)), np.empty((E, n)),
        np.empty((E, d_out, n)), np.empty((E, d_out)),
    )  # fmt: skip
    if split_members(E, T, B, n, d_in, d_out):
        loss_grad_members(W, U, b, V, c, x, h0, code, target, labels, loss_code, out)
    else:
        for e in range(E):
            member_loss_grad(e, W, U, b, V, c, x, h0, code, target, labels, loss_code, out)
    return out
