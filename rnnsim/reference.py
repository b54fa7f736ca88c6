"""Plain NumPy twins of the Numba kernels: the oracle of the tests and the baseline of the benchmarks.

Each function here states the mathematics of one kernel in the most readable form, one loop per
time step or layer, with no Numba. Shapes and conventions are those of DESIGN.md: time-major
``x`` (T, B, d_in), states ``H`` (T+1, B, n) with h_0 first, weights in PyTorch orientation.
"""

import numpy as np

from rnnsim.kernels.activations import record

# ---------------------------------------------------------------------------------------------
# Losses (activations: phi and its derivatives in NumPy are in their records,
# `rnnsim.kernels.activations.record`)
# ---------------------------------------------------------------------------------------------


def output_loss(Y, target, loss):
    """Loss of outputs ``Y`` (T, B, d_out) and its gradient dL/dY (T, B, d_out).

    ``mse_last``: 0.5 * mean over the batch of ||y_T - target||^2, target (B, d_out);
    ``mse_all``: the same averaged over steps too, target (T, B, d_out);
    ``xent_last`` / ``xent_all``: softmax cross-entropy (nats), integer targets (B,) or (T, B):
    the mean of ``logsumexp(y) - y[target]``. The twin of ``kernels.losses``, and what
    `rnnsim.tasks` scores outputs with.
    """
    last = loss.endswith("_last")
    Ys = Y[-1] if last else Y  # the outputs that count: (B, d_out) or (T, B, d_out)
    if loss.startswith("mse"):
        r = Ys - np.asarray(target, dtype=np.float64)
        value = 0.5 * np.mean(np.sum(r * r, axis=-1))
        grad = r
    else:
        labels = np.asarray(target).astype(np.int64)[..., None]
        m = np.max(Ys, axis=-1, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        lse = m + np.log(np.sum(np.exp(Ys - m), axis=-1, keepdims=True))
        value = np.mean(lse[..., 0] - np.take_along_axis(Ys, labels, axis=-1)[..., 0])
        grad = np.exp(Ys - lse)  # softmax, minus the one-hot of the label
        np.put_along_axis(grad, labels, np.take_along_axis(grad, labels, axis=-1) - 1.0, axis=-1)
    dY = np.zeros_like(Y)
    dY[-1 if last else slice(None)] = grad * (1.0 / (grad.size // grad.shape[-1]))
    return float(value), dY


# ---------------------------------------------------------------------------------------------
# Vanilla RNN: forward pass and backpropagation through time (kernels/rnn.py)
# ---------------------------------------------------------------------------------------------


def rnn_forward(W, U, b, V, c, x, h0, activation):
    """``h_t = phi(W h_{t-1} + U x_t + b)``, ``y_t = V h_t + c``; returns H (T+1, B, n), Y (T, B, d_out)."""
    act = record(activation)
    T, B, _ = x.shape
    n = W.shape[0]
    H = np.zeros((T + 1, B, n))
    H[0] = h0
    Y = np.zeros((T, B, V.shape[0]))
    for t in range(1, T + 1):
        H[t] = act.phi(H[t - 1] @ W.T + x[t - 1] @ U.T + b)
        Y[t - 1] = H[t] @ V.T + c
    return H, Y


def rnn_loss_and_grad(W, U, b, V, c, x, h0, activation, target, loss):
    """Loss, gradients (dict W, U, b, V, c) and dL/dh_t (T+1, B, n) by backpropagation through time."""
    act = record(activation)
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
        dA = G[t] * act.dphi(a_t)
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
    act = record(activation)
    hs = [np.array(x, dtype=np.float64)]
    for W, b in zip(weights, biases, strict=True):
        hs.append(act.phi(hs[-1] @ W.T + b))
    y = hs[-1] if readout is None else hs[-1] @ readout[0].T + readout[1]
    return hs, y


def mlp_loss_and_grad(weights, biases, activation, x, target, readout=None):
    """``0.5 * mean_b ||y - target||^2``; returns (loss, grads dict, [dL/dh_0, ..., dL/dh_L])."""
    act = record(activation)
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
        dA = g * act.dphi(a)
        grads["weights"][l - 1] = dA.T @ hs[l - 1]
        grads["biases"][l - 1] = dA.sum(axis=0)
        g = dA @ weights[l - 1]
    gs[0] = g
    return loss, grads, gs


# ---------------------------------------------------------------------------------------------
# Issue 7: Hessian-vector products by the R-operator (kernels/hvp.py) and the single-unit cliff
# (kernels/cliff.py)
# ---------------------------------------------------------------------------------------------


def rnn_hvp(W, U, b, V, c, x, h0, activation, target, loss, v):
    """Exact H v of the RNN loss by Pearlmutter's R-operator; returns (loss, grad, hv), flat.

    ``v`` and the results are flat in the order W, U, b, V, c. ``R{f}`` is the derivative of f along
    v; each line of the forward pass and of backpropagation through time gets its R-line beside it.
    """
    act = record(activation)
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
        RH[t] = act.dphi(A[t - 1]) * RA[t - 1]
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
        d = g * act.dphi(A[t - 1])
        Rd = Rg * act.dphi(A[t - 1]) + g * act.d2phi(A[t - 1]) * RA[t - 1]
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
    act = record(activation)
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
        RHs.append(act.dphi(As[-1]) * RAs[-1])
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
        d = g * act.dphi(As[l])
        Rd = Rg * act.dphi(As[l]) + g * act.d2phi(As[l]) * RAs[l]
        hv_W[l - 1] = Rd.T @ hs[l - 1] + d.T @ RHs[l - 1]
        hv_b[l - 1] = Rd.sum(axis=0)
        g, Rg = d @ weights[l - 1], Rd @ weights[l - 1] + d @ dWs[l - 1]
    grad_parts = [p for pair in zip(grads["weights"], grads["biases"], strict=True) for p in pair]
    if readout is not None:
        grad_parts += [grads["V"], grads["c"]]
    hv_parts = [p for pair in zip(hv_W, hv_b, strict=True) for p in pair] + hv_read
    grad = np.concatenate([p.ravel() for p in grad_parts])
    return loss, grad, np.concatenate([p.ravel() for p in hv_parts])


def cliff_surface(w_values, b_values, x0, T, target):
    """Pascanu et al. 2013, eq. 8, on the grid w_values x b_values, all points at once, one loop
    per step: ``h_0 = sigmoid(x0)``, ``h_t = sigmoid(w h_{t-1} + b)``, ``E = (h_T - target)^2``,
    the gradient carried forward; returns h_T, E, dE/dw, dE/db as (n_w, n_b) arrays. The twin of
    both ``kernels.cliff.single_unit`` (a 1 x 1 grid) and ``kernels.cliff.cliff_surface``."""
    sigmoid = record("sigmoid").phi  # overflow-free, like the kernel's
    w, b = np.meshgrid(np.asarray(w_values, float), np.asarray(b_values, float), indexing="ij")
    h = np.full(w.shape, sigmoid(np.float64(x0)))
    dh_dw, dh_db = np.zeros(w.shape), np.zeros(w.shape)
    for _ in range(T):
        h_new = sigmoid(w * h + b)
        slope = h_new * (1.0 - h_new)
        dh_dw = slope * (h + w * dh_dw)
        dh_db = slope * (1.0 + w * dh_db)
        h = h_new
    r = h - target
    return h, r**2, 2.0 * r * dh_dw, 2.0 * r * dh_db


# ---------------------------------------------------------------------------------------------
# Issue 4: Jacobian products across time and depth, their singular values, Lyapunov exponents
# and the temporal decomposition of the gradient (kernels/norms.py, spectrum.py, lyapunov.py)
# ---------------------------------------------------------------------------------------------


def rnn_step_jacobians(W, U, b, x, h0, activation):
    """Explicit step Jacobians ``J_t = dh_t/dh_{t-1} = diag(phi'(a_t)) W`` of one trajectory.

    x (T, d_in), h0 (n,); returns the list [J_1, ..., J_T] of (n, n) arrays and the states (T+1, n).
    """
    act = record(activation)
    h = np.array(h0, dtype=np.float64)
    Js, H = [], [h]
    for t in range(x.shape[0]):
        a = W @ h + U @ x[t] + b
        Js.append(act.dphi(a)[:, None] * W)
        h = act.phi(a)
        H.append(h)
    return Js, np.array(H)


def mlp_layer_jacobians(weights, biases, activation, x):
    """Explicit layer Jacobians ``J_l = dh_l/dh_{l-1} = diag(phi'(a_l)) W_l`` for one input x (n_0,)."""
    act = record(activation)
    h, Js = np.array(x, dtype=np.float64), []
    for W, b in zip(weights, biases, strict=True):
        a = W @ h + b
        Js.append(act.dphi(a)[:, None] * W)
        h = act.phi(a)
    return Js


def product_norms(Js, direction):
    """ln ||.||_2 and ln ||.||_F of every product of the Jacobians ``Js = [J_1, ..., J_S]``.

    backward: entry k is J_S ... J_{k+1} (k = 0..S, entry S the identity); forward: entry t is
    J_t ... J_1. The product is renormalised to Frobenius norm 1 after each factor and its scale
    kept as a log; the spectral norm is a full SVD every time (the slow, obvious path).
    """
    S = len(Js)
    m = Js[-1].shape[0] if direction == "backward" else Js[0].shape[1]
    log_spec, log_fro = np.zeros(S + 1), np.zeros(S + 1)
    P, scale = np.eye(m), 0.0
    first = S if direction == "backward" else 0
    log_fro[first] = 0.5 * np.log(m)
    for s in range(1, S + 1):
        if direction == "backward":
            k = S - s
            P = P @ Js[k]  # dh_S/dh_k = (dh_S/dh_{k+1}) J_{k+1}
        else:
            k = s
            P = Js[k - 1] @ P  # dh_k/dh_0 = J_k (dh_{k-1}/dh_0)
        f = np.linalg.norm(P)
        P = P / f
        scale += np.log(f)
        log_fro[k] = scale
        log_spec[k] = scale + np.log(np.linalg.svd(P, compute_uv=False)[0])
    return log_spec, log_fro


def product_log_singular_values(Js, direction, steps):
    """ln of every singular value of the products of `product_norms` at the given steps.

    The product is accumulated as ``Q R`` with Householder QR (`numpy.linalg.qr`), ``R`` kept as
    log row scales ``sigma`` times unit rows ``Y``; the singular values of ``diag(e^sigma) Y`` come
    from `scaled_jacobi_log_singular_values`. Returns {step: descending array}.
    """
    S = len(Js)
    factors = [J.T for J in Js[::-1]] if direction == "backward" else list(Js)
    m = factors[0].shape[1]
    Q, Y, sigma = np.eye(m), np.eye(m), np.zeros(m)
    out = {}
    start = S if direction == "backward" else 0
    if start in steps:
        out[start] = np.zeros(m)
    for s, A in enumerate(factors, start=1):
        Q, Rp = np.linalg.qr(A @ Q)
        sign = np.where(np.diag(Rp) < 0, -1.0, 1.0)
        Q, Rp = Q * sign, sign[:, None] * Rp
        with np.errstate(divide="ignore"):
            new_rows = []
            new_sigma = []
            for i in range(Rp.shape[0]):  # row i of R' diag(e^sigma) Y, relative to its top scale
                js = [j for j in range(i, Rp.shape[1]) if Rp[i, j] != 0 and np.isfinite(sigma[j])]
                if not js:
                    new_rows.append(np.zeros(Y.shape[1]))
                    new_sigma.append(-np.inf)
                    continue
                top = max(sigma[j] for j in js)
                row = sum(Rp[i, j] * np.exp(sigma[j] - top) * Y[j] for j in js)
                nrm = np.linalg.norm(row)
                new_rows.append(row / nrm if nrm > 0 else row)
                new_sigma.append(top + np.log(nrm) if nrm > 0 else -np.inf)
        Y, sigma = np.array(new_rows), np.array(new_sigma)
        k = S - s if direction == "backward" else s
        if k in steps:
            out[k] = scaled_jacobi_log_singular_values(Y, sigma)
    return out


def scaled_jacobi_log_singular_values(Y, sigma, tol=1e-15, max_sweeps=60):
    """ln singular values of ``diag(exp(sigma)) Y`` by one-sided (Hestenes) Jacobi on the columns
    ``g_j = exp(sigma_j) y_j`` of its transpose, never forming exp(sigma) (Demmel & Veselic 1992)."""
    Y, s = np.array(Y, dtype=np.float64), np.array(sigma, dtype=np.float64)
    for _ in range(max_sweeps):
        rotated = False
        for p in range(len(s) - 1):
            for q in range(p + 1, len(s)):
                if not (np.isfinite(s[p]) and np.isfinite(s[q])):
                    continue
                i, j = (p, q) if s[p] >= s[q] else (q, p)  # i has the larger scale
                a, bb, c = Y[i] @ Y[i], Y[j] @ Y[j], Y[i] @ Y[j]
                if abs(c) <= tol * np.sqrt(a * bb):
                    continue
                rotated = True
                rho = np.exp(s[j] - s[i])  # ratio of the scales, <= 1
                eta = (rho**2 * bb - a) / (2 * c)  # rho * zeta of the usual Jacobi rotation
                tau = (1.0 if eta >= 0 else -1.0) / (abs(eta) + np.sqrt(rho**2 + eta**2))
                cs = 1.0 / np.sqrt(1.0 + (tau * rho) ** 2)
                yi, yj = cs * (Y[i] - tau * rho**2 * Y[j]), cs * (tau * Y[i] + Y[j])
                for idx, y in ((i, yi), (j, yj)):
                    nrm = np.linalg.norm(y)
                    Y[idx] = y / nrm if nrm > 0 else y
                    s[idx] = s[idx] + np.log(nrm) if nrm > 0 else -np.inf
        if not rotated:
            break
    return np.sort(s)[::-1]


def lyapunov_exponents(W, U, b, x, h0, activation, transient, steps, Q0):
    """Benettin's QR method with Householder QR every step; returns the exponents in the order of
    the basis Q0 (n, k) (unsorted) and mean ln|det J_t|. x (transient + steps, d_in) or None.

    The basis rides along from the first step; the transient steps turn it towards the leading
    directions but are not counted (a basis started fresh after the transient would bias the
    exponents by O(1/steps))."""
    act = record(activation)
    h, Q = np.array(h0, dtype=np.float64), np.array(Q0, dtype=np.float64)
    acc, logdet = np.zeros(Q.shape[1]), 0.0
    for t in range(transient + steps):
        a = W @ h + b + (U @ x[t] if x is not None else 0.0)
        h = act.phi(a)
        J = act.dphi(a)[:, None] * W
        Q, R = np.linalg.qr(J @ Q)
        if t < transient:
            continue
        acc += np.log(np.abs(np.diag(R)))
        logdet += np.linalg.slogdet(J)[1]
    return acc / steps, logdet / steps


def rnn_gradient_contributions(W, U, b, V, c, x, h0, activation, target):
    """Per-step pieces of the ``mse_last`` gradient: for k = 1..T the matrices
    ``sum_b delta_k h_{k-1}^T`` (dL/dW), ``sum_b delta_k x_k^T`` (dL/dU), ``sum_b delta_k`` (dL/db),
    and dL/dh_k for k = 0..T, by plain backpropagation through time (Pascanu et al. 2013, eq. 3-5)."""
    act = record(activation)
    T, B, _ = x.shape
    H = [np.broadcast_to(h0, (B, W.shape[0])).astype(np.float64)]
    A = []
    for t in range(T):
        A.append(H[-1] @ W.T + x[t] @ U.T + b)
        H.append(act.phi(A[-1]))
    gh = [None] * (T + 1)
    gh[T] = ((H[T] @ V.T + c - target) @ V) / B
    parts_W, parts_U, parts_b = [None] * T, [None] * T, [None] * T
    for k in range(T, 0, -1):
        delta = gh[k] * act.dphi(A[k - 1])
        parts_W[k - 1] = delta.T @ H[k - 1]
        parts_U[k - 1] = delta.T @ x[k - 1]
        parts_b[k - 1] = delta.sum(axis=0)
        gh[k - 1] = delta @ W
    return parts_W, parts_U, parts_b, np.array(gh)


# ---------------------------------------------------------------------------------------------
# Issue 16: ensembles of RNNs, parameters stacked on a first axis E (kernels/ensemble.py)
# ---------------------------------------------------------------------------------------------


def ensemble_forward(W, U, b, V, c, x, h0, activation):
    """Every member at once by stacked matrix products: W (E, n, n), U (E, n, d_in), b (E, n),
    V (E, d_out, n), c (E, d_out), x (E, T, B, d_in), h0 (E, B, n); returns H (E, T+1, B, n)
    and Y (E, T, B, d_out)."""
    act = record(activation)
    E, T, B, _ = x.shape
    WT, UT, VT = (np.swapaxes(M, 1, 2) for M in (W, U, V))
    H = np.zeros((E, T + 1, B, W.shape[1]))
    H[:, 0] = h0
    Y = np.zeros((E, T, B, V.shape[1]))
    for t in range(1, T + 1):
        H[:, t] = act.phi(H[:, t - 1] @ WT + x[:, t - 1] @ UT + b[:, None])
        Y[:, t - 1] = H[:, t] @ VT + c[:, None]
    return H, Y


def ensemble_loss_and_grad(W, U, b, V, c, x, h0, activation, target, loss):
    """Every member's loss (E,) and gradients (dict of arrays stacked like W, U, b, V, c) by
    backpropagation through time with stacked products; arrays as for `ensemble_forward`,
    ``target`` one member's target (as for `rnn_loss_and_grad`) per member, stacked on axis 0."""
    act = record(activation)
    T = x.shape[1]
    H, Y = ensemble_forward(W, U, b, V, c, x, h0, activation)
    losses, dY = zip(*(output_loss(Y[e], target[e], loss) for e in range(len(W))), strict=True)
    dY = np.stack(dY)
    grads = {k: np.zeros_like(p) for k, p in dict(W=W, U=U, b=b, V=V, c=c).items()}
    WT, UT = np.swapaxes(W, 1, 2), np.swapaxes(U, 1, 2)
    from_future = np.zeros_like(H[:, 0])  # W^T dL/da_{t+1}, (E, B, n)
    for t in range(T, 0, -1):
        grads["V"] += np.swapaxes(dY[:, t - 1], 1, 2) @ H[:, t]
        grads["c"] += dY[:, t - 1].sum(axis=1)
        G = dY[:, t - 1] @ V + from_future
        dA = G * act.dphi(H[:, t - 1] @ WT + x[:, t - 1] @ UT + b[:, None])
        dAT = np.swapaxes(dA, 1, 2)
        grads["W"] += dAT @ H[:, t - 1]
        grads["U"] += dAT @ x[:, t - 1]
        grads["b"] += dA.sum(axis=1)
        from_future = dA @ W
    return np.array(losses), grads
