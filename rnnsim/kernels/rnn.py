"""Vanilla RNN kernels: forward pass over a batch and backpropagation through time.

Model (DESIGN.md): ``a_t = W h_{t-1} + U x_t + b``, ``h_t = phi(a_t)``, ``y_t = V h_t + c``.
Arrays are time-major and C-contiguous float64: ``x`` (T, B, d_in), ``H`` (T+1, B, n) with h_0 first,
``Y`` (T, B, d_out). Weights in PyTorch orientation: W (n, n), U (n, d_in), V (d_out, n).

Work that does not depend on the recurrence (input drive ``U x_t`` for all t, readout ``V h_t``,
the weight gradients ``sum_t dA_t^T h_{t-1}``) is done as one matrix product over all T*B rows; only
the recurrence itself runs step by step. Small per-step products use hand loops (a BLAS call costs
more than the arithmetic at n = 32, B = 1), large ones call BLAS through ``np.dot``.
"""

import numpy as np
from numba import njit

from rnnsim.kernels.activations import dphi_from_h, phi
from rnnsim.kernels.losses import mse, xent

# Per-step products with fewer multiply-adds than this use hand loops instead of BLAS.
BLAS_MIN_FLOPS = 1 << 15


@njit(cache=True)
def step_matmul(Hprev, W, out):
    """``out[b, i] = sum_j W[i, j] Hprev[b, j]``: the recurrent drive ``Hprev W^T``.

    Hprev (B, n), W (n_out, n), out (B, n_out); ``out`` is overwritten.
    """
    B, n = Hprev.shape
    n_out = W.shape[0]
    if B * n * n_out >= BLAS_MIN_FLOPS:
        np.dot(Hprev, W.T, out)
        return
    for bb in range(B):
        for i in range(n_out):
            s = 0.0
            for j in range(n):
                s += W[i, j] * Hprev[bb, j]
            out[bb, i] = s


@njit(cache=True)
def step_matmul_t(dA, W, out):
    """``out[b, j] = sum_i dA[b, i] W[i, j]``: the backward product ``dA W``.

    dA (B, n_out), W (n_out, n), out (B, n); ``out`` is overwritten.
    """
    B, n_out = dA.shape
    n = W.shape[1]
    if B * n * n_out >= BLAS_MIN_FLOPS:
        np.dot(dA, W, out)
        return
    for bb in range(B):
        for j in range(n):
            out[bb, j] = 0.0
        for i in range(n_out):
            d = dA[bb, i]
            for j in range(n):
                out[bb, j] += d * W[i, j]


@njit(cache=True)
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
    """
    T, B, d_in = x.shape
    n = W.shape[0]
    d_out = V.shape[0]
    H = np.empty((T + 1, B, n))
    H[0] = h0
    drive = np.dot(x.reshape(T * B, d_in), U.T).reshape(T, B, n)
    rec = np.empty((B, n))
    for t in range(1, T + 1):
        step_matmul(H[t - 1], W, rec)
        ht = H[t]
        dt = drive[t - 1]
        for bb in range(B):
            for i in range(n):
                ht[bb, i] = phi(code, rec[bb, i] + dt[bb, i] + b[i])
    Y = np.dot(H[1:].copy().reshape(T * B, n), V.T).reshape(T, B, d_out)
    for t in range(T):
        for bb in range(B):
            for o in range(d_out):
                Y[t, bb, o] += c[o]
    return H, Y


@njit(cache=True)
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
    direct = np.dot(dY.reshape(T * B, d_out), V).reshape(T, B, n)  # V^T dL/dy_t
    G = np.zeros((T + 1, B, n))
    dA = np.empty((T, B, n))
    back = np.zeros((B, n))
    for t in range(T, 0, -1):
        gt = G[t]
        at = dA[t - 1]
        ht = H[t]
        dt = direct[t - 1]
        for bb in range(B):
            for i in range(n):
                g = dt[bb, i] + back[bb, i]
                gt[bb, i] = g
                at[bb, i] = g * dphi_from_h(code, ht[bb, i])
        step_matmul_t(at, W, back)
    G[0] = back
    dA2 = dA.reshape(T * B, n)
    gW = np.dot(dA2.T, H[:T].copy().reshape(T * B, n))
    gU = np.dot(dA2.T, x.reshape(T * B, d_in))
    gb = dA2.sum(axis=0)
    Hout = H[1:].copy().reshape(T * B, n)
    dY2 = dY.reshape(T * B, d_out)
    gV = np.dot(dY2.T, Hout)
    gc = dY2.sum(axis=0)
    return gW, gU, gb, gV, gc, G


@njit(cache=True)
def rnn_loss_grad(W, U, b, V, c, x, h0, code, target, labels, loss_code):
    """Forward pass, loss and BPTT in one call.

    ``loss_code``: 0 mse_last, 1 mse_all, 2 xent_last, 3 xent_all. Float targets go in ``target``
    and integer ones in ``labels``; the unused one may be any array of the right dtype.

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
