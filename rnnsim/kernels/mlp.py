"""Deep MLP kernels on one flat parameter vector.

Model (DESIGN.md): ``h_l = phi(W_l h_{l-1} + b_l)`` for l = 1..L with ``h_0 = x``, and an optional
linear readout ``y = V h_L + c`` (without one, ``y = h_L``). Layer widths are ``widths`` = (n_0, ...,
n_L), int64. Parameters live in one float64 vector in the order W_1, b_1, ..., W_L, b_L, then V, c
(each raveled in C order), so that layers of any widths pass through Numba without lists of arrays.
Layer states live in one flat buffer: layer l occupies ``B * n_l`` entries from ``B * sum(n_<l)``.
"""

import numpy as np
from numba import njit

from rnnsim.kernels.activations import activate, times_dphi
from rnnsim.kernels.blas import column_sums
from rnnsim.kernels.jit import JIT


@njit(**JIT)
def layer_offsets(widths, d_out):
    """Start of each W_l and b_l in the flat vector, and of V and c (readout when d_out > 0).

    Returns (w_off, b_off) int64 arrays of length L + 1 (the last entries locate V and c) and the
    total parameter count.
    """
    L = widths.size - 1
    w_off = np.zeros(L + 1, dtype=np.int64)
    b_off = np.zeros(L + 1, dtype=np.int64)
    pos = 0
    for l in range(L):
        w_off[l] = pos
        pos += widths[l + 1] * widths[l]
        b_off[l] = pos
        pos += widths[l + 1]
    w_off[L] = pos
    pos += d_out * widths[L]
    b_off[L] = pos
    pos += d_out
    return w_off, b_off, pos


@njit(**JIT)
def state_offsets(widths, B):
    """Start of each layer's (B, n_l) block in the flat state buffer, and the buffer size."""
    off = np.zeros(widths.size, dtype=np.int64)
    pos = 0
    for l in range(widths.size):
        off[l] = pos
        pos += B * widths[l]
    return off, pos


@njit(**JIT)
def mlp_forward(params, widths, d_out, code, x):
    """Forward pass of the MLP.

    Parameters
    ----------
    params : float64 array (P,), flat parameters (module docstring).
    widths : int64 array (L+1,), n_0 = d_in, ..., n_L.
    d_out : int, readout size; 0 when there is no readout.
    code : int, activation code.
    x : float64 array (B, n_0).

    Returns
    -------
    Hbuf : float64 array, the states h_0..h_L, layer l as a (B, n_l) block (see `state_offsets`).
    Y : float64 array (B, d_out) or (B, n_L) without a readout.
    """
    B = x.shape[0]
    L = widths.size - 1
    w_off, b_off, _ = layer_offsets(widths, d_out)
    s_off, size = state_offsets(widths, B)
    Hbuf = np.empty(size)
    Hbuf[0 : B * widths[0]] = x.reshape(-1)
    for l in range(L):
        n_in = widths[l]
        n_out = widths[l + 1]
        Wl = params[w_off[l] : w_off[l] + n_out * n_in].reshape(n_out, n_in)
        bl = params[b_off[l] : b_off[l] + n_out]
        h_prev = Hbuf[s_off[l] : s_off[l] + B * n_in].reshape(B, n_in)
        h = Hbuf[s_off[l + 1] : s_off[l + 1] + B * n_out].reshape(B, n_out)
        pre = np.dot(h_prev, Wl.T)
        for bb in range(B):
            for i in range(n_out):
                pre[bb, i] += bl[i]
        # out of place: with input and output the same array the loop would not vectorise
        activate(code, pre.reshape(B * n_out), h.reshape(B * n_out))
    hL = Hbuf[s_off[L] : s_off[L] + B * widths[L]].reshape(B, widths[L])
    if d_out == 0:
        return Hbuf, hL.copy()
    V = params[w_off[L] : w_off[L] + d_out * widths[L]].reshape(d_out, widths[L])
    c = params[b_off[L] : b_off[L] + d_out]
    Y = np.dot(hL, V.T)
    for bb in range(B):
        for o in range(d_out):
            Y[bb, o] += c[o]
    return Hbuf, Y


@njit(**JIT)
def mlp_loss_grad(params, widths, d_out, code, x, target):
    """Squared-error loss ``0.5 * mean_b ||y - target||^2`` and its exact gradient.

    Parameters as in `mlp_forward`; ``target`` float64 (B, d_out), or (B, n_L) without a readout.

    Returns
    -------
    loss : float
    grad : float64 array (P,), dL/dparams in the flat order.
    Hbuf : the states, as in `mlp_forward`.
    Gbuf : float64 array shaped like Hbuf: dL/dh_l for l = 0..L, same layout.

    Notes
    -----
    ``dL/da_l = dL/dh_l * phi'(a_l)``, ``dL/dW_l = dL/da_l^T h_{l-1}``, ``dL/dh_{l-1} = dL/da_l W_l``:
    the layer Jacobian ``diag(phi'(a_l)) W_l`` applied from the left (Glorot & Bengio 2010, sec. 4.2).
    """
    B = x.shape[0]
    L = widths.size - 1
    w_off, b_off, P = layer_offsets(widths, d_out)
    s_off, size = state_offsets(widths, B)
    Hbuf, Y = mlp_forward(params, widths, d_out, code, x)
    grad = np.empty(P)  # every entry is written below
    Gbuf = np.zeros(size)
    nL = widths[L]
    R = Y - target
    loss = 0.5 * np.sum(R * R) / B
    R /= B
    gL = Gbuf[s_off[L] : s_off[L] + B * nL].reshape(B, nL)
    hL = Hbuf[s_off[L] : s_off[L] + B * nL].reshape(B, nL)
    if d_out == 0:
        gL[:, :] = R
    else:
        V = params[w_off[L] : w_off[L] + d_out * nL].reshape(d_out, nL)
        np.dot(R, V, gL)
        grad[w_off[L] : w_off[L] + d_out * nL] = np.dot(R.T, hL).reshape(-1)
        grad[b_off[L] : b_off[L] + d_out] = column_sums(R)
    for l in range(L - 1, -1, -1):
        n_in = widths[l]
        n_out = widths[l + 1]
        Wl = params[w_off[l] : w_off[l] + n_out * n_in].reshape(n_out, n_in)
        h = Hbuf[s_off[l + 1] : s_off[l + 1] + B * n_out].reshape(B, n_out)
        g = Gbuf[s_off[l + 1] : s_off[l + 1] + B * n_out].reshape(B, n_out)
        h_prev = Hbuf[s_off[l] : s_off[l] + B * n_in].reshape(B, n_in)
        g_prev = Gbuf[s_off[l] : s_off[l] + B * n_in].reshape(B, n_in)
        dA = np.empty((B, n_out))
        times_dphi(code, g.reshape(B * n_out), h.reshape(B * n_out), dA.reshape(B * n_out))
        np.dot(dA.T, h_prev, grad[w_off[l] : w_off[l] + n_out * n_in].reshape(n_out, n_in))
        grad[b_off[l] : b_off[l] + n_out] = column_sums(dA)
        np.dot(dA, Wl, g_prev)
    return loss, grad, Hbuf, Gbuf
