"""Exact Hessian-vector products by Pearlmutter's R-operator, for the RNN and the MLP.

``R{f} = d/dr f(theta + r v) |_{r=0}``. Applied to every line of the forward pass (the forward
R-pass) and then of the backward pass (the backward R-pass), it gives ``R{grad L} = H v`` exactly,
at the cost of about two gradients (Pearlmutter 1994, "Fast exact multiplication by the Hessian",
Neural Computation 6(1)). The rules, next to the lines they differentiate (RNN;
v = (dW, dU, db, dV, dc)):

    forward                                  forward R-pass
    a_t = W h_{t-1} + U x_t + b              R a_t = dW h_{t-1} + W R h_{t-1} + dU x_t + db
    h_t = phi(a_t)                           R h_t = phi'(a_t) R a_t,            R h_0 = 0
    y_t = V h_t + c                          R y_t = dV h_t + V R h_t + dc
    e_t = dL/dy_t                            R e_t = s R y_t                       (mse)
                                             R e_t = s (p * R y_t - p (p . R y_t)) (softmax xent)
    backward                                 backward R-pass
    g_t = V^T e_t + W^T d_{t+1}              R g_t = V^T R e_t + dV^T e_t
                                                     + W^T R d_{t+1} + dW^T d_{t+1}
    d_t = phi'(a_t) g_t                      R d_t = phi'(a_t) R g_t + phi''(a_t) R a_t g_t
    dL/dW = sum d_t h_{t-1}^T                (H v)_W = sum R d_t h_{t-1}^T + d_t R h_{t-1}^T
    dL/dU = sum d_t x_t^T                    (H v)_U = sum R d_t x_t^T
    dL/db = sum d_t                          (H v)_b = sum R d_t
    dL/dV = sum e_t h_t^T                    (H v)_V = sum R e_t h_t^T + e_t R h_t^T
    dL/dc = sum e_t                          (H v)_c = sum R e_t

(``s`` is the loss's averaging factor 1 / (B * number of counted steps)). The MLP is the same with
layers for time steps and no weight sharing. The forward and backward passes are the engine's own
kernels (`rnnsim.kernels.rnn`, `rnnsim.kernels.mlp`); this module adds the R-passes on top.
"""

import math

import numpy as np
from numba import njit

from rnnsim.kernels.activations import d2phi_from_h, dphi_from_h
from rnnsim.kernels.blas import column_sums, matmul_into
from rnnsim.kernels.jit import JIT
from rnnsim.kernels.losses import mse, xent
from rnnsim.kernels.mlp import layer_offsets, mlp_loss_grad, state_offsets
from rnnsim.kernels.rnn import rnn_backward, rnn_forward


@njit(**JIT)
def rnn_hvp(W, U, b, V, c, x, h0, code, target, labels, loss_code, v):
    """Loss, gradient and exact Hessian-vector product of the RNN's loss.

    Parameters
    ----------
    W, U, b, V, c : float64 arrays (n, n), (n, d_in), (n,), (d_out, n), (d_out,)
    x : float64 array (T, B, d_in)
    h0 : float64 array (B, n), the initial state (not a parameter).
    code : int, activation code.
    target : float64 array (1, B, d_out) for mse_last, (T, B, d_out) for mse_all (else unused).
    labels : int64 array (1, B) for xent_last, (T, B) for xent_all (else unused).
    loss_code : int, 0 mse_last, 1 mse_all, 2 xent_last, 3 xent_all.
    v : float64 array (P,), direction in the flat order W, U, b, V, c (each raveled C order).

    Returns
    -------
    loss : float
    grad : float64 array (P,), dL/dtheta in the flat order.
    hv : float64 array (P,), H v.

    Notes
    -----
    Pearlmutter 1994, eqs. for R{.} of the forward and backward passes (module docstring).
    `rnn_hvp_prepare` followed by `rnn_hvp_apply`.
    """
    loss, grad, H, Y, dY, G, dA = rnn_hvp_prepare(
        W, U, b, V, c, x, h0, code, target, labels, loss_code
    )
    return loss, grad, rnn_hvp_apply(W, V, x, code, loss_code, H, Y, dY, G, dA, v)


@njit(**JIT)
def rnn_hvp_prepare(W, U, b, V, c, x, h0, code, target, labels, loss_code):
    """The forward and backward passes that every H v at one point shares (arguments as in
    `rnn_hvp`).

    Returns
    -------
    loss : float
    grad : float64 array (P,), dL/dtheta in the flat order.
    H : (T+1, B, n) states; Y : (T, B, d_out) outputs; dY : (T, B, d_out) dL/dy_t;
    G : (T+1, B, n) dL/dh_t; dA : (T, B, n) dL/da_t. Pass them to `rnn_hvp_apply`.
    """
    T, B, d_in = x.shape
    n = W.shape[0]
    d_out = V.shape[0]
    H, Y = rnn_forward(W, U, b, V, c, x, h0, code)
    dY = np.zeros_like(Y)
    last = loss_code == 0 or loss_code == 2
    if loss_code < 2:
        loss = mse(Y, target, last, dY)
    else:
        loss = xent(Y, labels, last, dY)
    gW, gU, gb, gV, gc, G = rnn_backward(W, U, V, x, H, dY, code)
    dA = np.empty((T, B, n))
    for t in range(1, T + 1):
        for bb in range(B):
            for i in range(n):
                dA[t - 1, bb, i] = G[t, bb, i] * dphi_from_h(code, H[t, bb, i])
    o1 = n * n
    o2 = o1 + n * d_in
    o3 = o2 + n
    o4 = o3 + d_out * n
    grad = np.empty(o4 + d_out)
    grad[0:o1] = gW.reshape(-1)
    grad[o1:o2] = gU.reshape(-1)
    grad[o2:o3] = gb
    grad[o3:o4] = gV.reshape(-1)
    grad[o4:] = gc
    return loss, grad, H, Y, dY, G, dA


@njit(**JIT)
def _r_output_grad(Y, RY, dc, loss_code, last):
    """R{dL/dy_t}: the directional derivative of the loss gradient at the outputs, from the
    outputs ``Y`` (T, B, d_out), their R-derivative ``RY`` (without the bias direction ``dc``) and
    the loss; zero at the steps the loss does not read (all but the last for ``*_last`` losses)."""
    T, B, d_out = Y.shape
    t0 = T - 1 if last else 0
    scale = 1.0 / (B * (T - t0))
    RdY = np.zeros((T, B, d_out))
    p = np.empty(d_out)
    for t in range(t0, T):
        for bb in range(B):
            if loss_code < 2:
                for k in range(d_out):
                    RdY[t, bb, k] = (RY[t, bb, k] + dc[k]) * scale
            else:
                m = Y[t, bb, 0]
                for k in range(1, d_out):
                    m = max(m, Y[t, bb, k])
                s = 0.0
                for k in range(d_out):
                    p[k] = math.exp(Y[t, bb, k] - m)
                    s += p[k]
                pr = 0.0
                for k in range(d_out):
                    p[k] /= s
                    pr += p[k] * (RY[t, bb, k] + dc[k])
                for k in range(d_out):
                    RdY[t, bb, k] = scale * p[k] * (RY[t, bb, k] + dc[k] - pr)
    return RdY


@njit(**JIT)
def rnn_hvp_apply(W, V, x, code, loss_code, H, Y, dY, G, dA, v):
    """H v from the passes of `rnn_hvp_prepare`: the forward and backward R-passes only.

    Returns
    -------
    hv : float64 array (P,), in the flat order W, U, b, V, c.
    """
    T, B, d_in = x.shape
    n = W.shape[0]
    d_out = V.shape[0]
    o1 = n * n
    o2 = o1 + n * d_in
    o3 = o2 + n
    o4 = o3 + d_out * n
    dW = v[0:o1].reshape(n, n)
    dU = v[o1:o2].reshape(n, d_in)
    db = v[o2:o3]
    dV = v[o3:o4].reshape(d_out, n)
    dc = v[o4 : o4 + d_out]
    last = loss_code == 0 or loss_code == 2

    # forward R-pass
    Hprev2 = H[:T].copy().reshape(T * B, n)
    Rdrive = (np.dot(Hprev2, dW.T) + np.dot(x.reshape(T * B, d_in), dU.T)).reshape(T, B, n)
    RH = np.zeros((T + 1, B, n))
    RA = np.empty((T, B, n))
    rec = np.empty((B, n))
    WT = np.ascontiguousarray(W.T)
    for t in range(1, T + 1):
        matmul_into(RH[t - 1], WT, rec)
        for bb in range(B):
            for i in range(n):
                ra = rec[bb, i] + Rdrive[t - 1, bb, i] + db[i]
                RA[t - 1, bb, i] = ra
                RH[t, bb, i] = dphi_from_h(code, H[t, bb, i]) * ra
    Hout2 = H[1:].copy().reshape(T * B, n)
    RHout2 = RH[1:].copy().reshape(T * B, n)
    RY = (np.dot(Hout2, dV.T) + np.dot(RHout2, V.T)).reshape(T, B, d_out)
    RdY = _r_output_grad(Y, RY, dc, loss_code, last)

    # backward R-pass
    RdY2 = RdY.reshape(T * B, d_out)
    dY2 = dY.reshape(T * B, d_out)
    direct = (np.dot(RdY2, V) + np.dot(dY2, dV)).reshape(T, B, n)
    RdA = np.empty((T, B, n))
    back = np.zeros((B, n))
    tmp = np.empty((B, n))
    for t in range(T, 0, -1):
        for bb in range(B):
            for i in range(n):
                h = H[t, bb, i]
                rg = direct[t - 1, bb, i] + back[bb, i]
                RdA[t - 1, bb, i] = (
                    rg * dphi_from_h(code, h)
                    + G[t, bb, i] * d2phi_from_h(code, h) * RA[t - 1, bb, i]
                )
        matmul_into(RdA[t - 1], W, back)
        matmul_into(dA[t - 1], dW, tmp)
        for bb in range(B):
            for i in range(n):
                back[bb, i] += tmp[bb, i]

    RdA2 = RdA.reshape(T * B, n)
    dA2 = dA.reshape(T * B, n)
    RHprev2 = RH[:T].copy().reshape(T * B, n)
    P = o4 + d_out
    hv = np.empty(P)
    hv[0:o1] = (np.dot(RdA2.T, Hprev2) + np.dot(dA2.T, RHprev2)).reshape(-1)
    hv[o1:o2] = np.dot(RdA2.T, x.reshape(T * B, d_in)).reshape(-1)
    hv[o2:o3] = column_sums(RdA2)
    hv[o3:o4] = (np.dot(RdY2.T, Hout2) + np.dot(dY2.T, RHout2)).reshape(-1)
    hv[o4:P] = column_sums(RdY2)
    return hv


@njit(**JIT)
def mlp_hvp(params, widths, d_out, code, x, target, v):
    """Loss, gradient and exact Hessian-vector product of the MLP's squared-error loss.

    Parameters
    ----------
    params : float64 array (P,), flat parameters W_1, b_1, ..., W_L, b_L, then V, c.
    widths : int64 array (L+1,), n_0 = d_in, ..., n_L.
    d_out : int, readout size; 0 without a readout (then y = h_L).
    code : int, activation code.
    x : float64 array (B, n_0).
    target : float64 array (B, d_out), or (B, n_L) without a readout.
    v : float64 array (P,), direction in the same flat order.

    Returns
    -------
    loss : float, ``0.5 * mean_b ||y - target||^2``.
    grad : float64 array (P,)
    hv : float64 array (P,), H v.

    Notes
    -----
    Pearlmutter 1994 (R-operator); the layer rules are the RNN's of the module docstring with
    layers for time steps. `rnnsim.kernels.mlp.mlp_loss_grad` followed by `mlp_hvp_apply`.
    """
    loss, grad, Hbuf, Gbuf = mlp_loss_grad(params, widths, d_out, code, x, target)
    return loss, grad, mlp_hvp_apply(params, widths, d_out, code, x, target, Hbuf, Gbuf, v)


@njit(**JIT)
def mlp_hvp_apply(params, widths, d_out, code, x, target, Hbuf, Gbuf, v):
    """H v from the states ``Hbuf`` and dL/dh buffers ``Gbuf`` of `rnnsim.kernels.mlp.mlp_loss_grad`
    at the same point: the forward and backward R-passes only (arguments as in `mlp_hvp`).

    Returns
    -------
    hv : float64 array (P,), in the flat order.
    """
    B = x.shape[0]
    L = widths.size - 1
    w_off, b_off, P = layer_offsets(widths, d_out)
    s_off, size = state_offsets(widths, B)
    hv = np.zeros(P)
    RHbuf = np.zeros(size)  # R h_l, same layout as the states (R h_0 = 0)
    RAbuf = np.zeros(size)  # R a_l for l >= 1
    for l in range(L):
        n_in = widths[l]
        n_out = widths[l + 1]
        Wl = params[w_off[l] : w_off[l] + n_out * n_in].reshape(n_out, n_in)
        dWl = v[w_off[l] : w_off[l] + n_out * n_in].reshape(n_out, n_in)
        dbl = v[b_off[l] : b_off[l] + n_out]
        h_prev = Hbuf[s_off[l] : s_off[l] + B * n_in].reshape(B, n_in)
        Rh_prev = RHbuf[s_off[l] : s_off[l] + B * n_in].reshape(B, n_in)
        h = Hbuf[s_off[l + 1] : s_off[l + 1] + B * n_out].reshape(B, n_out)
        Rh = RHbuf[s_off[l + 1] : s_off[l + 1] + B * n_out].reshape(B, n_out)
        Ra = RAbuf[s_off[l + 1] : s_off[l + 1] + B * n_out].reshape(B, n_out)
        ra = np.dot(h_prev, dWl.T) + np.dot(Rh_prev, Wl.T)
        for bb in range(B):
            for i in range(n_out):
                Ra[bb, i] = ra[bb, i] + dbl[i]
                Rh[bb, i] = dphi_from_h(code, h[bb, i]) * Ra[bb, i]
    nL = widths[L]
    hL = Hbuf[s_off[L] : s_off[L] + B * nL].reshape(B, nL)
    RhL = RHbuf[s_off[L] : s_off[L] + B * nL].reshape(B, nL)
    if d_out == 0:
        Rr = RhL / B
        Rg = Rr.copy()
    else:
        V = params[w_off[L] : w_off[L] + d_out * nL].reshape(d_out, nL)
        dV = v[w_off[L] : w_off[L] + d_out * nL].reshape(d_out, nL)
        dc = v[b_off[L] : b_off[L] + d_out]
        c = params[b_off[L] : b_off[L] + d_out]
        y = np.dot(hL, V.T)
        Ry = np.dot(hL, dV.T) + np.dot(RhL, V.T)
        for bb in range(B):
            for o in range(d_out):
                y[bb, o] += c[o]
                Ry[bb, o] += dc[o]
        r = (y - target) / B
        Rr = Ry / B
        hv[w_off[L] : w_off[L] + d_out * nL] = (np.dot(Rr.T, hL) + np.dot(r.T, RhL)).reshape(-1)
        hv[b_off[L] : b_off[L] + d_out] = column_sums(Rr)
        Rg = np.dot(Rr, V) + np.dot(r, dV)
    for l in range(L - 1, -1, -1):
        n_in = widths[l]
        n_out = widths[l + 1]
        Wl = params[w_off[l] : w_off[l] + n_out * n_in].reshape(n_out, n_in)
        dWl = v[w_off[l] : w_off[l] + n_out * n_in].reshape(n_out, n_in)
        h = Hbuf[s_off[l + 1] : s_off[l + 1] + B * n_out].reshape(B, n_out)
        g = Gbuf[s_off[l + 1] : s_off[l + 1] + B * n_out].reshape(B, n_out)
        Ra = RAbuf[s_off[l + 1] : s_off[l + 1] + B * n_out].reshape(B, n_out)
        h_prev = Hbuf[s_off[l] : s_off[l] + B * n_in].reshape(B, n_in)
        Rh_prev = RHbuf[s_off[l] : s_off[l] + B * n_in].reshape(B, n_in)
        dA = np.empty((B, n_out))
        RdA = np.empty((B, n_out))
        for bb in range(B):
            for i in range(n_out):
                d1 = dphi_from_h(code, h[bb, i])
                dA[bb, i] = g[bb, i] * d1
                RdA[bb, i] = Rg[bb, i] * d1 + g[bb, i] * d2phi_from_h(code, h[bb, i]) * Ra[bb, i]
        hv[w_off[l] : w_off[l] + n_out * n_in] = (
            np.dot(RdA.T, h_prev) + np.dot(dA.T, Rh_prev)
        ).reshape(-1)
        hv[b_off[l] : b_off[l] + n_out] = column_sums(RdA)
        Rg = np.dot(RdA, Wl) + np.dot(dA, dWl)
    return hv
