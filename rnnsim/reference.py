"""Plain NumPy twins of the Numba kernels: the oracle of the tests and the baseline of the benchmarks.

Each function here states the mathematics of one kernel in the most readable form, one loop per
time step or layer, with no Numba. Shapes and conventions are those of DESIGN.md: time-major
``x`` (T, B, d_in), states ``H`` (T+1, B, n) with h_0 first, weights in PyTorch orientation.
"""

import numpy as np

# ---------------------------------------------------------------------------------------------
# Activations and losses
# ---------------------------------------------------------------------------------------------


def phi(activation, a):
    """The activation function by name, applied elementwise."""
    if activation == "tanh":
        return np.tanh(a)
    if activation == "relu":
        return np.maximum(a, 0.0)
    if activation == "sigmoid":
        e = np.exp(-np.abs(a))  # never overflows
        return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    if activation == "linear":
        return np.array(a, dtype=np.float64, copy=True)
    raise ValueError(f"activation must be one of tanh, relu, sigmoid, linear; got {activation!r}")


def dphi(activation, a):
    """phi'(a) elementwise, from the pre-activation ``a`` (relu'(0) = 0)."""
    if activation == "tanh":
        return 1.0 - np.tanh(a) ** 2
    if activation == "relu":
        return np.where(np.isnan(a), np.nan, (a > 0.0).astype(np.float64))
    if activation == "sigmoid":
        s = phi("sigmoid", a)
        return s * (1.0 - s)
    if activation == "linear":
        return np.ones_like(a, dtype=np.float64)
    raise ValueError(f"activation must be one of tanh, relu, sigmoid, linear; got {activation!r}")


def output_loss(Y, target, loss):
    """Loss of outputs ``Y`` (T, B, d_out) and its gradient dL/dY.

    ``mse_last``: 0.5 * mean over the batch of ||y_T - target||^2, target (B, d_out);
    ``mse_all``: the same averaged over steps too, target (T, B, d_out);
    ``xent_last`` / ``xent_all``: softmax cross-entropy (nats), integer targets (B,) or (T, B).
    """
    T, B, _ = Y.shape
    dY = np.zeros_like(Y)
    steps = [T - 1] if loss.endswith("_last") else list(range(T))
    total = 0.0
    for t in steps:
        tgt = target if loss.endswith("_last") else target[t]
        if loss.startswith("mse"):
            r = Y[t] - tgt
            total += 0.5 * np.sum(r**2)
            dY[t] = r
        else:
            z = Y[t] - Y[t].max(axis=1, keepdims=True)
            log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            rows = np.arange(B)
            total += -np.sum(log_p[rows, tgt])
            dY[t] = np.exp(log_p)
            dY[t][rows, tgt] -= 1.0
    scale = 1.0 / (B * len(steps))
    return total * scale, dY * scale


# ---------------------------------------------------------------------------------------------
# Vanilla RNN: forward pass and backpropagation through time (kernels/rnn.py)
# ---------------------------------------------------------------------------------------------


def rnn_forward(W, U, b, V, c, x, h0, activation):
    """``h_t = phi(W h_{t-1} + U x_t + b)``, ``y_t = V h_t + c``; returns H (T+1, B, n), Y (T, B, d_out)."""
    T, B, _ = x.shape
    n = W.shape[0]
    H = np.zeros((T + 1, B, n))
    H[0] = h0
    Y = np.zeros((T, B, V.shape[0]))
    for t in range(1, T + 1):
        H[t] = phi(activation, H[t - 1] @ W.T + x[t - 1] @ U.T + b)
        Y[t - 1] = H[t] @ V.T + c
    return H, Y


def rnn_loss_and_grad(W, U, b, V, c, x, h0, activation, target, loss):
    """Loss, gradients (dict W, U, b, V, c) and dL/dh_t (T+1, B, n) by backpropagation through time."""
    T = x.shape[0]
    H, Y = rnn_forward(W, U, b, V, c, x, h0, activation)
    value, dY = output_loss(Y, target, loss)
    grads = {k: np.zeros_like(p) for k, p in dict(W=W, U=U, b=b, V=V, c=c).items()}
    G = np.zeros_like(H)
    from_future = np.zeros_like(H[0])  # W^T dL/da_{t+1}
    for t in range(T, 0, -1):
        grads["V"] += dY[t - 1].T @ H[t]
        grads["c"] += dY[t - 1].sum(axis=0)
        G[t] = dY[t - 1] @ V + from_future
        a_t = H[t - 1] @ W.T + x[t - 1] @ U.T + b
        dA = G[t] * dphi(activation, a_t)
        grads["W"] += dA.T @ H[t - 1]
        grads["U"] += dA.T @ x[t - 1]
        grads["b"] += dA.sum(axis=0)
        from_future = dA @ W
    G[0] = from_future
    return value, grads, G


# ---------------------------------------------------------------------------------------------
# Deep MLP: forward pass and backpropagation through depth (kernels/mlp.py)
# ---------------------------------------------------------------------------------------------


def mlp_forward(weights, biases, activation, x, readout=None):
    """``h_l = phi(W_l h_{l-1} + b_l)``, h_0 = x; returns ([h_0, ..., h_L], y) with y = V h_L + c."""
    hs = [np.array(x, dtype=np.float64)]
    for W, b in zip(weights, biases, strict=True):
        hs.append(phi(activation, hs[-1] @ W.T + b))
    y = hs[-1] if readout is None else hs[-1] @ readout[0].T + readout[1]
    return hs, y


def mlp_loss_and_grad(weights, biases, activation, x, target, readout=None):
    """``0.5 * mean_b ||y - target||^2``; returns (loss, grads dict, [dL/dh_0, ..., dL/dh_L])."""
    hs, y = mlp_forward(weights, biases, activation, x, readout)
    B = x.shape[0]
    r = (y - target) / B
    loss = 0.5 * B * np.sum(r**2)
    grads = {"weights": [None] * len(weights), "biases": [None] * len(weights)}
    if readout is None:
        g = r
    else:
        grads["V"] = r.T @ hs[-1]
        grads["c"] = r.sum(axis=0)
        g = r @ readout[0]
    gs = [None] * (len(weights) + 1)
    for l in range(len(weights), 0, -1):
        gs[l] = g
        a = hs[l - 1] @ weights[l - 1].T + biases[l - 1]
        dA = g * dphi(activation, a)
        grads["weights"][l - 1] = dA.T @ hs[l - 1]
        grads["biases"][l - 1] = dA.sum(axis=0)
        g = dA @ weights[l - 1]
    gs[0] = g
    return loss, grads, gs


# ---------------------------------------------------------------------------------------------
# Issue 7: Hessian-vector products by the R-operator (kernels/hvp.py) and the single-unit cliff
# (kernels/cliff.py)
# ---------------------------------------------------------------------------------------------


def d2phi(activation, a):
    """phi''(a) elementwise, from the pre-activation ``a`` (0 for relu and linear)."""
    if activation == "tanh":
        t = np.tanh(a)
        return -2.0 * t * (1.0 - t**2)
    if activation == "sigmoid":
        s = phi("sigmoid", a)
        return s * (1.0 - s) * (1.0 - 2.0 * s)
    if activation in ("relu", "linear"):
        return np.zeros_like(a, dtype=np.float64)
    raise ValueError(f"activation must be one of tanh, relu, sigmoid, linear; got {activation!r}")


def rnn_hvp(W, U, b, V, c, x, h0, activation, target, loss, v):
    """Exact H v of the RNN loss by Pearlmutter's R-operator; returns (loss, grad, hv), flat.

    ``v`` and the results are flat in the order W, U, b, V, c. ``R{f}`` is the derivative of f along
    v; each line of the forward pass and of backpropagation through time gets its R-line beside it.
    """
    T, B, d_in = x.shape
    n, d_out = W.shape[0], V.shape[0]
    sizes = np.cumsum([n * n, n * d_in, n, d_out * n, d_out])
    dW, dU, db, dV, dc = np.split(np.asarray(v, dtype=np.float64), sizes[:-1])
    dW, dU, dV = dW.reshape(n, n), dU.reshape(n, d_in), dV.reshape(d_out, n)
    H, Y = rnn_forward(W, U, b, V, c, x, h0, activation)
    value, dY = output_loss(Y, target, loss)
    _, grads, _ = rnn_loss_and_grad(W, U, b, V, c, x, h0, activation, target, loss)
    # forward R-pass
    A, RA = np.zeros((T, B, n)), np.zeros((T, B, n))
    RH, RY = np.zeros_like(H), np.zeros_like(Y)
    for t in range(1, T + 1):
        A[t - 1] = H[t - 1] @ W.T + x[t - 1] @ U.T + b
        RA[t - 1] = H[t - 1] @ dW.T + RH[t - 1] @ W.T + x[t - 1] @ dU.T + db
        RH[t] = dphi(activation, A[t - 1]) * RA[t - 1]
        RY[t - 1] = H[t] @ dV.T + RH[t] @ V.T + dc
    # R of dL/dY
    steps = [T - 1] if loss.endswith("_last") else list(range(T))
    scale = 1.0 / (B * len(steps))
    RdY = np.zeros_like(Y)
    for t in steps:
        if loss.startswith("mse"):
            RdY[t] = RY[t] * scale
        else:
            z = np.exp(Y[t] - Y[t].max(axis=1, keepdims=True))
            p = z / z.sum(axis=1, keepdims=True)
            RdY[t] = scale * (p * RY[t] - p * (p * RY[t]).sum(axis=1, keepdims=True))
    # backward pass and backward R-pass side by side
    hv = {k: np.zeros_like(p) for k, p in dict(W=W, U=U, b=b, V=V, c=c).items()}
    from_future, R_from_future = np.zeros((B, n)), np.zeros((B, n))
    for t in range(T, 0, -1):
        g = dY[t - 1] @ V + from_future
        Rg = RdY[t - 1] @ V + dY[t - 1] @ dV + R_from_future
        d = g * dphi(activation, A[t - 1])
        Rd = Rg * dphi(activation, A[t - 1]) + g * d2phi(activation, A[t - 1]) * RA[t - 1]
        hv["W"] += Rd.T @ H[t - 1] + d.T @ RH[t - 1]
        hv["U"] += Rd.T @ x[t - 1]
        hv["b"] += Rd.sum(axis=0)
        hv["V"] += RdY[t - 1].T @ H[t] + dY[t - 1].T @ RH[t]
        hv["c"] += RdY[t - 1].sum(axis=0)
        from_future = d @ W
        R_from_future = Rd @ W + d @ dW
    keys = ("W", "U", "b", "V", "c")
    flat = [np.concatenate([dct[k].ravel() for k in keys]) for dct in (grads, hv)]
    return value, flat[0], flat[1]


def mlp_hvp(weights, biases, activation, x, target, v, readout=None):
    """Exact H v of the MLP's ``0.5 * mean_b ||y - target||^2``; returns (loss, grad, hv), flat.

    Flat order W_1, b_1, ..., W_L, b_L, then V, c. Forward pass with its R-pass, then backward
    pass with its R-pass, one loop per layer.
    """
    B = x.shape[0]
    shapes = [p.shape for W, b in zip(weights, biases, strict=True) for p in (W, b)]
    if readout is not None:
        shapes += [readout[0].shape, readout[1].shape]
    parts, pos = [], 0
    for s in shapes:
        size = int(np.prod(s))
        parts.append(np.asarray(v[pos : pos + size], dtype=np.float64).reshape(s))
        pos += size
    dWs, dbs = parts[0 : 2 * len(weights) : 2], parts[1 : 2 * len(weights) : 2]
    hs, y = mlp_forward(weights, biases, activation, x, readout)
    loss, grads, _ = mlp_loss_and_grad(weights, biases, activation, x, target, readout)
    As, RAs, RHs = [None], [None], [np.zeros_like(hs[0])]
    for l, (W, b) in enumerate(zip(weights, biases, strict=True)):
        As.append(hs[l] @ W.T + b)
        RAs.append(hs[l] @ dWs[l].T + RHs[l] @ W.T + dbs[l])
        RHs.append(dphi(activation, As[-1]) * RAs[-1])
    r = (y - target) / B
    hv_W, hv_b, hv_read = [None] * len(weights), [None] * len(weights), []
    if readout is None:
        Rr = RHs[-1] / B
        g, Rg = r, Rr
    else:
        (V, _), (dV, dc) = readout, (parts[-2], parts[-1])
        Rr = (hs[-1] @ dV.T + RHs[-1] @ V.T + dc) / B
        hv_read = [Rr.T @ hs[-1] + r.T @ RHs[-1], Rr.sum(axis=0)]
        g, Rg = r @ V, Rr @ V + r @ dV
    for l in range(len(weights), 0, -1):
        d = g * dphi(activation, As[l])
        Rd = Rg * dphi(activation, As[l]) + g * d2phi(activation, As[l]) * RAs[l]
        hv_W[l - 1] = Rd.T @ hs[l - 1] + d.T @ RHs[l - 1]
        hv_b[l - 1] = Rd.sum(axis=0)
        g, Rg = d @ weights[l - 1], Rd @ weights[l - 1] + d @ dWs[l - 1]
    grad_parts = [p for pair in zip(grads["weights"], grads["biases"], strict=True) for p in pair]
    if readout is not None:
        grad_parts += [grads["V"], grads["c"]]
    hv_parts = [p for pair in zip(hv_W, hv_b, strict=True) for p in pair] + hv_read
    grad = np.concatenate([p.ravel() for p in grad_parts])
    return loss, grad, np.concatenate([p.ravel() for p in hv_parts])


def single_unit(w, b, x0, T, target):
    """Pascanu et al. 2013, eq. 8: ``h_0 = sigmoid(x0)``, ``h_t = sigmoid(w h_{t-1} + b)``,
    ``E = (h_T - target)^2``; returns (h_T, E, dE/dw, dE/db), the gradient carried forward."""
    h = 1.0 / (1.0 + np.exp(-x0))
    dh_dw = dh_db = 0.0
    for _ in range(T):
        h_new = 1.0 / (1.0 + np.exp(-(w * h + b)))
        slope = h_new * (1.0 - h_new)
        dh_dw = slope * (h + w * dh_dw)
        dh_db = slope * (1.0 + w * dh_db)
        h = h_new
    return h, (h - target) ** 2, 2.0 * (h - target) * dh_dw, 2.0 * (h - target) * dh_db


def cliff_surface(w_values, b_values, x0, T, target):
    """`single_unit` on the grid w_values x b_values, all points at once, one loop per step;
    returns h_T, E, dE/dw, dE/db as (n_w, n_b) arrays."""
    w, b = np.meshgrid(np.asarray(w_values, float), np.asarray(b_values, float), indexing="ij")
    h = np.full(w.shape, 1.0 / (1.0 + np.exp(-x0)))
    dh_dw, dh_db = np.zeros(w.shape), np.zeros(w.shape)
    for _ in range(T):
        a = w * h + b
        e = np.exp(-np.abs(a))  # the same overflow-free logistic as the kernel
        h_new = np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        slope = h_new * (1.0 - h_new)
        dh_dw = slope * (h + w * dh_dw)
        dh_db = slope * (1.0 + w * dh_db)
        h = h_new
    r = h - target
    return h, r**2, 2.0 * r * dh_dw, 2.0 * r * dh_db
