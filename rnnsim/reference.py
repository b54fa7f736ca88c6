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
        return 1.0 / (1.0 + np.exp(-a))
    if activation == "linear":
        return np.array(a, dtype=np.float64, copy=True)
    raise ValueError(f"activation must be one of tanh, relu, sigmoid, linear; got {activation!r}")


def dphi(activation, a):
    """phi'(a) elementwise, from the pre-activation ``a`` (relu'(0) = 0)."""
    if activation == "tanh":
        return 1.0 - np.tanh(a) ** 2
    if activation == "relu":
        return (a > 0.0).astype(np.float64)
    if activation == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-a))
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
