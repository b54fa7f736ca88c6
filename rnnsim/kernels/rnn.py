"""Vanilla RNN kernels: forward pass over a batch and backpropagation through time.

Model (DESIGN.md): ``a_t = W h_{t-1} + U x_t + b``, ``h_t = phi(a_t)``, ``y_t = V h_t + c``.
Arrays are time-major, C-contiguous float64: ``x`` (T, B, d_in), ``H`` (T+1, B, n) with h_0
first, ``Y`` (T, B, d_out). Weights in PyTorch orientation: W (n, n), U (n, d_in), V (d_out, n).

Work that does not depend on the recurrence (readout ``V h_t``, the weight gradients
``sum_t dA_t^T h_{t-1}``, the input drive ``U x_t`` of `BLAS_MIN_SIDE` inputs or more) is done
as one matrix product over all T*B rows; the recurrence itself runs step by step, in parallel
over chunks of the batch (samples are independent). Work of a few multiply-adds per element (the
input drive of a few inputs, the output term ``V^T dL/dy_t`` of the backward pass) is done as
each row is written anyway: a separate pass over all T*B rows would be bound by memory. Small
per-step products use hand loops written as row updates (``out += w_j * h_j``, which vectorise
without reordering any sum), large ones call BLAS through ``np.dot``.
"""

import numpy as np
from numba import njit, prange

from rnnsim.kernels.activations import activate, times_dphi
from rnnsim.kernels.blas import (
    BLAS_MIN_FLOPS,
    BLAS_MIN_SIDE,
    THREADS,
    add_row_times,
    at_b,
    column_sums,
)
from rnnsim.kernels.jit import JIT
from rnnsim.kernels.losses import mse, xent


@njit(**JIT)
def forward_rows(WT, A, H, b0, b1, code):
    """The recurrence for batch rows b0:b1: ``H[t] = phi(A[t-1] + H[t-1] W^T)`` for t = 1..T.

    WT (n, n) is W transposed; A (T, B, n) holds ``U x_t + b`` and is overwritten with the full
    pre-activations; H (T+1, B, n) with H[0] set is written for t >= 1.
    """
    T = A.shape[0]
    n = WT.shape[0]
    blas = (b1 - b0) * n * n >= BLAS_MIN_FLOPS
    rec = np.empty((b1 - b0, n))
    for t in range(1, T + 1):
        if blas:
            np.dot(H[t - 1, b0:b1], WT, rec)
        for bb in range(b0, b1):
            at = A[t - 1, bb]
            if blas:
                r = rec[bb - b0]
                for i in range(n):
                    at[i] += r[i]
            else:
                add_row_times(WT, H[t - 1, bb], at)
            activate(code, at, H[t, bb])


@njit(**JIT)
def add_output_term(V, dY, G, t, bb):
    """``G[t, bb] += V^T dY[t-1, bb]`` (dL/dy_t back through the readout) for V (d_out, n),
    dY (T, B, d_out), G (T+1, B, n); nothing to do when that row of dY is zero, as it is at
    every step but the last for the ``*_last`` losses. (Arrays are indexed rather than sliced
    until there is work: a slice per step costs more than the check.)"""
    for o in range(dY.shape[2]):
        if dY[t - 1, bb, o] != 0.0:  # NaN too: it propagates
            add_row_times(V, dY[t - 1, bb], G[t, bb])
            return


@njit(**JIT)
def backward_rows(W, V, dY, G, dA, H, b0, b1, code):
    """Backpropagation through time for batch rows b0:b1.

    dY (T, B, d_out) is dL/dy_t; G (T+1, B, n) receives the total dL/dh_t,
    ``V^T dL/dy_t + W^T dL/da_{t+1}``; dA (T, B, n) receives dL/da_t = dL/dh_t * phi'(a_t);
    H (T+1, B, n) are the states.

    With BLAS (large steps) the output term is added to each row as the step reaches it, so that
    G is written once; with hand loops (small steps, a few rows) G is first filled with the output
    terms, which keeps the per-step chain as short as it can be.
    """
    T = dA.shape[0]
    n = W.shape[0]
    if (b1 - b0) * n * n < BLAS_MIN_FLOPS:
        G[:, b0:b1] = 0.0
        for t in range(1, T + 1):
            for bb in range(b0, b1):
                add_output_term(V, dY, G, t, bb)
        for t in range(T, 0, -1):
            for bb in range(b0, b1):
                times_dphi(code, G[t, bb], H[t, bb], dA[t - 1, bb])
                add_row_times(W, dA[t - 1, bb], G[t - 1, bb])
        return
    back = np.empty((b1 - b0, n))
    G[T, b0:b1] = 0.0
    for bb in range(b0, b1):
        add_output_term(V, dY, G, T, bb)
    for t in range(T, 0, -1):
        for bb in range(b0, b1):
            times_dphi(code, G[t, bb], H[t, bb], dA[t - 1, bb])
        np.dot(dA[t - 1, b0:b1], W, back)
        G[t - 1, b0:b1] = back
        if t > 1:
            for bb in range(b0, b1):
                add_output_term(V, dY, G, t - 1, bb)


@njit(**JIT, parallel=True)
def forward_chunks(WT, A, H, code, chunks):
    """`forward_rows` on ``chunks`` slices of the batch in parallel (samples are independent).

    Only this loop is compiled with ``parallel=True``: in a parallel function Numba also turns
    every array expression into a parallel region, whose thread wake-ups cost more than they save.
    """
    B = A.shape[1]
    for k in prange(chunks):
        forward_rows(WT, A, H, k * B // chunks, (k + 1) * B // chunks, code)


@njit(**JIT, parallel=True)
def backward_chunks(W, V, dY, G, dA, H, code, chunks):
    """`backward_rows` on ``chunks`` slices of the batch in parallel."""
    B = dA.shape[1]
    for k in prange(chunks):
        backward_rows(W, V, dY, G, dA, H, k * B // chunks, (k + 1) * B // chunks, code)


@njit(**JIT)
def batch_chunks(B, n):
    """How many independent batch chunks to run in parallel: one per core (`blas.THREADS`), but
    only when each step's work is large enough to pay for a thread."""
    if B * n * n < 4 * BLAS_MIN_FLOPS:
        return 1
    return max(1, min(B, THREADS))


@njit(**JIT)
def input_drive(U, b, x):
    """``A[t, b] = U x_t + b`` for every step and sample, (T, B, n) for x (T, B, d_in).

    With few inputs (d_in below `BLAS_MIN_SIDE`) each row is written once, by row updates; with
    more, one matrix product over all T*B rows and then the bias.
    """
    T, B, d_in = x.shape
    n = U.shape[0]
    if d_in < BLAS_MIN_SIDE:
        UT = np.ascontiguousarray(U.T)
        A = np.empty((T, B, n))
        for t in range(T):
            for bb in range(B):
                A[t, bb] = b
                add_row_times(UT, x[t, bb], A[t, bb])
        return A
    A = np.dot(x.reshape(T * B, d_in), U.T).reshape(T, B, n)
    for t in range(T):
        for bb in range(B):
            for i in range(n):
                A[t, bb, i] += b[i]
    return A


@njit(**JIT)
def rnn_forward(W, U, b, V, c, x, h0, code):
    """Run the RNN over a batch.

    Parameters
    ----------
    W, U, b, V, c : float64 arrays (n, n), (n, d_in), (n,), (d_out, n), (d_out,)
    x : float64 array (T, B, d_in)
    h0 : float64 array (B, n), the initial state.
    code : int, activation code (`rnnsim.kernels.activations`).

    Returns
    -------
    H : float64 array (T+1, B, n), states with ``H[0] = h0``.
    Y : float64 array (T, B, d_out), outputs ``y_t = V h_t + c`` for t = 1..T.

    Notes
    -----
    Batch samples are independent: chunks of them run their recurrences in parallel threads.
    """
    T, B, _ = x.shape
    n = W.shape[0]
    d_out = V.shape[0]
    H = np.empty((T + 1, B, n))
    H[0] = h0
    A = input_drive(U, b, x)
    WT = np.ascontiguousarray(W.T)
    chunks = batch_chunks(B, n)
    if chunks == 1:  # no parallel region: waking threads costs more than a small recurrence
        forward_rows(WT, A, H, 0, B, code)
    else:
        forward_chunks(WT, A, H, code, chunks)
    Y = np.dot(H[1:].reshape(T * B, n), V.T).reshape(T, B, d_out)
    for t in range(T):
        for bb in range(B):
            for o in range(d_out):
                Y[t, bb, o] += c[o]
    return H, Y


@njit(**JIT)
def rnn_backward(W, U, V, x, H, dY, code):
    """Backpropagation through time for a given output gradient.

    Parameters
    ----------
    W, U, V : float64 arrays (n, n), (n, d_in), (d_out, n)
    x : float64 array (T, B, d_in)
    H : float64 array (T+1, B, n), states from `rnn_forward`.
    dY : float64 array (T, B, d_out), dL/dy_t.
    code : int, activation code.

    Returns
    -------
    gW, gU, gb, gV, gc : float64 arrays shaped like W, U, b, V, c: exact dL/dtheta.
    G : float64 array (T+1, B, n), the total derivative dL/dh_t for t = 0..T.

    Notes
    -----
    ``dL/da_t = dL/dh_t * phi'(a_t)`` and ``dL/dh_{t-1} = V^T dL/dy_{t-1} + W^T dL/da_t``:
    the step Jacobian ``dh_t/dh_{t-1} = diag(phi'(a_t)) W`` (Pascanu et al. 2013, eq. 5) applied
    from the left.
    """
    T, B, d_in = x.shape
    n = W.shape[0]
    d_out = V.shape[0]
    G = np.empty((T + 1, B, n))
    dA = np.empty((T, B, n))
    chunks = batch_chunks(B, n)
    if chunks == 1:
        backward_rows(W, V, dY, G, dA, H, 0, B, code)
    else:
        backward_chunks(W, V, dY, G, dA, H, code, chunks)
    dA2 = dA.reshape(T * B, n)
    gW = at_b(dA2, H[:T].reshape(T * B, n))
    gU = at_b(dA2, x.reshape(T * B, d_in))
    gb = column_sums(dA2)
    dY2 = dY.reshape(T * B, d_out)
    gV = at_b(dY2, H[1:].reshape(T * B, n))
    gc = column_sums(dY2)
    return gW, gU, gb, gV, gc, G


@njit(**JIT)
def rnn_loss_grad(W, U, b, V, c, x, h0, code, target, labels, loss_code):
    """Forward pass, loss and BPTT in one call.

    ``loss_code``: 0 mse_last, 1 mse_all, 2 xent_last, 3 xent_all. Float targets go in ``target``
    and integer ones in ``labels``, each with a leading time axis of length 1 for the ``*_last``
    losses; the unused one may be any array of the right dtype and rank.

    Returns ``(loss, gW, gU, gb, gV, gc, H, G)`` (see `rnn_backward`).
    """
    H, Y = rnn_forward(W, U, b, V, c, x, h0, code)
    dY = np.zeros_like(Y)
    if loss_code < 2:
        loss = mse(Y, target, loss_code == 0, dY)
    else:
        loss = xent(Y, labels, loss_code == 2, dY)
    gW, gU, gb, gV, gc, G = rnn_backward(W, U, V, x, H, dY, code)
    return loss, gW, gU, gb, gV, gc, H, G
